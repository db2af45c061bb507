"""Storing what stations send: reports (exactly once per UUID) and heartbeats."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Table, bindparam, case, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from kiosk.config import ServerConfig
from kiosk.models import FileVerdict, scan_code, utcnow
from kiosk.server import history
from kiosk.server.schemas import HeartbeatIn, ReportIn
from kiosk.server.status import healthy
from kiosk.server.tables import Station, StoredFinding, StoredReport

_FLAGGED_FIRST = (FileVerdict.INFECTED, FileVerdict.SUSPICIOUS, FileVerdict.UNVERIFIABLE)


def _cut(value: str | None, size: int) -> str | None:
    """Fit a string to its column (the full value stays in the stored document)."""
    return value if value is None or len(value) <= size else value[: size - 1] + "…"


@dataclass(frozen=True)
class _Statements:
    insert_report: Any
    owner: Any
    insert_finding: Any
    seen: Any


@cache
def _statements(dialect: str) -> _Statements:
    # Built once per dialect: at hundreds of reports a second, building SQLAlchemy statements
    # per request cost more than running them.
    reports = cast(Table, StoredReport.__table__)
    stations = cast(Table, Station.__table__)
    findings = cast(Table, StoredFinding.__table__)
    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    return _Statements(
        insert_report=insert(reports)
        .on_conflict_do_nothing(index_elements=["report_id"])
        .returning(reports.c.pk),
        owner=select(reports.c.station_id).where(reports.c.report_id == bindparam("rid")),
        insert_finding=findings.insert(),
        seen=update(stations)
        .where(stations.c.id == bindparam("sid"))
        .values(last_seen_at=bindparam("now"), last_report_at=bindparam("now")),
    )


@dataclass(frozen=True)
class Outcome:
    """What became of a report: stored now, already stored, or owned by another station."""

    duplicate: bool
    conflict: bool = False


def store_report(
    connection: Connection, station_id: str, report: ReportIn, tz: ZoneInfo
) -> Outcome:
    """Store *report* once (in the caller's transaction); a repeat of its UUID changes nothing."""
    now = utcnow()
    device = report.device
    engine = report.engine
    serial = _cut(device.serial if device else None, 200)
    threats = [f.threat for f in report.findings if f.threat]
    ranked = sorted(
        report.findings,
        key=lambda f: _FLAGGED_FIRST.index(f.verdict) if f.verdict in _FLAGGED_FIRST else 9,
    )
    row = {
        "report_id": report.report_id,
        "scan_code": scan_code(report.report_id),
        "station_id": station_id,
        "verdict": report.verdict.value,
        "reason": report.reason.value if report.reason else None,
        "detail": report.detail,
        "started_at": report.started_at,
        "finished_at": report.finished_at,
        "received_at": now,
        "day": report.finished_at.astimezone(tz).date(),
        "files_total": report.files_total,
        "bytes_total": report.bytes_total,
        "findings_total": len(report.findings),
        "threats_total": len(threats),
        "first_threat": _cut(threats[0] if threats else None, 200),
        "first_problem": ranked[0].reason.value if ranked and ranked[0].reason else None,
        "engine_version": _cut(engine.version if engine else None, 100),
        "signatures_version": engine.signatures_version if engine else None,
        "signatures_date": engine.signatures_date if engine else None,
        "software_version": report.software_version,
        "device_vendor": _cut(device.vendor if device else None, 200),
        "device_model": _cut(device.model if device else None, 200),
        "device_serial": serial,
        "device_size": device.size if device else None,
        "device_fs": _cut(device.fs_type if device else None, 50),
        "device_label": _cut(device.label if device else None, 200),
        "document": report.model_dump_json(by_alias=True),  # compact, UTF-8, as document()
    }
    statements = _statements(connection.dialect.name)
    pk = connection.execute(statements.insert_report, row).scalar_one_or_none()
    if pk is None:
        owner = connection.execute(statements.owner, {"rid": report.report_id}).scalar()
        return Outcome(duplicate=True, conflict=owner != station_id)
    if report.findings:
        connection.execute(
            statements.insert_finding,
            [
                {
                    "report_pk": pk,
                    "position": i,
                    "path": f.path,
                    "verdict": f.verdict.value,
                    "threat": _cut(f.threat, 200),
                    "reason": f.reason.value if f.reason else None,
                    "detail": f.detail,
                    "sha256": f.sha256,
                    "size": f.size,
                    "station_id": station_id,
                    "device_serial": serial,
                    "finished_at": report.finished_at,
                }
                for i, f in enumerate(report.findings)
            ],
        )
    connection.execute(statements.seen, {"sid": station_id, "now": now})
    return Outcome(duplicate=False)


def store_heartbeat(
    connection: Connection, station_id: str, beat: HeartbeatIn, config: ServerConfig
) -> None:
    """Record a station's latest health, and a sample of it when it says something new."""
    now = utcnow()
    health = beat.health
    values: dict[str, object] = {
        "last_seen_at": now,
        "heartbeat_at": now,
        "backlog": beat.backlog,
        "software_version": _cut(beat.software_version, 50),
        "health_at": health.measured_at if health else None,
        "engine_ok": health.engine_ok if health else None,
        "engine_version": _cut(health.engine_version if health else None, 100),
        "signatures_version": health.signatures_version if health else None,
        "signatures_date": health.signatures_date if health else None,
        "selftest_ok": health.selftest_ok if health else None,
        "selftest_at": health.selftest_at if health else None,
        "problems": ",".join(health.problems)[:500] if health else "",
    }
    history.note(connection, station_id, values, now, config.station_silent_after)
    if healthy(values, config, now):
        # The alert is over: the next one is a new one (refusals are not a heartbeat's to end).
        kept = Station.alert_ack_problems == "reports_refused"
        values["alert_ack_problems"] = case((kept, Station.alert_ack_problems), else_=None)
    connection.execute(update(Station).where(Station.id == station_id).values(**values))
