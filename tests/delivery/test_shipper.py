"""The shipper's own logic against the real server: receipts, refusals, heartbeats, health file."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from kiosk.delivery.client import Result, ServerClient, check_url
from kiosk.delivery.health import read_health
from kiosk.delivery.shipper import Shipper
from kiosk.errors import DeliveryError
from kiosk.models import utcnow
from kiosk.station.outbox import Outbox
from tests.delivery.conftest import Central, sample, wait_until
from tests.server.support import make_report


def run_shipper(shipper: Shipper) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=shipper.run, args=(stop,), daemon=True)
    thread.start()
    return stop, thread


def test_a_2xx_without_a_receipt_deletes_nothing() -> None:
    report = make_report("kiosk-1")
    answers = {
        "portal": httpx.Response(200, html="<html>Welcome to the hotel wifi</html>"),
        "other": httpx.Response(200, json={"stored": True, "report_id": "someone-else"}),
        "ok": httpx.Response(200, json={"stored": True, "report_id": report.report_id}),
        "created": httpx.Response(201, json={"stored": True, "report_id": report.report_id}),
        "500": httpx.Response(500, json={"error": "internal"}),
        "429": httpx.Response(429),
        "401": httpx.Response(401),
        "403": httpx.Response(403),
        "413": httpx.Response(413),
        "redirect": httpx.Response(302, headers={"location": "https://elsewhere"}),
    }
    expected = {
        "portal": Result.RETRY, "other": Result.RETRY, "ok": Result.STORED,
        "created": Result.STORED, "500": Result.RETRY, "429": Result.RETRY, "401": Result.AUTH,
        "403": Result.REJECTED, "413": Result.REJECTED, "redirect": Result.RETRY,
    }  # fmt: skip
    for name, answer in answers.items():
        transport = httpx.MockTransport(lambda _request, a=answer: a)
        client = ServerClient("http://127.0.0.1:1", "tok", transport=transport)
        assert client.send_report(report) is expected[name], name
        client.close()


def test_only_https_leaves_the_machine() -> None:
    assert check_url("https://logs.ville.fr/") == "https://logs.ville.fr"
    assert check_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000"
    with pytest.raises(DeliveryError):
        check_url("http://logs.ville.fr")


def test_health_file_is_read_defensively(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    now = utcnow()
    assert read_health(path, 300) is None  # missing
    path.write_bytes(b"\xff\xfe garbage")
    assert read_health(path, 300) is None
    path.write_text("[" * 10_000)
    assert read_health(path, 300) is None
    path.write_text(json.dumps({"problems": ["x" * 1000]}) + " " * 70_000)
    assert read_health(path, 300) is None  # oversized
    path.write_text(
        json.dumps(
            {
                "v": 1, "measured_at": now.isoformat(), "ok": True, "problems": [],
                "engine_ok": "yes", "engine_version": "ClamAV 1.0.7" * 50,
                "signatures_version": True, "signatures_date": "not a date",
                "selftest_ok": True, "selftest_at": now.isoformat(), "unknown": {"a": 1},
            }
        )
    )  # fmt: skip
    health = read_health(path, 300, now=now)
    assert health is not None
    assert "engine_ok" not in health and "signatures_version" not in health  # wrong types dropped
    assert "signatures_date" not in health and "unknown" not in health
    assert len(health["engine_version"]) == 100 and health["selftest_ok"] is True
    assert health["problems"] == []
    stale = read_health(path, 300, now=now + timedelta(minutes=10))
    assert stale is not None and stale["problems"] == ["health_stale"]


@pytest.mark.slow
def test_refused_reports_stay_in_the_outbox_and_do_not_block_the_others(
    central: Central, outbox: Outbox
) -> None:
    central.server.start()
    good = sample(5)
    foreign = make_report("kiosk-2")  # not this station's: the server says 403
    for report in (good[0], foreign, *good[1:]):
        outbox.commit(report)
    client = ServerClient(central.url, central.token)
    shipper = Shipper(outbox, client, "kiosk-1", poll_interval=0.05, backoff_max=60)
    stop, thread = run_shipper(shipper)
    wait_until(lambda: outbox.backlog() == 1, "the five good reports delivered")
    stop.set()
    thread.join()
    client.close()
    assert [r.report_id for r in outbox.pending()] == [foreign.report_id]
    assert set(central.counts()) == {r.report_id for r in good}


@pytest.mark.slow
def test_a_revoked_token_keeps_every_report(central: Central, outbox: Outbox) -> None:
    central.server.start()
    for report in sample(3):
        outbox.commit(report)
    client = ServerClient(central.url, "sbk_revoked-or-wrong")
    shipper = Shipper(outbox, client, "kiosk-1", poll_interval=0.05, backoff_max=0.2)
    outcomes: list[Result] = []
    real = client.send_report
    client.send_report = lambda r: outcomes.append(real(r)) or outcomes[-1]  # type: ignore[method-assign]
    stop, thread = run_shipper(shipper)
    wait_until(lambda: len(outcomes) >= 3, "three refused attempts")
    stop.set()
    thread.join()
    client.close()
    assert set(outcomes) == {Result.AUTH}
    assert outbox.backlog() == 3 and central.counts() == {}


@pytest.mark.slow
def test_heartbeats_carry_the_station_health(
    central: Central, outbox: Outbox, tmp_path: Path
) -> None:
    central.server.start()
    outbox.commit(sample(1)[0])
    now = utcnow()
    health_file = tmp_path / "health.json"
    health_file.write_text(
        json.dumps(
            {
                "measured_at": now.isoformat(), "ok": False, "problems": ["signatures_old"],
                "engine_ok": True, "engine_version": "ClamAV 1.0.7", "signatures_version": 27792,
                "signatures_date": (now - timedelta(days=9)).isoformat(),
                "selftest_ok": True, "selftest_at": now.isoformat(), "software_version": "2.4.1",
            }
        )
    )  # fmt: skip
    client = ServerClient(central.url, central.token)
    shipper = Shipper(
        outbox, client, "kiosk-1", health=lambda: read_health(health_file, 300),
        software_version="2.4.1", heartbeat_interval=0.2, poll_interval=0.05,
    )  # fmt: skip
    stop, thread = run_shipper(shipper)
    wait_until(lambda: central.station().backlog == 0, "a heartbeat after the delivery")
    stop.set()
    thread.join()
    client.close()
    station = central.station()
    assert station.engine_version == "ClamAV 1.0.7" and station.signatures_version == 27792
    assert station.problems == "signatures_old" and station.selftest_ok is True
    assert station.software_version == "2.4.1"
    assert station.heartbeat_at is not None


def test_the_shipper_waits_for_an_outbox_it_cannot_open_yet(tmp_path: Path) -> None:
    from kiosk.delivery.command import open_outbox

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # the outbox's directory is a file: opening fails
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    assert open_outbox(blocker / "outbox.db", stop, every=0.05) is None
    stop.clear()
    box = open_outbox(tmp_path / "data" / "outbox.db", stop, every=0.05)
    assert box is not None and box.backlog() == 0
    box.close()


@pytest.fixture
def keep_signals() -> Iterator[None]:
    """`kiosk ship` run in-process installs its SIGTERM and SIGINT handlers: put ours back."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_ship_without_a_server_keeps_reports_local(tmp_path: Path, keep_signals: None) -> None:
    from kiosk.cli import main

    config = tmp_path / "kiosk.toml"
    config.write_text('[shipper]\nserver_url = ""\n')
    assert main(["ship", "--config", str(config)]) == 0


def test_ship_waits_for_a_configuration_that_loads(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    keep_signals: None,
) -> None:
    """A broken file is waited for (one log line), not exited on: systemd would loop on it."""
    from kiosk.cli import main
    from kiosk.delivery import command

    monkeypatch.setattr(command, "CONFIG_POLL", 0.05)
    config = tmp_path / "kiosk.toml"
    config.write_text("[shipper]\nserver_url = 1\n")  # a type error: does not load
    fixed = threading.Timer(0.5, lambda: config.write_text('[shipper]\nserver_url = ""\n'))
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="kiosk.ship"):
        fixed.start()
        assert main(["ship", "--config", str(config)]) == 0
    assert time.monotonic() - started >= 0.5  # it waited for the fix
    errors = [r for r in caplog.records if "configuration error" in r.getMessage()]
    assert len(errors) == 1, errors  # ten looks at the same broken file, one line
