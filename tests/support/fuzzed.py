"""Corrupted vfat, exFAT and NTFS stick images for the VM test (THREATS.md row 16).

Each is made like a good stick (tests.support.sticks), then bytes are flipped in one of its
metadata regions, found by reading the filesystem's own boot sector: FAT32's BPB, its FATs and
root directory; exFAT's boot region, its allocation bitmap, up-case table and root directory;
NTFS's system records of $MFT, the root directory's record, or the files' records. The
offsets come from a seeded random generator: the same seed gives the same image every run.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support import sticks

Region = tuple[int, int]  # [start, end) in bytes of the volume
MFT_RECORD = 1024


def flip_bytes(path: Path, regions: list[Region], count: int, seed: int) -> list[int]:
    """XOR *count* bytes of *path*, at offsets drawn from *regions*, with non-zero values."""
    rng = random.Random(seed)
    spans = [(start, end) for start, end in regions if end > start]
    weights = [end - start for start, end in spans]
    offsets: list[int] = []
    with path.open("r+b") as f:
        for _ in range(count):
            start, end = rng.choices(spans, weights)[0]
            offset = rng.randrange(start, end)
            f.seek(offset)
            old = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([old ^ rng.randrange(1, 256)]))
            offsets.append(offset)
    return offsets


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(512)


def fat32_boot(path: Path) -> list[Region]:
    """The BIOS parameter block of the boot sector (sizes, counts, the FAT's place)."""
    del path
    return [(11, 90)]


def fat32_tables(path: Path) -> list[Region]:
    """The used head of both FATs (the files' cluster chains) and the root directory."""
    boot = _head(path)
    sector = struct.unpack_from("<H", boot, 11)[0]
    per_cluster = boot[13]
    reserved = struct.unpack_from("<H", boot, 14)[0]
    fats = boot[16]
    fat_sectors = struct.unpack_from("<I", boot, 36)[0]
    root_cluster = struct.unpack_from("<I", boot, 44)[0]
    regions = [
        ((reserved + i * fat_sectors) * sector, (reserved + i * fat_sectors) * sector + 2048)
        for i in range(fats)
    ]
    data = (reserved + fats * fat_sectors) * sector
    root = data + (root_cluster - 2) * per_cluster * sector
    regions.append((root, root + 2048))
    return regions


def exfat_boot(path: Path) -> list[Region]:
    """The main boot region: boot sector, extended boot sectors, OEM and checksum sectors."""
    shift = _head(path)[108]
    return [(0, 12 << shift)]


def exfat_heap(path: Path) -> list[Region]:
    """The first clusters of the heap (allocation bitmap, up-case table) and the root directory."""
    boot = _head(path)
    sector = 1 << boot[108]
    cluster = sector << boot[109]
    heap = struct.unpack_from("<I", boot, 88)[0] * sector
    root = heap + (struct.unpack_from("<I", boot, 96)[0] - 2) * cluster
    return [(heap, heap + 2 * cluster), (root, root + cluster)]


def _mft(path: Path) -> int:
    boot = _head(path)
    sector = struct.unpack_from("<H", boot, 0x0B)[0]
    return int(struct.unpack_from("<Q", boot, 0x30)[0] * boot[0x0D] * sector)


def ntfs_system_records(path: Path) -> list[Region]:
    """$MFT's own records 0-3: $MFT, $MFTMirr, $LogFile, $Volume."""
    mft = _mft(path)
    return [(mft, mft + 4 * MFT_RECORD)]


def ntfs_root_record(path: Path) -> list[Region]:
    """The root directory's record (5): its index of the files."""
    mft = _mft(path)
    return [(mft + 5 * MFT_RECORD, mft + 6 * MFT_RECORD)]


def ntfs_file_records(path: Path) -> list[Region]:
    """The records of the files and folders put on the stick (mkntfs starts them at 64)."""
    mft = _mft(path)
    return [(mft + 64 * MFT_RECORD, mft + 74 * MFT_RECORD)]


@dataclass(frozen=True)
class Fuzzed:
    """One corrupted stick: its filesystem, where bytes are flipped, how many, the seed."""

    name: str
    serial: str
    filesystem: str  # vfat, exfat or ntfs
    regions: Callable[[Path], list[Region]]
    flips: int
    seed: int

    def build(self, directory: Path) -> Path:
        """The stick image: a good stick of its filesystem (EICAR among clean files: a stick
        read whole can never be clean), then the flips, then an MBR for exFAT and NTFS."""
        tree = sticks.eicar_tree(directory / self.name)
        volume = directory / f"{self.name}.vol"
        if self.filesystem == "vfat":
            sticks.fat_stick(volume, tree, size_mib=40, partitioned=False)
        elif self.filesystem == "exfat":
            sticks.exfat_stick(volume, tree, size_mib=16)
        else:
            sticks.ntfs_stick(volume, tree, size_mib=16)
        flip_bytes(volume, self.regions(volume), self.flips, self.seed)
        if self.filesystem == "vfat":
            return volume
        return sticks.in_partition(directory / f"{self.name}.img", volume)


FUZZED = [
    Fuzzed("vfat-bpb", "FUZZVFAT1", "vfat", fat32_boot, 12, 1601),
    Fuzzed("vfat-fat", "FUZZVFAT2", "vfat", fat32_tables, 48, 1602),
    Fuzzed("exfat-boot", "FUZZEXFAT1", "exfat", exfat_boot, 16, 1603),
    Fuzzed("exfat-bitmap", "FUZZEXFAT2", "exfat", exfat_heap, 64, 1604),
    Fuzzed("ntfs-mft-system", "FUZZNTFS1", "ntfs", ntfs_system_records, 16, 1605),
    Fuzzed("ntfs-mft-root", "FUZZNTFS2", "ntfs", ntfs_root_record, 16, 1606),
    Fuzzed("ntfs-mft-files", "FUZZNTFS3", "ntfs", ntfs_file_records, 48, 1607),
]
