"""Real block devices for the station tests (images built with mkfs, on loop devices) and a
screen-side client of the event socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiosk.protocol import decode


def sh(*args: str | Path, check: bool = True) -> str:
    """Run a command and return its stdout."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise RuntimeError(f"{args}: {result.stderr}")
    return result.stdout


def make_image(path: Path, fs: str, tree: Path | None = None, size_mb: int = 32) -> Path:
    """Build a filesystem image of *fs* (ext4 from *tree* with `mkfs -d`; btrfs `--rootdir`)."""
    with open(path, "wb") as fh:
        fh.truncate(size_mb << 20)
    if fs in ("ext2", "ext3", "ext4"):
        extra = ["-d", str(tree)] if tree else []
        sh(f"mkfs.{fs}", "-q", "-F", "-L", "STICK", *extra, path)
    elif fs == "btrfs":
        extra = ["--rootdir", str(tree)] if tree else []
        sh("mkfs.btrfs", "-q", "-f", "-L", "STICK", *extra, path)
    elif fs == "xfs":
        sh("mkfs.xfs", "-q", "-f", "-L", "STICK", path)
    elif fs == "squashfs":
        path.unlink()
        sh("mksquashfs", str(tree), path, "-quiet", "-noappend")
    elif fs == "none":
        pass
    else:
        raise ValueError(fs)
    return path


class Loops:
    """Loop devices made by one test, all freed at the end."""

    def __init__(self) -> None:
        self.loops: list[str] = []

    def attach(self, image: Path) -> str:
        """Attach *image* read-write to a free loop device."""
        node = sh("losetup", "--find", "--show", image).strip()
        self.loops.append(node)
        return node

    def pull(self, node: str, image: Path) -> None:
        """Take the medium away under a mounted loop device, as when a stick is pulled.

        A mounted loop device cannot be detached (the kernel defers it), and this kernel has no
        device-mapper; so the backing file is emptied and the loop's capacity re-read: the device
        now has size 0 in sysfs and every read of it fails, with no udev event at all.
        """
        os.truncate(image, 0)
        sh("losetup", "--set-capacity", node)

    def close(self) -> None:
        """Detach every loop device made here."""
        for node in reversed(self.loops):
            sh("losetup", "--detach", node, check=False)


def mounts_under(path: Path) -> list[str]:
    """Return the mount points at or below *path* (from /proc/self/mountinfo)."""
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            target = line.split()[4]
            if target == str(path) or target.startswith(f"{path}/"):
                found.append(target)
    return found


class Screen:
    """A client of the event socket that records every line, like a screen would."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def connect(self, path: Path) -> Screen:
        """Connect and start reading."""
        self.reader, self.writer = await asyncio.open_unix_connection(str(path), limit=1 << 21)
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.reader is not None
        while line := await self.reader.readline():
            self.lines.append(decode(line))
            self._changed.set()

    async def send(self, message: bytes) -> None:
        """Send one command line."""
        assert self.writer is not None
        self.writer.write(message)
        await self.writer.drain()

    async def wait_for(
        self, match: Callable[[dict[str, Any]], bool], timeout: float = 60, start: int = 0
    ) -> dict[str, Any]:
        """Return the first line (from index *start*) that *match* accepts, waiting for it."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for line in self.lines[start:]:
                if match(line):
                    return line
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no such line; got {json.dumps(self.lines[-5:])}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Return the lines of one type."""
        return [line for line in self.lines if line.get("type") == kind]

    async def close(self) -> None:
        """Disconnect."""
        if self.writer is not None:
            self.writer.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
