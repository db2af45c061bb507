"""Station latency on real loop devices: stick appearance -> first progress event, and last file
scanned -> report committed to the outbox. Medians over many runs, each on a fresh loop device."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
from pathlib import Path

from kiosk.config import Config
from kiosk.protocol import State
from kiosk.station.session import Session
from kiosk.station.source import ManualSource, block_volume
from kiosk.station.station import Station


def _sh(*args: str) -> str:
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def _image(work: Path) -> Path:
    tree = work / "tree"
    for i in range(50):
        folder = tree / f"dossier {i % 5}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"leçon {i}.txt").write_text(f"contenu {i}\n" * (20 * i + 1))
    image = work / "stick.img"
    with open(image, "wb") as fh:
        fh.truncate(16 << 20)
    _sh("mkfs.ext4", "-q", "-F", "-d", str(tree), str(image))
    return image


def config_for(work: Path, clamd_socket: Path) -> Config:
    """A station config under *work* (no settle delay: the figures are the station's own)."""
    config = Config().with_overrides("clamd", socket=str(clamd_socket))
    return config.with_overrides(
        "station",
        data_dir=str(work / "data"),
        mount_dir=str(work / "mnt"),
        event_socket=str(work / "ev.sock"),
        settle_time=0.0,
    )


async def _runs(work: Path, clamd_socket: Path, runs: int) -> list[tuple[float, float]]:
    image = _image(work)
    source = ManualSource()
    station = Station(config_for(work, clamd_socket), source)
    task = asyncio.create_task(station.run())
    await station.ready.wait()
    figures = []
    try:
        for _ in range(runs):
            node = _sh("losetup", "--find", "--show", str(image)).strip()
            try:
                done = asyncio.Event()
                box: list[Session] = []

                def seen(
                    session: Session, done: asyncio.Event = done, box: list[Session] = box
                ) -> None:
                    if session.state is State.VERDICT:
                        box.append(session)
                        done.set()

                station.listeners.append(seen)
                volume = source.plug(block_volume(node))
                await asyncio.wait_for(done.wait(), 120)
                station.listeners.remove(seen)
                session = box[0]
                assert session.report is not None and session.report.files_total == 50
                assert session.first_progress_at and session.last_file_at and session.committed_at
                figures.append(
                    (
                        session.first_progress_at - session.detected_at,
                        session.committed_at - session.last_file_at,
                    )
                )
                source.unplug(volume)
                await asyncio.wait_for(session.removed.wait(), 30)
                while session.state is not State.ENDED:
                    await asyncio.sleep(0.01)
            finally:
                _sh("losetup", "--detach", node)
    finally:
        station.stop()
        await task
    return figures


def latency(work: Path, clamd_socket: Path, runs: int) -> None:
    """Print the medians (and spread) of the two latencies over *runs* loop-device sessions."""
    work.mkdir(parents=True)
    figures = asyncio.run(_runs(work, clamd_socket, runs))
    first = [f[0] * 1000 for f in figures]
    commit = [f[1] * 1000 for f in figures]
    print(f"latency over {len(figures)} loop-device sessions (ext4, 50 files):")
    print(
        f"  appearance -> first progress: median {statistics.median(first):.1f} ms "
        f"(min {min(first):.1f}, max {max(first):.1f})"
    )
    print(
        f"  last file -> report committed: median {statistics.median(commit):.1f} ms "
        f"(min {min(commit):.1f}, max {max(commit):.1f})"
    )
