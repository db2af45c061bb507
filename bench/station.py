"""`python -m bench station`: latency on loop devices, then memory over 1,000 sessions.

Options: --runs N (latency runs, default 30), --sessions N (default 1000), --only latency|memory.
Needs root for the loop devices of the latency part; the memory part uses folder "sticks".
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from bench.station_latency import latency
from bench.station_memory import memory
from tests.support.clamd import start_clamd


def main(argv: list[str]) -> int:
    """Run the station benchmarks and print their figures."""
    parser = argparse.ArgumentParser(prog="python -m bench station")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--only", choices=("latency", "memory"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-station-") as tmp:
        work = Path(tmp)
        server = start_clamd(work / "clamd")
        try:
            if args.only in (None, "latency"):
                if os.geteuid() != 0:
                    print("latency: skipped (needs root for loop devices)")
                else:
                    latency(work / "latency", server.socket, args.runs)
            if args.only in (None, "memory"):
                memory(work / "memory", server.socket, args.sessions)
        finally:
            server.stop()
    return 0
