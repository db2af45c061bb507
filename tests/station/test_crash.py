"""Row 23: the station SIGKILLed mid-session; the next start finds and reports the lost session."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiosk.config import Config
from kiosk.models import Reason, TreeVerdict
from kiosk.station.outbox import Outbox
from tests.station.conftest import live_station, needs_root
from tests.station.helpers import make_image, mounts_under, sh
from tests.support import trees

pytestmark = [needs_root, pytest.mark.root, pytest.mark.slow]


def begun_rows(db: Path) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(db, timeout=10)
    try:
        return int(con.execute("SELECT count(*) FROM reports WHERE state='begun'").fetchone()[0])
    except sqlite3.OperationalError:  # the station has not created the table yet
        return 0
    finally:
        con.close()


def toml(config: Config) -> str:
    s = config.station
    return (
        f'[clamd]\nsocket = "{config.clamd.socket}"\n'
        f'[station]\ndata_dir = "{s.data_dir}"\nmount_dir = "{s.mount_dir}"\n'
        f'event_socket = "{s.event_socket}"\nsettle_time = 0.0\n'
    )


async def test_sigkill_mid_scan_loses_nothing(station_config: Config, tmp_path: Path) -> None:
    small_tree = tmp_path / "small"
    small_tree.mkdir()
    (small_tree / "a.txt").write_text("bonjour\n")
    small = make_image(tmp_path / "small.img", "ext4", small_tree, size_mb=8)
    many = tmp_path / "many"
    many.mkdir()
    for i in range(4000):
        (many / f"f{i:05d}.bin").write_bytes(trees.noise(i, 16384))
    big = make_image(tmp_path / "big.img", "ext4", many, size_mb=160)
    conf = tmp_path / "kiosk.toml"
    conf.write_text(toml(station_config))
    db = Path(station_config.station.data_dir) / "outbox.db"
    mount_dir = Path(station_config.station.mount_dir)

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kiosk",
            "station",
            "--config",
            str(conf),
            "--demo",
            str(small),
            str(big),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "LANGUAGE": "en"},
    )
    caught = False
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the small stick's verdict: committed before printed
        assert "no threat found" in first, first
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if begun_rows(db) and mounts_under(mount_dir):
                # Freeze it first: a stopped station cannot commit behind our back.
                proc.send_signal(signal.SIGSTOP)
                caught = begun_rows(db) == 1
                break
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert caught, "the station was not caught between beginning and committing the big stick"
    assert proc.returncode == -signal.SIGKILL
    assert mounts_under(mount_dir)  # a killed station leaves its mount behind ...

    try:
        async with live_station(station_config) as live:
            assert mounts_under(mount_dir) == []  # ... which the next start undoes
            (lost,) = live.station.recovered
            assert lost.verdict is TreeVerdict.INCOMPLETE
            assert lost.reason is Reason.INTERRUPTED
            assert lost.device is not None and lost.device.model == "demo"
            health = await live.screen.wait_for(
                lambda m: m.get("type") == "health" and m["outbox_backlog"] == 2
            )
            assert health["outbox_backlog"] == 2
        box = Outbox(db)
        reports = box.pending()
        box.close()
        assert [r.verdict for r in reports] == [TreeVerdict.CLEAN, TreeVerdict.INCOMPLETE]
        assert reports[1].report_id == lost.report_id
        con = sqlite3.connect(db)
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        con.close()
    finally:
        for image in (small, big):
            for line in sh("losetup", "-j", image, check=False).splitlines():
                sh("losetup", "--detach", line.split(":", 1)[0], check=False)
