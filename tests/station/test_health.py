"""Health: the self-test's judgement on real engines, and the health file the shipper reads."""

from __future__ import annotations

import json
from pathlib import Path

from kiosk.config import Config
from kiosk.delivery.health import read_health
from kiosk.scan.scanner import Scanner
from kiosk.station.health import (
    CANARY_MISSED,
    ENGINE_DOWN,
    OUTBOX_FULL,
    SELFTEST_FAILED,
    Health,
    selftest,
    write_health_file,
)
from tests.support.clamd import Clamd, start_clamd


def scanner(socket: Path | str) -> Scanner:
    return Scanner(Config().with_overrides("clamd", socket=str(socket), connect_timeout=1.0))


def test_selftest_passes_on_a_working_engine(clamd: Clamd) -> None:
    health = selftest(scanner(clamd.socket), Health())
    assert health.ok and health.selftest_ok is True
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
