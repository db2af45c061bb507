"""The real udev path: systemd-udevd on the host, a loop device attached, a session end to end."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from kiosk.config import Config
from kiosk.station.device import Action, DeviceEvent
from kiosk.station.outbox import Outbox
from kiosk.station.station import Station
from kiosk.station.udev import UdevSource
from tests.station.conftest import running_station
from tests.station.helpers import Screen, make_image, sh
from tests.support.clamd import EICAR

UDEVD = Path("/lib/systemd/systemd-udevd")
NODE = "/dev/loop213"  # a number of our own, so that no other test's loop device is taken

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or not UDEVD.exists(), reason="needs root and udevd"),
]


def udev_running() -> bool:
    return (
        subprocess.run(
            ["udevadm", "control", "--ping", "-t", "2"], capture_output=True, check=False
        ).returncode
        == 0
    )


@pytest.fixture
def udevd(tmp_path: Path) -> Iterator[None]:
    """A systemd-udevd of this test (unless one already runs), stopped by its PID afterwards."""
    if udev_running():
        yield
        return
    log = (tmp_path / "udevd.log").open("wb")
    proc = subprocess.Popen(
        [str(UDEVD)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    try:
        for _ in range(100):
            if udev_running():
                break
            if proc.poll() is not None:
                pytest.fail(f"systemd-udevd exited: {(tmp_path / 'udevd.log').read_text()}")
            subprocess.run(["sleep", "0.1"], check=False)
        yield
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@asynccontextmanager
async def udev_station(
    config: Config, source: UdevSource
) -> AsyncIterator[tuple[Station, Screen, Outbox]]:
    """Run a station on *source* with a screen connected; stop it and free NODE afterwards."""
    outbox = Outbox(Path(config.station.data_dir) / "outbox.db")
    # A udevd that was already busy (the package's install triggers every device) may still be
    # working through earlier tests' loop devices: their events, late, would start sessions here.
    subprocess.run(["udevadm", "settle", "--timeout", "30"], capture_output=True, check=False)
    try:
        async with running_station(config, source, outbox) as live:
            try:
                await asyncio.sleep(0.5)  # the monitor is listening once run() started the source
                yield live.station, live.screen, outbox
            finally:
                subprocess.run(["losetup", "--detach", NODE], capture_output=True, check=False)
    finally:
        outbox.close()


async def test_udev_monitor_drives_a_session(
    udevd: None, station_config: Config, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "devoir.txt").write_text("bonjour\n")
    (tree / "virus.com").write_bytes(EICAR)
    image = make_image(tmp_path / "u.img", "ext4", tree, size_mb=16)
    config = station_config.with_overrides("station", usb_only=False, settle_time=0.5)
    source = UdevSource(usb_only=False, pattern=NODE)
    async with udev_station(config, source) as (_, screen, outbox):
        sh("losetup", NODE, image)  # a real kernel uevent, through udevd, to our monitor
        session = await screen.wait_for(lambda m: m.get("type") == "session", timeout=60)
        assert session["device"]["fs_type"] == "ext4"
        assert session["device"]["label"] == "STICK"
        verdict = await screen.wait_for(lambda m: m.get("type") == "verdict", timeout=120)
        assert verdict["verdict"] == "infected"
        assert verdict["findings"][0]["path"] == "virus.com"
        # The verdict is shown with the stick unmounted: detaching it is the "removal".
        sh("losetup", "--detach", NODE)
        removed = await screen.wait_for(lambda m: m.get("type") == "removed", timeout=60)
        assert removed["session_id"] == verdict["session_id"]
        (report,) = outbox.pending()
        assert report.device is not None and report.device.size == 16 << 20


class LosingSource(UdevSource):
    """The real udev source, but every removal is lost on the way (as when the netlink socket
    overran): the kernel cannot be made to lose one on demand."""

    async def events(self) -> AsyncIterator[DeviceEvent]:
        async for found in super().events():
            if found.action is Action.ADD:
                yield found


async def test_a_removal_never_announced_still_ends_the_session(
    udevd: None, station_config: Config, tmp_path: Path
) -> None:
    first_tree, second_tree = tmp_path / "a", tmp_path / "b"
    first_tree.mkdir()
    second_tree.mkdir()
    (first_tree / "cours.txt").write_text("bonjour\n")
    (second_tree / "virus.com").write_bytes(EICAR)
    first = make_image(tmp_path / "a.img", "ext4", first_tree, size_mb=16)
    second = make_image(tmp_path / "b.img", "ext4", second_tree, size_mb=16)
    config = station_config.with_overrides("station", usb_only=False, settle_time=0.5)
    source = LosingSource(usb_only=False, pattern=NODE)
    async with udev_station(config, source) as (station, screen, _):
        sh("losetup", NODE, first)
        clean = await screen.wait_for(lambda m: m.get("type") == "verdict", timeout=120)
        assert clean["verdict"] == "clean"
        # Another stick where the first was, its removal lost: the same node and sys path, but a
        # new disk for the kernel. It is a session of its own, and the first one is over.
        start = len(screen.lines)
        sh("losetup", "--detach", NODE)
        sh("losetup", NODE, second)
        infected = await screen.wait_for(
            lambda m: m.get("type") == "verdict", start=start, timeout=120
        )
        assert infected["verdict"] == "infected"
        assert infected["session_id"] != clean["session_id"]
        removed = [m["session_id"] for m in screen.of("removed")]
        assert clean["session_id"] in removed
        # Pulled, the removal lost again: the presence check sees it go.
        start = len(screen.lines)
        sh("losetup", "--detach", NODE)
        gone = await screen.wait_for(lambda m: m.get("type") == "removed", start=start, timeout=30)
        assert gone["session_id"] == infected["session_id"]
        assert station.sessions == {}
