"""Walk a tree ourselves, by directory file descriptors, never following a link.

clamd's own directory scan fails open (paths past PATH_MAX, MaxDirectoryRecursion, links and
special files skipped silently), so the kiosk enumerates every entry itself:
* each directory is opened with `openat(parent_fd, name, O_DIRECTORY|O_NOFOLLOW)`, so no path is
  ever longer than one name and nothing outside the root can be reached through a link;
* each regular file is opened with `O_NOFOLLOW|O_NONBLOCK` (a FIFO swapped in cannot block us)
  and kept only if `fstat` says it is a regular file;
* everything else (links, FIFOs, devices, sockets) is reported, never opened;
* the type the directory listing gives (d_type) only spares a stat: what the open finds decides,
  and an entry the listing got wrong is looked at again with lstat.
"""

from __future__ import annotations

import errno
import os
import resource
import stat
import threading
from collections.abc import Generator
from dataclasses import dataclass
from enum import Enum, StrEnum

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


class _Hint(Enum):
    """What the directory listing says an entry is (d_type): a hint, checked when opened."""

    FILE = 1
    DIR = 2
    OTHER = 3  # a link, a special file, or unknown: lstat tells


_Frame = tuple[int, bytes, list[tuple[bytes, _Hint]]]


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
        self.typed = True  # the walk trusts the listing's types (checked when opening)
        self.root_dev = os.fstat(root_fd).st_dev

    def count(self) -> Totals:
        """Count regular files and bytes without opening any file (for progress totals)."""
        files = size = 0
        for entry in self.walk(open_files=False):
            if entry.kind is Kind.REGULAR:
                files += 1
                size += entry.size
        return Totals(files=files, bytes=size, entries=self.entries)

    def walk(self, *, open_files: bool = True) -> Generator[Entry, None, None]:
        """Yield every entry below the root; regular files come with an open fd if asked."""
        self.entries = 0
        self.truncated = False
        self.typed = open_files  # a count needs every size: lstat for all, no types to read
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
                name, hint = pending.pop()
                self.entries += 1
                if self.entries > self.max_entries:
                    self.truncated = True
                    return
                path = _join(dir_path, name)
                # The listing's type saves a stat a file: opening checks what it really is.
                if hint is _Hint.FILE and open_files:
                    entry = self._open_file(dir_fd, name, path, hinted=True)
                    if entry is not None:
                        yield entry
                        continue
                elif hint is _Hint.DIR:
                    frame = yield from self._enter(dir_fd, name, path, len(stack))
                    if isinstance(frame, tuple):
                        stack.append(frame)
                    if frame is not False:
                        continue
                # Anything else, or a listing that lied: what lstat says.
                try:
                    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError as exc:
                    yield Entry(path, Kind.UNREADABLE, detail=exc.strerror)
                    continue
                if stat.S_ISDIR(st.st_mode):
                    frame = yield from self._enter(dir_fd, name, path, len(stack))
                    if isinstance(frame, tuple):
                        stack.append(frame)
                    elif frame is False:
                        yield Entry(path, Kind.UNREADABLE, detail="not a directory when opened")
                    continue
                kind = _kind_of(st.st_mode)
                if kind is not Kind.REGULAR:
                    yield Entry(path, kind, size=st.st_size)
                elif not open_files:
                    yield Entry(path, Kind.REGULAR, size=st.st_size)
                else:
                    yield self._open_file(dir_fd, name, path) or Entry(
                        path, Kind.UNREADABLE, detail="a directory when opened"
                    )
        finally:
            for dir_fd, _, _ in stack:
                if dir_fd != self.root_fd:
                    os.close(dir_fd)

    def _list(self, dir_fd: int) -> list[tuple[bytes, _Hint]]:
        # Names come as str (surrogate-escaped) from a descriptor: back to the exact bytes.
        if not self.typed:
            names = [(os.fsencode(name), _Hint.OTHER) for name in os.listdir(dir_fd)]
            names.sort(reverse=True)
            return names
        names = []
        with os.scandir(dir_fd) as listing:
            for item in listing:
                if item.is_dir(follow_symlinks=False):
                    hint = _Hint.DIR
                elif item.is_file(follow_symlinks=False):
                    hint = _Hint.FILE
                else:
                    hint = _Hint.OTHER
                names.append((os.fsencode(item.name), hint))
        names.sort(reverse=True)  # popped from the end: visited in byte order
        return names

    def _enter(
        self, parent_fd: int, name: bytes, path: bytes, depth: int
    ) -> Generator[Entry, None, _Frame | bool]:
        """Open a subdirectory: its frame; True when an entry says why it was not entered;
        False when it is not a directory after all (the caller looks again)."""
        if depth >= self.max_depth:
            yield Entry(path, Kind.TOO_DEEP)
            return True
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                return False
            yield Entry(path, Kind.UNREADABLE, detail=exc.strerror)
            return True
        try:
            if os.fstat(fd).st_dev != self.root_dev:
                os.close(fd)
                yield Entry(path, Kind.OTHER_FS)
                return True
            names = self._list(fd)
        except OSError as exc:
            os.close(fd)
            yield Entry(path, Kind.UNREADABLE, detail=exc.strerror or str(exc))
            return True
        return (fd, path, names)

    def _open_file(
        self, dir_fd: int, name: bytes, path: bytes, *, hinted: bool = False
    ) -> Entry | None:
        """Open a regular file: an entry for what it really is; None when the caller must look
        again with lstat (a directory, or, *hinted* by the listing only, a failed open)."""
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if hinted:
                return None  # a socket or a link the listing called a file, perhaps
            if exc.errno == errno.ELOOP:  # a link (O_NOFOLLOW): never followed
                return Entry(path, Kind.SYMLINK)
            return Entry(path, Kind.UNREADABLE, detail=exc.strerror)
        try:
            st = os.fstat(fd)
        except OSError as exc:
            os.close(fd)
            return Entry(path, Kind.UNREADABLE, detail=exc.strerror)
        if not stat.S_ISREG(st.st_mode):
            # Not what the listing said (a FIFO, a device ...): report it, never read it.
            os.close(fd)
            if stat.S_ISDIR(st.st_mode):
                return None
            return Entry(path, _kind_of(st.st_mode), size=st.st_size)
        return Entry(path, Kind.REGULAR, size=st.st_size, fd=fd)
