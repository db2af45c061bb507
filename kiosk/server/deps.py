"""What a request needs, as `Annotated` dependencies: the server's state, the station, the login."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment

from kiosk.config import ServerConfig
from kiosk.server.db import Database
from kiosk.server.security import station_for_token


@dataclass(frozen=True)
class ServerState:
    """Everything built once by `create_app` and shared by requests (no globals)."""

    config: ServerConfig
    db: Database
    tz: ZoneInfo
    templates: Environment


def get_state(request: Request) -> ServerState:
    """Return the state `create_app` attached to the application."""
    state: ServerState = request.app.state.server
    return state


State = Annotated[ServerState, Depends(get_state)]

_bearer = HTTPBearer(
    auto_error=False, description="The station's token (`kiosk server station add`)."
)


def require_station(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """Return the id of the station whose token came with the request, or answer 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a station token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with state.db.read() as session:
        station = station_for_token(session, credentials.credentials)
        station_id = station.id if station is not None else None
    if station_id is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked station token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return station_id


StationId = Annotated[str, Depends(require_station)]
