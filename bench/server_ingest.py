"""Ingest: reports per second from many concurrent stations, into a real uvicorn, SQLite and PG.

Every station has its own token; bodies are prepared beforehand so the client spends its CPU on
HTTP only (client and server share this machine's cores: the figure is a floor, not a ceiling).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from kiosk.models import FileVerdict, Finding, TreeVerdict
from kiosk.server import security
from kiosk.server.db import Database
from kiosk.server.migrate import upgrade
from kiosk.server.tables import Station
from tests.server.support import Uvicorn, free_port, make_report, start_postgres, write_config


def _stations(url: str, count: int) -> dict[str, str]:
    from kiosk.models import utcnow

    db = Database(url)
    upgrade(db)
    tokens = {}
    with db.write() as session:
        for i in range(count):
            token = security.new_token()
            session.add(
                Station(
                    id=f"st-{i}", name=f"Station {i}", school="", location="", problems="",
                    created_at=utcnow(), token_hash=security.token_hash(token),
                )
            )  # fmt: skip
            tokens[f"st-{i}"] = token
    db.dispose()
    return tokens


def _bodies(tokens: dict[str, str], per_station: int) -> list[list[tuple[str, bytes]]]:
    queues = []
    for station, token in tokens.items():
        queue = []
        for i in range(per_station):
            infected = i % 10 == 0
            findings = (
                tuple(
                    Finding(path=f"d/f{k}.exe", verdict=FileVerdict.INFECTED, threat="Eicar")
                    for k in range(3)
                )
                if infected
                else ()
            )
            verdict = TreeVerdict.INFECTED if infected else TreeVerdict.CLEAN
            report = make_report(station, verdict=verdict, findings=findings)
            queue.append((token, json.dumps(report.to_dict()).encode()))
        queues.append(queue)
    return queues


async def _station(port: int, queue: list[tuple[str, bytes]], latencies: list[float]) -> None:
    # A bare HTTP/1.1 keep-alive client: httpx costs more CPU per request than the server
    # does, and client and server share this machine's two cores.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for token, body in queue:
            head = (
                f"POST /api/v1/reports HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            t0 = time.perf_counter()
            writer.write(head + body)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            answer = await reader.readexactly(length)
            latencies.append((time.perf_counter() - t0) * 1000)
            if b" 201 " not in status_line:
                raise RuntimeError(f"{status_line!r}: {answer[:200]!r}")
    finally:
        writer.close()


async def _run(port: int, queues: list[list[tuple[str, bytes]]]) -> tuple[float, list[float]]:
    latencies: list[float] = []
    started = time.perf_counter()
    # One connection per station, one report after another, as the shipper does.
    await asyncio.gather(*(_station(port, q, latencies) for q in queues))
    return time.perf_counter() - started, latencies


def _cpu_seconds(root: int) -> float:
    """CPU time used so far by a process and its descendants (uvicorn's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += used.get(pid, 0.0)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return total


def measure(url: str, label: str, stations: int, per_station: int, workers: int) -> None:
    """Create stations, serve, send, print."""
    tokens = _stations(url, stations)
    queues = _bodies(tokens, per_station)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        config = write_config(Path(tmp) / "s.toml", url, retention_days=0)
        server = Uvicorn(config, free_port(), Path(tmp) / "log", env={}, workers=workers)
        server.start()
        assert server.process is not None
        try:
            cpu = _cpu_seconds(server.process.pid)
            seconds, latencies = asyncio.run(_run(server.port, queues))
            cpu = _cpu_seconds(server.process.pid) - cpu
        finally:
            server.stop()
    total = stations * per_station
    latencies.sort()
    print(
        f"  {label:24} {total:6} reports from {stations} stations in {seconds:5.1f} s: "
        f"{total / seconds:6.0f} reports/s   (p50 {statistics.median(latencies):.0f} ms, "
        f"p95 {latencies[int(0.95 * len(latencies)) - 1]:.0f} ms per POST; "
        f"server CPU {1000 * cpu / total:.2f} ms per report)",
        flush=True,
    )


def main(argv: list[str]) -> int:
    """Run the ingest benchmark on SQLite, then PostgreSQL."""
    parser = argparse.ArgumentParser(prog="python -m bench server ingest")
    parser.add_argument("--stations", type=int, default=100)
    parser.add_argument("--per-station", type=int, default=40)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args(argv)
    if args.backend in ("sqlite", "both"):
        for workers in (1, 2):
            with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as tmp:
                measure(
                    f"sqlite:///{tmp}/central.db", f"sqlite, {workers} worker(s)",
                    args.stations, args.per_station, workers,
                )  # fmt: skip
    if args.backend in ("postgres", "both"):
        pg = start_postgres()
        try:
            for workers in (1, 2):
                measure(
                    pg.create_database(), f"postgres, {workers} worker(s)",
                    args.stations, args.per_station, workers,
                )  # fmt: skip
        finally:
            pg.stop()
    return 0
