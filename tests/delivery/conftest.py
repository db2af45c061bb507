"""Fixtures of the delivery tests: the real server in a subprocess, a real outbox, a shipper."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from kiosk.config import load_config
from kiosk.models import FileVerdict, Finding, Report, TreeVerdict
from kiosk.server import security
from kiosk.server.db import Database
from kiosk.server.migrate import upgrade
from kiosk.server.tables import Station, StoredFinding, StoredReport
from kiosk.station.outbox import Outbox
from tests.server.support import Uvicorn, free_port, make_report, write_config


def wait_until(predicate: Callable[[], bool], what: str, ceiling: float = 180.0) -> None:
    """Poll until *predicate* holds; the ceiling only stops a hung test, it measures nothing."""
    deadline = time.monotonic() + ceiling
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


@dataclass
class Central:
    """The central server under test, stopped and started at will."""

    url: str
    database_url: str
    token: str
    station_id: str
    server: Uvicorn

    def counts(self) -> dict[str, tuple[int, int]]:
        """report_id -> (rows stored, findings stored), straight from the database."""
        engine = create_engine(self.database_url)
        with Session(engine) as session:
            rows = session.execute(
                select(StoredReport.report_id, func.count()).group_by(StoredReport.report_id)
            ).all()
            findings = session.execute(
                select(StoredReport.report_id, func.count(StoredFinding.pk))
                .join(StoredFinding, StoredFinding.report_pk == StoredReport.pk, isouter=True)
                .group_by(StoredReport.report_id)
            ).all()
        engine.dispose()
        f = {r: int(n) for r, n in findings}
        return {r: (int(n), f.get(r, 0)) for r, n in rows}

    def station(self) -> Station:
        """The station row as the server holds it."""
        db = Database(self.database_url)
        with db.read() as session:
            station = session.get(Station, self.station_id)
        db.dispose()
        assert station is not None
        return station


def prepare_database(url: str, *stations: str) -> dict[str, str]:
    """Create the schema and the stations; return their tokens."""
    db = Database(url)
    upgrade(db)
    tokens = {}
    from kiosk.models import utcnow

    with db.write() as session:
        for station_id in stations:
            token = security.new_token()
            session.add(
                Station(
                    id=station_id, name=station_id, school="", location="", problems="",
                    created_at=utcnow(), token_hash=security.token_hash(token),
                )
            )  # fmt: skip
            tokens[station_id] = token
    db.dispose()
    return tokens


@pytest.fixture
def central(tmp_path: Path) -> Iterator[Central]:
    """The real server on SQLite, not started yet (tests start it, kill it, restart it)."""
    url = f"sqlite:///{tmp_path}/central.db"
    tokens = prepare_database(url, "kiosk-1", "kiosk-2")
    config = write_config(tmp_path / "server.toml", url, retention_days=0)
    server = Uvicorn(config, free_port(), tmp_path / "uvicorn.log", env={})
    yield Central(server.url, url, tokens["kiosk-1"], "kiosk-1", server)
    server.kill()


def sample(n: int, station_id: str = "kiosk-1", findings: int = 3) -> list[Report]:
    """*n* reports, infected ones with a few findings (so a duplicate would show)."""
    reports = []
    for i in range(n):
        flagged = tuple(
            Finding(path=f"d{i}/f{k}.exe", verdict=FileVerdict.INFECTED, threat="Eicar-Test")
            for k in range(findings if i % 2 else 0)
        )
        verdict = TreeVerdict.INFECTED if flagged else TreeVerdict.CLEAN
        reports.append(make_report(station_id, verdict=verdict, findings=flagged))
    return reports


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    """The station's real outbox."""
    box = Outbox(tmp_path / "data" / "outbox.db")
    yield box
    box.close()


def shipper_config(tmp_path: Path, central: Central, **shipper: object) -> Path:
    """A kiosk.toml for `kiosk ship` against *central*, with short waits."""
    (tmp_path / "token").write_text(central.token + "\n")
    values = {"heartbeat_interval": 1.0, "backoff_max": 0.5, "poll_interval": 0.1, **shipper}
    lines = [
        "[station]", f'id = "{central.station_id}"', f'data_dir = "{tmp_path / "data"}"',
        "[shipper]", f'server_url = "{central.url}"', f'token_file = "{tmp_path / "token"}"',
        *(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"' for k, v in values.items()),
    ]  # fmt: skip
    path = tmp_path / "kiosk.toml"
    path.write_text("\n".join(lines) + "\n")
    load_config(path)  # fail here, not in the subprocess, if the file is wrong
    return path


from tests.server.conftest import postgres  # noqa: E402, F401 (the session's PostgreSQL)
