"""The station end to end: real loop devices, a real clamd, the event socket as a screen sees it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kiosk.config import Config
from kiosk.delivery.health import read_health
from kiosk.models import Report
from kiosk.protocol import Command, command
from kiosk.station.device import Kind, Volume
from kiosk.station.outbox import Outbox
from kiosk.station.source import block_volume
from kiosk.tui.model import StationModel
from kiosk.tui.spec import Action, Context
from kiosk.tui.view import build
from kiosk.tui.words import Words
from tests.station.conftest import Live, live_station, make_config, needs_root
from tests.station.helpers import Loops, make_image, mounts_under, sh
from tests.support.clamd import EICAR, start_clamd

pytestmark = [needs_root, pytest.mark.root, pytest.mark.slow]


def verdict_of(live: Live, start: int = 0) -> Any:
    return live.screen.wait_for(lambda m: m.get("type") == "verdict", timeout=120, start=start)


def stick_tree(root: Path, *, infected: bool = True) -> Path:
    (root / "Cours").mkdir(parents=True)
    for i in range(20):
        (root / "Cours" / f"leçon {i}.txt").write_text(f"contenu {i}\n" * 50)
    if infected:
        (root / "Cours" / "virus.com").write_bytes(EICAR)
        (root / "caché").mkdir()
        (root / "caché" / "encore.txt").write_bytes(b"prefix " + EICAR)
    return root


def files_on(image: Path, tmp: Path) -> set[str]:
    """List the files of an ext4 image, mounted read-only on a fresh loop device."""
    target = tmp / "check"
    target.mkdir(exist_ok=True)
    sh("mount", "-o", "ro,loop,noload", image, target)
    try:
        return {str(p.relative_to(target)) for p in target.rglob("*") if p.is_file()}
    finally:
        sh("umount", target)


class OrderedOutbox(Outbox):
    """The real outbox, noting when each commit finished (to check it precedes the verdict)."""

    def __init__(self, path: Path, log: list[tuple[str, str]]) -> None:
        super().__init__(path)
        self.log = log

    def commit(self, report: Report) -> None:
        super().commit(report)
        self.log.append(("committed", report.report_id))


async def test_infected_stick_then_delete_flow(
    station_config: Config, loops: Loops, tmp_path: Path
) -> None:
    image = make_image(tmp_path / "s.img", "ext4", stick_tree(tmp_path / "t"), size_mb=16)
    node = loops.attach(image)
    order: list[tuple[str, str]] = []
    outbox = OrderedOutbox(Path(station_config.station.data_dir) / "outbox.db", order)
    async with live_station(station_config, outbox) as live:
        publish = live.station.hub.publish

        def noting(line: bytes, **kw: Any) -> None:
            if b'"type":"verdict"' in line:
                order.append(("verdict", line.decode()))
            publish(line, **kw)

        live.station.hub.publish = noting  # type: ignore[method-assign]
        live.source.plug(block_volume(node))
        verdict = await verdict_of(live)
        assert verdict["verdict"] == "infected"
        assert verdict["delete"] == "offer" and verdict["damaged"] is False
        assert {f["path"] for f in verdict["findings"] if f["verdict"] == "infected"} == {
            "Cours/virus.com",
            "caché/encore.txt",
        }
        first_id = verdict["report_id"]
        # The report was durable before any screen could see the verdict.
        assert order.index(("committed", first_id)) < next(
            i for i, (kind, text) in enumerate(order) if kind == "verdict" and first_id in text
        )
        states = [m["state"] for m in live.screen.of("session")]
        assert states[:4] == ["detected", "mounting", "preflight", "scanning"]
        assert states[-1] == "verdict"
        assert mounts_under(Path(station_config.station.mount_dir)) == []  # unmounted already

        start = len(live.screen.lines)
        await live.screen.send(command(Command.DELETE_INFECTED, session_id=verdict["session_id"]))
        ack = await live.screen.wait_for(lambda m: m.get("type") == "ack", start=start)
        assert ack["ok"] is True
        after = await verdict_of(live, start)
        assert after["verdict"] == "clean"
        (action,) = after["actions"]
        assert action["kind"] == "delete_infected" and action["ok"] is True
        assert sorted(action["files"]) == ["Cours/virus.com", "caché/encore.txt"]
        assert action["rescan_verdict"] == "clean"
        assert after["delete"] == "never"
        # A second request is refused: one deletion per session.
        start = len(live.screen.lines)
        await live.screen.send(command(Command.DELETE_INFECTED, session_id=verdict["session_id"]))
        refused = await live.screen.wait_for(lambda m: m.get("type") == "ack", start=start)
        assert refused["error"] == "not_allowed"

        live.source.unplug(block_volume(node))
        await live.screen.wait_for(lambda m: m.get("type") == "removed")
        pending = {r.report_id: r for r in live.station.outbox.pending()}
        assert pending[first_id].verdict == "infected"
        assert pending[after["report_id"]].extra == {"rescan_of": first_id}
        assert pending[after["report_id"]].device is not None
        assert mounts_under(Path(station_config.station.mount_dir)) == []
    left = files_on(image, tmp_path)
    assert "Cours/virus.com" not in left and "caché/encore.txt" not in left
    assert {f"Cours/leçon {i}.txt" for i in range(20)} <= left  # only the named files went


def break_inodes(image: Path, *paths: str) -> None:
    """Flip a byte in the inode of each of *paths* (ext4): its checksum no longer matches, so
    the kernel refuses to open it ("Bad message"), as with a stick whose metadata is damaged."""
    for path in paths:
        where = sh("debugfs", "-R", f"imap {path}", image)
        block = int(where.split("located at block ")[1].split(",")[0])
        offset = int(where.split("offset ")[1].split()[0], 16)
        size = int(sh("dumpe2fs", "-h", image).split("Block size:")[1].split()[0])
        with open(image, "r+b") as fh:
            fh.seek(block * size + offset + 0x10)  # i_mtime: harmless, but checksummed
            byte = fh.read(1)[0]
            fh.seek(-1, os.SEEK_CUR)
            fh.write(bytes([byte ^ 0xFF]))


@pytest.mark.parametrize("policy", ["offer", "always"])
async def test_no_deletion_on_a_damaged_filesystem(
    station_config: Config,
    loops: Loops,
    tmp_path: Path,
    policy: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stick with a virus where some entries cannot be read (damaged metadata): the kiosk
    never mounts it read-write, neither offered nor "always"; the screen is told it is damaged."""
    caplog.set_level(logging.INFO, logger="kiosk.station.journal")
    config = station_config.with_overrides("station", delete_infected=policy)
    tree = stick_tree(tmp_path / "t")
    (tree / "Abime").mkdir()
    (tree / "Abime" / "devoir.txt").write_text("perdu\n")
    (tree / "Cours" / "cassé.txt").write_text("illisible\n")
    image = make_image(tmp_path / "d.img", "ext4", tree, size_mb=16)
    break_inodes(image, "/Abime", "/Cours/cassé.txt")
    before = hashlib.sha256(image.read_bytes()).hexdigest()
    node = loops.attach(image)
    async with live_station(config) as live:
        live.source.plug(block_volume(node))
        verdict = await verdict_of(live)
        assert verdict["verdict"] == "infected"
        unread = {f["path"] for f in verdict["findings"] if f["reason"] == "read_error"}
        assert unread == {"Abime", "Cours/cassé.txt"}
        assert verdict["damaged"] is True
        assert verdict["delete"] == "never"
        (line,) = [r.getMessage() for r in caplog.records if r.name == "kiosk.station.journal"]
        assert json.loads(line)["damaged"] is True  # IT reads why in the journal too
        # The screen, fed the station's own lines, shows no delete button, and says why.
        model = StationModel()
        model.set_connected(True, 0.0)
        for message in list(live.screen.lines):
            model.apply(message, 0.0)
        spec = build(model, Context(words=Words("en"), contact="IT"))
        assert [b.action for b in spec.buttons] == [Action.DISMISS]
        assert any(line.startswith("This stick is damaged") for line in spec.lines)
        start = len(live.screen.lines)
        await live.screen.send(command(Command.DELETE_INFECTED, session_id=verdict["session_id"]))
        ack = await live.screen.wait_for(lambda m: m.get("type") == "ack", start=start)
        assert ack["error"] == "not_allowed"
        live.source.unplug(block_volume(node))
        await live.screen.wait_for(lambda m: m.get("type") == "removed")
        assert not [m for m in live.screen.of("session") if m["state"] == "deleting"]
        reports = live.station.outbox.pending()
        assert [r.verdict for r in reports] == ["infected"]  # no rescan: nothing was deleted
        assert not reports[0].actions
    assert hashlib.sha256(image.read_bytes()).hexdigest() == before  # not one byte written


async def test_delete_always_and_empty_and_unreadable_sticks(
    station_config: Config, loops: Loops, tmp_path: Path
) -> None:
    config = station_config.with_overrides("station", delete_infected="always")
    bad = loops.attach(
        make_image(tmp_path / "b.img", "ext4", stick_tree(tmp_path / "t"), size_mb=16)
    )
    empty = loops.attach(make_image(tmp_path / "e.img", "ext4", size_mb=8))
    blank = loops.attach(make_image(tmp_path / "n.img", "none", size_mb=8))
    xfs = loops.attach(make_image(tmp_path / "x.img", "xfs", size_mb=320))
    wrecked = make_image(tmp_path / "c.img", "ext4", stick_tree(tmp_path / "c"), size_mb=16)
    with open(wrecked, "r+b") as fh:  # the superblock says ext4, the group descriptors are junk
        fh.seek(2048)
        fh.write(b"\xa5" * 8192)
    corrupted = loops.attach(wrecked)
    async with live_station(config) as live:
        live.source.plug(block_volume(bad))
        first = await verdict_of(live)
        assert first["verdict"] == "infected" and first["delete"] == "always"
        after = await live.screen.wait_for(
            lambda m: m.get("type") == "verdict" and m["report_id"] != first["report_id"],
            timeout=120,
        )
        assert after["verdict"] == "clean" and after["actions"][0]["rescan_verdict"] == "clean"
        live.source.unplug(block_volume(bad))
        # Row 15: an empty stick is clean with 0 files; no filesystem, xfs, corrupted: cannot read.
        for node, verdict, reason, files in [
            (empty, "clean", None, 0),
            (blank, "error", "no_filesystem", 0),
            (xfs, "error", "unsupported_fs", 0),
            (corrupted, "error", "mount_failed", 0),  # row 16 on this host: cannot read it
            (empty, "clean", None, 0),  # and the kiosk keeps working
        ]:
            start = len(live.screen.lines)
            live.source.plug(block_volume(node))
            got = await verdict_of(live, start)
            assert (got["verdict"], got["reason"], got["files_total"]) == (verdict, reason, files)
            live.source.unplug(block_volume(node))
            await live.screen.wait_for(lambda m: m.get("type") == "removed", start=start)
        assert mounts_under(Path(config.station.mount_dir)) == []


@pytest.mark.parametrize("how", ["medium_gone", "udev_remove"])
async def test_stick_pulled_mid_scan_then_next_stick(
    station_config: Config, loops: Loops, tmp_path: Path, how: str
) -> None:
    """Row 17: the medium goes away under the scan with no udev event (the station notices by
    itself), or udev says `remove` while the device still answers."""
    tree = tmp_path / "many"
    tree.mkdir()
    for i in range(3000):
        # Plain text: random bytes are now and then taken for a DOS program by libmagic.
        (tree / f"f{i:05d}.txt").write_bytes(f"ligne {i} du devoir\n".encode() * 800)
    big_image = make_image(tmp_path / "big.img", "ext4", tree, size_mb=160)
    big = loops.attach(big_image)
    good = loops.attach(
        make_image(
            tmp_path / "g.img", "ext4", stick_tree(tmp_path / "t", infected=False), size_mb=16
        )
    )
    async with live_station(station_config) as live:
        volume = live.source.plug(block_volume(big))
        progress = await live.screen.wait_for(
            lambda m: m.get("type") == "progress" and m["files_done"] > 0, timeout=120
        )
        assert progress["files_total"] == 3000
        if how == "medium_gone":
            loops.pull(big, big_image)
        else:
            live.source.unplug(volume)
        verdict = await verdict_of(live)
        assert verdict["verdict"] == "incomplete"
        assert verdict["reason"] == "device_removed"
        assert verdict["files_total"] == 3000
        assert verdict["counts"].get("clean", 0) < 3000
        assert verdict["session_id"] == progress["session_id"]
        await live.screen.wait_for(lambda m: m.get("type") == "removed")
        assert mounts_under(Path(station_config.station.mount_dir)) == []
        live.source.unplug(volume)  # udev's late word on it changes nothing
        # The next stick works without a restart.
        start = len(live.screen.lines)
        live.source.plug(block_volume(good))
        again = await verdict_of(live, start)
        assert again["verdict"] == "clean" and again["files_total"] == 20
        stored = {r.report_id: r for r in live.station.outbox.pending()}
        assert stored[verdict["report_id"]].reason == "device_removed"


async def test_clamd_missing_at_start_then_recovers(tmp_path: Path, loops: Loops) -> None:
    """Row 21: out of service while clamd is missing, never a clean verdict, back when it is up."""
    root = tmp_path / "clamd"
    config = make_config(tmp_path, root / "clamd.sock")
    node = loops.attach(
        make_image(
            tmp_path / "g.img", "ext4", stick_tree(tmp_path / "t", infected=False), size_mb=16
        )
    )
    async with live_station(config) as live:
        health = await live.screen.wait_for(
            lambda m: m.get("type") == "health" and m["selftest_ok"] is False
        )
        assert health["ok"] is False and "engine_down" in health["problems"]
        # The shipper's heartbeats see it too, through the health file.
        health_file = Path(config.station.data_dir) / "health.json"
        for _ in range(100):
            seen = read_health(health_file, max_age=300)
            if seen and "engine_down" in seen["problems"]:
                break
            await asyncio.sleep(0.05)
        assert seen is not None and seen["engine_ok"] is False
        live.source.plug(block_volume(node))
        refused = await verdict_of(live)
        assert refused["verdict"] == "error" and refused["reason"] == "engine_down"
        live.source.unplug(block_volume(node))
        await live.screen.wait_for(lambda m: m.get("type") == "removed")
        server = await asyncio.to_thread(start_clamd, root)
        try:
            start = len(live.screen.lines)
            healthy = await live.screen.wait_for(
                lambda m: m.get("type") == "health" and m["ok"] is True, start=start
            )
            assert healthy["problems"] == [] and healthy["engine_version"]
            start = len(live.screen.lines)
            live.source.plug(block_volume(node))
            ok = await verdict_of(live, start)
            assert ok["verdict"] == "clean"
        finally:
            server.stop()


async def test_outbox_full_refuses_sessions_then_recovers(
    tmp_path: Path, station_config: Config, loops: Loops
) -> None:
    """Row 24: a full outbox disk refuses new sessions (outbox_full); nothing stored is lost."""
    data = tmp_path / "small"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(data)], check=True)
    node = loops.attach(
        make_image(
            tmp_path / "g.img", "ext4", stick_tree(tmp_path / "t", infected=False), size_mb=16
        )
    )
    config = station_config.with_overrides("station", data_dir=str(data))
    try:
        async with live_station(config) as live:
            live.source.plug(block_volume(node))
            kept = await verdict_of(live)
            assert kept["verdict"] == "clean"
            live.source.unplug(block_volume(node))
            await live.screen.wait_for(lambda m: m.get("type") == "removed")
            fd = os.open(data / "filler", os.O_WRONLY | os.O_CREAT)
            with pytest.raises(OSError):
                while True:
                    os.write(fd, b"\0" * 4096)
            os.close(fd)
            refused = None
            for _ in range(50):  # until SQLite needs a page it cannot have
                start = len(live.screen.lines)
                live.source.plug(block_volume(node))
                got = await verdict_of(live, start)
                live.source.unplug(block_volume(node))
                await live.screen.wait_for(lambda m: m.get("type") == "removed", start=start)
                if got["verdict"] == "error":
                    refused = got
                    break
            assert refused is not None and refused["reason"] == "outbox_full"
            health = await live.screen.wait_for(
                lambda m: m.get("type") == "health" and "outbox_full" in m["problems"]
            )
            assert health["ok"] is False
            assert kept["report_id"] in {r.report_id for r in live.station.outbox.pending(1000)}
            (data / "filler").unlink()
            start = len(live.screen.lines)
            live.source.plug(block_volume(node))
            back = await verdict_of(live, start)
            assert back["verdict"] == "clean"
            healthy = await live.screen.wait_for(
                lambda m: m.get("type") == "health" and m["outbox_backlog"] == 2, start=start
            )
            assert "outbox_full" not in healthy["problems"]
    finally:
        subprocess.run(["umount", "--lazy", str(data)], check=False)


async def test_second_stick_waits_in_the_queue(
    station_config: Config, loops: Loops, tmp_path: Path
) -> None:
    one = loops.attach(
        make_image(tmp_path / "1.img", "ext4", stick_tree(tmp_path / "a"), size_mb=16)
    )
    two = loops.attach(
        make_image(
            tmp_path / "2.img", "ext4", stick_tree(tmp_path / "b", infected=False), size_mb=16
        )
    )
    async with live_station(station_config) as live:
        first = live.source.plug(block_volume(one))
        second = live.source.plug(block_volume(two))
        queued = await live.screen.wait_for(
            lambda m: m.get("type") == "session" and m["queued"] == 1
        )
        v1 = await verdict_of(live)
        v2 = await live.screen.wait_for(
            lambda m: m.get("type") == "verdict" and m["session_id"] != v1["session_id"],
            timeout=120,
        )
        assert queued["session_id"] == v2["session_id"]
        assert {v1["verdict"], v2["verdict"]} == {"infected", "clean"}
        # The first stick waits for removal; a screen connecting now catches up on both.
        from tests.station.helpers import Screen

        late = await Screen().connect(Path(station_config.station.event_socket))
        await late.wait_for(
            lambda m: m.get("type") == "verdict" and m["session_id"] == v2["session_id"]
        )
        assert [m["type"] for m in late.lines[:2]] == ["hello", "health"]
        assert {m["session_id"] for m in late.of("verdict")} == {v1["session_id"], v2["session_id"]}
        await late.close()
        start = len(live.screen.lines)
        await live.screen.send(command(Command.DISMISS, session_id=v1["session_id"]))
        ack = await live.screen.wait_for(lambda m: m.get("type") == "ack", start=start)
        assert ack == {
            "v": 1,
            "type": "ack",
            "cmd": "dismiss",
            "ok": True,
            "error": None,
            "session_id": v1["session_id"],
        }
        await live.screen.wait_for(
            lambda m: (
                m.get("type") == "session"
                and m["session_id"] == v1["session_id"]
                and m["state"] == "waiting_removal"
            ),
            start=start,
        )
        live.source.unplug(first)
        live.source.unplug(second)
        await live.screen.wait_for(
            lambda m: m.get("type") == "removed" and m["session_id"] == v2["session_id"]
        )


async def test_two_partitions_of_one_stick_are_one_session(
    station_config: Config, loops: Loops, tmp_path: Path
) -> None:
    first = loops.attach(
        make_image(
            tmp_path / "p1.img", "ext4", stick_tree(tmp_path / "a", infected=False), size_mb=16
        )
    )
    second = loops.attach(
        make_image(tmp_path / "p2.img", "ext4", stick_tree(tmp_path / "b"), size_mb=16)
    )
    parts = [
        Volume(
            key=f"/sys/stick/{n}",
            stick="/sys/stick",
            kind=Kind.PARTITION,
            node=node,
            bus="usb",
            fs_type="ext4",
            label=f"P{n}",
            vendor="Acme",
            size=16 << 20,
        )
        for n, node in ((1, first), (2, second))
    ]
    async with live_station(station_config) as live:
        for part in parts:
            live.source.plug(part)
        verdict = await verdict_of(live)
        assert verdict["verdict"] == "infected", verdict
        assert verdict["files_total"] == 42  # 20 + 20 + 2 infected, both filesystems
        infected = sorted(f["path"] for f in verdict["findings"] if f["verdict"] == "infected")
        assert infected == ["2/Cours/virus.com", "2/caché/encore.txt"]
        sessions = {m["session_id"] for m in live.screen.of("session")}
        assert sessions == {verdict["session_id"]}
        device = live.screen.of("session")[-1]["device"]
        assert device["fs_type"] == "ext4" and device["label"] == "P1,P2"
        live.source.unplug(parts[1])  # one partition leaving ends the stick's session
        await live.screen.wait_for(lambda m: m.get("type") == "removed")


async def test_stop_mid_scan_unmounts_and_the_next_start_recovers(
    station_config: Config, loops: Loops, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGTERM (systemd stop) during a scan: the scan lets go, nothing stays mounted."""
    tree = tmp_path / "many"
    tree.mkdir()
    for i in range(3000):
        (tree / f"f{i:05d}.txt").write_bytes(f"ligne {i} du devoir\n".encode() * 800)
    node = loops.attach(make_image(tmp_path / "big.img", "ext4", tree, size_mb=160))
    mount_dir = Path(station_config.station.mount_dir)
    async with live_station(station_config) as live:
        live.source.plug(block_volume(node))
        await live.screen.wait_for(
            lambda m: m.get("type") == "progress" and m["files_done"] > 0, timeout=120
        )
        assert mounts_under(mount_dir)
    # live_station stopped the station: the scan was cancelled and the stick unmounted, cleanly
    # (the scan thread had let go: no lazy unmount of a busy filesystem).
    assert mounts_under(mount_dir) == []
    assert not [r for r in caplog.records if "lazy unmount" in r.getMessage()]
    async with live_station(station_config) as live:
        (lost,) = live.station.recovered
        assert lost.reason == "interrupted"
