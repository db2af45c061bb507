"""The pages for IT: dashboard, scans (and as JSON), one scan, stations, threats."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from kiosk.models import TreeVerdict, parse_iso
from kiosk.server import charts, handling, queries, refusals
from kiosk.server.status import StationStatus, station_status
from kiosk.server.templating import N_
from kiosk.server.web import Ctx, Page

router = APIRouter(include_in_schema=False)


def judge_stations(ctx: Ctx) -> list[StationStatus]:
    """Judge every station now (its health and the requests of it the server refused)."""
    with ctx.state.db.read() as session:
        stations = queries.stations(session)
        refused = refusals.totals(session)
    return [station_status(s, ctx.state.config, ctx.fmt.now, refused.get(s.id)) for s in stations]


def alerts(statuses: list[StationStatus]) -> list[StationStatus]:
    """The flagged stations, those still waiting for IT first, the worst first."""
    order = {"silent": 0, "unprotected": 1, "never": 2, "refused": 3, "unknown": 4}
    flagged = [s for s in statuses if s.flagged]
    return sorted(flagged, key=lambda s: (s.handled, order.get(s.state, 9), s.station.name))


@router.get("/")
def dashboard(ctx: Page) -> Response:
    """The summary: counts, a chart of 30 days, stations to watch, latest detections."""
    tz = ctx.state.tz
    today = ctx.fmt.now.astimezone(tz).date()
    days = charts.last_days(today, 30)
    with ctx.state.db.read() as session:
        per_day = queries.daily_counts(session, days[0], today)
        latest = queries.latest_detections(session, 5)
        since = queries.local_midnight(days[0], tz)
        top = queries.threats(session, "threat", since, limit=6)
        top_stations = {t.key: queries.threat_stations(session, t.key) for t in top}
        waiting = handling.to_handle(session)
    totals = [sum(per_day.get(d, {}).values()) for d in days]
    infected = [per_day.get(d, {}).get("infected", 0) for d in days]

    def card(n: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in days[-n:]:
            for verdict, count in per_day.get(d, {}).items():
                out[verdict] = out.get(verdict, 0) + count
        out["total"] = sum(v for k, v in out.items() if k != "total")
        return out

    statuses = judge_stations(ctx)
    flagged = alerts(statuses)
    return ctx.render(
        "dashboard.html",
        nav="dashboard",
        flagged_count=sum(s.flagged and not s.handled for s in statuses),
        alerts=[s for s in flagged if not s.handled],
        waiting=waiting,
        waiting_total=sum(waiting.values()),
        cards=[
            (N_("Today"), days[-1], days[-1], card(1)),
            (N_("Last 7 days"), days[-7], days[-1], card(7)),
            (N_("Last 30 days"), days[0], days[-1], card(30)),
        ],
        scans_chart=charts.series(days, totals, today, height=180),
        infected_chart=charts.series(days, infected, today, height=60),
        watch=flagged[:6],
        fine=sum(not s.flagged for s in statuses if s.state != "revoked"),
        latest=latest,
        top=top,
        top_stations=top_stations,
        top_max=max([t.detections for t in top] or [1]),
    )


def _page_size(request: Request) -> int:
    try:
        size = int(request.query_params.get("size", "20"))
    except ValueError:
        size = 20
    return size if size in queries.PAGE_SIZES else 20


@router.get("/scans")
def scans(request: Request, ctx: Page) -> Response:
    """The scans list, newest first, filtered, a keyset page at a time."""
    f = queries.ScanFilter.from_params(request.query_params)
    size = _page_size(request)
    after = queries.Cursor.decode(request.query_params.get("after"))
    before = queries.Cursor.decode(request.query_params.get("before"))
    with ctx.state.db.read() as session:
        page = queries.list_scans(session, f, ctx.state.tz, size, after=after, before=before)
        total = queries.count_scans(session, f, ctx.state.tz)
        stations = queries.stations(session)
    statuses = judge_stations(ctx)
    schools = sorted({s.school for s in stations if s.school})
    return ctx.render(
        "scans.html",
        nav="scans",
        flagged_count=sum(s.flagged and not s.handled for s in statuses),
        f=f,
        page=page,
        size=size,
        total=total,
        capped=total > queries.COUNT_CAP,
        stations=stations,
        schools=schools,
        verdicts=[v.value for v in TreeVerdict],
    )


@router.get("/scans.json")
def scans_json(request: Request, ctx: Page) -> Response:
    """The same page of the scans list as data (datasette-style: one view, two forms)."""
    f = queries.ScanFilter.from_params(request.query_params)
    size = _page_size(request)
    after = queries.Cursor.decode(request.query_params.get("after"))
    with ctx.state.db.read() as session:
        page = queries.list_scans(session, f, ctx.state.tz, size, after=after)
    rows = [
        {
            "report_id": r.report_id,
            "scan_code": r.scan_code,
            "finished_at": r.finished_at.isoformat(),
            "station_id": s.id,
            "station": s.name,
            "school": s.school,
            "verdict": r.verdict,
            "reason": r.reason,
            "files_total": r.files_total,
            "findings_total": r.findings_total,
            "first_threat": r.first_threat,
            "device_serial": r.device_serial,
        }
        for r, s in page.rows
    ]
    older = page.older.encode() if page.older else None
    return JSONResponse({"filters": f.params(), "rows": rows, "next": older})


@router.get("/scans/{report_id}")
def scan(report_id: str, ctx: Page) -> Response:
    """One scan in detail."""
    with ctx.state.db.read() as session:
        found = queries.scan_detail(session, report_id[:36])
        if found is None:
            return ctx.render("error.html", status=404, status_code=404)
        report, station, findings = found
        history = queries.device_history(session, report.device_serial)
        since = ctx.fmt.now - timedelta(days=30)
        names = sorted({f.threat for f in findings if f.threat})[:5]
        elsewhere = [
            row for row in queries.threats(session, "threat", since, limit=500) if row.key in names
        ]
    document = json.loads(report.document)
    return ctx.render(
        "scan.html",
        nav="scans",
        flagged_count=None,
        r=report,
        station=station,
        findings=findings,
        history=history,
        elsewhere=elsewhere,
        actions=document.get("actions", []),
        counts=document.get("counts", {}),
        parse_time=_parse_time,
    )


def _parse_time(text: str | None) -> Any:
    try:
        return parse_iso(text)
    except ValueError:
        return None


@router.get("/stations")
def stations_page(ctx: Page) -> Response:
    """Every station and its health; silent or unprotected ones first."""
    statuses = judge_stations(ctx)
    with ctx.state.db.read() as session:
        flagged = queries.flagged_per_station(session, ctx.fmt.now - timedelta(days=7))
        week = queries.scans_per_station(session, ctx.fmt.now - timedelta(days=7))
        anonymous = refusals.summary(session, refusals.ANONYMOUS)
        anonymous_rows = refusals.latest(session, None, 5) if anonymous else []
    order = {
        "silent": 0, "unprotected": 1, "never": 2, "refused": 3, "unknown": 4, "ok": 5, "revoked": 6
    }  # fmt: skip
    statuses.sort(key=lambda s: (order.get(s.state, 9), s.station.school, s.station.name))
    online = [
        s for s in statuses if s.silent_for is not None and s.silent_for.total_seconds() < 150
    ]
    active = [s for s in statuses if s.state != "revoked"]
    return ctx.render(
        "stations.html",
        nav="stations",
        flagged_count=sum(s.flagged and not s.handled for s in statuses),
        statuses=statuses,
        week=week,
        flagged=flagged,
        online=online,
        active=active,
        out=[s for s in statuses if s.state in ("silent", "unprotected")],
        old=[s for s in statuses if "signatures_old" in s.problems],
        waiting=[s for s in statuses if (s.station.backlog or 0) > 0],
        alerts=alerts(statuses),
        anonymous=anonymous,
        anonymous_rows=anonymous_rows,
    )


def period(request: Request, ctx: Ctx) -> tuple[int, Any]:
    """The threats period asked for (`days=7|30|365|0`) and its start."""
    try:
        days = int(request.query_params.get("days", "30"))
    except ValueError:
        days = 30
    days = days if days in (7, 30, 365, 0) else 30
    return days, (ctx.fmt.now - timedelta(days=days)) if days else None


@router.get("/threats")
def threats_page(request: Request, ctx: Page) -> Response:
    """Threats across stations, by signature and by file content."""
    days, since = period(request, ctx)
    with ctx.state.db.read() as session:
        by_threat = queries.threats(session, "threat", since)
        by_hash = queries.threats(session, "sha256", since)
    return ctx.render(
        "threats.html",
        nav="threats",
        flagged_count=None,
        days=days,
        by_threat=by_threat,
        by_hash=by_hash,
    )
