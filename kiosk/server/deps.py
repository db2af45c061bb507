"""What a request needs, as `Annotated` dependencies: the server's state, the station, the login."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment
from sqlalchemy import Connection

from kiosk.config import ServerConfig
from kiosk.server.db import Database
from kiosk.server.refusals import RefusalLog
from kiosk.server.security import station_for_token
from kiosk.server.writer import ReportWriter


@dataclass(frozen=True)
class ServerState:
    """Everything built once by `create_app` and shared by requests (no globals)."""

    config: ServerConfig
    db: Database
    tz: ZoneInfo
    templates: Environment
    refusals: RefusalLog
    writer: ReportWriter


async def get_state(request: Request) -> ServerState:
    """Return the state `create_app` attached to the application (async: no thread hop)."""
    state: ServerState = request.app.state.server
    return state


State = Annotated[ServerState, Depends(get_state)]

_bearer = HTTPBearer(
    auto_error=False, description="The station's token (`kiosk server station add`)."
)


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Return the bearer token of the request, or answer 401 when there is none."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a station token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return credentials.credentials


def station_of(connection: Connection, token: str) -> str:
    """Return the station of a token (in the request's own transaction), or answer 401."""
    station_id = station_for_token(connection, token)
    if station_id is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked station token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return station_id


# The token is checked in the same worker thread as the write: one thread hop per request.
StationToken = Annotated[str, Depends(bearer_token)]
