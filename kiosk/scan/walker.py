"""Walk a tree ourselves, by directory file descriptors, never following a link.

clamd's own directory scan fails open (paths past PATH_MAX, MaxDirectoryRecursion, links and
special files skipped silently), so the kiosk enumerates every entry itself:
* each directory is opened with `openat(parent_fd, name, O_DIRECTORY|O_NOFOLLOW)`, so no path is
  ever longer than one name and nothing outside the root can be reached through a link;
* each regular file is opened with `O_NOFOLLOW|O_NONBLOCK` (a FIFO swapped in cannot block us)
  and kept only if `fstat` says it is a regular file;
* everything else (links, FIFOs, devices, sockets) is reported, never opened.
"""

from __future__ import annotations

import errno
import os
import resource
import stat
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from enum import StrEnum

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


class Kind(StrEnum):
    """What an entry of the tree is."""

    REGULAR = "regular"
    SYMLINK = "symlink"
    SPECIAL = "special"  # FIFO, character or block device, socket, door ...
    TOO_DEEP = "too_deep"  # a directory past the depth limit, not entered
    UNREADABLE = "unreadable"  # could not be listed, stat'ed or opened
    OTHER_FS = "other_fs"  # a mount point inside the tree, not entered


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry found by the walk; `fd` is open (and the caller's to close) for REGULAR ones."""

    path: bytes  # relative to the root, components joined by b"/"
    kind: Kind
    size: int = 0
    fd: int | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Totals:
    """What a counting walk found: regular files and their bytes."""

    files: int
    bytes: int
    entries: int


def raise_fd_limit(wanted: int = 65536) -> int:
    """Lift the soft RLIMIT_NOFILE towards *wanted* (deep trees keep one fd per level open)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


def open_root(root: str | bytes | os.PathLike[str]) -> int:
    """Open the root of the tree as a directory fd (following a link given by the caller only)."""
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


_Frame = tuple[int, bytes, list[bytes]]


def _join(parent: bytes, name: bytes) -> bytes:
    return name if not parent else parent + b"/" + name


def _kind_of(mode: int) -> Kind:
    if stat.S_ISREG(mode):
        return Kind.REGULAR
    if stat.S_ISLNK(mode):
        return Kind.SYMLINK
    return Kind.SPECIAL


class Walker:
    """Depth-first walk of one tree from an open directory fd."""

    def __init__(
        self,
        root_fd: int,
        *,
        max_depth: int = 4096,
        max_entries: int = 2_000_000,
        cancel: threading.Event | None = None,
    ) -> None:
        self.root_fd = root_fd
        self.max_depth = max_depth
        self.max_entries = max_entries
        self.cancel = cancel or threading.Event()
        self.entries = 0
        self.truncated = False  # max_entries reached: the walk stopped early
        self.root_dev = os.fstat(root_fd).st_dev

    def count(self) -> Totals:
        """Count regular files and bytes without opening any file (for progress totals)."""
        files = size = 0
        for entry in self.walk(open_files=False):
            if entry.kind is Kind.REGULAR:
                files += 1
                size += entry.size
        return Totals(files=files, bytes=size, entries=self.entries)

    def walk(self, *, open_files: bool = True) -> Iterator[Entry]:
        """Yield every entry below the root; regular files come with an open fd if asked."""
        self.entries = 0
        self.truncated = False
        # Each frame: (dir fd, relative path, names still to visit). The root fd is the caller's.
        stack: list[_Frame] = []
        try:
            names = self._list(self.root_fd)
        except OSError as exc:
            yield Entry(b"", Kind.UNREADABLE, detail=exc.strerror)
            return
        stack.append((self.root_fd, b"", names))
        try:
            while stack:
                if self.cancel.is_set():
                    return
                dir_fd, dir_path, pending = stack[-1]
                if not pending:
                    stack.pop()
                    if dir_fd != self.root_fd:
                        os.close(dir_fd)
                    continue
                name = pending.pop()
                self.entries += 1
                if self.entries > self.max_entries:
                    self.truncated = True
                    return
                path = _join(dir_path, name)
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError as exc:
                    yield Entry(path, Kind.UNREADABLE, detail=exc.strerror)
                    continue
                if stat.S_ISDIR(st.st_mode):
                    frame = yield from self._enter(dir_fd, name, path, st, len(stack))
                    if frame is not None:
                        stack.append(frame)
                    continue
                kind = _kind_of(st.st_mode)
                if kind is not Kind.REGULAR:
                    yield Entry(path, kind, size=st.st_size)
                    continue
                if not open_files:
                    yield Entry(path, Kind.REGULAR, size=st.st_size)
                    continue
                yield self._open_file(dir_fd, name, path)
        finally:
            for dir_fd, _, _ in stack:
                if dir_fd != self.root_fd:
                    os.close(dir_fd)

    def _list(self, dir_fd: int) -> list[bytes]:
        # listdir on an fd gives str names (surrogate-escaped); back to the exact bytes.
        names = [os.fsencode(n) for n in os.listdir(dir_fd)]
        names.sort(reverse=True)  # popped from the end: visited in byte order
        return names

    def _enter(
        self, parent_fd: int, name: bytes, path: bytes, st: os.stat_result, depth: int
    ) -> Generator[Entry, None, _Frame | None]:
        """Open a subdirectory; yield an entry instead when it cannot or must not be entered."""
        if st.st_dev != self.root_dev:
            yield Entry(path, Kind.OTHER_FS)
            return None
        if depth >= self.max_depth:
            yield Entry(path, Kind.TOO_DEEP)
            return None
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            yield Entry(path, Kind.UNREADABLE, detail=exc.strerror)
            return None
        try:
            real = os.fstat(fd)
            if (real.st_dev, real.st_ino) != (st.st_dev, st.st_ino):
                raise OSError(0, "changed while walking")
            names = self._list(fd)
        except OSError as exc:
            os.close(fd)
            yield Entry(path, Kind.UNREADABLE, detail=exc.strerror or str(exc))
            return None
        return (fd, path, names)

    def _open_file(self, dir_fd: int, name: bytes, path: bytes) -> Entry:
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # swapped for a link since the stat
                return Entry(path, Kind.SYMLINK)
            return Entry(path, Kind.UNREADABLE, detail=exc.strerror)
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            return Entry(path, Kind.UNREADABLE, detail=exc.strerror)
        if not stat.S_ISREG(st.st_mode):
            # Swapped for something else between stat and open: report it, never read it.
            os.close(fd)
            return Entry(path, _kind_of(st.st_mode), size=st.st_size)
        return Entry(path, Kind.REGULAR, size=st.st_size, fd=fd)
