"""`kiosk station --demo`: folders as sticks, headless, the same path after detection."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from kiosk.config import Config
from kiosk.protocol import Command, command, decode
from kiosk.station.outbox import Outbox
from kiosk.tui.model import StationModel
from kiosk.tui.spec import Context, Kind
from kiosk.tui.view import build
from kiosk.tui.words import Words
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


def _screen_lines(reader: BinaryIO, count: int) -> list[dict[str, Any]]:
    """Read *count* protocol lines from a connected screen socket."""
    return [decode(reader.readline()) for _ in range(count)]


@pytest.mark.parametrize("broken", ["missing", "invalid"])
def test_a_station_without_configuration_is_out_of_service_on_screen(
    tmp_path: Path, broken: str
) -> None:
    """An image built without --config: the station keeps its screen socket, says it is out of
    service (not_configured), reads no stick, and starts for real once the file loads."""
    conf = tmp_path / "kiosk.toml"
    if broken == "invalid":
        conf.write_text("[station\nid = 'x'\n")
    short = Path(tempfile.mkdtemp(prefix="ks", dir="/tmp"))
    path = short / "ev.sock"
    station = subprocess.Popen(
        [sys.executable, "-m", "kiosk", "station", "--config", str(conf), "--socket", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            while True:  # until the socket is up; a station that exits fails the test here
                assert station.poll() is None, "the station exited"
                try:
                    sock.connect(str(path))
                    break
                except (FileNotFoundError, ConnectionRefusedError):
                    time.sleep(0.05)
            reader = sock.makefile("rb")
            hello, health = _screen_lines(reader, 2)
            assert hello["type"] == "hello" and health["type"] == "health"
            assert health["ok"] is False and health["problems"] == ["not_configured"]
            sock.sendall(command(Command.PING) + command(Command.DISMISS, session_id="x"))
            ping, dismiss = _screen_lines(reader, 2)
            reader.close()
            assert ping["ok"] is True
            assert dismiss["error"] == "not_allowed"
        # The screen, fed these very lines, says the kiosk is out of service, in French.
        model = StationModel()
        model.set_connected(True, now=1.0)
        for message in (hello, health):
            model.apply(message, now=1.0)
        spec = build(model, Context(words=Words("fr"), contact="le service informatique"))
        assert spec.kind is Kind.OUT_OF_SERVICE
        assert spec.big == "HORS SERVICE"
        assert spec.lines == (
            "La station n'est pas configurée.",
            "Prévenez le service informatique.",
        )
        assert station.poll() is None  # still serving, not an exit loop
        conf.write_text("")  # IT puts a configuration in place (every default applies)
        assert station.wait(timeout=60) == 0  # systemd then starts the real station
    finally:
        if station.poll() is None:
            station.terminate()
            station.wait(timeout=30)
        shutil.rmtree(short, ignore_errors=True)
