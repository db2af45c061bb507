"""CSV downloads of every filtered list (cells neutralised in `export`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from kiosk.server import queries
from kiosk.server.export import rows_to_csv
from kiosk.server.pages import judge_stations, period
from kiosk.server.templating import Formats
from kiosk.server.web import Page

router = APIRouter(include_in_schema=False)


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
        fmt._("Taken in hand"),
        fmt._("Taken in hand by"),
        fmt._("Comment"),
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
                    fmt.iso(r.handled_at),
                    r.handled_by,
                    r.handled_note,
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
        for s in judge_stations(ctx)
    ]
    return _csv_response("stations.csv", rows_to_csv(header, rows))


@router.get("/threats.csv")
def threats_csv(request: Request, ctx: Page) -> Response:
    """Threats by signature or by sha256 (`by=`), as CSV."""
    _days, since = period(request, ctx)
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
