"""Storing what stations send: reports (exactly once per UUID) and heartbeats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
    owners: Any
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
        .returning(reports.c.pk, reports.c.report_id),
        owners=select(reports.c.report_id, reports.c.station_id).where(
            reports.c.report_id.in_(bindparam("rids", expanding=True))
        ),
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


def _row(station_id: str, report: ReportIn, tz: ZoneInfo, now: datetime) -> dict[str, Any]:
    device = report.device
    engine = report.engine
    threats = [f.threat for f in report.findings if f.threat]
    ranked = sorted(
        report.findings,
        key=lambda f: _FLAGGED_FIRST.index(f.verdict) if f.verdict in _FLAGGED_FIRST else 9,
    )
    return {
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
        "device_serial": _cut(device.serial if device else None, 200),
        "device_size": device.size if device else None,
        "device_fs": _cut(device.fs_type if device else None, 50),
        "device_label": _cut(device.label if device else None, 200),
        "document": report.model_dump_json(by_alias=True),  # compact, UTF-8, as document()
    }


def store_reports(
    connection: Connection, reports: list[tuple[str, ReportIn]], tz: ZoneInfo
) -> list[Outcome]:
    """Store each (station, report) once, in the caller's transaction, in a few statements.

    A report whose UUID is already stored (before, or earlier in the same list) changes nothing:
    a duplicate when it is the same station's, a conflict when it is another's.
    """
    now = utcnow()
    statements = _statements(connection.dialect.name)
    first: dict[str, int] = {}  # report id -> index of its first occurrence in the list
    for i, (_station, report) in enumerate(reports):
        first.setdefault(report.report_id, i)
    candidates = [reports[i] for i in sorted(first.values())]
    inserted: dict[str, int] = {}
    if candidates:
        rows = [_row(station, report, tz, now) for station, report in candidates]
        result = connection.execute(statements.insert_report, rows)
        inserted = {report_id: pk for pk, report_id in result.all()}
    missing = [r.report_id for _s, r in candidates if r.report_id not in inserted]
    owners: dict[str, str] = {}
    if missing:
        found = connection.execute(statements.owners, {"rids": missing}).all()
        owners = {report_id: station for report_id, station in found}
    findings = [
        {
            "report_pk": inserted[report.report_id],
            "position": i,
            "path": f.path,
            "verdict": f.verdict.value,
            "threat": _cut(f.threat, 200),
            "reason": f.reason.value if f.reason else None,
            "detail": f.detail,
            "sha256": f.sha256,
            "size": f.size,
            "station_id": station,
            "device_serial": _cut(report.device.serial if report.device else None, 200),
            "finished_at": report.finished_at,
        }
        for station, report in candidates
        if report.report_id in inserted
        for i, f in enumerate(report.findings)
    ]
    if findings:
        connection.execute(statements.insert_finding, findings)
    seen = sorted({station for station, report in candidates if report.report_id in inserted})
    if seen:
        connection.execute(statements.seen, [{"sid": s, "now": now} for s in seen])
    outcomes = []
    for i, (station, report) in enumerate(reports):
        if first[report.report_id] == i and report.report_id in inserted:
            outcomes.append(Outcome(duplicate=False))
            continue
        owner = reports[first[report.report_id]][0]
        if report.report_id not in inserted:
            owner = owners.get(report.report_id, owner)
        outcomes.append(Outcome(duplicate=True, conflict=owner != station))
    return outcomes


def store_report(
    connection: Connection, station_id: str, report: ReportIn, tz: ZoneInfo
) -> Outcome:
    """Store one report (see `store_reports`)."""
    return store_reports(connection, [(station_id, report)], tz)[0]


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
