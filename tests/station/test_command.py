"""`kiosk station --demo`: folders as sticks, headless, the same path after detection."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from kiosk.config import Config
from kiosk.station.outbox import Outbox
from tests.support.clamd import EICAR


def test_demo_scans_folders_in_turn(station_config: Config, tmp_path: Path) -> None:
    clean = tmp_path / "clé propre"
    clean.mkdir()
    (clean / "cours.txt").write_text("bonjour\n")
    bad = tmp_path / "clé\x1b[31m sale"  # the name reaches the terminal only made inert
    bad.mkdir()
    (bad / "virus.com").write_bytes(EICAR)
    s = station_config.station
    conf = tmp_path / "kiosk.toml"
    conf.write_text(
        f'[clamd]\nsocket = "{station_config.clamd.socket}"\n'
        f'[station]\ndata_dir = "{s.data_dir}"\nmount_dir = "{s.mount_dir}"\n'
    )
    socket_dir = Path(s.event_socket).parent
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kiosk",
            "station",
            "--config",
            str(conf),
            "--socket",
            s.event_socket,
            "--demo",
            str(clean),
            str(bad),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LANGUAGE": "fr"},
    )
    shutil.rmtree(socket_dir, ignore_errors=True)
    assert result.returncode == 1, result.stderr  # threats found, like `kiosk scan`
    first, second = result.stdout.splitlines()
    assert first.startswith(f"{clean} : aucune menace") and "code d’analyse" in first
    assert "\x1b" not in second and "\\x1b[31m sale" in second
    # Each session is one JSON journal line.
    journal = [line for line in result.stderr.splitlines() if "kiosk.station.journal" in line]
    assert len(journal) == 2 and '"verdict":"infected"' in journal[1]
    box = Outbox(Path(s.data_dir) / "outbox.db")
    assert [r.verdict for r in box.pending()] == ["clean", "infected"]
    box.close()


def test_daemon_serves_screens_and_stops_on_sigterm(station_config: Config, tmp_path: Path) -> None:
    import signal
    import socket
    import time

    from kiosk.protocol import decode

    s = station_config.station
    conf = tmp_path / "kiosk.toml"
    conf.write_text(
        f'[clamd]\nsocket = "{station_config.clamd.socket}"\n'
        f'[station]\ndata_dir = "{s.data_dir}"\nmount_dir = "{s.mount_dir}"\n'
        f'event_socket = "{s.event_socket}"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "station", "--config", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not Path(s.event_socket).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(s.event_socket)
            reader = sock.makefile("rb")
            hello = decode(reader.readline())
            health = decode(reader.readline())
            reader.close()
        assert hello["type"] == "hello" and hello["protocol"] == 1
        assert hello["station_id"] == "demo-station"
        assert health["type"] == "health"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert not Path(s.event_socket).exists()  # the socket is removed on the way out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        shutil.rmtree(Path(s.event_socket).parent, ignore_errors=True)
    assert proc.returncode == 0, err
