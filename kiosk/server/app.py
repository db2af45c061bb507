"""The application factory: `create_app(config)` builds everything; nothing is built at import."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from kiosk import __version__
from kiosk.config import Config, load_config
from kiosk.errors import ServerError
from kiosk.server import (
    api,
    downloads,
    handling,
    migrate,
    pages,
    refusals,
    retention,
    station_view,
    templating,
    web,
)
from kiosk.server.db import Database
from kiosk.server.deps import ServerState
from kiosk.server.middleware import (
    SECURITY_HEADERS,
    BodyLimit,
    FailAfterCommit,
    SecurityHeaders,
)
from kiosk.server.schemas import HeartbeatIn, ReportIn
from kiosk.server.writer import ReportWriter

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
FAULTS_ENV = "KIOSK_SERVER_TEST_FAULTS"


def create_app(
    config: Config, *, database: Database | None = None, faults: str = "", background: bool = True
) -> FastAPI:
    """Build the server: database, migrations, API, web pages, and the daily retention task."""
    server = config.server
    try:
        tz = ZoneInfo(server.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ServerError(f"unknown time zone {server.timezone!r}") from exc
    db = database or Database(server.database_url)
    if server.auto_migrate:
        migrate.upgrade(db)
    state = ServerState(
        config=server,
        db=db,
        tz=tz,
        templates=templating.environment(),
        refusals=refusals.RefusalLog(db),
        writer=ReportWriter(db, tz),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        task = None
        if background:
            task = asyncio.create_task(
                retention.daily(db, server.retention_days, server.login_window)
            )
        yield
        await run_in_threadpool(state.writer.close)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(
        title="Station Blanche server",
        version=__version__,
        summary="Reports and heartbeats from the kiosks; web pages for the town's IT staff.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # Swagger UI needs inline script and a CDN: not under our CSP
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.server = state
    app.include_router(api.router)
    app.include_router(web.router)
    app.include_router(pages.router)
    app.include_router(station_view.router)
    app.include_router(handling.router)
    app.include_router(downloads.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _install_error_handlers(app)
    _install_openapi_bodies(app)
    if faults == "500-after-commit":
        app.add_middleware(FailAfterCommit)
    app.add_middleware(BodyLimit, limit=server.max_body_bytes, refused=_body_refused(state))
    app.add_middleware(SecurityHeaders)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn: the config file comes from KIOSK_CONFIG (workers re-import this)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = load_config(os.environ.get("KIOSK_CONFIG") or None)
    return create_app(config, faults=os.environ.get(FAULTS_ENV, ""))


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(web.LoginRequiredError, web.login_redirect)  # type: ignore[arg-type]

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request):
            await _record_refusal(request, exc)
            if isinstance(exc.detail, dict):
                body = exc.detail
            else:
                body = {"error": _code(exc.status_code), "message": str(exc.detail)}
            return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
        return web.error_page(request, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if _is_api(request):
            details = [
                {"loc": list(e.get("loc", ())), "type": e.get("type"), "msg": e.get("msg")}
                for e in exc.errors()[:20]
            ]
            return JSONResponse(
                {"error": "invalid", "message": "the request is not valid", "details": details},
                status_code=422,
            )
        return web.error_page(request, 400)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> Response:
        # The one catch-all: log the trace, tell the client nothing of it.
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        if _is_api(request):
            response: Response = JSONResponse(
                {"error": "internal", "message": "internal error, try again later"},
                status_code=500,
            )
        else:
            response = web.error_page(request, 500)
        # This answer leaves through Starlette's outermost layer, past our header middleware.
        for name, value in SECURITY_HEADERS:
            response.headers[name.decode()] = value.decode()
        return response


def _bearer(headers: Any) -> str | None:
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def _record_refusal(request: Request, exc: StarletteHTTPException) -> None:
    """Keep, for IT, what a station sent that the server refused (never the body)."""
    kind = refusals.KINDS.get(request.url.path)
    if kind is None or request.method != "POST" or not 400 <= exc.status_code < 500:
        return
    state: ServerState = request.app.state.server
    token = _bearer(request.headers)
    reason, detail = refusals.reason_of(exc.status_code, exc.detail, token is not None)
    report_id = refusals.report_id_of(getattr(request.state, "report_id", None))
    refused = refusals.Refused(kind, exc.status_code, reason, detail, report_id)
    await run_in_threadpool(state.refusals.record, token, refused)


def _body_refused(state: ServerState) -> Callable[[Scope, int], Awaitable[None]]:
    async def refused(scope: Scope, status: int) -> None:
        kind = refusals.KINDS.get(str(scope.get("path", "")))
        if kind is None or scope.get("method") != "POST":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        token = _bearer(headers)
        reason = "too_large" if status == 413 else "bad_request"
        await run_in_threadpool(
            state.refusals.record, token, refusals.Refused(kind, status, reason)
        )

    return refused


def _code(status: int) -> str:
    return {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "too_large",
        429: "too_many_requests",
        503: "unavailable",
    }.get(status, "error")


def _install_openapi_bodies(app: FastAPI) -> None:
    """Put the request body models (parsed by hand, see api.py) into the OpenAPI components."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ReportIn, HeartbeatIn):
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in body.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components[model.__name__] = body
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
