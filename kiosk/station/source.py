"""Where sticks come from: the `DeviceSource` interface, and a manual source for demos and tests.

A source yields `DeviceEvent`s (a volume added or removed) and answers `present(volume)`, a cheap
check the station makes every half second during a scan, so that a pulled stick is noticed even
when no udev event arrives. `kiosk.station.udev.UdevSource` is the real one; `ManualSource` takes
"sticks" that are folders or image files (`plug`, `unplug`), with the same code path after
detection, for `kiosk demo`, `kiosk station --demo` and the tests.
"""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from kiosk.names import escape_name
from kiosk.station.device import Action, DeviceEvent, Kind, Volume


class DeviceSource(ABC):
    """A stream of sticks arriving and leaving."""

    # Called (on the event loop) when any USB device appears: the station then looks for the
    # devices usb-policy refused (kiosk.station.refused).
    on_usb: Callable[[], None] | None = None

    @abstractmethod
    def events(self) -> AsyncIterator[DeviceEvent]:
        """Yield device events until cancelled."""

    def present(self, volume: Volume) -> bool:
        """Tell whether *volume* is still there (blocking but cheap: sysfs or stat)."""
        return volume_present(volume)

    async def aclose(self) -> None:  # noqa: B027 (a hook: most sources have nothing to close)
        """Release what the source holds."""


def block_size(node: str) -> int | None:
    """Return the size in bytes of a block device from sysfs (None when it does not exist)."""
    try:
        name = Path(os.path.realpath(node)).name
        sectors = (Path("/sys/class/block") / name / "size").read_text()
    except OSError:
        return None
    return int(sectors) * 512


def read_diskseq(disk: str) -> int | None:
    """Return the kernel's sequence number of the disk at sys path *disk* (None if unknown)."""
    try:
        return int(Path(disk, "diskseq").read_text())
    except (OSError, ValueError):
        return None


def volume_present(volume: Volume) -> bool:
    """Tell whether a volume is still there: a block device with a medium, or an existing path.

    A block device must also be the same disk: when a stick's removal went unseen and another
    took its port, its node and sys path are the new stick's, but its sequence number is not.
    """
    if volume.kind in (Kind.FOLDER, Kind.IMAGE):
        return os.path.exists(volume.key)
    if not volume.node or not os.path.exists(volume.node):
        return False
    if volume.diskseq is not None and read_diskseq(volume.stick) != volume.diskseq:
        return False
    return bool(block_size(volume.node))


def path_volume(path: Path | str) -> Volume:
    """Return the volume of a demo folder or image file (a folder is scanned where it is)."""
    target = Path(path).resolve()
    kind = Kind.FOLDER if target.is_dir() else Kind.IMAGE
    size = None if kind is Kind.FOLDER else target.stat().st_size
    return Volume(
        key=str(target),
        stick=str(target),
        kind=kind,
        node=str(target),
        bus="demo",
        fs_type=None,
        label=escape_name(os.fsencode(target.name)),
        model="demo",
        size=size,
    )


def block_volume(node: str, *, fs_type: str | None = None, label: str | None = None) -> Volume:
    """Return the volume of a block device given by hand (a loop device in tests)."""
    return Volume(
        key=node,
        stick=node,
        kind=Kind.DISK,
        node=node,
        bus=None,
        fs_type=fs_type,
        label=label,
        size=block_size(node),
    )


class ManualSource(DeviceSource):
    """A source driven by calls: `plug` and `unplug` folders, images or block devices."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[DeviceEvent] = asyncio.Queue()

    def plug(self, thing: Volume | Path | str) -> Volume:
        """Announce a stick; return the volume the station will see."""
        volume = thing if isinstance(thing, Volume) else path_volume(thing)
        self._queue.put_nowait(DeviceEvent(Action.ADD, volume))
        return volume

    def unplug(self, volume: Volume) -> None:
        """Announce that a stick left."""
        self._queue.put_nowait(DeviceEvent(Action.REMOVE, volume))

    def usb_added(self) -> None:
        """Announce that a USB device appeared (as udev does after usb-policy has run)."""
        if self.on_usb is not None:
            self.on_usb()

    async def events(self) -> AsyncIterator[DeviceEvent]:
        """Yield what `plug` and `unplug` announced."""
        while True:
            yield await self._queue.get()
