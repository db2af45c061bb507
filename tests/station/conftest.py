"""Station test fixtures: a config on a real clamd, loop devices, a live station."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import pytest

from kiosk.config import Config
from kiosk.station.outbox import Outbox
from kiosk.station.source import DeviceSource, ManualSource
from kiosk.station.station import Station
from tests.station.helpers import Loops, Screen
from tests.support.clamd import Clamd

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop devices, mounts)")


def make_config(tmp: Path, clamd_socket: Path | str, **station: object) -> Config:
    """A configuration whose every path lives under *tmp* (the socket in a short dir)."""
    short = Path(tempfile.mkdtemp(prefix="ks", dir="/tmp"))
    values: dict[str, object] = {
        "data_dir": str(tmp / "data"),
        "mount_dir": str(tmp / "mnt"),
        "event_socket": str(short / "ev.sock"),
        "settle_time": 0.0,
        "health_retry": 0.5,
        "filesystems": [*Config().station.filesystems, "btrfs"],
    }
    values.update(station)
    config = Config().with_overrides("clamd", socket=str(clamd_socket))
    return config.with_overrides("station", **values)


@pytest.fixture
def station_config(tmp_path: Path, clamd: Clamd) -> Iterator[Config]:
    """A station configuration on the session's real clamd."""
    config = make_config(tmp_path, clamd.socket)
    yield config
    shutil.rmtree(Path(config.station.event_socket).parent, ignore_errors=True)


@pytest.fixture
def loops() -> Iterator[Loops]:
    """Loop devices, freed after the test."""
    made = Loops()
    yield made
    made.close()


SourceT = TypeVar("SourceT", bound=DeviceSource)


@dataclass
class Live(Generic[SourceT]):
    """A running station with its source and one connected screen."""

    station: Station
    source: SourceT
    screen: Screen
    task: asyncio.Task[None]


@asynccontextmanager
async def running_station(
    config: Config, source: SourceT, outbox: Outbox | None = None
) -> AsyncIterator[Live[SourceT]]:
    """Run a station on *source*, with a screen connected; stop it afterwards."""
    station = Station(config, source, outbox=outbox)
    task = asyncio.create_task(station.run())
    try:
        await asyncio.wait_for(station.ready.wait(), 30)
        screen = await Screen().connect(Path(config.station.event_socket))
        try:
            yield Live(station, source, screen, task)
        finally:
            await screen.close()
    finally:
        station.stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 60)
        shutil.rmtree(Path(config.station.event_socket).parent, ignore_errors=True)


@asynccontextmanager
async def live_station(
    config: Config, outbox: Outbox | None = None
) -> AsyncIterator[Live[ManualSource]]:
    """Run a station on a ManualSource, with a screen connected; stop it afterwards."""
    async with running_station(config, ManualSource(), outbox) as live:
        yield live
