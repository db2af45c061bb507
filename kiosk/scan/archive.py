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

    def close(self) -> None:
        """Stay readable: zipfile closes its reader on the way out, and the next one reads on."""

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
_LOCAL_READ = 30 + 512  # a local header with room for its name and extra field, in one pread
_INFLATE_READ = 4096  # compressed bytes inflated to see a member's first four bytes

# Bounds of the nested check (clamd itself unpacks up to MaxRecursion levels, 17 by default).
NESTED_DEPTH = 4  # ZIPs inside the file's own ZIP, at most
NESTED_MEMBER_BYTES = 32 * 1024 * 1024  # one inner ZIP, unpacked
NESTED_TOTAL_BYTES = 32 * 1024 * 1024  # all inner ZIPs of one file, unpacked (the memory it costs)
_ZIP_HEADS = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass
class _NestedBudget:
    """What is left to unpack for one file's nested ZIPs."""

    bytes_left: int = NESTED_TOTAL_BYTES


def _local_header(read: Reader, info: zipfile.ZipInfo) -> tuple[bool, int] | None:
    """Read a member's local header: (uses ZIP64, offset of its data), or None if there is none.

    Python's zipfile (and others) may put a ZIP64 extra field in a member's *local* header only,
    so the local headers are read too, not just the central directory.
    """
    header = read(_LOCAL_READ, info.header_offset)
    if len(header) < 30 or not header.startswith(b"PK\x03\x04"):
        return None
    if b"\xff\xff\xff\xff" in (header[18:22], header[22:26]):
        return True, 0
    extra_at = 30 + int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    extra = header[extra_at : extra_at + extra_len]
    if len(extra) < extra_len:
        extra = read(extra_len, info.header_offset + extra_at)
    return _has_zip64_extra(extra), info.header_offset + extra_at + extra_len


def _looks_like_zip(read: Reader, info: zipfile.ZipInfo, data_at: int) -> bool | None:
    """Whether a member's content starts like a ZIP; None when zipfile must unpack it to tell.

    Stored and deflated members (nearly all) are read here: going through zipfile for four
    bytes of every member cost more than all the other checks of a file.
    """
    if info.flag_bits & 0x1:
        return False  # encrypted: clamd reports it (AlertEncrypted)
    if info.compress_type == zipfile.ZIP_STORED:
        return read(4, data_at).startswith(_ZIP_HEADS)
    if info.compress_type != zipfile.ZIP_DEFLATED:
        return None
    try:
        first = zlib.decompressobj(-15).decompress(read(_INFLATE_READ, data_at), 4)
    except zlib.error:
        return False  # zipfile could not unpack it either: clamd judges
    if len(first) < 4 and info.compress_size > _INFLATE_READ:
        return None
    return first.startswith(_ZIP_HEADS)


def _survey(
    source: _Positioned, size: int, members: list[zipfile.ZipInfo]
) -> tuple[bool, list[zipfile.ZipInfo]]:
    """One pass over a ZIP's structures: (uses ZIP64 anywhere, the members that are ZIPs)."""
    read = source.read_at
    tail_len = 65536 + 22 + 20 + 56
    tail = read(min(size, tail_len), max(0, size - tail_len))
    if b"PK\x06\x07" in tail or b"PK\x06\x06" in tail or len(members) > _ZIP64_MEMBER_LIMIT:
        return True, []
    inner: list[zipfile.ZipInfo] = []
    unknown: list[zipfile.ZipInfo] = []
    for info in members:
        if _has_zip64_extra(info.extra):
            return True, []
        local = _local_header(read, info)
        if local is None:
            continue
        zip64, data_at = local
        if zip64:
            return True, []
        if info.is_dir() or info.file_size < 22:  # 22 bytes: the smallest ZIP there is
            continue
        looks = _looks_like_zip(read, info, data_at)
        if looks is None:
            unknown.append(info)
        elif looks:
            inner.append(info)
    if unknown:
        zipped = set(map(id, inner + _unpacked_zips(source, unknown)))
        inner = [info for info in members if id(info) in zipped]
    return False, inner


def _open(source: _Positioned) -> zipfile.ZipFile | None:
    source.seek(0)
    try:
        return zipfile.ZipFile(io.BufferedReader(source))
    except _UNREADABLE:
        return None


def _unpacked_zips(source: _Positioned, members: list[zipfile.ZipInfo]) -> list[zipfile.ZipInfo]:
    """The members (of other compression methods) that zipfile unpacks to a ZIP's first bytes."""
    archive = _open(source)
    if archive is None:
        return []
    found = []
    with archive:
        for info in members:
            try:
                with archive.open(info) as member:
                    if member.read(4).startswith(_ZIP_HEADS):
                        found.append(info)
            except _UNREADABLE:
                continue
    return found


def _unpack(source: _Positioned, info: zipfile.ZipInfo) -> bytes | None:
    """A member unpacked whole (never more than announced, plus one byte to see a lie)."""
    archive = _open(source)
    if archive is None:
        return None
    with archive:
        try:
            with archive.open(info) as member:
                return member.read(info.file_size + 1)
        except _UNREADABLE:
            return None


def _unverifiable(
    source: _Positioned,
    size: int,
    members: list[zipfile.ZipInfo],
    budget: _NestedBudget,
    depth: int = 0,
    where: str = "",
) -> Problem | None:
    """Why the ZIP at *source* (nested *depth* levels deep, as *where*) cannot pass, or None."""
    zip64, inner = _survey(source, size, members)
    if zip64:
        return (
            Reason.ZIP64,
            f"ZIP64 archive inside an archive: {where}" if depth else "ZIP64 archive",
        )
    for info in inner:
        name = info.filename[:200]
        if depth >= NESTED_DEPTH:
            return Reason.LIMITS_EXCEEDED, f"ZIPs nested too deep: {name}"
        if info.file_size > min(NESTED_MEMBER_BYTES, budget.bytes_left):
            return Reason.LIMITS_EXCEEDED, f"inner ZIP too large to check for ZIP64: {name}"
        data = _unpack(source, info)
        if data is None:
            continue
        budget.bytes_left -= len(data)
        unpacked = _PreadBytes(data)
        inner_members = _zip_members_of(unpacked)
        if inner_members is None:
            continue
        found = _unverifiable(unpacked, len(data), inner_members, budget, depth + 1, name)
        if found is not None:
            return found
    return None


def unverifiable_zip(fd: int, size: int, members: list[zipfile.ZipInfo]) -> Problem | None:
    """Why this ZIP (open as *fd*) must not pass as clean, or None."""
    return _unverifiable(_PreadFile(fd, size), size, members, _NestedBudget())
