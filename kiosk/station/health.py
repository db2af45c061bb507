"""The station's health: the self-test through the whole scan path, and the problems it finds.

The self-test writes the EICAR test string into a private temporary folder and scans it exactly as a
stick is scanned (pre-flight, walk, clamd, verdict). Only `infected` is a pass. The problems are
codes (screens and the server translate them): `selftest_pending`, `engine_down`, `canary_missed`,
`signatures_old`, `selftest_failed`, `outbox_full`, and `not_configured` (a station whose
configuration does not load, kiosk.station.unconfigured). Until a self-test has passed, the
station is not ok: it starts with `selftest_pending` (fail closed).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from kiosk.models import EngineInfo, Reason, Report, TreeVerdict, iso, utcnow
from kiosk.protocol import EventType, event

SELFTEST_PENDING = "selftest_pending"
ENGINE_DOWN = "engine_down"
CANARY_MISSED = "canary_missed"
SIGNATURES_OLD = "signatures_old"
SELFTEST_FAILED = "selftest_failed"
OUTBOX_FULL = "outbox_full"
NOT_CONFIGURED = "not_configured"  # only from kiosk.station.unconfigured: no station runs

# Reasons of a failed pre-flight that are health problems of their own.
_PROBLEM_OF_REASON = {
    Reason.ENGINE_DOWN: ENGINE_DOWN,
    Reason.PREFLIGHT_FAILED: ENGINE_DOWN,
    Reason.ENGINE_LOST: ENGINE_DOWN,
    Reason.CANARY_MISSED: CANARY_MISSED,
    Reason.SIGNATURES_OLD: SIGNATURES_OLD,
}


class ScanEngine(Protocol):
    """What the station needs of `kiosk.scan.scanner.Scanner`."""

    def scan(
        self,
        root: str | bytes | os.PathLike[str],
        *,
        report_id: str | None = None,
        on_progress: Callable[[Any], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Report:
        """Scan a tree and return its report (blocking)."""
        ...


@dataclass(frozen=True)
class Health:
    """What the station knows of its own state."""

    # A station that never tested itself vouches for nothing: the first self-test clears this.
    problems: frozenset[str] = frozenset({SELFTEST_PENDING})
    engine: EngineInfo | None = None
    selftest_at: datetime | None = None
    selftest_ok: bool | None = None  # None: no self-test has run yet
    outbox_backlog: int = 0
    server_link: str = "off"
    detail: str | None = field(default=None, compare=False)

    @property
    def ok(self) -> bool:
        """True when the station can protect: its last self-test passed and no problem since."""
        return not self.problems and self.selftest_ok is True

    def with_problem(self, code: str, present: bool) -> Health:
        """Return a copy with *code* added or removed."""
        problems = self.problems | {code} if present else self.problems - {code}
        return replace(self, problems=frozenset(problems))

    def to_event(self) -> bytes:
        """Return the `health` line of the event protocol."""
        return event(EventType.HEALTH, **self.data())

    def data(self) -> dict[str, Any]:
        """Return the `health` event's data (also the health file's, for the shipper)."""
        engine = self.engine
        return dict(
            ok=self.ok,
            problems=sorted(self.problems),
            engine_version=engine.version if engine else None,
            signatures_version=engine.signatures_version if engine else None,
            signatures_date=iso(engine.signatures_date) if engine else None,
            selftest_at=iso(self.selftest_at),
            selftest_ok=self.selftest_ok,
            server_link=self.server_link,
            outbox_backlog=self.outbox_backlog,
        )


def write_health_file(path: Path, health: Health, software_version: str) -> None:
    """Write the health file the shipper's heartbeats read (atomically: temp, fsync, rename)."""
    # Unknown (null: the reader drops it) until a self-test has said anything of the engine.
    engine_ok = None
    if health.selftest_ok is not None:
        engine_ok = not (health.problems & {ENGINE_DOWN, CANARY_MISSED, SIGNATURES_OLD})
    data = {
        "v": 1,
        "measured_at": iso(utcnow()),
        **health.data(),
        "engine_ok": engine_ok,
        "software_version": software_version,
    }
    data.pop("server_link", None)  # the shipper knows the link better than the station
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".health-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def selftest(engine: ScanEngine, previous: Health) -> Health:
    """Scan a folder holding EICAR through the real path; return the new health (blocking)."""
    from kiosk.scan.engine import eicar  # the scanning core's own canary

    with tempfile.TemporaryDirectory(prefix="kiosk-selftest-") as tmp:
        (Path(tmp) / "canary.txt").write_bytes(eicar())
        try:
            report = engine.scan(Path(tmp))
        except Exception as exc:  # the self-test is an error boundary: any failure is a problem
            return _judged(previous, None, ok=False, problem=SELFTEST_FAILED, detail=repr(exc))
    if report.verdict is TreeVerdict.INFECTED:
        return _judged(previous, report.engine, ok=True, problem=None, detail=None)
    problem = _PROBLEM_OF_REASON.get(report.reason or Reason.SCAN_ERRORS, SELFTEST_FAILED)
    return _judged(
        previous, report.engine, ok=False, problem=problem, detail=report.detail or report.reason
    )


def _judged(
    previous: Health,
    engine: EngineInfo | None,
    *,
    ok: bool,
    problem: str | None,
    detail: str | None,
) -> Health:
    keep = previous.problems & {OUTBOX_FULL}
    problems = set(keep)
    if problem:
        problems |= {problem, SELFTEST_FAILED}
    return replace(
        previous,
        problems=frozenset(problems),
        engine=engine or previous.engine,
        selftest_at=utcnow(),
        selftest_ok=ok,
        detail=detail,
    )
