"""One station's page: identity, health now and over time, why it is flagged, scans, refusals."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from kiosk.server import handling, history, queries, refusals
from kiosk.server.status import station_status
from kiosk.server.tables import Station, StoredReport
from kiosk.server.web import Page

router = APIRouter(include_in_schema=False)
RECENT_SCANS = 10


@router.get("/stations/{station_id}")
def station_page(station_id: str, request: Request, ctx: Page) -> Response:
    """Everything IT knows of one station."""
    with ctx.state.db.read() as session:
        station = session.get(Station, station_id[:64])
        if station is None:
            return ctx.render("error.html", status=404, status_code=404)
        refused = refusals.summary(session, station.id)
        status = station_status(station, ctx.state.config, ctx.fmt.now, refused)
        samples = history.recent(session, station.id)
        scans = list(
            session.scalars(
                select(StoredReport)
                .where(StoredReport.station_id == station.id)
                .order_by(StoredReport.finished_at.desc(), StoredReport.pk.desc())
                .limit(RECENT_SCANS)
            )
        )
        week = session.scalar(
            select(func.count()).where(
                StoredReport.station_id == station.id,
                StoredReport.finished_at >= ctx.fmt.now - queries.WEEK,
            )
        )
        refusal_rows = refusals.latest(session, station.id)
        audit = handling.latest_audit(session, f"{station.id}:")
    return ctx.render(
        "station.html",
        nav="stations",
        s=status,
        st=station,
        samples=samples,
        scans=scans,
        week=week or 0,
        refused=refused,
        refusal_rows=refusal_rows,
        audit=audit,
        changed=request.query_params.get("changed") == "1",
        scans_link="/scans?" + queries.ScanFilter(station=station.id).query(),
    )
