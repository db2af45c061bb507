"""Health: the self-test's judgement on real engines, and the health file the shipper reads."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

from kiosk.config import Config
from kiosk.delivery.health import read_health
from kiosk.scan.scanner import Scanner
from kiosk.station.health import (
    CANARY_MISSED,
    ENGINE_DOWN,
    OUTBOX_FULL,
    SELFTEST_FAILED,
    SELFTEST_PENDING,
    Health,
    selftest,
    write_health_file,
)
from tests.station.conftest import live_station, make_config
from tests.support.clamd import Clamd, start_clamd


def scanner(socket: Path | str) -> Scanner:
    return Scanner(Config().with_overrides("clamd", socket=str(socket), connect_timeout=1.0))


def test_no_selftest_yet_is_not_ok(tmp_path: Path) -> None:
    """Fail closed: a station that never tested itself says so, to the screen and the file."""
    health = Health()
    assert not health.ok and health.problems == {SELFTEST_PENDING}
    assert health.data()["ok"] is False and health.data()["selftest_ok"] is None
    # Even with no problem named, no passed self-test is no ok.
    assert not Health(problems=frozenset()).ok
    path = tmp_path / "health.json"
    write_health_file(path, health, "9.9.9")
    seen = read_health(path, max_age=300)
    assert seen is not None and seen["ok"] is False and seen["problems"] == [SELFTEST_PENDING]
    assert "engine_ok" not in seen  # unknown, not "ok", until a self-test said anything


def test_selftest_passes_on_a_working_engine(clamd: Clamd) -> None:
    health = selftest(scanner(clamd.socket), Health())
    assert health.ok and health.selftest_ok is True and health.problems == set()
    assert health.engine is not None and health.engine.version.startswith("ClamAV")
    assert health.selftest_at is not None


def test_selftest_with_no_engine_is_engine_down(tmp_path: Path) -> None:
    previous = Health().with_problem(OUTBOX_FULL, True)
    health = selftest(scanner(tmp_path / "nothing.sock"), previous)
    assert not health.ok and health.selftest_ok is False
    assert health.problems == {ENGINE_DOWN, SELFTEST_FAILED, OUTBOX_FULL}  # outbox_full is kept


def test_selftest_with_an_engine_blind_to_eicar(tmp_path: Path) -> None:
    # A real clamd whose only signatures do not include EICAR: the canary is missed.
    blind = start_clamd(tmp_path / "blind", signatures={"kiosk-test.ndb": ["Other:0:*:41424344"]})
    try:
        health = selftest(scanner(blind.socket), Health())
    finally:
        blind.stop()
    assert health.problems == {CANARY_MISSED, SELFTEST_FAILED}


def test_health_file_is_what_the_shipper_reads(tmp_path: Path, clamd: Clamd) -> None:
    path = tmp_path / "data" / "health.json"
    health = selftest(scanner(clamd.socket), Health())
    write_health_file(path, health, "9.9.9")
    raw = json.loads(path.read_text())
    assert raw["v"] == 1 and raw["software_version"] == "9.9.9"
    assert (path.stat().st_mode & 0o777) == 0o644
    seen = read_health(path, max_age=300)
    assert seen is not None
    assert seen["ok"] is True and seen["engine_ok"] is True and seen["selftest_ok"] is True
    assert seen["problems"] == []
    assert seen["engine_version"] == health.engine.version  # type: ignore[union-attr]
    write_health_file(path, health.with_problem(ENGINE_DOWN, True), "9.9.9")
    seen = read_health(path, max_age=300)
    assert seen is not None and seen["engine_ok"] is False and seen["problems"] == [ENGINE_DOWN]
    assert [p.name for p in path.parent.iterdir()] == ["health.json"]  # no temp file left


async def test_a_station_is_not_ok_before_its_first_selftest(tmp_path: Path) -> None:
    """With its clamd hung (SIGSTOP: it accepts, never answers), the first self-test cannot pass:
    the screen and the heartbeats' file say "self-test pending", then ok once clamd answers."""
    hung = await asyncio.to_thread(start_clamd, tmp_path / "clamd")
    hung.process.send_signal(signal.SIGSTOP)
    config = make_config(tmp_path, hung.socket)
    try:
        async with live_station(config) as live:
            first = await live.screen.wait_for(lambda m: m.get("type") == "health")
            assert first["ok"] is False and first["problems"] == [SELFTEST_PENDING]
            assert first["selftest_at"] is None
            health_file = Path(config.station.data_dir) / "health.json"
            seen = None
            for _ in range(200):  # written at start, from a thread
                seen = read_health(health_file, max_age=300)
                if seen is not None:
                    break
                await asyncio.sleep(0.05)
            assert seen is not None and seen["ok"] is False
            assert seen["problems"] == [SELFTEST_PENDING] and "engine_ok" not in seen
            hung.process.send_signal(signal.SIGCONT)
            healthy = await live.screen.wait_for(
                lambda m: m.get("type") == "health" and m["selftest_ok"] is not None
            )
            assert healthy["ok"] is True and healthy["problems"] == []
    finally:
        hung.stop()
