"""THREATS.md row 13: many small files and a huge sparse file; counts exact, memory bounded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kiosk.models import FileVerdict, Reason

MB = 1024 * 1024


def _scan_with_rusage(path, clamd, tmp_path):
    # GNU time forks the scan from a tiny process: measured from pytest itself, the child's peak
    # would count the pages it shares with the (large) test process between fork and exec.
    peak_file = tmp_path / "peak-kb"
    out = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "%M",
            "-o",
            str(peak_file),
            sys.executable,
            "-m",
            "kiosk",
            "scan",
            str(path),
            "--json",
            "--clamd-socket",
            str(clamd.socket),
        ],
        capture_output=True,
        check=False,
    )
    return out.returncode, json.loads(out.stdout), int(peak_file.read_text().split()[-1]) * 1024


@pytest.mark.slow
def test_row13_twenty_thousand_small_files(tmp_path, clamd):
    root = tmp_path / "cle"
    for d in range(20):
        folder = root / f"dossier{d:02d}"
        folder.mkdir(parents=True)
        for i in range(1000):
            (folder / f"note{i:04d}.txt").write_bytes(b"x" * 100)
    code, doc, peak = _scan_with_rusage(root, clamd, tmp_path)
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
    code, doc, peak = _scan_with_rusage(root, clamd, tmp_path)
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
