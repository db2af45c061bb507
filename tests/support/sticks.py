"""USB stick images for the VM test, built without mounting any filesystem in the host kernel.

The host kernel here has no vfat, exfat or ntfs. FAT is written with mtools; ext4 with
`mkfs.ext4 -d`; NTFS through ntfs-3g (FUSE, userspace) on the image file; exFAT through
exfat-fuse (FUSE, userspace), which insists on a block device, so the file is attached to a loop
device first (only as a block device: the filesystem is FUSE's, never the kernel's).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.support import trees
from tests.support.clamd import EICAR, TESTFILES

MIB = 1024 * 1024


def _run(*cmd: str | Path) -> str:
    done = subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True)
    return done.stdout


def _blank(path: Path, size_mib: int) -> None:
    path.unlink(missing_ok=True)
    with path.open("wb") as f:
        f.truncate(size_mib * MIB)


def clean_tree(root: Path) -> Path:
    """A small clean stick's content: accented names, a folder, a text and a PDF-ish file."""
    (root / "Cours de français").mkdir(parents=True, exist_ok=True)
    (root / "Cours de français" / "leçon 1 — élèves.txt").write_text("Bonjour à tous.\n" * 50)
    (root / "Cours de français" / "exercices.csv").write_text("nom;note\nA;12\nB;15\n")
    (root / "notes.txt").write_text("Réunion parents-professeurs jeudi.\n")
    (root / "photo.bin").write_bytes(bytes(range(256)) * 64)
    return root


def _mcopy_tree(image: str, tree: Path) -> None:
    for path in sorted(tree.rglob("*")):
        target = "::/" + path.relative_to(tree).as_posix()
        if path.is_dir():
            _run("mmd", "-i", image, target)
        else:
            _run("mcopy", "-i", image, path, target)


def fat_stick(
    path: Path, tree: Path, size_mib: int = 64, partitioned: bool = True, label: str = "CLE"
) -> Path:
    """A FAT32 stick, with an MBR partition like most sticks sold, or as a bare filesystem."""
    _blank(path, size_mib)
    if partitioned:
        subprocess.run(
            ["sfdisk", "--quiet", str(path)], input="start=2048, type=c\n", text=True, check=True
        )
        _run(
            "mkfs.vfat",
            "-F",
            "32",
            "-n",
            label,
            "--offset",
            "2048",
            path,
            str((size_mib - 1) * 1024),
        )
        _mcopy_tree(f"{path}@@1M", tree)
    else:
        _run("mkfs.vfat", "-F", "32", "-n", label, path)
        _mcopy_tree(str(path), tree)
    return path


def eicar_tree(root: Path) -> Path:
    """A stick with EICAR (as a .com and hidden in a folder) next to clean files."""
    clean_tree(root)
    (root / "eicar.com").write_bytes(EICAR)
    (root / "Documents").mkdir(exist_ok=True)
    (root / "Documents" / "facture.txt").write_bytes(b"Facture\n" + EICAR)
    return root


def testfiles_tree(
    root: Path, names: tuple[str, ...] = ("clam.zip", "clam.7z", "clam.pdf", "clam.cab", "clam.exe")
) -> Path:
    """clamav-testfiles samples (clamd finds clam.exe inside each with our .hdb)."""
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy2(TESTFILES / name, root / name)
    (root / "lisez-moi.txt").write_text("Fichiers de test de ClamAV.\n")
    return root


def _copy_into(tree: Path, mountpoint: Path) -> None:
    for path in sorted(tree.rglob("*")):
        target = mountpoint / path.relative_to(tree)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            shutil.copyfile(path, target)


@contextlib.contextmanager
def _fuse_mounted(argv: list[str], mountpoint: Path) -> Iterator[Path]:
    subprocess.run(argv, check=True, capture_output=True)
    try:
        yield mountpoint
    finally:
        os.sync()
        subprocess.run(["fusermount", "-u", str(mountpoint)], check=True)


def in_partition(path: Path, volume: Path, type_code: str = "7") -> Path:
    """A stick image with an MBR whose one partition (from 1 MiB) holds the *volume* image, as
    Windows lays out the exFAT and NTFS sticks it formats."""
    size = volume.stat().st_size
    _blank(path, size // MIB + 2)
    subprocess.run(
        ["sfdisk", "--quiet", str(path)],
        input=f"start=2048, size={size // 512}, type={type_code}\n",
        text=True,
        check=True,
    )
    _run("dd", f"if={volume}", f"of={path}", "bs=1M", "seek=1", "conv=notrunc", "status=none")
    volume.unlink()
    return path


def ntfs_stick(path: Path, tree: Path, size_mib: int = 64, label: str = "NTFSKEY") -> Path:
    """An NTFS stick (mkntfs, filled through ntfs-3g on the image file)."""
    _blank(path, size_mib)
    _run("mkntfs", "-q", "-F", "-Q", "-L", label, path)
    with (
        tempfile.TemporaryDirectory() as mnt,
        _fuse_mounted(["ntfs-3g", str(path), mnt], Path(mnt)),
    ):
        _copy_into(tree, Path(mnt))
    return path


def exfat_stick(path: Path, tree: Path, size_mib: int = 64, label: str = "EXFATKEY") -> Path:
    """An exFAT stick (mkfs.exfat, filled through exfat-fuse on a loop block device)."""
    _blank(path, size_mib)
    _run("mkfs.exfat", "-L", label, path)
    loop = _run("losetup", "--find", "--show", path).strip()
    try:
        # Other tests set loop devices read-only (blockdev --setro); that can outlive a detach.
        _run("blockdev", "--setrw", loop)
        with (
            tempfile.TemporaryDirectory() as mnt,
            _fuse_mounted(["mount.exfat-fuse", loop, mnt], Path(mnt)),
        ):
            _copy_into(tree, Path(mnt))
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)
    return path


def ext4_stick(path: Path, tree: Path, size_mib: int = 64, label: str = "EXT4KEY") -> Path:
    """An ext4 stick made from a tree (no mount)."""
    path.unlink(missing_ok=True)
    _run("mkfs.ext4", "-q", "-F", "-L", label, "-d", tree, path, f"{size_mib}M")
    return path


def blank_stick(path: Path, size_mib: int = 32) -> Path:
    """A stick with no filesystem at all (random bytes where a superblock would be)."""
    _blank(path, size_mib)
    with path.open("r+b") as f:
        f.write(os.urandom(MIB))
    return path


def big_tree(root: Path, files: int = 300, size: int = MIB) -> Path:
    """Many distinct files, so that a scan in the VM lasts long enough to pull the stick."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (root / f"archive-{i:04d}.bin").write_bytes(trees.noise(i, size, lead=b"archive "))
    return root
