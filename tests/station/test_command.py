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
        [sys.executable, "-m", "kiosk", "station", "--config", str(conf),
         "--socket", s.event_socket, "--demo", str(clean), str(bad)],
        capture_output=True, text=True, timeout=120,
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
