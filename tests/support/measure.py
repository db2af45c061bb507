"""Run `kiosk scan --json` in its own process and measure its peak memory (tests and bench)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def scan_with_peak(
    root: Path, clamd_socket: Path, peak_file: Path
) -> tuple[int, dict[str, Any], int]:
    """Return the exit code, the report and the peak RSS in bytes of one `kiosk scan --json`.

    GNU time forks the scan from a tiny process: measured from the caller itself, the child's
    peak would count the pages it shares with a large parent (pytest) between fork and exec.
    """
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
            str(root),
            "--json",
            "--clamd-socket",
            str(clamd_socket),
        ],
        capture_output=True,
        check=False,
    )
    peak = int(peak_file.read_text().split()[-1]) * 1024
    return out.returncode, json.loads(out.stdout), peak
