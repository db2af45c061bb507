"""Refused USB devices (THREATS row 25): usb-policy's spool drained into the real SQLite outbox.

The records are written by the real usb-policy script (on a fake sysfs device, as in
tests/image/test_usb_policy.py); the station's side reads them, commits one report each to a
real outbox, exactly once across a crash, and tells the screens.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kiosk.config import Config
from kiosk.models import Reason, Report, TreeVerdict
from kiosk.station import refused
from kiosk.station.outbox import Outbox
from kiosk.station.source import ManualSource
from kiosk.station.station import Station
from tests.image.test_usb_policy import booted, descriptors, fake_device, policy
from tests.station.helpers import Screen

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """usb-policy's spools moved into the temp dir, the kiosk booted (locked), journal muted."""
    data = tmp_path / "data" / refused.SPOOL_NAME
    booted(tmp_path, monkeypatch, data)
    return data


def plug(root: Path, *interfaces: int, **strings: str | bytes) -> Path:
    """Run the real usb-policy on a fake device with these interfaces; return the device."""
    device = fake_device(root / uuid.uuid4().hex, descriptors(0, *interfaces))
    for name, value in strings.items():
        (device / name).write_bytes(value if isinstance(value, bytes) else value.encode())
    assert policy.main(["usb-policy", str(device)]) == 0
    return device


def rows(outbox: Outbox) -> list[Report]:
    return outbox.pending(limit=10_000)


def test_refusals_become_reports_once(tmp_path: Path, spool: Path) -> None:
    """Each record is one report named by its UUID, with the device's identity; spool emptied."""
    plug(tmp_path, 8, 3, manufacturer="Evil Corp", product="Totally a stick", serial="0042")
    plug(tmp_path, 3)
    plug(tmp_path, 8)  # a plain stick: authorised, nothing spooled
    ids = sorted(p.stem for p in refused.records(spool))
    assert len(ids) == 2
    box = Outbox(tmp_path / "outbox.db")
    done = refused.drain([spool], box, "st-1", "1.0")
    assert sorted(r.report_id for r in done) == ids
    assert refused.records(spool) == []
    stored = {r.report_id: r for r in rows(box)}
    assert sorted(stored) == ids
    composite = next(r for r in stored.values() if r.extra["refusal"] == "storage_composite")
    assert composite.verdict is TreeVerdict.SUSPICIOUS
    assert composite.reason is Reason.DEVICE_REFUSED
    assert (composite.files_total, composite.findings, composite.engine) == (0, (), None)
    assert composite.device is not None
    assert (composite.device.vendor, composite.device.model, composite.device.serial) == (
        "Evil Corp",
        "Totally a stick",
        "0042",
    )
    assert composite.extra["usb_id"] == "0627:0001"
    assert composite.extra["interfaces"] == "08,03"
    assert composite.detail == "USB 0627:0001, interfaces 08,03: storage_composite"
    assert composite.station_id == "st-1" and composite.software_version == "1.0"
    keyboard = next(r for r in stored.values() if r.extra["refusal"] == "not_storage")
    assert keyboard.extra["interfaces"] == "03"
    # Nothing left to do: a second drain finds nothing.
    assert refused.drain([spool], box, "st-1") == []
    assert len(rows(box)) == 2
    box.close()


def test_the_same_record_twice_is_one_report(tmp_path: Path, spool: Path) -> None:
    """A record left behind after its commit (the unlink lost) is committed again, not doubled."""
    plug(tmp_path, 8, 3)
    (path,) = refused.records(spool)
    kept = path.read_bytes()
    box = Outbox(tmp_path / "outbox.db")
    first = refused.drain([spool], box, "st-1")
    path.write_bytes(kept)  # as if the unlink had never happened
    second = refused.drain([spool], box, "st-1")
    assert [r.to_dict() for r in first] == [r.to_dict() for r in second]
    assert [r.report_id for r in rows(box)] == [path.stem]
    box.close()


def test_an_outbox_that_cannot_store_leaves_the_records(tmp_path: Path, spool: Path) -> None:
    """The outbox refuses (here: closed, as a full disk would): nothing is removed, nothing lost."""
    plug(tmp_path, 8, 3)
    plug(tmp_path, 3)
    broken = Outbox(tmp_path / "broken.db")
    broken.close()
    assert refused.drain([spool], broken, "st-1") == []
    assert len(refused.records(spool)) == 2
    box = Outbox(tmp_path / "outbox.db")
    assert len(refused.drain([spool], box, "st-1")) == 2
    assert len(rows(box)) == 2 and refused.records(spool) == []
    box.close()


CRASH = """
import os, signal, sys
from pathlib import Path
from kiosk.station import refused
from kiosk.station.outbox import Outbox

def crash(path):
    os.kill(os.getpid(), signal.SIGKILL)  # between the outbox commit and the unlink

refused._remove = crash
refused.drain([Path(sys.argv[1])], Outbox(Path(sys.argv[2])), "st-1")
"""


def test_a_crash_between_commit_and_unlink_never_doubles(tmp_path: Path, spool: Path) -> None:
    """SIGKILL right after the commit: the restarted station commits the same id once more."""
    plug(tmp_path, 8, 3)
    plug(tmp_path, 3)
    first, second = refused.records(spool)
    db = tmp_path / "outbox.db"
    run = subprocess.run([sys.executable, "-c", CRASH, str(spool), str(db)], cwd=ROOT, check=False)
    assert run.returncode == -signal.SIGKILL
    box = Outbox(db)
    assert [r.report_id for r in rows(box)] == [first.stem]  # committed, durably
    assert first.exists() and second.exists()  # ... and not removed: the crash came first
    refused.drain([spool], box, "st-1")
    assert sorted(r.report_id for r in rows(box)) == sorted([first.stem, second.stem])
    assert refused.records(spool) == []
    # Delivered and acknowledged, then the same record again: the outbox holds it once more
    # under the same id, which the server stores once (tests/server: duplicate report_id).
    box.close()


def _record(spool: Path, name: str, raw: bytes) -> Path:
    spool.mkdir(parents=True, exist_ok=True)
    path = spool / name
    path.write_bytes(raw)
    return path


GOOD = {
    "v": 1,
    "kind": "refused",
    "at": "2026-11-29T10:00:00.000+00:00",
    "busid": "1-1",
    "vendor_id": "046d",
    "product_id": "c31c",
    "manufacturer": "Logitech",
    "product": "Keyboard",
    "serial": "",
    "device_class": 0,
    "interfaces": [3],
    "refusal": "not_storage",
}


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (b"{" + b" " * (refused.MAX_RECORD_BYTES + 10) + b"}", "over 16384 bytes"),
        (b"not json at all", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "over 16384 bytes"),
        (b"[" * 5000 + b"]" * 5000, "not JSON"),  # nested past the parser's depth, under the cap
        (b"\xff\xfe\x00garbage", "not JSON"),
        (b"[]", "not a JSON object"),
        ({**GOOD, "v": 2}, "unknown record version"),
        ({**GOOD, "id": "other"}, "id is not its file name"),
        ({**GOOD, "kind": "bogus"}, "unknown record kind"),
        ({**GOOD, "refusal": "rm -rf"}, "unknown refusal code"),
        ({**GOOD, "manufacturer": 12}, "manufacturer is not a string"),
        ({**GOOD, "interfaces": [3, 999]}, "interfaces is not a number"),
        ({**GOOD, "interfaces": [True]}, "interfaces is not a number"),
        ({**GOOD, "interfaces": "03"}, "interfaces is not a short list"),
        ({**GOOD, "device_class": None}, "device_class is not a number"),
        ({**GOOD, "vendor_id": "../.."}, "not hexadecimal"),
        ({**GOOD, "at": "yesterday"}, "at is not a time"),
        ({**GOOD, "at": "2026-11-29T10:00:00"}, "no time zone"),
        ({**GOOD, "kind": "overflow", "count": -3}, "count is not a positive number"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_malformed_records_are_reported_not_dropped(
    tmp_path: Path, record: bytes | dict[str, object], problem: str
) -> None:
    """A bad record never crashes the drain: it becomes a report that says what is wrong."""
    spool = tmp_path / "spool"
    rid = str(uuid.uuid4())
    raw = record if isinstance(record, bytes) else json.dumps({"id": rid, **record}).encode()
    _record(spool, f"{rid}.json", raw)
    box = Outbox(tmp_path / "outbox.db")
    (report,) = refused.drain([spool], box, "st-1")
    assert report.report_id == rid
    assert report.reason is Reason.DEVICE_REFUSED
    assert report.verdict is TreeVerdict.SUSPICIOUS
    assert report.extra["record"] == "malformed"
    assert report.detail is not None and problem in report.detail
    assert [r.report_id for r in rows(box)] == [rid]
    assert not (spool / f"{rid}.json").exists()
    box.close()


def test_a_well_formed_record_by_hand_is_not_malformed(tmp_path: Path) -> None:
    """The reference record of the table above is accepted (the table tests one fault each)."""
    spool = tmp_path / "spool"
    rid = str(uuid.uuid4())
    _record(spool, f"{rid}.json", json.dumps({"id": rid, **GOOD}).encode())
    box = Outbox(tmp_path / "outbox.db")
    (report,) = refused.drain([spool], box, "st-1")
    assert report.extra["record"] == "refused"
    assert report.device is not None and report.device.model == "Keyboard"
    assert report.detail == "USB 046d:c31c, interfaces 03: not_storage"
    box.close()


def test_odd_files_in_the_spool(tmp_path: Path) -> None:
    """A link or a directory named like a record is reported and removed; others are ignored."""
    spool = tmp_path / "spool"
    spool.mkdir()
    secret = tmp_path / "secret"
    secret.write_text(json.dumps(GOOD))
    link, folder = str(uuid.uuid4()), str(uuid.uuid4())
    (spool / f"{link}.json").symlink_to(secret)
    (spool / f"{folder}.json").mkdir()
    (spool / "notes.txt").write_text("not a record")
    box = Outbox(tmp_path / "outbox.db")
    done = {r.report_id: r for r in refused.drain([spool], box, "st-1")}
    assert set(done) == {link, folder}
    assert all(r.extra["record"] == "malformed" for r in done.values())
    assert "not a regular file" in (done[folder].detail or "")
    assert "cannot be read" in (done[link].detail or "")  # O_NOFOLLOW: the link is not read
    assert secret.exists()
    assert sorted(p.name for p in spool.iterdir()) == [".lock", "notes.txt"]
    box.close()


def test_hostile_strings_stay_escaped_data(tmp_path: Path, spool: Path) -> None:
    """Device strings reach the report as escaped data and the journal line made inert."""
    plug(
        tmp_path,
        8,
        3,
        manufacturer=b"\x1b]0;pwned\x07\x1b[2J",
        product="Cl\u00e9\u202eexe.txt",
        serial="\\x41",
    )
    box = Outbox(tmp_path / "outbox.db")
    (report,) = refused.drain([spool], box, "st-1")
    assert report.device is not None
    assert report.device.vendor == "\x1b]0;pwned\x07\x1b[2J"  # data, as usb-policy read it
    assert report.device.serial == "\\\\x41"  # escaped form: a backslash doubled
    line = refused.journal_line(report)
    assert "\x1b" not in line and "\u202e" not in line
    assert "\\\\x1b" in line and "U+202E" in line
    box.close()


def test_the_spool_cap_holds_and_the_overflow_is_reported(
    tmp_path: Path, spool: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device re-enumerating in a loop: MAX_RECORDS reports plus one counting the rest."""
    monkeypatch.setattr(policy, "MAX_RECORDS", 4)
    for _ in range(10):
        plug(tmp_path, 8, 3)
    assert len(refused.records(spool)) == 4
    box = Outbox(tmp_path / "outbox.db")
    done = refused.drain([spool], box, "st-1")
    assert len(done) == 5
    (overflow,) = [r for r in done if r.extra["record"] == "overflow"]
    assert overflow.extra["refused_devices"] == 6
    assert overflow.extra["refusal"] == "storage_composite"
    assert overflow.detail is not None and overflow.detail.startswith("6 more refused")
    assert sum(int(r.extra["refused_devices"]) for r in done) == 10
    # The loop goes on: a new overflow count with a new id, reported once in its turn.
    for _ in range(7):
        plug(tmp_path, 8, 3)
    later = refused.drain([spool], box, "st-1")
    assert sum(int(r.extra["refused_devices"]) for r in later) == 7
    assert len({r.report_id for r in rows(box)}) == 5 + len(later) == len(rows(box))
    box.close()


def test_a_half_written_record_is_reported_once_stale(tmp_path: Path) -> None:
    """usb-policy killed mid-write leaves a temporary file: reported once it is stale."""
    spool = tmp_path / "spool"
    tmp = _record(spool, ".tmp-0123abcd", b'{"v": 1, "kind": "ref')
    box = Outbox(tmp_path / "outbox.db")
    assert refused.drain([spool], box, "st-1") == []  # fresh: usb-policy may be writing it
    old = time.time() - refused.STALE_TMP - 10
    os.utime(tmp, (old, old))
    (report,) = refused.drain([spool], box, "st-1")
    assert report.extra["record"] == "malformed"
    assert not tmp.exists()
    box.close()


def test_a_whole_record_left_as_a_temporary_file_keeps_its_id(tmp_path: Path) -> None:
    """Power cut after usb-policy's fsync, before its rename: the record is whole, reported."""
    spool = tmp_path / "spool"
    rid = str(uuid.uuid4())
    tmp = _record(spool, ".tmp-feedface", json.dumps({"id": rid, **GOOD}).encode())
    old = time.time() - refused.STALE_TMP - 10
    os.utime(tmp, (old, old))
    box = Outbox(tmp_path / "outbox.db")
    (report,) = refused.drain([spool], box, "st-1")
    assert (report.report_id, report.extra["record"]) == (rid, "refused")
    box.close()


def test_the_volatile_spool_is_drained_too(tmp_path: Path) -> None:
    """Both spools (data partition, then /run) are drained; the volatile one sits under /run."""
    config = Config().with_overrides("station", data_dir=str(tmp_path / "data"))
    assert refused.spool_dirs(config) == [tmp_path / "data/usb-refused", refused.VOLATILE_SPOOL]
    assert (Path("/var/lib/kiosk/usb-refused"), refused.VOLATILE_SPOOL) == policy.SPOOLS
    run = tmp_path / "run"
    _record(run, f"{uuid.uuid4()}.json", b"{}")
    box = Outbox(tmp_path / "outbox.db")
    assert len(refused.drain([tmp_path / "data/usb-refused", run], box, "st-1")) == 1
    box.close()


async def test_the_station_drains_at_start_and_when_a_usb_device_appears(
    tmp_path: Path, spool: Path, station_config: Config
) -> None:
    """At start the spool is drained before `ready`; later a USB event drains it and the screen
    gets one `refused` notice (an old refusal is reported but not shown)."""
    plug(tmp_path, 8, 3)
    (old,) = refused.records(spool)
    record = json.loads(old.read_text())
    old.write_text(json.dumps({**record, "at": "2026-01-01T08:00:00.000+00:00"}))
    config = station_config.with_overrides("station", data_dir=str(tmp_path / "data"))
    source = ManualSource()
    box = Outbox(tmp_path / "outbox.db")
    station = Station(config, source, outbox=box, refused_spools=[spool])
    task = asyncio.create_task(station.run())
    try:
        await asyncio.wait_for(station.ready.wait(), 30)
        assert [r.report_id for r in rows(box)] == [old.stem]
        assert not old.exists()
        screen = await Screen().connect(Path(config.station.event_socket))
        try:
            await screen.wait_for(lambda line: line.get("type") == "health")
            plug(tmp_path, 3, product="Keyboard")
            (fresh,) = refused.records(spool)
            source.usb_added()
            notice = await screen.wait_for(lambda line: line.get("type") == "refused")
            assert notice["report_id"] == fresh.stem
            assert notice["reason"] == "device_refused"
            assert notice["refusal"] == "not_storage"
            assert notice["devices"] == 1
            assert len(notice["scan_code"]) == 9
            assert sorted(r.report_id for r in rows(box)) == sorted([old.stem, fresh.stem])
            assert len(screen.of("refused")) == 1  # the old one was never shown
            assert not screen.of("session")  # not a stick session
        finally:
            await screen.close()
    finally:
        station.stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 60)
        box.close()
