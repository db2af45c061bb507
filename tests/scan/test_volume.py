"""THREATS.md row 13: many small files and a huge sparse file; counts exact, memory bounded."""

from __future__ import annotations

import pytest

from kiosk.models import FileVerdict, Reason
from tests.support.measure import scan_with_peak

MB = 1024 * 1024


@pytest.mark.slow
def test_row13_twenty_thousand_small_files(tmp_path, clamd):
    root = tmp_path / "cle"
    for d in range(20):
        folder = root / f"dossier{d:02d}"
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f"note{i:04d}.txt").write_bytes(b"x" * 100)
    code, doc, peak = scan_with_peak(root, clamd.socket, tmp_path / "peak")
    assert code == 0, doc
    assert doc["files_total"] == 20_000
    assert doc["counts"] == {"clean": 20_000}
    assert doc["bytes_total"] == 2_000_000
    assert peak < 100 * MB, f"peak RSS {peak / MB:.0f} MB"


@pytest.mark.slow
def test_row13_hundred_gigabyte_sparse_file(tmp_path, clamd):
    root = tmp_path / "cle"
    root.mkdir()
    with open(root / "disque.img", "wb") as fh:
        fh.truncate(100 * 1024**3)
    (root / "petit.txt").write_bytes(b"bonjour")
    code, doc, peak = scan_with_peak(root, clamd.socket, tmp_path / "peak")
    assert code == 2
    assert doc["files_total"] == 2
    assert doc["bytes_total"] == 100 * 1024**3 + 7
    (finding,) = doc["findings"]
    assert (finding["path"], finding["verdict"], finding["reason"]) == (
        "disque.img",
        FileVerdict.UNVERIFIABLE,
        Reason.TOO_LARGE,
    )
    assert peak < 100 * MB
