"""A station's state as IT sees it: in service, silent, unprotected, or not set up yet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from kiosk.config import ServerConfig
from kiosk.server.refusals import RefusalSummary
from kiosk.server.tables import Station

OK = "ok"
SILENT = "silent"
UNPROTECTED = "unprotected"
NEVER = "never"
REVOKED = "revoked"
UNKNOWN = "unknown"
REFUSED = "refused"
FLAGGED = (SILENT, UNPROTECTED, NEVER, UNKNOWN, REFUSED)
# A refused report keeps its station flagged this long (or until IT takes it in hand).
REFUSED_RECENT = timedelta(days=7)


@dataclass(frozen=True)
class StationStatus:
    """One station, its worst state, and every problem found (machine codes)."""

    station: Station
    state: str
    problems: tuple[str, ...]
    signatures_age: timedelta | None
    silent_for: timedelta | None
    refused: RefusalSummary | None = None
    handled: bool = False  # IT took this very alert in hand

    @property
    def flagged(self) -> bool:
        """Tell whether IT should look at this station."""
        return self.state in FLAGGED

    @property
    def problems_key(self) -> str:
        """The alert's identity: taking it in hand holds while the problems stay these."""
        return ",".join(sorted(self.problems))


def healthy(values: dict[str, object], config: ServerConfig, now: datetime) -> bool:
    """Tell whether a heartbeat's health, as stored, raises no problem by itself."""
    signed = values.get("signatures_date")
    old = isinstance(signed, datetime) and now - signed > timedelta(
        days=config.signatures_max_age_days
    )
    return (
        values.get("health_at") is not None
        and values.get("engine_ok") is not False
        and values.get("selftest_ok") is not False
        and not values.get("problems")
        and not old
    )


def station_status(
    station: Station,
    config: ServerConfig,
    now: datetime,
    refused: RefusalSummary | None = None,
) -> StationStatus:
    """Judge a station from its last heartbeat and the requests of it the server refused."""
    problems: list[str] = []
    age = now - station.signatures_date if station.signatures_date else None
    silent_for = now - station.last_seen_at if station.last_seen_at else None
    if station.revoked_at is not None:
        return StationStatus(station, REVOKED, (), age, silent_for, refused)
    refused_lately = refused is not None and now - refused.last_at < REFUSED_RECENT
    if station.last_seen_at is None:
        never = ("never_seen", "reports_refused") if refused_lately else ("never_seen",)
        return _judged(StationStatus(station, NEVER, never, age, None, refused))
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
    if refused_lately:
        problems.append("reports_refused")
    if "silent" in problems:
        state = SILENT
    elif any(p not in ("health_unknown", "reports_refused") for p in problems):
        state = UNPROTECTED
    elif "health_unknown" in problems:
        state = UNKNOWN
    elif problems:
        state = REFUSED
    else:
        state = OK
    return _judged(StationStatus(station, state, tuple(problems), age, silent_for, refused))


def _judged(status: StationStatus) -> StationStatus:
    """Say whether IT already took this alert in hand (the same problems, nothing refused since)."""
    station = status.station
    if not status.flagged or station.alert_ack_at is None:
        return status
    if station.alert_ack_problems != status.problems_key:
        return status
    if status.refused is not None and status.refused.last_at > station.alert_ack_at:
        return status
    return StationStatus(
        station,
        status.state,
        status.problems,
        status.signatures_age,
        status.silent_for,
        status.refused,
        handled=True,
    )
