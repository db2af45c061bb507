"""Builders of the trees the scanning tests walk: nothing hostile is committed, all is made here."""

from __future__ import annotations

import io
import os
import random
import shutil
import socket
import subprocess
import tarfile
import zipfile
from pathlib import Path

from kiosk.demo_sticks import minimal_pe
from tests.support.clamd import EICAR, TESTFILES

__all__ = ["minimal_pe"]  # the demo's harmless PE header, used by the policy tests too


def write(path: Path | bytes, data: bytes) -> None:
    """Write *data* at *path* (str, Path or raw bytes), creating parents."""
    raw = os.fsencode(path)
    parent = os.path.dirname(raw)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(raw, "wb") as fh:
        fh.write(data)


def noise(seed: int, size: int, lead: bytes = b"donnees ") -> bytes:
    """*size* bytes of seeded random data led by *lead*, a word no file type starts with."""
    # Random bytes that began with "MZ" or "#!" would be a program or a script to the file-type
    # policy (about 1 file in 30,000): once a CI run's clean count was one short because of it.
    return (lead + random.Random(seed).randbytes(max(0, size - len(lead))))[:size]


def clean_tree(root: Path, count: int = 50) -> list[str]:
    """A stick of *count* clean files with accented names in a few folders."""
    names = []
    for i in range(count):
        folder = ("Élèves", "Cours de français", "Photos été", "")[i % 4]
        name = f"{folder}/leçon n°{i} – résumé.txt".lstrip("/")
        write(root / name, f"Contenu pédagogique {i}\n".encode() * (i + 1))
        names.append(name)
    return names


def deep_path(root: Path, levels: int = 450, component: str = "dossier_profond") -> Path:
    """Make a directory chain deeper than PATH_MAX and return its last directory.

    Built with relative mkdir from fds, since the full path is too long for the kernel.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir(component, dir_fd=fd)
            new = os.open(component, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = new
        out = os.open("eicar.com", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, EICAR)
        os.close(out)
    finally:
        os.close(fd)
    return root


def nested_archive(path: Path) -> None:
    """EICAR inside a zip inside a zip inside a tar.gz."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("readme/eicar.com", EICAR)
    middle = io.BytesIO()
    with zipfile.ZipFile(middle, "w") as z:
        z.writestr("inner.zip", inner.getvalue())
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("docs/middle.zip")
        info.size = len(middle.getvalue())
        tar.addfile(info, io.BytesIO(middle.getvalue()))


def testfiles_tree(root: Path) -> None:
    """A copy of clamav-testfiles (zip, 7z, cab, pdf, ole, mbox, packed exe ...)."""
    shutil.copytree(TESTFILES, root / "testfiles")


def encrypted_archives(root: Path) -> tuple[Path, Path]:
    """An encrypted zip and an encrypted 7z, each holding EICAR."""
    src = root / "src"
    write(src / "secret.txt", EICAR)
    zpath = root / "chiffré.zip"
    subprocess.run(
        ["zip", "-q", "-j", "-P", "motdepasse", str(zpath), str(src / "secret.txt")], check=True
    )
    spath = root / "chiffré.7z"
    subprocess.run(
        ["7z", "a", "-bd", "-y", "-pmotdepasse", "-mhe=on", str(spath), str(src / "secret.txt")],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    shutil.rmtree(src)
    return zpath, spath


def distinct_member_bomb(path: Path, members: int, member_size: int) -> None:
    """A zip of many distinct members (clamd's cache cannot shortcut them): past MaxScanSize."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for i in range(members):
            block = (f"{i:08d}".encode() * (member_size // 8 + 1))[:member_size]
            z.writestr(f"part{i:05d}.txt", block)


def special_files(root: Path, outside: Path) -> None:
    """Links (loop, to /, /etc/passwd, to an outside EICAR), FIFO, devices, a socket."""
    root.mkdir(parents=True, exist_ok=True)
    write(outside / "dehors-eicar.com", EICAR)
    os.symlink("boucle_b", root / "boucle_a")
    os.symlink("boucle_a", root / "boucle_b")
    os.symlink("/", root / "racine")
    os.symlink("/etc/passwd", root / "passwd")
    os.symlink(outside / "dehors-eicar.com", root / "lien-eicar.com")
    os.symlink(outside, root / "lien-dossier")
    os.mkfifo(root / "tube")
    os.mknod(root / "zero", 0o666 | 0o020000, os.makedev(1, 5))  # like /dev/zero
    os.mknod(root / "null", 0o666 | 0o020000, os.makedev(1, 3))  # like /dev/null
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "prise.sock"))
    sock.close()
    write(root / "normal.txt", b"rien a signaler\n")
