"""A station's state as IT sees it: in service, silent, unprotected, or not set up yet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kiosk.config import ServerConfig
from kiosk.server.tables import Station

OK = "ok"
SILENT = "silent"
UNPROTECTED = "unprotected"
NEVER = "never"
REVOKED = "revoked"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class StationStatus:
    """One station, its worst state, and every problem found (machine codes)."""

    station: Station
    state: str
    problems: tuple[str, ...]
    signatures_age: timedelta | None
    silent_for: timedelta | None

    @property
    def flagged(self) -> bool:
        """Tell whether IT should look at this station."""
        return self.state in (SILENT, UNPROTECTED, NEVER, UNKNOWN)


def station_status(station: Station, config: ServerConfig, now: datetime) -> StationStatus:
    """Judge a station from its last heartbeat."""
    problems: list[str] = []
    age = now - station.signatures_date if station.signatures_date else None
    silent_for = now - station.last_seen_at if station.last_seen_at else None
    if station.revoked_at is not None:
        return StationStatus(station, REVOKED, (), age, silent_for)
    if station.last_seen_at is None:
        return StationStatus(station, NEVER, ("never_seen",), age, None)
    if silent_for is not None and silent_for.total_seconds() > config.station_silent_after:
        problems.append("silent")
    if station.heartbeat_at is None or station.health_at is None:
        problems.append("health_unknown")
    if station.engine_ok is False:
        problems.append("engine_down")
    if station.selftest_ok is False:
        problems.append("selftest_failed")
    if age is not None and age > timedelta(days=config.signatures_max_age_days):
        problems.append("signatures_old")
    problems.extend(p for p in station.problems.split(",") if p and p not in problems)
    if "silent" in problems:
        state = SILENT
    elif any(p not in ("health_unknown",) for p in problems):
        state = UNPROTECTED
    elif problems:
        state = UNKNOWN
    else:
        state = OK
    return StationStatus(station, state, tuple(problems), age, silent_for)
