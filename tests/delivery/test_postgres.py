"""Several server processes on one PostgreSQL (the load-balanced setup): still exactly once."""

from __future__ import annotations

import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.delivery.conftest import Central, prepare_database, sample
from tests.server.support import Postgres, Uvicorn, free_port, write_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_two_servers_on_one_postgresql_store_each_report_once(
    postgres: Postgres, tmp_path: Path
) -> None:
    url = postgres.create_database()
    tokens = prepare_database(url, "kiosk-1")
    config = write_config(tmp_path / "s.toml", url)
    servers = [
        Uvicorn(config, free_port(), tmp_path / f"u{i}.log", env={}, workers=2) for i in range(2)
    ]
    for server in servers:
        server.start()
    reports = sample(60, findings=20)
    headers = {"Authorization": f"Bearer {tokens['kiosk-1']}"}
    # Every report goes to both servers, three times each, all at once, in a random order.
    jobs = [(s.url, r) for r in reports for s in servers for _ in range(3)]
    random.Random(28).shuffle(jobs)

    def send(job: tuple[str, object]) -> int:
        base, report = job
        with httpx.Client(base_url=base, timeout=60) as client:
            payload = json.dumps(report.to_dict())  # type: ignore[attr-defined]
            return client.post("/api/v1/reports", content=payload, headers=headers).status_code

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            codes = list(pool.map(send, jobs))
    finally:
        for server in servers:
            server.stop()
    assert codes.count(201) == len(reports)
    assert codes.count(200) == len(jobs) - len(reports)
    central = Central("", url, "", "kiosk-1", servers[0])
    counts = central.counts()
    assert {r.report_id: (1, len(r.findings)) for r in reports} == counts
