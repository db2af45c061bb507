"""Requests the server refused: per station a count and the last few, never the body itself."""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from kiosk.models import utcnow
from kiosk.server.db import Database, upsert
from kiosk.server.security import station_for_token
from kiosk.server.tables import Refusal, RefusalCount

log = logging.getLogger(__name__)

KEEP = 20  # refusals kept per station (and for requests without a valid token)
ANONYMOUS = ""  # the count's key for requests that named no valid station
# Paths whose refusals IT must see, and what they carry.
KINDS = {"/api/v1/reports": "report", "/api/v1/heartbeats": "heartbeat"}
# Requests without a valid token are written at most once a second per process (the others are
# added to the next one's count): anybody can send them, and each would cost a write.
ANONYMOUS_EVERY = 1.0

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,40}")
_TYPE = re.compile(r"[a-z_]{1,40}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Refused:
    """Why one request was refused, in our own words (safe to show and to store)."""

    kind: str
    status: int
    reason: str
    detail: str | None = None
    report_id: str | None = None


def reason_of(status: int, detail: Any, has_token: bool) -> tuple[str, str | None]:
    """Turn an HTTP error into a reason code and a short detail naming only schema fields."""
    if isinstance(detail, dict):
        error = str(detail.get("error", ""))
        if error == "invalid_json":
            return "invalid_json", None
        if error == "invalid":
            return "invalid", _first_problem(detail.get("details") or [])
    return {
        401: "unknown_token" if has_token else "no_token",
        403: "wrong_station",
        409: "id_conflict",
        413: "too_large",
        422: "invalid",
    }.get(status, "bad_request"), None


def _first_problem(details: list[Any]) -> str | None:
    # Field names come from our schema, but a key of the report's free "extra" map comes from
    # the station: anything that does not look like one of our identifiers is not repeated.
    if not details or not isinstance(details[0], dict):
        return None
    first = details[0]
    parts = []
    for part in list(first.get("loc") or [])[:8]:
        if isinstance(part, int) or (isinstance(part, str) and _NAME.fullmatch(part)):
            parts.append(str(part))
        else:
            parts.append("?")
    kind = str(first.get("type") or "")
    where = ".".join(parts) or "body"
    return f"{where}: {kind if _TYPE.fullmatch(kind) else '?'}"[:200]


def report_id_of(value: Any) -> str | None:
    """Keep a report id only when it is a well-formed UUID (it helps match the kiosk's log)."""
    return value if isinstance(value, str) and _UUID.fullmatch(value) else None


class RefusalLog:
    """Writes refusals; one per server process (it holds the anonymous rate limit)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        # Not 0.0: the monotonic clock starts near boot, and a server up within ANONYMOUS_EVERY
        # of it would have dropped its first anonymous refusal (a CI machine booted 40 min before
        # the tests, with the test's hour-long interval, showed it).
        self._anonymous_at = float("-inf")
        self._anonymous_pending = 0

    def record(self, token: str | None, refused: Refused) -> None:
        """Store one refusal (blocking: call it off the event loop); never raises."""
        try:
            station = self._station(token)
            count = 1
            if station is None:
                with self._lock:
                    now = time.monotonic()
                    if now - self._anonymous_at < ANONYMOUS_EVERY:
                        self._anonymous_pending += 1
                        return
                    count += self._anonymous_pending
                    self._anonymous_at, self._anonymous_pending = now, 0
            with self.db.write() as session:
                store(session, station, refused, count, utcnow())
        except Exception:  # a refusal that cannot be written must not turn into a 500
            log.exception("could not record a refused %s", refused.kind)

    def _station(self, token: str | None) -> str | None:
        if not token:
            return None
        with self.db.engine.connect() as connection:
            return station_for_token(connection, token)


def store(
    session: Session, station: str | None, refused: Refused, count: int, now: datetime
) -> None:
    """Add a refusal, count it, and keep only the newest `KEEP` of its station."""
    session.add(
        Refusal(
            station_id=station,
            at=now,
            kind=refused.kind,
            status=refused.status,
            reason=refused.reason,
            detail=refused.detail,
            report_id=refused.report_id,
        )
    )
    key = station or ANONYMOUS
    stmt = upsert(session, RefusalCount).values(key=key, total=count, first_at=now, last_at=now)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["key"],
            set_={"total": RefusalCount.total + count, "last_at": now},
        )
    )
    session.flush()
    same = Refusal.station_id.is_(None) if station is None else Refusal.station_id == station
    oldest_kept = (
        select(Refusal.pk).where(same).order_by(Refusal.pk.desc()).offset(KEEP - 1).limit(1)
    ).scalar_subquery()
    session.execute(delete(Refusal).where(same, Refusal.pk < oldest_kept))


@dataclass(frozen=True)
class RefusalSummary:
    """What IT sees of one station's refusals: how many in all, since when, and the last ones."""

    total: int
    first_at: datetime
    last_at: datetime


def totals(session: Session) -> dict[str, RefusalSummary]:
    """Every count, by station id (`ANONYMOUS` for requests without a valid token)."""
    rows = session.scalars(select(RefusalCount)).all()
    return {r.key: RefusalSummary(r.total, r.first_at, r.last_at) for r in rows}


def summary(session: Session, key: str) -> RefusalSummary | None:
    """The count of one station (`ANONYMOUS`: of requests without a valid token)."""
    row = session.get(RefusalCount, key)
    return None if row is None else RefusalSummary(row.total, row.first_at, row.last_at)


def latest(session: Session, station: str | None, limit: int = KEEP) -> list[Refusal]:
    """The newest refusals of a station (None: of requests without a valid token)."""
    same = Refusal.station_id.is_(None) if station is None else Refusal.station_id == station
    return list(
        session.scalars(select(Refusal).where(same).order_by(Refusal.pk.desc()).limit(limit))
    )


def purge(session: Session, before: datetime) -> int:
    """Delete refusals (and counts not moved since) older than the retention cutoff."""
    gone = cast(
        CursorResult[Any], session.execute(delete(Refusal).where(Refusal.at < before))
    ).rowcount
    session.execute(delete(RefusalCount).where(RefusalCount.last_at < before))
    return int(gone or 0)
