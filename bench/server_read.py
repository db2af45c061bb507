"""Reading at scale: p50/p95 of the scans list (with filters), the threats page and the dashboard.

Fills the database with bulk SQL (server_data.fill), then times real HTTP requests to a real
uvicorn, one at a time, logged in as an IT user. Figures are printed, not asserted.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.server_data import fill
from kiosk.models import utcnow
from kiosk.server import security
from kiosk.server.db import Database
from kiosk.server.migrate import upgrade
from kiosk.server.tables import User
from tests.server.support import Uvicorn, free_port, start_postgres, write_config

PASSWORD = "bench password 1"


def _login(client: httpx.Client) -> None:
    page = client.get("/login")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    answer = client.post(
        "/login", data={"username": "bench", "password": PASSWORD, "csrf": match.group(1)}
    )
    assert answer.status_code == 303, answer.text


def _pages(client: httpx.Client) -> dict[str, str]:
    first = client.get("/scans?size=50").text
    after = re.search(r'rel="next" href="/scans\?[^"]*after=([0-9_]+)', first)
    deep = f"/scans?size=50&after={after.group(1)}" if after else "/scans?size=50"
    today = utcnow().date()
    return {
        "scans, no filter": "/scans",
        "scans, next page": deep,
        "scans, verdict=infected": "/scans?verdict=infected",
        "scans, one station": "/scans?station=st-7",
        "scans, one school + error": "/scans?school=%C3%89cole+3&verdict=error",
        "scans, a month": f"/scans?from={today.replace(day=1)}&to={today}",
        "scans, threat": "/scans?threat=Win.Trojan.Bench-42",
        "scans, serial": "/scans?serial=SER000123",
        "scans, scan code": "/scans?code=B02A-0A2A",
        "scans, to handle": "/scans?handled=todo",
        "one station's page": "/stations/st-7",
        "threats, 30 days": "/threats",
        "threats, 365 days": "/threats?days=365",
        "dashboard": "/",
    }


def measure(
    url: str, label: str, count: int, repeat: int, workers: int, only: str | None = None
) -> None:
    """Fill, serve, and time each page."""
    db = Database(url)
    upgrade(db)
    seconds = fill(db, count)
    with db.write() as session:
        session.add(
            User(
                username="bench", password_hash=security.hash_password(PASSWORD),
                full_name="", created_at=utcnow(),
            )
        )  # fmt: skip
    db.dispose()
    print(f"{label}: {count:,} reports generated in {seconds:.0f} s", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-read-") as tmp:
        config = write_config(Path(tmp) / "s.toml", url, retention_days=0)
        server = Uvicorn(config, free_port(), Path(tmp) / "log", env={}, workers=workers)
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=120) as client:
                _login(client)
                for name, path in _pages(client).items():
                    if only and only not in name:
                        continue
                    client.get(path)  # warm the caches once
                    times = []
                    for _ in range(repeat):
                        t0 = time.perf_counter()
                        answer = client.get(path)
                        times.append((time.perf_counter() - t0) * 1000)
                        assert answer.status_code == 200, (path, answer.status_code)
                    times.sort()
                    p95 = times[max(0, round(0.95 * len(times)) - 1)]
                    print(
                        f"  {label:10} {name:28} p50 {statistics.median(times):7.1f} ms"
                        f"   p95 {p95:7.1f} ms",
                        flush=True,
                    )
        finally:
            server.stop()


def main(argv: list[str]) -> int:
    """Run the read benchmark on SQLite and PostgreSQL."""
    parser = argparse.ArgumentParser(prog="python -m bench server read")
    parser.add_argument("--reports", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--pages", help="only the pages whose name contains this")
    args = parser.parse_args(argv)
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as tmp:
            measure(
                f"sqlite:///{tmp}/central.db", "sqlite", args.reports, args.repeat, 1, args.pages
            )
    if args.backend in ("postgres", "both"):
        pg = start_postgres()
        try:
            measure(pg.create_database(), "postgres", args.reports, args.repeat, 1, args.pages)
        finally:
            pg.stop()
    return 0
