"""THREATS row 22 and the shipper's own deaths: every report stored exactly once, none lost.

The real server runs under uvicorn on 127.0.0.1 and is killed and restarted; the real shipper
(`kiosk ship`) runs as a subprocess and is SIGKILLed at random instants. The check is always the
same: each report of the outbox is in the server's database once, with all its findings once,
and the outbox is empty.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kiosk.delivery.client import ServerClient
from kiosk.delivery.shipper import Shipper
from kiosk.models import Report
from kiosk.server.app import FAULTS_ENV
from kiosk.station.outbox import Outbox
from tests.delivery.conftest import Central, sample, shipper_config, wait_until
from tests.server.support import PYTHON, ROOT

pytestmark = pytest.mark.slow


def assert_exactly_once(central: Central, reports: list[Report], outbox: Outbox) -> None:
    counts = central.counts()
    assert set(counts) == {r.report_id for r in reports}, "a report is missing or unexpected"
    for report in reports:
        assert counts[report.report_id] == (1, len(report.findings)), report.report_id
    assert outbox.backlog() == 0


def start_shipper(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [PYTHON, "-m", "kiosk", "ship", "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip


def test_server_down_for_a_while_then_back(central: Central, outbox: Outbox) -> None:
    reports = sample(30)
    for report in reports:
        outbox.commit(report)
    client = ServerClient(central.url, central.token, timeout=5)
    attempts: list[object] = []
    real = client.send_report
    client.send_report = lambda r: attempts.append(r) or real(r)  # type: ignore[method-assign]
    shipper = Shipper(outbox, client, "kiosk-1", backoff_max=0.3, poll_interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=shipper.run, args=(stop,), daemon=True)
    thread.start()
    wait_until(lambda: len(attempts) >= 5, "five attempts against a dead server")
    assert outbox.backlog() == 30  # nothing deleted while nobody confirmed
    central.server.start()
    wait_until(lambda: outbox.backlog() == 0, "the outbox drained once the server is back")
    stop.set()
    thread.join()
    client.close()
    assert_exactly_once(central, reports, outbox)


def test_server_killed_mid_post_and_restarted(
    central: Central, outbox: Outbox, tmp_path: Path
) -> None:
    # Big reports (many findings) make each POST long enough for kills to land inside one.
    reports = sample(120, findings=400)
    for report in reports:
        outbox.commit(report)
    central.server.start()
    log = tmp_path / "ship.log"
    shipper = start_shipper(shipper_config(tmp_path, central), log)
    rng = random.Random(22)
    try:
        for _ in range(6):
            if outbox.backlog() == 0:
                break
            time.sleep(rng.uniform(0.05, 0.6))
            central.server.kill()
            time.sleep(rng.uniform(0.0, 0.5))
            central.server.start()
        wait_until(lambda: outbox.backlog() == 0, "the outbox drained")
    finally:
        shipper.send_signal(signal.SIGTERM)
        shipper.wait(30)
    assert shipper.returncode == 0, log.read_text()[-2000:]
    assert_exactly_once(central, reports, outbox)
    assert "server unreachable" in log.read_text()  # the kills did hit deliveries


def test_500_after_commit_is_retried_and_stored_once(central: Central, outbox: Outbox) -> None:
    reports = sample(20)
    for report in reports:
        outbox.commit(report)
    central.server.env = {FAULTS_ENV: "500-after-commit"}
    central.server.start()
    client = ServerClient(central.url, central.token)
    shipper = Shipper(outbox, client, "kiosk-1", backoff_max=0.1, poll_interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=shipper.run, args=(stop,), daemon=True)
    thread.start()
    wait_until(lambda: outbox.backlog() == 0, "the outbox drained")
    stop.set()
    thread.join()
    client.close()
    assert_exactly_once(central, reports, outbox)
    access = central.server.log_path.read_text()
    assert access.count('"POST /api/v1/reports HTTP/1.1" 500') >= 20  # every report met it once
    assert access.count('"POST /api/v1/reports HTTP/1.1" 200') >= 1  # ... and was a duplicate


def test_shipper_sigkilled_at_random_instants(
    central: Central, outbox: Outbox, tmp_path: Path
) -> None:
    reports = sample(300, findings=50)
    for report in reports:
        outbox.commit(report)
    central.server.start()
    config = shipper_config(tmp_path, central)
    log = tmp_path / "ship.log"
    rng = random.Random(int.from_bytes(os.urandom(4)))
    kills = 0
    while outbox.backlog() > 0 and kills < 8:
        before = outbox.backlog()
        shipper = start_shipper(config, log)
        # Kill it while it delivers: once it has made progress, at a random instant after.
        wait_until(
            lambda b=before, p=shipper: outbox.backlog() < b or p.poll() is not None, "progress"
        )
        time.sleep(rng.uniform(0.0, 0.3))
        if outbox.backlog() > 0:
            kills += 1
        shipper.kill()
        shipper.wait(30)
    shipper = start_shipper(config, log)
    try:
        wait_until(lambda: outbox.backlog() == 0, "the outbox drained")
    finally:
        shipper.send_signal(signal.SIGTERM)
        shipper.wait(30)
    assert kills >= 3  # it really was killed mid-drain, several times
    assert_exactly_once(central, reports, outbox)
