"""Our own device dataclasses, built from udev-shaped property maps (no udev needed)."""

from __future__ import annotations

from pathlib import Path

from kiosk.models import DeviceInfo
from kiosk.names import display_name
from kiosk.station.device import Action, Kind, Volume, accepts, stick_info, udev_decode
from kiosk.station.source import path_volume
from kiosk.station.udev import _event_of

USB_PARTITION = {
    "DEVNAME": "/dev/sdb1",
    "DEVTYPE": "partition",
    "ID_BUS": "usb",
    "ID_FS_TYPE": "vfat",
    "ID_FS_USAGE": "filesystem",
    "ID_FS_LABEL": "CLE_USB",
    "ID_FS_LABEL_ENC": "CL\\xc3\\xa9\\x20USB",
    "ID_VENDOR_ENC": "SanDisk\\x20",
    "ID_MODEL_ENC": "Cruzer\\x20Blade\\x20\\x20",
    "ID_SERIAL_SHORT": "4C530001",
}
SYS = "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6/target6:0:0/6:0:0:0/block/sdb"


def test_partition_from_udev_properties() -> None:
    volume = Volume.from_properties(USB_PARTITION, sys_path=f"{SYS}/sdb1", size_sectors=2048)
    assert volume.kind is Kind.PARTITION
    assert volume.stick == SYS  # the partition belongs to its disk's session
    assert volume.node == "/dev/sdb1"
    assert volume.label == "CLé USB"
    assert volume.vendor == "SanDisk"
    assert volume.model == "Cruzer Blade"
    assert volume.serial == "4C530001"
    assert volume.size == 2048 * 512
    assert volume.has_medium and volume.is_block and not volume.partition_table


def test_whole_disk_with_partition_table() -> None:
    props = {"DEVNAME": "/dev/sdb", "DEVTYPE": "disk", "ID_BUS": "usb", "ID_PART_TABLE_TYPE": "dos"}
    volume = Volume.from_properties(props, sys_path=SYS, size_sectors=4096)
    assert volume.kind is Kind.DISK
    assert volume.stick == SYS
    assert volume.partition_table
    assert volume.fs_type is None


def test_hostile_label_stays_escaped_and_displays_inert() -> None:
    # A label carrying an escape sequence, a bidi override and a byte that is not UTF-8.
    props = dict(USB_PARTITION, ID_FS_LABEL_ENC="\\x1b[2J\\xe2\\x80\\xaeexe.pdf\\xff")
    volume = Volume.from_properties(props, sys_path=f"{SYS}/sdb1", size_sectors=1)
    assert volume.label == "\x1b[2J\u202eexe.pdf\\xff"
    shown = display_name(volume.label)
    assert "\x1b" not in shown and "\u202e" not in shown
    assert "<U+202E>" in shown


def test_udev_decode_is_the_reverse_of_udev_encoding() -> None:
    assert udev_decode("a\\x20b") == "a b"
    assert udev_decode("plain") == "plain"
    assert udev_decode("\\x5c") == "\\\\"  # a backslash is doubled in escaped form


def test_no_medium_is_a_departure_and_medium_an_arrival() -> None:
    gone = Volume.from_properties({"DEVNAME": "/dev/loop3"}, sys_path="/x/loop3", size_sectors=0)
    here = Volume.from_properties(
        {"DEVNAME": "/dev/loop3", "ID_FS_TYPE": "ext4"}, sys_path="/x/loop3", size_sectors=8
    )
    assert not gone.has_medium
    change_gone = _event_of("change", gone)
    change_here = _event_of("change", here)
    assert change_gone is not None and change_gone.action is Action.REMOVE
    assert change_here is not None and change_here.action is Action.ADD
    removed = _event_of("remove", here)
    assert removed is not None and removed.action is Action.REMOVE
    assert _event_of("add", gone) is None
    assert _event_of("bind", here) is None


def test_filter_usb_only_and_pattern() -> None:
    usb = Volume.from_properties(USB_PARTITION, sys_path=f"{SYS}/sdb1", size_sectors=1)
    loop = Volume.from_properties(
        {"DEVNAME": "/dev/loop7", "ID_FS_TYPE": "ext4"}, sys_path="/x/loop7", size_sectors=1
    )
    nvme = Volume.from_properties(
        {"DEVNAME": "/dev/nvme0n1p2", "ID_BUS": "nvme"}, sys_path="/x/n", size_sectors=1
    )
    assert accepts(usb, usb_only=True)
    assert not accepts(loop, usb_only=True)
    assert not accepts(nvme, usb_only=True)
    assert accepts(loop, usb_only=False, pattern="/dev/loop*")
    assert not accepts(nvme, usb_only=False, pattern="/dev/loop*")
    assert accepts(nvme, usb_only=False)


def test_stick_info_joins_volumes(tmp_path: Path) -> None:
    disk = Volume(
        key="d",
        stick="d",
        kind=Kind.DISK,
        node="/dev/sdb",
        partition_table=True,
        vendor="V",
        model="M",
        serial="S",
        size=1000,
    )
    p1 = Volume(
        key="d/1",
        stick="d",
        kind=Kind.PARTITION,
        node="/dev/sdb1",
        fs_type="vfat",
        label="A",
        vendor="V",
        model="M",
        serial="S",
        size=400,
    )
    p2 = Volume(
        key="d/2",
        stick="d",
        kind=Kind.PARTITION,
        node="/dev/sdb2",
        fs_type="ext4",
        label="B",
        vendor="V",
        model="M",
        serial="S",
        size=600,
    )
    info = stick_info([disk, p1, p2])
    assert info == DeviceInfo(
        vendor="V", model="M", serial="S", size=1000, fs_type="vfat,ext4", label="A,B"
    )
    assert stick_info([]) == DeviceInfo()


def test_demo_volumes_are_folders_or_images(tmp_path: Path) -> None:
    folder = tmp_path / "clé"
    folder.mkdir()
    image = tmp_path / "stick.img"
    image.write_bytes(b"\0" * 4096)
    assert path_volume(folder).kind is Kind.FOLDER
    assert path_volume(folder).label == "clé"
    assert path_volume(image).kind is Kind.IMAGE
    assert path_volume(image).size == 4096


def test_mountable_prefers_partitions_else_the_disks_own_filesystem() -> None:
    from kiosk.station.mount import mountable

    table = Volume(
        key="d", stick="d", kind=Kind.DISK, node="/dev/sdb", partition_table=True, partitions=1
    )
    part = Volume(key="d/1", stick="d", kind=Kind.PARTITION, node="/dev/sdb1", fs_type="vfat")
    exfat_whole = Volume(
        key="d",
        stick="d",
        kind=Kind.DISK,
        node="/dev/sdb",
        fs_type="exfat",
        partition_table=True,
        partitions=0,
    )
    plain = Volume(key="d", stick="d", kind=Kind.DISK, node="/dev/sdb", fs_type="ext4")
    assert mountable([table, part]) == [part]
    assert mountable([table]) == []  # a table and nothing else: no filesystem
    assert mountable([exfat_whole]) == [exfat_whole]
    assert mountable([plain]) == [plain]
    with_part = Volume(
        key="d",
        stick="d",
        kind=Kind.DISK,
        node="/dev/sdb",
        fs_type="vfat",
        partition_table=True,
        partitions=1,
    )
    assert mountable([with_part, part]) == [part]  # real partitions win over the disk


def test_a_new_disk_in_the_same_place_is_another_stick() -> None:
    disk = dict(USB_PARTITION, DEVTYPE="disk", DEVNAME="/dev/sdb", DISKSEQ="41")
    old = Volume.from_properties(disk, sys_path=SYS, size_sectors=8)
    new = Volume.from_properties(dict(disk, DISKSEQ="42"), sys_path=SYS, size_sectors=8)
    partition = Volume.from_properties(USB_PARTITION, sys_path=f"{SYS}/sdb1", size_sectors=8)
    elsewhere = Volume.from_properties(disk, sys_path=SYS.replace("1-1", "1-2"), size_sectors=8)
    assert old.diskseq == 41 and partition.diskseq is None
    assert not old.same_stick(new) and not new.same_stick(old)
    assert old.same_stick(partition)  # a partition's event has no DISKSEQ: its place decides
    assert not old.same_stick(elsewhere)
