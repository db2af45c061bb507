"""The API the kiosks call: reports, heartbeats, and the server's own health."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError
from sqlalchemy import text

from kiosk import __version__
from kiosk.models import scan_code, utcnow
from kiosk.server.deps import ServerState, State, StationToken, station_of
from kiosk.server.ingest import store_heartbeat
from kiosk.server.schemas import Ack, Health, HeartbeatIn, Problem, ReportIn, Stored

router = APIRouter(prefix="/api/v1", tags=["api"])
M = TypeVar("M", bound=BaseModel)

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Not JSON, or not a JSON object."},
    401: {"model": Problem, "description": "No token, or an unknown or revoked one."},
    403: {"model": Problem, "description": "The body names another station than the token's."},
    413: {"model": Problem, "description": "The body is larger than the server accepts."},
    422: {"model": Problem, "description": "The body does not follow the schema."},
}


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    # The body is parsed by pydantic straight from bytes (its JSON parser caps nesting), so
    # FastAPI does not see a body parameter: declare it for the OpenAPI document ourselves.
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


async def _parse(request: Request, model: type[M]) -> M:
    body = await request.body()
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        details = [
            {"loc": list(e["loc"]), "type": e["type"], "msg": e["msg"]}
            for e in exc.errors(include_url=False, include_input=False, include_context=False)[:20]
        ]
        kind = "invalid_json" if any(d["type"] == "json_invalid" for d in details) else "invalid"
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST if kind == "invalid_json" else 422,
            detail={
                "error": kind,
                "message": "the body does not follow the schema",
                "details": details,
            },
        ) from None


@router.post(
    "/reports",
    response_model=Stored,
    status_code=status.HTTP_201_CREATED,
    summary="Store one scan report (idempotent on report_id)",
    responses={
        200: {"model": Stored, "description": "Already stored: a duplicate is a success."},
        409: {"model": Problem, "description": "This report_id belongs to another station."},
        **_ERRORS,
    },
    openapi_extra=_body_schema(ReportIn),
)
async def post_report(request: Request, state: State, token: StationToken) -> Response:
    """Store a report once per UUID; send it again as often as needed until a 2xx comes back."""
    report = await _parse(request, ReportIn)
    request.state.report_id = report.report_id  # named in a refusal, should one follow
    outcome = await state.writer.store(token, report)
    # The answer is a `Stored`, written here: FastAPI's validation of our own model cost more
    # than the rest of the answer at hundreds of reports a second.
    answer = {
        "report_id": report.report_id,
        "stored": True,
        "duplicate": outcome.duplicate,
        "scan_code": scan_code(report.report_id),
    }
    return Response(
        json.dumps(answer, separators=(",", ":")).encode(),
        status_code=status.HTTP_200_OK if outcome.duplicate else status.HTTP_201_CREATED,
        media_type="application/json",
    )


@router.post(
    "/heartbeats",
    response_model=Ack,
    summary="Record a station's health (once a minute)",
    responses=_ERRORS,
    openapi_extra=_body_schema(HeartbeatIn),
)
async def post_heartbeat(request: Request, state: State, token: StationToken) -> Ack:
    """Keep the latest health of the station that sends it."""
    beat = await _parse(request, HeartbeatIn)
    await run_in_threadpool(_store_heartbeat, state, token, beat)
    return Ack(server_time=utcnow())


def _store_heartbeat(state: ServerState, token: str, beat: HeartbeatIn) -> None:
    with state.db.transaction() as connection:
        station = station_of(connection, token)
        if beat.station_id != station:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "a station may only speak for itself")
        store_heartbeat(connection, station, beat, state.config)


@router.get(
    "/health",
    response_model=Health,
    summary="The server and its database answer",
    responses={503: {"model": Problem, "description": "The database does not answer."}},
)
def get_health(state: State) -> Health:
    """Answer ok when the database answers (for load balancers and monitoring)."""
    try:
        with state.db.read() as session:
            revision = session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # any database failure means "not healthy", and nothing more is said
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "database unavailable") from None
    return Health(status="ok", version=__version__, schema_revision=revision)
