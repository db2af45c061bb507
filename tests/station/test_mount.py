"""Safe mounting on real loop devices: read-only options, nothing written, nothing left behind."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from kiosk.models import Reason
from kiosk.station.mount import (
    DETAIL_CHARS,
    MountError,
    StickMount,
    helper_detail,
    is_readonly,
)
from kiosk.station.mountinfo import mounts
from kiosk.station.source import block_volume, path_volume
from tests.station.conftest import needs_root
from tests.station.helpers import Loops, make_image, mounts_under, sh

pytestmark = [needs_root, pytest.mark.root]

ALLOWED = ["vfat", "exfat", "ntfs", "ext2", "ext3", "ext4", "iso9660", "udf", "btrfs"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "Cours").mkdir(parents=True)
    (root / "Cours" / "leçon.txt").write_text("bonjour\n")
    (root / "lien").symlink_to("/etc/passwd")
    return root


@pytest.mark.parametrize(
    ("fs", "size_mb", "no_replay"),
    [("ext4", 16, "norecovery"), ("btrfs", 128, "rescue=nologreplay")],
)
def test_mounted_read_only_with_safe_options(
    tmp_path: Path, loops: Loops, fs: str, size_mb: int, no_replay: str
) -> None:
    image = make_image(tmp_path / f"{fs}.img", fs, tree(tmp_path), size_mb=size_mb)
    before = digest(image)
    node = loops.attach(image)
    base = tmp_path / "mnt"
    with StickMount([block_volume(node)], base, "s1", allowed=ALLOWED) as stick:
        assert stick.root == base / "s1"
        (entry,) = [m for m in mounts() if m.target == str(stick.root)]
        assert entry.fs_type == fs
        assert {"ro", "nosuid", "nodev", "noexec", "nosymfollow", no_replay} <= entry.options
        assert is_readonly(node)  # the block device itself, before the mount
        assert (stick.root / "Cours" / "leçon.txt").read_text() == "bonjour\n"
        assert stick.mounted[0].fs_type == fs
        assert stick.mounted[0].label == "STICK"
        assert (base.stat().st_mode & 0o777) == 0o700
        with pytest.raises(OSError):
            (stick.root / "new.txt").write_text("x")
    assert mounts_under(base) == []
    assert list(base.iterdir()) == []
    sh("losetup", "--detach", node)
    loops.loops.remove(node)
    assert digest(image) == before  # not one byte of the stick was written


@pytest.mark.parametrize(
    ("fs", "reason"),
    [("xfs", Reason.UNSUPPORTED_FS), ("none", Reason.NO_FILESYSTEM)],
)
def test_unreadable_sticks_are_refused_and_leave_nothing(
    tmp_path: Path, loops: Loops, fs: str, reason: Reason
) -> None:
    image = make_image(tmp_path / "x.img", fs, size_mb=320 if fs == "xfs" else 8)
    node = loops.attach(image)
    base = tmp_path / "mnt"
    with (
        pytest.raises(MountError) as caught,
        StickMount([block_volume(node)], base, "s1", allowed=ALLOWED),
    ):
        pass
    assert caught.value.reason is reason
    assert mounts_under(base) == []
    assert list(base.iterdir()) == []


def test_squashfs_is_not_on_the_default_list(tmp_path: Path, loops: Loops) -> None:
    image = make_image(tmp_path / "s.img", "squashfs", tree(tmp_path))
    node = loops.attach(image)
    with (
        pytest.raises(MountError) as caught,
        StickMount([block_volume(node)], tmp_path / "mnt", "s1", allowed=ALLOWED),
    ):
        pass
    assert caught.value.reason is Reason.UNSUPPORTED_FS


def test_corrupted_filesystem_cannot_be_mounted(tmp_path: Path, loops: Loops) -> None:
    image = make_image(tmp_path / "c.img", "ext4", tree(tmp_path), size_mb=16)
    with open(image, "r+b") as fh:  # keep the superblock's magic, wreck the group descriptors
        fh.seek(2048)
        fh.write(b"\xa5" * 8192)
    node = loops.attach(image)
    base = tmp_path / "mnt"
    with (
        pytest.raises(MountError) as caught,
        StickMount([block_volume(node)], base, "s1", allowed=ALLOWED),
    ):
        pass
    assert caught.value.reason is Reason.MOUNT_FAILED
    assert mounts_under(base) == []


def test_image_file_is_attached_then_detached(tmp_path: Path) -> None:
    image = make_image(tmp_path / "demo.img", "ext4", tree(tmp_path), size_mb=16)
    base = tmp_path / "mnt"
    with StickMount([path_volume(image)], base, "s1", allowed=ALLOWED) as stick:
        node = stick.mounted[0].node
        assert node is not None and node.startswith("/dev/loop")
        assert is_readonly(node)
        assert (stick.root / "Cours" / "leçon.txt").exists()  # type: ignore[operator]
    assert str(image) not in sh("losetup", "--list", "--noheadings", "-O", "BACK-FILE")
    assert mounts_under(base) == []


def test_writable_mount_only_when_asked(tmp_path: Path, loops: Loops) -> None:
    image = make_image(tmp_path / "w.img", "ext4", tree(tmp_path), size_mb=16)
    node = loops.attach(image)
    base = tmp_path / "mnt"
    with StickMount([block_volume(node)], base, "rw", allowed=ALLOWED, writable=True) as stick:
        (entry,) = [m for m in mounts() if m.target == str(stick.root)]
        assert "rw" in entry.options and {"nosuid", "nodev", "noexec"} <= entry.options
        assert not is_readonly(node)
    assert mounts_under(base) == []


def test_whole_device_filesystem_that_also_looks_like_a_table(tmp_path: Path, loops: Loops) -> None:
    """exFAT or FAT made on the whole stick also carries a DOS table's signature: udev then
    reports both; with no partition of it, the filesystem is what gets mounted (seen in the VM)."""
    import dataclasses

    node = loops.attach(make_image(tmp_path / "w.img", "ext4", tree(tmp_path), size_mb=16))
    both = dataclasses.replace(
        block_volume(node, fs_type="ext4"), partition_table=True, partitions=0
    )
    base = tmp_path / "mnt"
    with StickMount([both], base, "s1", allowed=ALLOWED) as stick:
        assert stick.root is not None and (stick.root / "Cours" / "leçon.txt").exists()
    assert mounts_under(base) == []


def _wrecked_ntfs(path: Path) -> Path:
    """An NTFS volume with a junk $MFT record: blkid still sees NTFS, every driver refuses it."""
    sh("truncate", "-s", "16M", path)
    sh("mkntfs", "--force", "--quick", "--label", "BAD", path)
    with open(path, "r+b") as fh:
        boot = fh.read(512)
        sector = int.from_bytes(boot[0x0B:0x0D], "little")
        mft = int.from_bytes(boot[0x30:0x38], "little") * boot[0x0D] * sector
        fh.seek(mft + 2 * 1024)  # record 2, $LogFile; $Volume (what blkid reads) stays whole
        fh.write(b"\xa5" * 1024)
    return path


@pytest.mark.parametrize("fs", ["ntfs", "ext4"])
def test_mount_failure_detail_is_one_short_line(tmp_path: Path, loops: Loops, fs: str) -> None:
    """ntfs-3g appends a paragraph on chkdsk, dmraid and nvidia FakeRAID to every refusal, and
    mount(8) a pointer to dmesg: IT gets the line that says what failed, nothing else."""
    if fs == "ntfs":
        image = _wrecked_ntfs(tmp_path / "n.img")
    else:
        image = make_image(tmp_path / "c.img", "ext4", tree(tmp_path), size_mb=16)
        with open(image, "r+b") as fh:
            fh.seek(2048)
            fh.write(b"\xa5" * 8192)
    node = loops.attach(image)
    with (
        pytest.raises(MountError) as caught,
        StickMount([block_volume(node)], tmp_path / "mnt", "s1", allowed=ALLOWED),
    ):
        pass
    detail = str(caught.value)
    assert caught.value.reason is Reason.MOUNT_FAILED
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in detail), detail
    for noise in ("dmraid", "nvidia", "chkdsk", "dmesg"):
        assert noise not in detail, detail
    # Per driver tried: node and type, then one line of at most DETAIL_CHARS.
    tried = detail.split(": ", 1)[1].split("; ")
    assert all(len(part) <= len("ntfs-3g: ") + DETAIL_CHARS for part in tried), detail
    if fs == "ntfs" and shutil.which("ntfs-3g"):
        assert "ntfs-3g: Failed to mount '/dev/" in detail, detail


def test_helper_detail_keeps_the_failing_line_inert() -> None:
    stderr = (
        "warning: odd \x1b[31mlabel\u202e\n\n"
        "Failed to mount '/dev/sdb1': Input/output error\nNTFS is either inconsistent...\n"
    )
    assert helper_detail(stderr) == "Failed to mount '/dev/sdb1': Input/output error"
    shown = helper_detail("x" * 500 + "\x07")
    assert len(shown) == DETAIL_CHARS and "\x07" not in shown
    assert helper_detail("warning only \x1b[0m") == "warning only \\x1b[0m"
    assert helper_detail("\n \n") == ""


def test_a_sound_ntfs_stick_mounts_cleanly(tmp_path: Path, loops: Loops) -> None:
    """A kernel without ntfs3 (Debian 12's) is no sign of damage: ntfs-3g mounting a sound
    stick leaves no note, so deleting infected files stays possible on NTFS sticks."""
    image = tmp_path / "n.img"
    sh("truncate", "-s", "16M", image)
    sh("mkntfs", "--force", "--quick", "--label", "GOOD", image)
    node = loops.attach(image)
    with StickMount([block_volume(node)], tmp_path / "mnt", "s1", allowed=ALLOWED) as stick:
        assert stick.mounted[0].fs_type == "ntfs"
        assert stick.unclean == []
