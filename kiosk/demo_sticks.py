"""The demo's "sticks": folders built at start, each showing one verdict of the kiosk."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

from kiosk.demo_engine import EICAR

Builder = Callable[[Path], None]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def clean_stick(root: Path, files: int = 1200) -> None:
    """Lesson notes and class photos with accented names: clean."""
    _write(root / "Cours de français" / "Leçon 1 — l'été.txt", "Résumé de la leçon.\n".encode())
    _write(root / "Cours de français" / "Évaluation n°2.md", "# Évaluation\n".encode())
    for index in range(files):
        body = f"Élève {index}; note {index % 20}/20; appréciation : très bien\n" * 40
        _write(
            root / "Notes" / f"trimestre {index // 100 + 1}" / f"élève_{index:04d}.csv",
            body.encode(),
        )


def infected_stick(root: Path) -> None:
    """Two copies of the EICAR test virus (one under a name full of markup) among clean files."""
    clean_stick(root, files=300)
    _write(root / "Jeux" / "setup_crack.exe", EICAR)
    _write(root / "Documents" / "Facture [@click=app.quit]urgente[b red].pdf", EICAR)


def encrypted_stick(root: Path) -> None:
    """A password-protected zip the antivirus cannot look into: not verifiable."""
    clean_stick(root, files=200)
    _write(
        root / "Documents" / "Notes [personnel].zip",
        encrypted_zip("notes.txt", b"Notes personnelles\n", b"motdepasse"),
    )


def disguised_stick(root: Path) -> None:
    """A Windows program named like a PDF document: dangerous."""
    clean_stick(root, files=200)
    _write(root / "Devoirs" / "rapport de stage.pdf", minimal_pe())


STICKS: tuple[tuple[str, Builder], ...] = (
    ("1-cle-propre", clean_stick),
    ("2-cle-virus", infected_stick),
    ("3-cle-chiffree", encrypted_stick),
    ("4-cle-deguisee", disguised_stick),
)


def build_sticks(base: Path) -> list[Path]:
    """Build every demo stick under *base* (afresh) and return their folders in order."""
    out = []
    for name, builder in STICKS:
        root = base / name
        root.mkdir(parents=True, exist_ok=True)
        builder(root)
        out.append(root)
    return out


def minimal_pe() -> bytes:
    """A small PE32 header that libmagic recognises as a Windows executable (it does nothing)."""
    dos = bytearray(b"MZ" + b"\0" * 0x3E)
    struct.pack_into("<I", dos, 0x3C, 0x40)
    coff = struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x0102)
    optional = bytearray(0xE0)
    struct.pack_into("<H", optional, 0, 0x10B)  # PE32
    struct.pack_into("<H", optional, 68, 2)  # subsystem: Windows GUI
    section = b".text\0\0\0" + struct.pack(
        "<IIIIIIHHI", 0x1000, 0x1000, 0x200, 0x200, 0, 0, 0, 0, 0x60000020
    )
    body = bytes(dos) + b"PE\0\0" + coff + bytes(optional) + section
    return body.ljust(0x200, b"\0") + b"\xc3" * 0x200


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = _crc_table()


class _ZipCrypto:
    """The traditional PKWARE stream cipher (what `zip -P` writes)."""

    def __init__(self, password: bytes) -> None:
        self.keys = [0x12345678, 0x23456789, 0x34567890]
        for byte in password:
            self._update(byte)

    def _update(self, byte: int) -> None:
        k0, k1, k2 = self.keys
        k0 = (k0 >> 8) ^ _CRC[(k0 ^ byte) & 0xFF]
        k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        k2 = (k2 >> 8) ^ _CRC[(k2 ^ (k1 >> 24)) & 0xFF]
        self.keys = [k0, k1, k2]

    def encrypt(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            temp = (self.keys[2] | 2) & 0xFFFF
            out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
            self._update(byte)
        return bytes(out)


def encrypted_zip(name: str, data: bytes, password: bytes) -> bytes:
    """Return a one-member zip encrypted with ZipCrypto (stored, not compressed)."""
    crc = zlib.crc32(data)
    header = os.urandom(11) + bytes([crc >> 24])
    body = _ZipCrypto(password).encrypt(header + data)
    raw_name = name.encode()
    # What the local header and the central directory entry both say: version needed (2.0),
    # flags (encrypted), method (stored), time, date, CRC, sizes, name length.
    shared = struct.pack(
        "<HHHHHIIIH", 20, 0x1, 0, 0, 0x21, crc, len(body), len(data), len(raw_name)
    )
    local = struct.pack("<I", 0x04034B50) + shared + struct.pack("<H", 0) + raw_name  # no extra
    central = (
        struct.pack("<IH", 0x02014B50, 20)  # signature, version made by
        + shared
        + struct.pack("<HHHHII", 0, 0, 0, 0, 0, 0)  # extra, comment, disk, attributes, at 0
        + raw_name
    )
    offset = len(local) + len(body)
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset, 0)
    return local + body + central + end
