"""Fixtures of the server tests: a server on SQLite or on a real PostgreSQL, stations, users."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from kiosk.config import Config
from kiosk.models import utcnow
from kiosk.server import security
from kiosk.server.app import create_app
from kiosk.server.db import Database
from kiosk.server.tables import Station, User
from tests.server.support import Postgres, start_postgres

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL cluster for the session; each test gets its own database."""
    pg = start_postgres()
    yield pg
    pg.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/server.db"
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.create_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database (tests that need only one backend)."""
    return f"sqlite:///{tmp_path}/server.db"


@dataclass
class Server:
    """An app with its database and an HTTP client talking to it in-process."""

    app: FastAPI
    db: Database
    client: httpx.AsyncClient
    config: Config

    def add_station(
        self, station_id: str, name: str | None = None, school: str = "École Renoir"
    ) -> str:
        """Create a station; return its token."""
        token = security.new_token()
        with self.db.write() as session:
            session.add(
                Station(
                    id=station_id,
                    name=name or station_id,
                    school=school,
                    location="Hall",
                    created_at=utcnow(),
                    token_hash=security.token_hash(token),
                    problems="",
                )
            )
        return token

    def add_user(self, username: str = "claire", password: str = PASSWORD) -> None:
        """Create an IT account."""
        with self.db.write() as session:
            session.add(
                User(
                    username=username,
                    password_hash=security.hash_password(password),
                    full_name="Claire Lemoine",
                    created_at=utcnow(),
                )
            )

    async def login(self, username: str = "claire", password: str = PASSWORD) -> httpx.Response:
        """Log in through the form, like a browser."""
        page = await self.client.get("/login")
        csrf = csrf_of(page.text)
        return await self.client.post(
            "/login", data={"username": username, "password": password, "csrf": csrf, "next": "/"}
        )


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def make_config(url: str, **server: object) -> Config:
    """A configuration for tests (plain http, so cookies without Secure)."""
    return Config().with_overrides("server", database_url=url, secure_cookies=False, **server)


@pytest.fixture
async def server(database_url: str) -> AsyncIterator[Server]:
    """The app on each backend, with an in-process client."""
    config = make_config(database_url)
    app = create_app(config, background=False)
    db: Database = app.state.server.db
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield Server(app, db, client, config)
    db.dispose()
