"""The station's memory over many sessions (folder "sticks", same path after detection):
RSS after 0, 100 and 1,000 sessions must not grow."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from bench.station_latency import config_for
from kiosk.protocol import State
from kiosk.station.session import Session
from kiosk.station.source import ManualSource
from kiosk.station.station import Station


def rss_kib() -> int:
    """Return this process's resident set size in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def _sessions(work: Path, clamd_socket: Path, count: int) -> dict[int, int]:
    stick = work / "stick"
    stick.mkdir(parents=True)
    for i in range(5):
        (stick / f"f{i}.txt").write_text(f"bonjour {i}\n")
    source = ManualSource()
    station = Station(config_for(work, clamd_socket), source)
    task = asyncio.create_task(station.run())
    await station.ready.wait()
    marks = {0, 100, count}
    rss: dict[int, int] = {}
    try:
        for n in range(count + 1):
            if n in marks:
                gc.collect()
                rss[n] = rss_kib()
            if n == count:
                break
            ended = asyncio.Event()

            def seen(session: Session, ended: asyncio.Event = ended) -> None:
                if session.state is State.ENDED:
                    ended.set()

            station.listeners.append(seen)
            volume = source.plug(stick)
            while not any(s.report for s in station.sessions.values()):
                await asyncio.sleep(0.002)
            source.unplug(volume)
            await asyncio.wait_for(ended.wait(), 60)
            station.listeners.remove(seen)
    finally:
        station.stop()
        await task
    return rss


def memory(work: Path, clamd_socket: Path, count: int) -> None:
    """Print RSS at 0, 100 and *count* sessions."""
    rss = asyncio.run(_sessions(work, clamd_socket, count))
    print(f"memory over {count} sessions (folder stick, 5 files):")
    for n, kib in sorted(rss.items()):
        print(f"  RSS after {n:>5} sessions: {kib / 1024:.1f} MiB")
