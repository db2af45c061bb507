"""What the web pages and the CSV export read: filters, keyset pages, aggregates."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, TextClause, and_, distinct, func, or_, select, text, tuple_
from sqlalchemy.orm import Session

from kiosk.models import TreeVerdict
from kiosk.server.tables import Station, StoredFinding, StoredReport, to_handle_sql

PAGE_SIZES = (20, 50, 100)
WEEK = timedelta(days=7)
HANDLED = ("todo", "done")
COUNT_CAP = 10_000


def _clean(value: str | None, limit: int = 200) -> str | None:
    value = (value or "").strip()
    return value[:limit] or None


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class ScanFilter:
    """The filters of the scans list; every field optional, unusable values ignored."""

    station: str | None = None
    school: str | None = None
    verdict: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    threat: str | None = None
    serial: str | None = None
    code: str | None = None
    handled: str | None = None  # "todo": threats still waiting for IT; "done": taken in hand

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> ScanFilter:
        """Read the filters from a query string."""
        verdict = params.get("verdict")
        code = (_clean(params.get("code"), 20) or "").upper().replace(" ", "")
        if code and len(code) == 8 and "-" not in code:
            code = f"{code[:4]}-{code[4:]}"
        station, school = params.get("station"), params.get("school")
        where = params.get("where") or ""  # the page's one select: "station:ID" or "school:NAME"
        if where.startswith("station:"):
            station = where.removeprefix("station:")
        elif where.startswith("school:"):
            school = where.removeprefix("school:")
        return cls(
            station=_clean(station, 64),
            school=_clean(school),
            verdict=verdict if verdict in {v.value for v in TreeVerdict} else None,
            date_from=_day(params.get("from")),
            date_to=_day(params.get("to")),
            threat=_clean(params.get("threat")),
            serial=_clean(params.get("serial")),
            code=code or None,
            handled=params.get("handled") if params.get("handled") in HANDLED else None,
        )

    def params(self, **overrides: Any) -> dict[str, str]:
        """Return the filters as query parameters (for links and the CSV export)."""
        names = {"date_from": "from", "date_to": "to"}
        current = replace(self, **overrides)
        out = {}
        for f in fields(self):
            value = getattr(current, f.name)
            if value is not None:
                out[names.get(f.name, f.name)] = (
                    value.isoformat() if isinstance(value, date) else value
                )
        return out

    def query(self, **overrides: Any) -> str:
        """Return the filters as a query string."""
        return urlencode(self.params(**overrides))

    @property
    def active(self) -> bool:
        """Tell whether any filter is set."""
        return any(getattr(self, f.name) is not None for f in fields(self))


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """Return the UTC moment a local day starts."""
    return datetime.combine(day, time.min, tz).astimezone(UTC)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def scan_conditions(
    f: ScanFilter, tz: ZoneInfo, dialect: str
) -> list[ColumnElement[bool] | TextClause]:
    """Translate the filters into SQL conditions on reports (for the database's dialect)."""
    r = StoredReport
    cond: list[ColumnElement[bool] | TextClause] = []
    if f.station:
        cond.append(r.station_id == f.station)
    if f.school:
        cond.append(r.station_id.in_(select(Station.id).where(Station.school == f.school)))
    if f.verdict:
        cond.append(r.verdict == f.verdict)
    if f.date_from:
        cond.append(r.finished_at >= local_midnight(f.date_from, tz))
    if f.date_to:
        cond.append(r.finished_at < local_midnight(f.date_to + timedelta(days=1), tz))
    if f.threat:
        cond.append(
            r.pk.in_(select(StoredFinding.report_pk).where(StoredFinding.threat == f.threat))
        )
    if f.serial:
        cond.append(r.device_serial == f.serial)
    if f.code:
        cond.append(r.scan_code == f.code)
    if f.handled == "todo":
        cond.append(text(to_handle_sql(dialect)))  # as its partial index says, so it is used
    elif f.handled == "done":
        cond.append(text("handled_at IS NOT NULL"))
    return cond


@dataclass(frozen=True)
class Cursor:
    """A position in the newest-first order: (finished_at, pk) of a row."""

    at: datetime
    pk: int

    def encode(self) -> str:
        """Return the URL form."""
        micros = int((self.at - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
        return f"{micros}_{self.pk}"

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        """Parse the URL form (None when absent or not ours)."""
        try:
            micros, pk = (text or "").split("_")
            at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
            return cls(at, int(pk))
        except (ValueError, OverflowError):
            return None


@dataclass(frozen=True)
class Page:
    """One page of the scans list and the cursors around it."""

    rows: list[tuple[StoredReport, Station]]
    newer: Cursor | None  # link to the newer page starts before this row
    older: Cursor | None


def list_scans(
    session: Session,
    f: ScanFilter,
    tz: ZoneInfo,
    limit: int,
    after: Cursor | None = None,
    before: Cursor | None = None,
) -> Page:
    """Return one page, newest first: `after` goes to older rows, `before` to newer ones."""
    r = StoredReport
    stmt = select(r, Station).join(Station, Station.id == r.station_id)
    for c in scan_conditions(f, tz, _dialect(session)):
        stmt = stmt.where(c)
    key = tuple_(r.finished_at, r.pk)
    if before is not None:
        stmt = stmt.where(key > tuple_(before.at, before.pk))
        stmt = stmt.order_by(r.finished_at.asc(), r.pk.asc()).limit(limit + 1)
        rows = [(a, b) for a, b in session.execute(stmt).all()]
        more = len(rows) > limit
        rows = list(reversed(rows[:limit]))
        newer = _cursor(rows[0][0]) if more and rows else None
        older = _cursor(rows[-1][0]) if rows else None
        return Page(rows, newer, older)
    if after is not None:
        stmt = stmt.where(key < tuple_(after.at, after.pk))
    stmt = stmt.order_by(r.finished_at.desc(), r.pk.desc()).limit(limit + 1)
    rows = [(a, b) for a, b in session.execute(stmt).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    newer = _cursor(rows[0][0]) if after is not None and rows else None
    older = _cursor(rows[-1][0]) if more and rows else None
    return Page(rows, newer, older)


def _cursor(report: StoredReport) -> Cursor:
    return Cursor(report.finished_at, report.pk)


def count_scans(session: Session, f: ScanFilter, tz: ZoneInfo, cap: int = COUNT_CAP) -> int:
    """Count matching reports, stopping at *cap* (a count of millions is not worth its time)."""
    inner = select(StoredReport.pk)
    for c in scan_conditions(f, tz, _dialect(session)):
        inner = inner.where(c)
    sub = inner.limit(cap + 1).subquery()
    return int(session.scalar(select(func.count()).select_from(sub)) or 0)


def iter_scans(
    session: Session, f: ScanFilter, tz: ZoneInfo, batch: int = 1_000
) -> Iterator[tuple[StoredReport, Station]]:
    """Yield every matching report, newest first, a keyset batch at a time (bounded memory)."""
    after: Cursor | None = None
    while True:
        page = list_scans(session, f, tz, batch, after=after)
        yield from page.rows
        if page.older is None:
            return
        after = page.older
        session.expunge_all()


def scan_detail(
    session: Session, report_id: str
) -> tuple[StoredReport, Station, list[StoredFinding]] | None:
    """Return one report, its station and its findings in their original order."""
    row = session.execute(
        select(StoredReport, Station)
        .join(Station, Station.id == StoredReport.station_id)
        .where(StoredReport.report_id == report_id)
    ).first()
    if row is None:
        return None
    report, station = row
    findings = session.scalars(
        select(StoredFinding)
        .where(StoredFinding.report_pk == report.pk)
        .order_by(StoredFinding.position)
        .limit(5_000)
    ).all()
    return report, station, list(findings)


@dataclass(frozen=True)
class DeviceHistory:
    """What the server knows of a stick from its serial number."""

    scans: int
    stations: int


def device_history(session: Session, serial: str | None) -> DeviceHistory | None:
    """Count the scans of a stick and the stations that saw it."""
    if not serial:
        return None
    row = session.execute(
        select(func.count(), func.count(distinct(StoredReport.station_id))).where(
            StoredReport.device_serial == serial
        )
    ).one()
    return DeviceHistory(int(row[0]), int(row[1]))


@dataclass(frozen=True)
class ThreatRow:
    """One signature or one file hash, across stations."""

    key: str
    threat: str | None
    detections: int
    stations: int
    sticks: int
    first_seen: datetime
    last_seen: datetime


def threats(session: Session, by: str, since: datetime | None, limit: int = 200) -> list[ThreatRow]:
    """Group flagged files by signature (`by="threat"`) or by content (`by="sha256"`)."""
    f = StoredFinding
    column = f.threat if by == "threat" else f.sha256
    stmt = select(
        column,
        func.max(f.threat),
        func.count(),
        func.count(distinct(f.station_id)),
        func.count(distinct(f.device_serial)),
        func.min(f.finished_at),
        func.max(f.finished_at),
    ).where(column.is_not(None))
    if by == "sha256":
        stmt = stmt.where(or_(f.threat.is_not(None), f.verdict == "suspicious"))
    if since is not None:
        stmt = stmt.where(f.finished_at >= since)
    stmt = stmt.group_by(column).order_by(func.count().desc(), column).limit(limit)
    return [
        ThreatRow(str(k), t, int(n), int(s), int(d), _aware(a), _aware(b))
        for k, t, n, s, d, a, b in session.execute(stmt).all()
    ]


def _aware(value: Any) -> datetime:
    # Aggregates bypass the column type on some backends: make them aware UTC again.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def threat_stations(session: Session, threat: str, limit: int = 4) -> list[str]:
    """Return the names of the stations where a signature was seen most recently."""
    rows = session.execute(
        select(Station.name)
        .join(StoredFinding, StoredFinding.station_id == Station.id)
        .where(StoredFinding.threat == threat)
        .group_by(Station.name)
        .order_by(func.max(StoredFinding.finished_at).desc())
        .limit(limit)
    ).all()
    return [name for (name,) in rows]


def daily_counts(session: Session, first: date, last: date) -> dict[date, dict[str, int]]:
    """Return, for each local day in [first, last], the number of scans per verdict."""
    rows = session.execute(
        select(StoredReport.day, StoredReport.verdict, func.count())
        .where(and_(StoredReport.day >= first, StoredReport.day <= last))
        .group_by(StoredReport.day, StoredReport.verdict)
    ).all()
    out: dict[date, dict[str, int]] = {}
    for day, verdict, n in rows:
        key = day if isinstance(day, date) else date.fromisoformat(str(day))
        out.setdefault(key, {})[verdict] = int(n)
    return out


def latest_detections(session: Session, limit: int = 5) -> list[tuple[StoredReport, Station]]:
    """Return the newest reports that found a threat."""
    stmt = (
        select(StoredReport, Station)
        .join(Station, Station.id == StoredReport.station_id)
        .where(StoredReport.verdict == TreeVerdict.INFECTED.value)
        .order_by(StoredReport.finished_at.desc(), StoredReport.pk.desc())
        .limit(limit)
    )
    return [(a, b) for a, b in session.execute(stmt).all()]


def scans_per_station(session: Session, since: datetime) -> dict[str, int]:
    """Count scans per station since a moment."""
    rows = session.execute(
        select(StoredReport.station_id, func.count())
        .where(StoredReport.finished_at >= since)
        .group_by(StoredReport.station_id)
    ).all()
    return {s: int(n) for s, n in rows}


def stations(session: Session) -> list[Station]:
    """Return every station, by school then name."""
    return list(session.scalars(select(Station).order_by(Station.school, Station.name)).all())


def findings_of(session: Session, report_pks: list[int]) -> dict[int, list[StoredFinding]]:
    """Return the findings of some reports, grouped by report, in their original order."""
    out: dict[int, list[StoredFinding]] = {}
    if not report_pks:
        return out
    rows = session.scalars(
        select(StoredFinding)
        .where(StoredFinding.report_pk.in_(report_pks))
        .order_by(StoredFinding.report_pk, StoredFinding.position)
    ).all()
    for f in rows:
        out.setdefault(f.report_pk, []).append(f)
    return out


FLAGGED_VERDICTS = (TreeVerdict.INFECTED.value, TreeVerdict.SUSPICIOUS.value)


def flagged_per_station(session: Session, since: datetime) -> dict[str, int]:
    """Count flagged events per station since a moment: threats, dangerous files, and USB
    devices the kiosk refused (reason device_refused, verdict suspicious)."""
    rows = session.execute(
        select(StoredReport.station_id, func.count())
        .where(StoredReport.finished_at >= since, StoredReport.verdict.in_(FLAGGED_VERDICTS))
        .group_by(StoredReport.station_id)
    ).all()
    return {s: int(n) for s, n in rows}
