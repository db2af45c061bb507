"""Sessions on folder "sticks" (no root needed): the same path after detection as a real stick."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from kiosk.config import Config
from kiosk.protocol import Command, command
from kiosk.station.device import DeviceEvent, Kind, Volume
from kiosk.station.source import DeviceSource, ManualSource
from kiosk.station.station import Station
from tests.station.conftest import live_station
from tests.station.helpers import Screen
from tests.support.clamd import EICAR

# A disk whose partition table announced one partition that never comes: it settles.
SETTLING_DISK = Volume(
    key="/sys/x/sdz",
    stick="/sys/x/sdz",
    kind=Kind.DISK,
    node="/dev/sdz",
    bus="usb",
    partition_table=True,
    partitions=1,
    size=1 << 20,
)


def folder(root: Path, infected: bool) -> Path:
    root.mkdir(parents=True)
    (root / "cours.txt").write_text("bonjour\n")
    if infected:
        (root / "sous dossier").mkdir()
        (root / "sous dossier" / "virus.com").write_bytes(EICAR)
    return root


async def test_folder_delete_flow_and_removal_timeout(
    station_config: Config, tmp_path: Path
) -> None:
    config = station_config.with_overrides("station", removal_timeout=0.5)
    stick = folder(tmp_path / "clé", infected=True)
    async with live_station(config) as live:
        live.source.plug(stick)
        first = await live.screen.wait_for(lambda m: m.get("type") == "verdict")
        assert first["verdict"] == "infected" and first["delete"] == "offer"
        start = len(live.screen.lines)
        await live.screen.send(command(Command.DELETE_INFECTED, session_id=first["session_id"]))
        after = await live.screen.wait_for(lambda m: m.get("type") == "verdict", start=start)
        assert after["verdict"] == "clean"
        assert after["actions"][0]["files"] == ["sous dossier/virus.com"]
        assert not (stick / "sous dossier" / "virus.com").exists()
        assert (stick / "cours.txt").exists()
        # removal_timeout: the session ends by itself although the "stick" is still there.
        removed = await live.screen.wait_for(lambda m: m.get("type") == "removed", start=start)
        assert removed["session_id"] == first["session_id"]
        assert live.station.sessions == {}


async def test_stick_gone_while_settling_leaves_no_report(
    station_config: Config, tmp_path: Path
) -> None:
    # Far longer than the screen waits: the session must end when the stick goes, not then.
    config = station_config.with_overrides("station", settle_time=600.0)
    disk = SETTLING_DISK
    async with live_station(config) as live:
        volume = live.source.plug(disk)
        await live.screen.wait_for(lambda m: m.get("type") == "session")
        live.source.unplug(volume)
        ended = await live.screen.wait_for(
            lambda m: m.get("type") == "session" and m["state"] == "ended"
        )
        await live.screen.wait_for(
            lambda m: m.get("type") == "removed" and m["session_id"] == ended["session_id"]
        )
        assert live.screen.of("verdict") == []
        assert live.station.outbox.pending() == []


async def until(station: Station, volumes: list[Volume]) -> None:
    """Wait until the station's only session holds *volumes*."""
    for _ in range(500):
        sessions = list(station.sessions.values())
        if len(sessions) == 1 and sessions[0].volumes == volumes:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"sessions: {[s.volumes for s in station.sessions.values()]}")


async def test_a_new_disk_while_settling_is_the_same_session(
    station_config: Config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A newer disk where a settling session's stick is: the one to scan, in the session
    already on the screen, not a replacement; an older one's late event changes nothing."""
    caplog.set_level(logging.INFO, logger="kiosk.station.station")
    # Far longer than the screen waits: the session must end when the stick goes, not then.
    config = station_config.with_overrides("station", settle_time=600.0)
    disk = replace(SETTLING_DISK, diskseq=41)
    async with live_station(config) as live:
        live.source.plug(disk)
        first = await live.screen.wait_for(lambda m: m.get("type") == "session")
        newer = live.source.plug(replace(disk, diskseq=42))
        await until(live.station, [newer])
        # A late event of a disk older than the session's changes nothing (events are handled
        # in order: once the next one is in, the late one has been).
        live.source.plug(replace(disk, diskseq=40))
        newer = live.source.plug(replace(disk, diskseq=43))
        await until(live.station, [newer])
        (session,) = live.station.sessions.values()
        assert session.session_id == first["session_id"]
        assert "a late event of an older disk" in caplog.text  # not adopted, then replaced
        live.source.unplug(newer)
        ended = await live.screen.wait_for(
            lambda m: m.get("type") == "session" and m["state"] == "ended"
        )
        assert ended["session_id"] == first["session_id"]
        assert [m["session_id"] for m in live.screen.of("session")] == [first["session_id"]] * len(
            live.screen.of("session")
        )


class BrokenOnceSource(DeviceSource):
    """A source whose first listening fails (as a netlink socket may), then works."""

    def __init__(self) -> None:
        self.inner = ManualSource()
        self.calls = 0

    async def events(self) -> AsyncIterator[DeviceEvent]:
        self.calls += 1
        if self.calls == 1:
            raise OSError("netlink went away")
        async for found in self.inner.events():
            yield found


async def test_station_listens_again_after_its_source_failed(
    station_config: Config, tmp_path: Path
) -> None:
    source = BrokenOnceSource()
    station = Station(station_config, source)
    task = asyncio.create_task(station.run())
    screen = Screen()
    try:
        await asyncio.wait_for(station.ready.wait(), 30)
        await screen.connect(Path(station_config.station.event_socket))
        source.inner.plug(folder(tmp_path / "après", infected=False))
        verdict = await screen.wait_for(lambda m: m.get("type") == "verdict")
        assert verdict["verdict"] == "clean"
        assert source.calls == 2
    finally:
        await screen.close()
        station.stop()
        await asyncio.gather(task, return_exceptions=True)
        shutil.rmtree(Path(station_config.station.event_socket).parent, ignore_errors=True)


def test_reports_of_several_filesystems_fold_worst_first() -> None:
    from datetime import timedelta

    from kiosk.models import FileVerdict, Finding, Reason, Report, TreeVerdict, utcnow
    from kiosk.station.session import merge_reports

    now = utcnow()

    def part(verdict: TreeVerdict, reason: Reason | None, finding: Finding | None) -> Report:
        return Report(
            report_id="r",
            verdict=verdict,
            reason=reason,
            started_at=now,
            finished_at=now + timedelta(seconds=1),
            files_total=3,
            bytes_total=30,
            counts={"clean": 2, str(finding.verdict): 1} if finding else {"clean": 3},
            findings=(finding,) if finding else (),
            engine=None,
        )

    virus = Finding(path="a/v.com", verdict=FileVerdict.INFECTED, threat="Eicar")
    broken = Finding(path="b.txt", verdict=FileVerdict.ERROR, reason=Reason.READ_ERROR)
    clean = part(TreeVerdict.CLEAN, None, None)
    partial = part(TreeVerdict.INCOMPLETE, Reason.SCAN_ERRORS, broken)
    infected = part(TreeVerdict.INFECTED, Reason.THREATS_FOUND, virus)

    assert merge_reports([("", clean)]) is clean  # one filesystem: the report as it is
    both = merge_reports([("1", clean), ("2", partial)])
    assert (both.verdict, both.reason) == (TreeVerdict.INCOMPLETE, Reason.SCAN_ERRORS)
    assert both.files_total == 6 and both.counts == {"clean": 5, "error": 1}
    assert [f.path for f in both.findings] == ["2/b.txt"]
    three = merge_reports([("1", partial), ("2", clean), ("3", infected)])
    assert three.verdict is TreeVerdict.INFECTED
    assert [f.path for f in three.findings] == ["3/a/v.com", "1/b.txt"]  # worst first


def test_a_session_waits_only_for_partitions_it_lacks() -> None:
    from kiosk.station.session import Session

    def vol(key: str, kind: Kind, **kw: object) -> Volume:
        return Volume(key=key, stick="s", kind=kind, node=f"/dev/{key}", **kw)  # type: ignore[arg-type]

    whole = vol("sdb", Kind.DISK, fs_type="vfat")
    table = vol("sdb", Kind.DISK, partition_table=True, partitions=2)
    unknown = vol("sdb", Kind.DISK, partition_table=True, partitions=None)
    p1, p2 = vol("sdb1", Kind.PARTITION), vol("sdb2", Kind.PARTITION)
    assert Session(stick="s", volumes=[whole]).settled()  # a filesystem on the whole stick
    assert not Session(stick="s", volumes=[table, p1]).settled()  # one of two partitions
    assert Session(stick="s", volumes=[table, p1, p2]).settled()
    assert not Session(stick="s", volumes=[p1]).settled()  # a partition before its disk
    assert not Session(stick="s", volumes=[unknown, p1, p2]).settled()  # count unknown: wait


def test_a_screen_connecting_during_the_rescan_shows_the_rescan_not_the_old_verdict() -> None:
    import dataclasses
    import uuid

    from kiosk.models import Action, Reason, Report, TreeVerdict, utcnow
    from kiosk.protocol import EventType, State, decode, event
    from kiosk.station.session import Session
    from kiosk.tui.model import StationModel
    from kiosk.tui.view import Context, Kind, build
    from kiosk.tui.words import Words
    from tests.tui.fake_station import hello

    failed = Report.failed(uuid.uuid4().hex, utcnow(), Reason.SCAN_ERRORS, "x")
    old = dataclasses.replace(failed, verdict=TreeVerdict.INFECTED)
    stick = Session(stick="s", volumes=[], report=old, delete_policy="offer")
    stick.pending_actions = (Action(kind="delete_infected", at=utcnow(), ok=True),)
    stick.state = State.SCANNING
    stick.last_progress = event(
        EventType.PROGRESS,
        session_id=stick.session_id,
        files_done=1,
        files_total=4,
        bytes_done=10,
        bytes_total=40,
        current=None,
        eta_s=3,
    )

    def shown() -> tuple[Kind, float | None]:
        model = StationModel()
        model.set_connected(True, 0.0)
        model.apply(hello(), 0.0)
        for line in stick.snapshot():
            model.apply(decode(line), 0.0)
        spec = build(model, Context(words=Words("fr"), contact="IT", now=1.0))
        return spec.kind, spec.progress

    types = [decode(line)["type"] for line in stick.snapshot()]
    assert types == ["session", "progress"]  # the old verdict is being replaced: not sent
    assert decode(stick.snapshot()[0])["rescan"] is True
    assert shown() == (Kind.DELETING, 0.25)
    # Judged again: the new verdict is sent and shown, and the session is no longer a rescan.
    new = uuid.uuid4().hex
    stick.report = dataclasses.replace(old, report_id=new, verdict=TreeVerdict.CLEAN, reason=None)
    stick.state = State.VERDICT
    assert [decode(line)["type"] for line in stick.snapshot()] == ["session", "verdict"]
    assert decode(stick.snapshot()[0])["rescan"] is False
    assert shown()[0] == Kind.CLEAN
