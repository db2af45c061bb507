"""ZIP archives the engine would pass unopened: ZIP64 ones, at the top or nested in a ZIP.

clamd does not unpack a ZIP64 archive and answers OK for an EICAR inside (Cisco-Talos/clamav#1527),
also when that archive sits inside another one that clamd does unpack. So a ZIP on the stick is
read here: its end records and every member's local header, then each member that is itself a ZIP
(unpacked in memory, within bounds: past them the file is 'unverifiable', never clean). What
Python's zipfile cannot read at all, clamd judges alone.
"""

from __future__ import annotations

import io
import lzma
import os
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from kiosk.models import Reason

Problem = tuple[Reason, str]  # why a ZIP is unverifiable, and where


class _Positioned(io.RawIOBase):
    """A read-only, seekable stream over `read_at`, which subclasses provide (pread-like)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size
        self._pos = 0

    def read_at(self, length: int, offset: int) -> bytes:
        """Up to *length* bytes from *offset*, like pread."""
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read_at(len(buffer), self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


class _PreadFile(_Positioned):
    """An fd read with pread, so the fd's own offset never moves."""

    def __init__(self, fd: int, size: int) -> None:
        super().__init__(size)
        self._fd = fd

    def read_at(self, length: int, offset: int) -> bytes:
        """Up to *length* bytes from *offset* of the file."""
        return os.pread(self._fd, length, offset)


class _PreadBytes(_Positioned):
    """Bytes already in memory (an unpacked inner ZIP)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(len(data))
        self._data = memoryview(data)

    def read_at(self, length: int, offset: int) -> bytes:
        """Up to *length* bytes from *offset* of the data."""
        return bytes(self._data[offset : offset + length])


# What Python's zipfile may raise on a hostile archive: then Python cannot tell, clamd judges.
_UNREADABLE = (
    zipfile.BadZipFile,
    OSError,
    ValueError,
    EOFError,
    NotImplementedError,
    RuntimeError,  # among others, an encrypted member (clamd reports those: AlertEncrypted)
    zlib.error,
    lzma.LZMAError,
)


def zip_members(fd: int, size: int) -> list[zipfile.ZipInfo] | None:
    """Return the central directory of a ZIP, or None if Python cannot read it (clamd judges)."""
    return _zip_members_of(_PreadFile(fd, size))


def _zip_members_of(source: io.RawIOBase) -> list[zipfile.ZipInfo] | None:
    try:
        with zipfile.ZipFile(io.BufferedReader(source)) as archive:
            return archive.infolist()
    except _UNREADABLE:
        return None


def _has_zip64_extra(extra: bytes) -> bool:
    pos = 0
    while pos + 4 <= len(extra):
        header_id = int.from_bytes(extra[pos : pos + 2], "little")
        length = int.from_bytes(extra[pos + 2 : pos + 4], "little")
        if header_id == 0x0001:
            return True
        pos += 4 + length
    return False


_ZIP64_MEMBER_LIMIT = 10_000  # local headers checked; past that the archive is judged ZIP64


Reader = Callable[[int, int], bytes]  # (length, offset) -> at most length bytes


def _fd_reader(fd: int) -> Reader:
    return lambda length, offset: os.pread(fd, length, offset)


def _is_zip64(read: Reader, size: int, members: list[zipfile.ZipInfo]) -> bool:
    """Tell whether a ZIP uses ZIP64 structures anywhere: clamd does not unpack those, says OK.

    Python's zipfile (and others) may put a ZIP64 extra field in a member's *local* header only,
    so the local headers are read too, not just the central directory.
    """
    tail_len = 65536 + 22 + 20 + 56
    tail = read(min(size, tail_len), max(0, size - tail_len))
    if b"PK\x06\x07" in tail or b"PK\x06\x06" in tail:
        return True
    if len(members) > _ZIP64_MEMBER_LIMIT:
        return True
    for info in members:
        if _has_zip64_extra(info.extra):
            return True
        header = read(30, info.header_offset)
        if len(header) < 30 or not header.startswith(b"PK\x03\x04"):
            continue
        sizes = header[18:26]
        if b"\xff\xff\xff\xff" in (sizes[:4], sizes[4:]):
            return True
        name_len = int.from_bytes(header[26:28], "little")
        extra_len = int.from_bytes(header[28:30], "little")
        extra = read(extra_len, info.header_offset + 30 + name_len)
        if _has_zip64_extra(extra):
            return True
    return False


# Bounds of the nested check (clamd itself unpacks up to MaxRecursion levels, 17 by default).
NESTED_DEPTH = 4  # ZIPs inside the file's own ZIP, at most
NESTED_MEMBER_BYTES = 32 * 1024 * 1024  # one inner ZIP, unpacked
NESTED_TOTAL_BYTES = 32 * 1024 * 1024  # all inner ZIPs of one file, unpacked (the memory it costs)
_ZIP_HEADS = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass
class _NestedBudget:
    """What is left to unpack for one file's nested ZIPs."""

    bytes_left: int = NESTED_TOTAL_BYTES


def _nested_zip64(source: io.RawIOBase, budget: _NestedBudget, depth: int = 1) -> Problem | None:
    """Find a ZIP64 archive among the ZIPs nested in a ZIP (None: none, or Python can't tell)."""
    try:
        archive = zipfile.ZipFile(io.BufferedReader(source))
    except _UNREADABLE:
        return None
    with archive:
        for info in archive.infolist():
            if info.is_dir() or info.file_size < 22:  # 22 bytes: the smallest ZIP there is
                continue
            try:
                with archive.open(info) as member:
                    if not member.read(4).startswith(_ZIP_HEADS):
                        continue
            except _UNREADABLE:
                continue
            where = info.filename[:200]
            if depth > NESTED_DEPTH:
                return Reason.LIMITS_EXCEEDED, f"ZIPs nested too deep: {where}"
            if info.file_size > min(NESTED_MEMBER_BYTES, budget.bytes_left):
                return Reason.LIMITS_EXCEEDED, f"inner ZIP too large to check for ZIP64: {where}"
            found = _check_inner(archive, info, budget, depth, where)
            if found is not None:
                return found
    return None


def _check_inner(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _NestedBudget, depth: int, where: str
) -> Problem | None:
    try:
        with archive.open(info) as member:
            # Never more than announced (and the budget holds), plus one byte to see a lie.
            data = member.read(info.file_size + 1)
    except _UNREADABLE:
        return None
    budget.bytes_left -= len(data)
    inner = _PreadBytes(data)
    members = _zip_members_of(inner)
    if members is None:
        return None
    if _is_zip64(inner.read_at, len(data), members):
        return Reason.ZIP64, f"ZIP64 archive inside an archive: {where}"
    return _nested_zip64(_PreadBytes(data), budget, depth + 1)


def unverifiable_zip(fd: int, size: int, members: list[zipfile.ZipInfo]) -> Problem | None:
    """Why this ZIP (open as *fd*) must not pass as clean, or None."""
    if _is_zip64(_fd_reader(fd), size, members):
        return Reason.ZIP64, "ZIP64 archive"
    return _nested_zip64(_PreadFile(fd, size), _NestedBudget())
