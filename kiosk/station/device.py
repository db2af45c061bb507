"""Our own view of a plugged stick: frozen dataclasses made from udev properties or demo paths.

Nothing here imports pyudev: `kiosk.station.udev` turns a pyudev device into a `Volume` at once
(through `Volume.from_properties`), and the demo source builds volumes from folders or image files.
Everything that comes from the stick (vendor, model, serial, label) is hostile: it is kept in
escaped form (`kiosk.names.escape_name`) and shown only through `display_name`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from kiosk.models import DeviceInfo
from kiosk.names import escape_name

_UDEV_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


class Kind(StrEnum):
    """Where a volume's bytes come from."""

    DISK = "disk"  # a whole block device (a filesystem on the whole stick, or a partition table)
    PARTITION = "partition"
    IMAGE = "image"  # a demo image file, attached to a loop device when the session starts
    FOLDER = "folder"  # a demo folder, scanned as it is


class Action(StrEnum):
    """What happened to a volume."""

    ADD = "add"
    REMOVE = "remove"


def udev_decode(value: str) -> str:
    r"""Return the escaped form of a udev `*_ENC` value (ASCII with `\xNN` for other bytes)."""
    parts = _UDEV_ESCAPE.split(value)
    raw = bytearray()
    for index, part in enumerate(parts):
        if index % 2:
            raw.append(int(part, 16))
        else:
            raw += part.encode("utf-8", "surrogateescape")
    return escape_name(bytes(raw))


def _number(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _clean(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    return escape_name(value.encode("utf-8", "surrogateescape"))


@dataclass(frozen=True, slots=True)
class Volume:
    """One filesystem-bearing thing of a stick (a whole disk or one partition), or a demo path."""

    key: str  # stable identity of this volume (sys path, or the demo path)
    stick: str  # identity of the stick it belongs to: all volumes of one stick share one session
    kind: Kind
    node: str | None  # /dev/... for block devices; the path for images and folders
    bus: str | None = None  # ID_BUS: "usb" for a real stick
    fs_type: str | None = None  # ID_FS_TYPE as udev or blkid saw it; None when unknown
    fs_usage: str | None = None  # ID_FS_USAGE: "filesystem", "raid", "crypto", ...
    label: str | None = None
    partition_table: bool = False  # a disk carrying partitions: its partitions are the volumes
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    size: int | None = None  # bytes; 0 means no medium (a card reader without card, a freed loop)
    partitions: int | None = None  # a disk with a partition table: how many the kernel made
    # The kernel's disk sequence number (DISKSEQ, Linux 5.15+): a new one for every disk that
    # appears, so a stick plugged where another was (same port, same sys path) is told apart.
    diskseq: int | None = None

    @classmethod
    def from_properties(
        cls,
        props: Mapping[str, str],
        *,
        sys_path: str,
        size_sectors: int | None,
        partitions: int | None = None,
    ) -> Volume:
        """Build from a udev property map (DEVTYPE, DEVNAME, ID_*) and the sysfs size."""
        devtype = props.get("DEVTYPE", "disk")
        kind = Kind.PARTITION if devtype == "partition" else Kind.DISK
        stick = sys_path.rsplit("/", 1)[0] if kind is Kind.PARTITION else sys_path
        label = props.get("ID_FS_LABEL_ENC")
        vendor = props.get("ID_VENDOR_ENC")
        model = props.get("ID_MODEL_ENC")
        return cls(
            key=sys_path,
            stick=stick,
            kind=kind,
            node=props.get("DEVNAME"),
            bus=props.get("ID_BUS"),
            fs_type=props.get("ID_FS_TYPE") or None,
            fs_usage=props.get("ID_FS_USAGE") or None,
            label=udev_decode(label) if label else _clean(props.get("ID_FS_LABEL")),
            partition_table=bool(props.get("ID_PART_TABLE_TYPE")) and kind is Kind.DISK,
            vendor=udev_decode(vendor).strip() or None
            if vendor
            else _clean(props.get("ID_VENDOR")),
            model=udev_decode(model).strip() or None if model else _clean(props.get("ID_MODEL")),
            serial=_clean(props.get("ID_SERIAL_SHORT") or props.get("ID_SERIAL")),
            size=None if size_sectors is None else size_sectors * 512,
            partitions=partitions if kind is Kind.DISK else None,
            diskseq=_number(props.get("DISKSEQ")),
        )

    def same_stick(self, other: Volume) -> bool:
        """Tell whether *other* is on this volume's stick: the same place and, when both know
        it, the same disk there (not a new stick in the port the old one left)."""
        if self.stick != other.stick and self.key != other.key:
            return False
        return self.diskseq is None or other.diskseq is None or self.diskseq == other.diskseq

    @property
    def has_medium(self) -> bool:
        """Tell whether the device holds anything (a freed loop device or empty reader does not)."""
        return self.size != 0

    @property
    def is_block(self) -> bool:
        """Tell whether this volume is a block device that the station mounts."""
        return self.kind in (Kind.DISK, Kind.PARTITION)

    def device_info(self) -> DeviceInfo:
        """Return the report's view of this volume."""
        return DeviceInfo(
            vendor=self.vendor,
            model=self.model,
            serial=self.serial,
            size=self.size,
            fs_type=self.fs_type,
            label=self.label,
        )


def accepts(volume: Volume, *, usb_only: bool, pattern: str = "") -> bool:
    """Tell whether the station should take this volume (a USB stick, or what tests allow)."""
    if volume.kind in (Kind.IMAGE, Kind.FOLDER):
        return True
    if usb_only and volume.bus != "usb":
        return False
    return not pattern or fnmatch.fnmatchcase(volume.node or "", pattern)


def stick_info(volumes: list[Volume] | tuple[Volume, ...]) -> DeviceInfo:
    """Return one DeviceInfo for a stick made of several volumes (filesystems joined by ',')."""
    if not volumes:
        return DeviceInfo()
    first = volumes[0]
    fs_types = [v.fs_type for v in volumes if v.fs_type]
    labels = [v.label for v in volumes if v.label]
    sizes = [v.size for v in volumes if v.kind is not Kind.PARTITION and v.size is not None]
    size = sizes[0] if sizes else (sum(v.size or 0 for v in volumes) or None)
    return DeviceInfo(
        vendor=first.vendor,
        model=first.model,
        serial=first.serial,
        size=size,
        fs_type=",".join(dict.fromkeys(fs_types)) or None,
        label=",".join(labels) or None,
    )


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    """A volume appeared or went away."""

    action: Action
    volume: Volume
