"""The real device source: udev through pyudev, bridged into asyncio (the only pyudev import).

One netlink monitor filtered on `block` and on `usb` devices; its file descriptor is watched by the
event loop (`loop.add_reader`), and each wake-up drains `monitor.poll(timeout=0)`, so no thread is
needed.
Each pyudev device becomes our own frozen `Volume` at once. `add`, and `change` with a medium,
announce a volume; `remove`, and `change` without a medium (a freed loop device, a card taken out
of a reader), announce its departure. Sticks already present at start are announced too. A `usb`
device's `add` only calls `on_usb`: udev sends it once the USB policy's RUN program has decided,
so a refusal it spooled is there to be drained.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pyudev

from kiosk.station.device import Action, DeviceEvent, Volume, accepts
from kiosk.station.mountinfo import is_in_use
from kiosk.station.source import DeviceSource, read_diskseq

log = logging.getLogger(__name__)

# Extended partition containers hold no filesystem of their own: not a volume.
_CONTAINER_TYPES = frozenset({"0x5", "0xf", "0x85"})


def volume_of(device: Any) -> Volume:
    """Turn a pyudev block device into our Volume."""
    try:
        size: int | None = int(device.attributes.asint("size"))
    except (KeyError, ValueError, OSError):
        size = None
    volume = Volume.from_properties(
        dict(device.properties),
        sys_path=device.sys_path,
        size_sectors=size,
        partitions=count_partitions(device.sys_path),
    )
    if volume.diskseq is None:
        # A partition's uevent has no DISKSEQ: its disk's sysfs has (gone when it is removed).
        volume = dataclasses.replace(volume, diskseq=read_diskseq(volume.stick))
    return volume


def count_partitions(sys_path: str) -> int | None:
    """Count the partitions the kernel made of a disk (sysfs): none is then waited for in vain."""
    try:
        return sum(1 for entry in Path(sys_path).iterdir() if (entry / "partition").exists())
    except OSError:
        return None


def _event_of(action: str, volume: Volume) -> DeviceEvent | None:
    if action == "remove" or (action == "change" and not volume.has_medium):
        return DeviceEvent(Action.REMOVE, volume)
    if action in ("add", "change") and volume.has_medium:
        return DeviceEvent(Action.ADD, volume)
    return None


class UdevSource(DeviceSource):
    """Sticks seen by udev (ID_BUS=usb unless `usb_only` is off; `pattern` globs device nodes)."""

    def __init__(self, *, usb_only: bool = True, pattern: str = "") -> None:
        self.usb_only = usb_only
        self.pattern = pattern
        self._context = pyudev.Context()
        self._monitor = pyudev.Monitor.from_netlink(self._context)
        self._monitor.filter_by("block")
        self._monitor.filter_by("usb", "usb_device")
        self._queue: asyncio.Queue[DeviceEvent] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _wanted(self, volume: Volume, action: Action) -> bool:
        if action is Action.REMOVE:
            # Never filtered: udev's copy of a removed device may lack what its arrival had, and
            # a removal that matches no session is ignored by the station anyway.
            return True
        if not accepts(volume, usb_only=self.usb_only, pattern=self.pattern):
            return False
        # The system's own disks (and anything mounted by someone else) are never sticks.
        return not (volume.node and is_in_use(volume.node))

    def _existing(self) -> Iterator[DeviceEvent]:
        for device in self._context.list_devices(subsystem="block"):
            if device.properties.get("ID_PART_ENTRY_TYPE") in _CONTAINER_TYPES:
                continue
            volume = volume_of(device)
            if volume.has_medium and self._wanted(volume, Action.ADD):
                yield DeviceEvent(Action.ADD, volume)

    def _drain(self) -> None:
        while True:
            device = self._monitor.poll(timeout=0)
            if device is None:
                return
            try:
                if device.subsystem == "usb":
                    if device.action == "add" and self.on_usb is not None:
                        self.on_usb()
                    continue
                if device.properties.get("ID_PART_ENTRY_TYPE") in _CONTAINER_TYPES:
                    continue
                found = _event_of(device.action or "", volume_of(device))
            except Exception:  # an odd device must never stop the monitor (error boundary)
                log.exception("cannot read a udev event")
                continue
            if found and self._wanted(found.volume, found.action):
                log.debug("udev %s %s", found.action, found.volume.node)
                self._queue.put_nowait(found)

    async def events(self) -> AsyncIterator[DeviceEvent]:
        """Yield sticks present at start, then every arrival and departure."""
        self._loop = asyncio.get_running_loop()
        self._monitor.start()
        self._loop.add_reader(self._monitor.fileno(), self._drain)
        try:
            for found in await asyncio.to_thread(lambda: list(self._existing())):
                yield found
            while True:
                yield await self._queue.get()
        finally:
            self._loop.remove_reader(self._monitor.fileno())

    async def aclose(self) -> None:
        """Stop listening."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._monitor.fileno())
