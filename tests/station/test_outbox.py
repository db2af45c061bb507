"""The SQLite outbox: durable commits, recovery of unfinished sessions, delivery bookkeeping."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from kiosk.errors import OutboxError
from kiosk.models import (
    DeviceInfo,
    FileVerdict,
    Finding,
    Reason,
    Report,
    TreeVerdict,
    new_report_id,
    utcnow,
)
from kiosk.station.outbox import Outbox
from tests.station.conftest import needs_root

DEVICE = DeviceInfo(
    vendor="SanDisk", model="Cruzer", serial="42", size=1 << 30, fs_type="vfat", label="CLÉ"
)


def report(report_id: str | None = None, verdict: TreeVerdict = TreeVerdict.CLEAN) -> Report:
    now = utcnow()
    start = now.replace(microsecond=now.microsecond // 1000 * 1000)  # JSON keeps milliseconds
    return Report(
        report_id=report_id or new_report_id(),
        verdict=verdict,
        reason=None if verdict is TreeVerdict.CLEAN else Reason.THREATS_FOUND,
        started_at=start,
        finished_at=start + timedelta(seconds=3),
        files_total=2,
        bytes_total=100,
        counts={"clean": 1, "infected": 1} if verdict is TreeVerdict.INFECTED else {"clean": 2},
        findings=(Finding(path="a/b\\xff.exe", verdict=FileVerdict.INFECTED, threat="Eicar"),)
        if verdict is TreeVerdict.INFECTED
        else (),
        engine=None,
        station_id="st-1",
        device=DEVICE,
    )


def test_commit_pending_acknowledge(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    first, second = report(), report(verdict=TreeVerdict.INFECTED)
    for r in (first, second):
        box.begin(r.report_id, r.started_at, r.device, "st-1")
    assert box.backlog() == 0  # begun is not deliverable
    box.commit(first)
    box.commit(second)
    assert [r.report_id for r in box.pending()] == [first.report_id, second.report_id]
    assert box.pending()[1] == second  # the JSON round trip keeps everything
    assert box.pending(limit=1) == [first]
    assert box.backlog() == 2
    box.acknowledge(first.report_id)
    box.acknowledge(first.report_id)  # twice is harmless
    assert box.pending() == [second]
    assert box.backlog() == 1
    box.close()


def test_commit_again_replaces_the_body(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    r = report()
    box.commit(r)  # commit without begin (a report made elsewhere) is fine too
    box.commit(report(r.report_id, TreeVerdict.INFECTED))
    (only,) = box.pending()
    assert only.verdict is TreeVerdict.INFECTED
    box.close()


def test_recover_turns_begun_sessions_into_interrupted_reports(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    done, lost = report(), report()
    box.begin(done.report_id, done.started_at, DEVICE, "st-1")
    box.commit(done)
    box.begin(lost.report_id, lost.started_at, DEVICE, "st-1")
    box.close()
    again = Outbox(path)
    (recovered,) = again.recover()
    assert recovered.report_id == lost.report_id
    assert recovered.verdict is TreeVerdict.INCOMPLETE
    assert recovered.reason is Reason.INTERRUPTED
    assert recovered.device == DEVICE
    assert recovered.station_id == "st-1"
    assert {r.report_id for r in again.pending()} == {done.report_id, lost.report_id}
    assert again.recover() == []  # only once
    again.close()


def test_acknowledge_never_drops_a_begun_session(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    r = report()
    box.begin(r.report_id, r.started_at, None, "st-1")
    box.acknowledge(r.report_id)
    assert [x.report_id for x in box.recover()] == [r.report_id]
    box.close()


def test_settings_are_wal_and_full_sync(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.db")
    assert box._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert box._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    box.close()


def test_another_process_reads_what_was_committed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = Outbox(path)
    r = report()
    box.commit(r)
    code = (
        "import sys; from pathlib import Path; from kiosk.station.outbox import Outbox; "
        "b = Outbox(Path(sys.argv[1])); p = b.pending(); b.acknowledge(p[0].report_id); "
        "print(p[0].report_id)"
    )
    out = subprocess.run(
        [os.sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == r.report_id
    assert box.backlog() == 0
    box.close()


def test_unusable_file_is_an_outbox_error(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError):
        Outbox(path)


@needs_root
@pytest.mark.root
def test_disk_full_refuses_new_rows_and_keeps_old_ones(tmp_path: Path) -> None:
    """Row 24 at the outbox level: a tiny tmpfs fills up; what was stored stays."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], check=True)
    try:
        box = Outbox(mnt / "outbox.db")
        kept = report()
        box.commit(kept)
        filler = mnt / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with pytest.raises(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        with pytest.raises(OutboxError) as caught:
            for _ in range(200):  # until the WAL needs a page it cannot have
                r = report(verdict=TreeVerdict.INFECTED)
                box.begin(r.report_id, r.started_at, DEVICE, "st-1")
                box.commit(r)
        assert "full" in str(caught.value)
        assert kept.report_id in {r.report_id for r in box.pending(limit=1000)}
        filler.unlink()
        r = report()
        box.begin(r.report_id, r.started_at, DEVICE, "st-1")  # room again: works again
        box.commit(r)
        box.close()
        check = sqlite3.connect(mnt / "outbox.db")
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        check.close()
    finally:
        subprocess.run(["umount", "--lazy", str(mnt)], check=False)


@needs_root
@pytest.mark.root
def test_outbox_is_shared_with_the_shippers_group(tmp_path: Path) -> None:
    import grp

    gid = grp.getgrnam("daemon").gr_gid  # a group every Debian system has
    box = Outbox(tmp_path / "outbox.db", group="daemon")
    box.commit(report())
    for name in ("outbox.db", "outbox.db-wal"):
        info = (tmp_path / name).stat()
        assert info.st_gid == gid, name
        assert info.st_mode & 0o777 == 0o660, name
    box.close()
    Outbox(tmp_path / "other.db", group="no-such-group-here").close()  # absent group: no error


def test_outbox_path_follows_the_shippers_setting() -> None:
    from kiosk.config import Config
    from kiosk.station.outbox import outbox_path

    config = Config().with_overrides("station", data_dir="/srv/k")
    assert outbox_path(config) == Path("/srv/k/outbox.db")
    moved = config.with_overrides("shipper", outbox_file="/data/o.db")
    assert outbox_path(moved) == Path("/data/o.db")


def test_oldest_pending_and_the_server_link_it_implies(tmp_path: Path) -> None:
    from kiosk.config import Config
    from kiosk.station.monitor import server_link

    box = Outbox(tmp_path / "outbox.db")
    assert box.oldest_pending() is None
    first, second = report(), report()
    box.commit(first)
    box.commit(second)
    oldest = box.oldest_pending()
    assert oldest is not None and abs((utcnow() - oldest).total_seconds()) < 3600
    box.acknowledge(first.report_id)
    box.acknowledge(second.report_id)
    assert box.oldest_pending() is None
    box.close()

    off = Config()
    on = off.with_overrides("shipper", server_url="https://logs.example", backoff_max=300.0)
    assert server_link(off, None) == "off"
    assert server_link(on, None) == "ok"
    assert server_link(on, utcnow() - timedelta(seconds=30)) == "ok"
    assert server_link(on, utcnow() - timedelta(hours=2)) == "down"
