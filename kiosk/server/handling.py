"""Taking in hand: IT marks a threat, or a station's alert, as handled (who, when, a note)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import CursorResult, func, select, text, update
from sqlalchemy.orm import Session

from kiosk.models import utcnow
from kiosk.server import refusals, security
from kiosk.server.status import station_status
from kiosk.server.tables import TO_HANDLE, AuditEntry, Station, StoredReport, to_handle_sql
from kiosk.server.web import Ctx, Page, safe_next, station_path

router = APIRouter(include_in_schema=False)
NOTE_MAX = 500


def clean_note(raw: object) -> str | None:
    """An IT comment as stored: no NUL (PostgreSQL refuses it), trimmed, bounded."""
    note = str(raw or "").replace("\x00", "").strip()[:NOTE_MAX]
    return note or None


def handle_scan(
    session: Session, report_id: str, username: str, note: str | None, now: datetime
) -> bool:
    """Mark a threat scan as taken in hand; False when it is not one, or already is."""
    result = session.execute(
        update(StoredReport)
        .where(
            StoredReport.report_id == report_id,
            StoredReport.verdict.in_(TO_HANDLE),
            StoredReport.handled_at.is_(None),
        )
        .values(handled_at=now, handled_by=username, handled_note=note)
    )
    if not cast(CursorResult[Any], result).rowcount:
        return False
    session.add(
        AuditEntry(at=now, username=username, action="scan_handled", target=report_id, comment=note)
    )
    return True


def handle_alert(
    session: Session, station_id: str, problems: str, username: str, note: str | None, now: datetime
) -> None:
    """Mark a station's current alert (its set of problems) as taken in hand."""
    session.execute(
        update(Station)
        .where(Station.id == station_id)
        .values(
            alert_ack_problems=problems,
            alert_ack_at=now,
            alert_ack_by=username,
            alert_ack_note=note,
        )
    )
    session.add(
        AuditEntry(
            at=now,
            username=username,
            action="alert_handled",
            target=f"{station_id}:{problems}"[:100],
            comment=note,
        )
    )


def to_handle(session: Session) -> dict[str, int]:
    """Count the threat scans still waiting for IT, by verdict (a small partial index)."""
    rows = session.execute(
        select(StoredReport.verdict, func.count())
        .where(text(to_handle_sql(session.get_bind().dialect.name)))
        .group_by(StoredReport.verdict)
    ).all()
    return {verdict: int(n) for verdict, n in rows}


def latest_audit(session: Session, target_prefix: str, limit: int = 10) -> list[AuditEntry]:
    """The newest audit entries about one scan or one station."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.target.startswith(target_prefix, autoescape=True))
            .order_by(AuditEntry.pk.desc())
            .limit(limit)
        )
    )


async def _form(request: Request, ctx: Ctx) -> dict[str, str] | None:
    """The posted form, or None when its CSRF token is not the session's."""
    form = await request.form(max_files=0, max_fields=8, max_part_size=4096)
    assert ctx.login is not None
    if not security.csrf_ok(ctx.login.csrf, str(form.get("csrf", ""))):
        return None
    return {k: str(v) for k, v in form.items()}


@router.post("/scans/{report_id}/handled")
async def scan_handled(report_id: str, request: Request, ctx: Page) -> Response:
    """Take a threat scan in hand (POST with the session's CSRF token)."""
    form = await _form(request, ctx)
    if form is None:
        return ctx.render("error.html", status=403, status_code=403)
    assert ctx.login is not None
    username = ctx.login.username

    def write() -> bool | None:
        with ctx.state.db.write() as session:
            report = session.scalar(
                select(StoredReport.verdict).where(StoredReport.report_id == report_id[:36])
            )
            if report is None:
                return None
            handle_scan(session, report_id[:36], username, clean_note(form.get("note")), utcnow())
            return report in TO_HANDLE

    found = await run_in_threadpool(write)
    if found is None:
        return ctx.render("error.html", status=404, status_code=404)
    if not found:
        return ctx.render("error.html", status=400, status_code=400)
    return RedirectResponse(f"/scans/{report_id[:36]}", status_code=303)


@router.post("/stations/{station_id}/handled")
async def alert_handled(station_id: str, request: Request, ctx: Page) -> Response:
    """Take a station's alert in hand, as it was when IT saw it (else nothing changes)."""
    form = await _form(request, ctx)
    if form is None:
        return ctx.render("error.html", status=403, status_code=403)
    assert ctx.login is not None
    username = ctx.login.username
    seen = form.get("alert", "")

    def write() -> str | None:
        with ctx.state.db.write() as session:
            station = session.get(Station, station_id[:64])
            if station is None:
                return None
            refused = refusals.summary(session, station.id)
            status = station_status(station, ctx.state.config, utcnow(), refused)
            if status.flagged and status.problems_key == seen:
                handle_alert(
                    session, station.id, seen, username, clean_note(form.get("note")), utcnow()
                )
                return "done"
            return "changed"

    outcome = await run_in_threadpool(write)
    if outcome is None:
        return ctx.render("error.html", status=404, status_code=404)
    if outcome == "changed":
        return RedirectResponse(station_path(station_id[:64]) + "?changed=1", status_code=303)
    back = form.get("next") or station_path(station_id[:64])
    return RedirectResponse(safe_next(back), status_code=303)
