"""What the kernel has mounted, from /proc/self/mountinfo (its escaped names decoded)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path


def is_mountpoint(path: Path) -> bool:
    """Tell whether something is mounted at *path* (per /proc/self/mountinfo)."""
    return any(m.target == str(path) for m in mounts())


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    target: str
    source: str
    fs_type: str
    options: frozenset[str]  # per-mount and per-superblock options together


def _unoctal(text: str) -> str:
    return (
        text.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def mounts() -> list[MountEntry]:
    """Return the mounts this process sees."""
    entries = []
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            fields = line.split()
            sep = fields.index("-")
            entries.append(
                MountEntry(
                    target=_unoctal(fields[4]),
                    source=_unoctal(fields[sep + 2]),
                    fs_type=fields[sep + 1],
                    options=frozenset(fields[5].split(",") + fields[sep + 3].split(",")),
                )
            )
    return entries


def is_in_use(node: str) -> bool:
    """Tell whether a block device is mounted anywhere (the system's own disks are)."""
    try:
        real = os.path.realpath(node)
        rdev = os.stat(real).st_rdev
    except OSError:
        return False
    for entry in mounts():
        if entry.source in (node, real):
            return True
        with contextlib.suppress(OSError):
            if entry.source.startswith("/dev/") and os.stat(entry.source).st_rdev == rdev:
                return True
    return False
