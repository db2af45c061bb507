"""The web pages for IT: login, dashboard, scans, one scan, stations, threats, CSV exports."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from sqlalchemy import select

from kiosk.i18n import LANGUAGES
from kiosk.models import TreeVerdict, parse_iso, utcnow
from kiosk.server import charts, queries, security
from kiosk.server.deps import ServerState, State
from kiosk.server.export import rows_to_csv
from kiosk.server.status import StationStatus, station_status
from kiosk.server.tables import User
from kiosk.server.templating import N_, Formats

router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "sb_session"
LOGIN_CSRF_COOKIE = "sb_login"
LANG_COOKIE = "sb_lang"


class LoginRequiredError(Exception):
    """Raised by pages when nobody is logged in: the handler redirects to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


_LOCAL_PATH = re.compile(r"/(?![/\\])[A-Za-z0-9/_.~%:@!$&'()*+,;=?-]*")


def _safe_next(value: str | None) -> str:
    # Only local paths, in plain URL characters: an open redirect would help phishing, and
    # browsers drop tabs and newlines, so "/\t/evil.example" would become "//evil.example".
    if not value or not _LOCAL_PATH.fullmatch(value) or "\\" in value:
        return "/"
    return value


def language(request: Request, state: ServerState) -> str:
    """The reader's language: their cookie, else the server's default."""
    chosen = request.cookies.get(LANG_COOKIE)
    return chosen if chosen in LANGUAGES else state.config.language


@dataclass(frozen=True)
class Ctx:
    """What every page needs: the request, the state, who is logged in, and the formats."""

    request: Request
    state: ServerState
    login: security.Login | None
    fmt: Formats

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        """Render a template with the common values."""
        html = self.state.templates.get_template(template).render(
            _=self.fmt._,
            fmt=self.fmt,
            login=self.login,
            lang=self.fmt.language,
            path=self.request.url.path,
            here=str(self.request.url.path)
            + (f"?{self.request.url.query}" if self.request.url.query else ""),
            config=self.state.config,
            **{"nav": None, "flagged_count": None, **values},
        )
        return HTMLResponse(html, status_code=status)


def _ctx(request: Request, state: ServerState, login: security.Login | None) -> Ctx:
    return Ctx(request, state, login, Formats(language(request, state), state.tz, utcnow()))


def page_context(request: Request, state: State) -> Ctx:
    """A page that needs a login (else: to the login page)."""
    with state.db.read() as session:
        login = security.find_session(session, request.cookies.get(SESSION_COOKIE))
    if login is None:
        query = f"?{request.url.query}" if request.url.query else ""
        raise LoginRequiredError(request.url.path + query)
    return _ctx(request, state, login)


Page = Annotated[Ctx, Depends(page_context)]


def login_redirect(_request: Request, exc: LoginRequiredError) -> Response:
    """Send the browser to the login page, remembering where it wanted to go."""
    return RedirectResponse(f"/login?next={quote(exc.next_path, safe='')}", status_code=303)


def error_page(request: Request, status: int, headers: Mapping[str, str] | None = None) -> Response:
    """A plain error page that says nothing of the internals."""
    state: ServerState = request.app.state.server
    ctx = _ctx(request, state, None)
    response = ctx.render("error.html", status=status, status_code=status)
    for key, value in (headers or {}).items():
        if key.lower() != "www-authenticate":
            response.headers[key] = value
    return response


def _set_cookie(ctx: Ctx, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=ctx.state.config.secure_cookies,
        samesite="strict",
        path="/",
    )


# ---- login -------------------------------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, state: State, next: str = "/") -> Response:
    """The login page; it sets the cookie half of its CSRF token."""
    ctx = _ctx(request, state, None)
    token = secrets.token_urlsafe(32)
    response = ctx.render("login.html", csrf=token, next=_safe_next(next), error=None)
    _set_cookie(ctx, response, LOGIN_CSRF_COOKIE, token, 3600)
    return response


@router.post("/login")
async def login_submit(request: Request, state: State) -> Response:
    """Check a password, with throttling per user name and per address."""
    form = await request.form(max_files=0, max_fields=10, max_part_size=4096)
    username = str(form.get("username", ""))[:64]
    password = str(form.get("password", ""))[:1024]
    given = str(form.get("csrf", ""))
    next_path = _safe_next(str(form.get("next", "/")))
    ctx = _ctx(request, state, None)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not security.csrf_ok(expected, given):
        return ctx.render("error.html", status=403, status_code=403)
    address = request.client.host if request.client else "unknown"
    keys = [f"user:{username.lower()}", f"addr:{address}"]
    cfg = state.config
    outcome = await run_in_threadpool(_try_login, state, username, password, keys)
    if outcome == "throttled":
        response = ctx.render(
            "login.html", status=429, csrf=expected, next=next_path, error="throttled"
        )
        response.headers["Retry-After"] = str(int(cfg.login_window))
        return response
    if outcome is None:
        return ctx.render("login.html", status=401, csrf=expected, next=next_path, error="wrong")
    redirect = RedirectResponse(next_path, status_code=303)
    _set_cookie(ctx, redirect, SESSION_COOKIE, outcome, int(cfg.session_hours * 3600))
    redirect.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return redirect


def _try_login(state: ServerState, username: str, password: str, keys: list[str]) -> str | None:
    cfg = state.config
    with state.db.read() as session:
        if security.throttled(session, keys, cfg.login_max_failures, cfg.login_window):
            return "throttled"
        user = session.scalar(select(User).where(User.username == username))
    if not security.verify_password(user, password):
        with state.db.write() as session:
            security.record_failure(session, keys, cfg.login_window)
        return None
    assert user is not None
    with state.db.write() as session:
        security.clear_failures(session, keys[:1])
        return security.open_session(session, user, cfg.session_hours)


@router.post("/logout")
async def logout(request: Request, ctx: Page) -> Response:
    """End the session (a POST with the session's CSRF token)."""
    form = await request.form(max_files=0, max_fields=5, max_part_size=1024)
    assert ctx.login is not None
    if not security.csrf_ok(ctx.login.csrf, str(form.get("csrf", ""))):
        return ctx.render("error.html", status=403, status_code=403)
    cookie = request.cookies.get(SESSION_COOKIE, "")
    with ctx.state.db.write() as session:
        security.close_session(session, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{code}")
def set_language(request: Request, state: State, code: str, next: str = "/") -> Response:
    """Switch the pages' language (a preference cookie, nothing else changes)."""
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in LANGUAGES:
        ctx = _ctx(request, state, None)
        _set_cookie(ctx, response, LANG_COOKIE, code, 365 * 86400)
    return response


# ---- pages -------------------------------------------------------------------------------------


def _statuses(ctx: Ctx) -> list[StationStatus]:
    with ctx.state.db.read() as session:
        stations = queries.stations(session)
    return [station_status(s, ctx.state.config, ctx.fmt.now) for s in stations]


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
    totals = [sum(per_day.get(d, {}).values()) for d in days]
    infected = [per_day.get(d, {}).get("infected", 0) for d in days]

    def card(n: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in days[-n:]:
            for verdict, count in per_day.get(d, {}).items():
                out[verdict] = out.get(verdict, 0) + count
        out["total"] = sum(v for k, v in out.items() if k != "total")
        return out

    statuses = _statuses(ctx)
    return ctx.render(
        "dashboard.html",
        nav="dashboard",
        flagged_count=sum(s.flagged for s in statuses),
        cards=[
            (N_("Today"), days[-1], days[-1], card(1)),
            (N_("Last 7 days"), days[-7], days[-1], card(7)),
            (N_("Last 30 days"), days[0], days[-1], card(30)),
        ],
        scans_chart=charts.series(days, totals, today, height=180),
        infected_chart=charts.series(days, infected, today, height=60),
        watch=[s for s in statuses if s.flagged][:6],
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
    statuses = [station_status(s, ctx.state.config, ctx.fmt.now) for s in stations]
    schools = sorted({s.school for s in stations if s.school})
    return ctx.render(
        "scans.html",
        nav="scans",
        flagged_count=sum(s.flagged for s in statuses),
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


def _csv_response(name: str, chunks: Iterator[str]) -> StreamingResponse:
    return StreamingResponse(
        (c.encode("utf-8") for c in chunks),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/scans.csv")
def scans_csv(request: Request, ctx: Page) -> Response:
    """Every scan matching the filters, as CSV."""
    f = queries.ScanFilter.from_params(request.query_params)
    fmt = ctx.fmt
    header = [
        fmt._("Date"),
        fmt._("Station"),
        fmt._("School"),
        fmt._("Verdict"),
        fmt._("Reason"),
        fmt._("Files"),
        fmt._("Bytes"),
        fmt._("Flagged files"),
        fmt._("First threat"),
        fmt._("Vendor"),
        fmt._("Model"),
        fmt._("Serial number"),
        fmt._("Scan code"),
        fmt._("Report id"),
    ]

    def rows() -> Iterator[list[Any]]:
        with ctx.state.db.read() as session:
            for r, s in queries.iter_scans(session, f, ctx.state.tz):
                yield [
                    fmt.iso(r.finished_at),
                    s.name,
                    s.school,
                    r.verdict,
                    r.reason,
                    r.files_total,
                    r.bytes_total,
                    r.findings_total,
                    r.first_threat,
                    r.device_vendor,
                    r.device_model,
                    r.device_serial,
                    r.scan_code,
                    r.report_id,
                ]

    return _csv_response("scans.csv", rows_to_csv(header, rows()))


@router.get("/findings.csv")
def findings_csv(request: Request, ctx: Page) -> Response:
    """Every flagged file of the scans matching the filters, one a line, as CSV."""
    f = queries.ScanFilter.from_params(request.query_params)
    fmt = ctx.fmt
    header = [
        fmt._("Date"), fmt._("Station"), fmt._("Scan code"), fmt._("Path on the stick"),
        fmt._("Verdict"), fmt._("Threat"), fmt._("Reason"), "SHA-256", fmt._("Size"),
        fmt._("Serial number"), fmt._("Report id"),
    ]  # fmt: skip

    def rows() -> Iterator[list[Any]]:
        with ctx.state.db.read() as session:
            batch: list[tuple[Any, Any]] = []
            for pair in queries.iter_scans(session, f, ctx.state.tz):
                batch.append(pair)
                if len(batch) == 500:
                    yield from _finding_rows(session, batch, fmt)
                    batch = []
            yield from _finding_rows(session, batch, fmt)

    return _csv_response("findings.csv", rows_to_csv(header, rows()))


def _finding_rows(session: Any, batch: list[tuple[Any, Any]], fmt: Formats) -> Iterator[list[Any]]:
    found = queries.findings_of(session, [r.pk for r, _s in batch if r.findings_total])
    for r, s in batch:
        for x in found.get(r.pk, []):
            yield [
                fmt.iso(r.finished_at), s.name, r.scan_code, x.path, x.verdict, x.threat,
                x.reason, x.sha256, x.size, r.device_serial, r.report_id,
            ]  # fmt: skip


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
    statuses = _statuses(ctx)
    with ctx.state.db.read() as session:
        week = queries.scans_per_station(session, ctx.fmt.now - timedelta(days=7))
    order = {"silent": 0, "unprotected": 1, "never": 2, "unknown": 3, "ok": 4, "revoked": 5}
    statuses.sort(key=lambda s: (order.get(s.state, 9), s.station.school, s.station.name))
    online = [
        s for s in statuses if s.silent_for is not None and s.silent_for.total_seconds() < 150
    ]
    active = [s for s in statuses if s.state != "revoked"]
    return ctx.render(
        "stations.html",
        nav="stations",
        flagged_count=sum(s.flagged for s in statuses),
        statuses=statuses,
        week=week,
        online=online,
        active=active,
        out=[s for s in statuses if s.state in ("silent", "unprotected")],
        old=[s for s in statuses if "signatures_old" in s.problems],
        waiting=[s for s in statuses if (s.station.backlog or 0) > 0],
    )


@router.get("/stations.csv")
def stations_csv(ctx: Page) -> Response:
    """Every station and its health, as CSV."""
    fmt = ctx.fmt
    header = [
        fmt._("Station id"),
        fmt._("Station"),
        fmt._("School"),
        fmt._("Location"),
        fmt._("State"),
        fmt._("Problems"),
        fmt._("Last seen"),
        fmt._("Signatures date"),
        fmt._("Self-test"),
        fmt._("Backlog"),
        fmt._("Version"),
    ]
    rows = [
        [
            s.station.id,
            s.station.name,
            s.station.school,
            s.station.location,
            s.state,
            " ".join(s.problems),
            fmt.iso(s.station.last_seen_at),
            fmt.iso(s.station.signatures_date),
            s.station.selftest_ok,
            s.station.backlog,
            s.station.software_version,
        ]
        for s in _statuses(ctx)
    ]
    return _csv_response("stations.csv", rows_to_csv(header, rows))


def _period(request: Request, ctx: Ctx) -> tuple[int, Any]:
    try:
        days = int(request.query_params.get("days", "30"))
    except ValueError:
        days = 30
    days = days if days in (7, 30, 365, 0) else 30
    return days, (ctx.fmt.now - timedelta(days=days)) if days else None


@router.get("/threats")
def threats_page(request: Request, ctx: Page) -> Response:
    """Threats across stations, by signature and by file content."""
    days, since = _period(request, ctx)
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


@router.get("/threats.csv")
def threats_csv(request: Request, ctx: Page) -> Response:
    """Threats by signature or by sha256 (`by=`), as CSV."""
    _days, since = _period(request, ctx)
    by = "sha256" if request.query_params.get("by") == "sha256" else "threat"
    with ctx.state.db.read() as session:
        rows = queries.threats(session, by, since, limit=100_000)
    fmt = ctx.fmt
    header = [
        fmt._("Detections"), fmt._("Stations"), fmt._("Sticks"), fmt._("First seen"),
        fmt._("Last seen"),
    ]  # fmt: skip
    first = [fmt._("Signature")] if by == "threat" else ["SHA-256", fmt._("Signature")]
    data = [
        [
            *([t.key] if by == "threat" else [t.key, t.threat]),
            t.detections,
            t.stations,
            t.sticks,
            fmt.iso(t.first_seen),
            fmt.iso(t.last_seen),
        ]
        for t in rows
    ]
    return _csv_response(f"threats-{by}.csv", rows_to_csv([*first, *header], data))
