"""A station's health over time: kept when it changes, when the station comes back, and hourly."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from kiosk.server.tables import HealthSample, Station

KEEP = 500  # samples kept per station (changes are rare: at least 20 days of hourly samples)
SAMPLE_EVERY = timedelta(hours=1)
_KEY = ("engine_ok", "signatures_version", "selftest_ok", "software_version", "problems")

# Built once: this runs on every heartbeat.
_PREVIOUS = select(
    Station.heartbeat_at, *(getattr(Station, k) for k in _KEY), Station.backlog
).where(Station.id == bindparam("sid"))
_LAST = (
    select(HealthSample.at)
    .where(HealthSample.station_id == bindparam("sid"))
    .order_by(HealthSample.pk.desc())
    .limit(1)
)
_INSERT = insert(HealthSample)
_OLDEST_KEPT = (
    select(HealthSample.pk)
    .where(HealthSample.station_id == bindparam("sid"))
    .order_by(HealthSample.pk.desc())
    .offset(KEEP - 1)
    .limit(1)
).scalar_subquery()
_TRIM = delete(HealthSample).where(
    HealthSample.station_id == bindparam("sid"), HealthSample.pk < _OLDEST_KEPT
)


def _key(row: Any) -> tuple[Any, ...]:
    get = row.get if isinstance(row, dict) else row._mapping.get
    return (*(get(k) for k in _KEY), bool(get("backlog")))


def note(
    connection: Connection,
    station_id: str,
    values: dict[str, Any],
    now: datetime,
    silent_after: float,
) -> None:
    """Keep a sample of the health about to be stored, when it says something new."""
    previous = connection.execute(_PREVIOUS, {"sid": station_id}).first()
    last = connection.execute(_LAST, {"sid": station_id}).scalar()
    silence = None
    if previous is not None and previous.heartbeat_at is not None:
        gap = (now - previous.heartbeat_at).total_seconds()
        silence = int(gap) if gap > silent_after else None
    changed = previous is None or previous.heartbeat_at is None or _key(previous) != _key(values)
    if not (changed or silence or last is None or now - last >= SAMPLE_EVERY):
        return
    connection.execute(
        _INSERT,
        {
            "station_id": station_id,
            "at": now,
            "silence": silence,
            "backlog": values.get("backlog"),
            "signatures_date": values.get("signatures_date"),
            **{k: values.get(k) for k in _KEY},
        },
    )
    connection.execute(_TRIM, {"sid": station_id})


def recent(session: Session, station_id: str, limit: int = 48) -> list[HealthSample]:
    """The newest samples of a station, newest first."""
    return list(
        session.scalars(
            select(HealthSample)
            .where(HealthSample.station_id == station_id)
            .order_by(HealthSample.pk.desc())
            .limit(limit)
        )
    )


def purge(session: Session, before: datetime) -> int:
    """Delete samples older than the retention cutoff."""
    result = session.execute(delete(HealthSample).where(HealthSample.at < before))
    return int(cast(CursorResult[Any], result).rowcount or 0)
