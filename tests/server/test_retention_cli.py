"""Retention (THREATS row 33), the command line, and migrations that match the tables."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from kiosk.models import TreeVerdict, utcnow
from kiosk.server import migrate, retention
from kiosk.server.db import Database
from kiosk.server.tables import Base, StoredFinding, StoredReport
from tests.server.conftest import Server
from tests.server.support import PYTHON, ROOT, body, make_report, write_config


async def test_purge_deletes_what_is_past_retention_and_only_that(server: Server) -> None:
    token = server.add_station("st1")
    now = utcnow()
    ages = {"old": 400, "just_past": 365.01, "just_inside": 364.99, "recent": 1}
    reports = {
        name: make_report("st1", verdict=TreeVerdict.INFECTED, finished_at=now - timedelta(days=d))
        for name, d in ages.items()
    }
    for report in reports.values():
        answer = await server.client.post(
            "/api/v1/reports", content=body(report), headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 201
    assert retention.purge(server.db, 0, now=now) == 0  # 0 days: keep everything
    assert retention.purge(server.db, 365, now=now, batch=1) == 2
    with server.db.read() as session:
        left = set(session.scalars(select(StoredReport.report_id)).all())
        findings = session.scalar(select(func.count()).select_from(StoredFinding))
    assert left == {reports["just_inside"].report_id, reports["recent"].report_id}
    assert findings == 2  # the purged reports' findings went with them
    assert retention.purge(server.db, 365, now=now) == 0  # idempotent


def kiosk(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "kiosk", "server", "--config", str(config), *args],
        capture_output=True, text=True, input=stdin, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_command_line_creates_stations_and_users_and_purges(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    config = write_config(tmp_path / "kiosk.toml", url)
    added = kiosk(config, "station", "add", "renoir-1", "--name", "École Renoir — entrée",
                  "--school", "École Renoir")  # fmt: skip
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("sbk_") and "shown only once" in added.stderr
    listed = kiosk(config, "station", "list")
    assert "renoir-1\tactive\tÉcole Renoir — entrée" in listed.stdout
    assert token not in listed.stdout
    assert kiosk(config, "station", "add", "bad id!").returncode == 2
    user = kiosk(config, "user", "add", "claire", "--password-stdin", stdin="long enough pw\n")
    assert user.returncode == 0, user.stderr
    assert kiosk(config, "user", "add", "bob", "--password-stdin", stdin="short\n").returncode == 2
    assert "claire\tactive" in kiosk(config, "user", "list").stdout
    purged = kiosk(config, "purge")
    assert purged.returncode == 0 and "0 reports older than 365 days deleted" in purged.stdout


@pytest.mark.slow
async def test_a_token_from_the_command_line_works_and_stops_working_once_revoked(
    tmp_path: Path,
) -> None:
    from kiosk.server.app import create_app
    from tests.server.conftest import make_config

    url = f"sqlite:///{tmp_path}/s.db"
    config = write_config(tmp_path / "kiosk.toml", url)
    token = kiosk(config, "station", "add", "st9").stdout.strip()
    app = create_app(make_config(url), background=False)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        first = await client.post(
            "/api/v1/reports", content=body(make_report("st9")), headers=headers
        )
        assert first.status_code == 201
        assert kiosk(config, "station", "revoke", "st9").returncode == 0
        after = await client.post(
            "/api/v1/reports", content=body(make_report("st9")), headers=headers
        )
        assert after.status_code == 401
        renewed = kiosk(config, "station", "add", "st9").stdout.strip()
        again = await client.post(
            "/api/v1/reports",
            content=body(make_report("st9")),
            headers={"Authorization": f"Bearer {renewed}"},
        )
        assert again.status_code == 201


def test_migrations_build_exactly_the_tables(database_url: str) -> None:
    db = Database(database_url)
    migrate.upgrade(db)
    migrate.upgrade(db)  # a second run (another process starting) changes nothing
    assert migrate.current(db) == migrate.head()
    with db.engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )
    db.dispose()
    assert diff == []


def test_a_database_of_the_first_schema_is_upgraded_with_its_reports_and_back(
    database_url: str,
) -> None:
    from alembic import command
    from sqlalchemy import insert

    from kiosk.server.handling import to_handle
    from kiosk.server.tables import Station
    from tests.server.support import make_report as report_of

    db = Database(database_url)
    migrate.upgrade(db, "0001")
    report = report_of("st1", verdict=TreeVerdict.INFECTED)
    now = utcnow()
    with db.engine.begin() as connection:  # only the columns revision 0001 has
        connection.execute(
            insert(Station.__table__).values(
                id="st1", name="st1", school="", location="", created_at=now, problems=""
            )
        )
        connection.execute(
            insert(StoredReport.__table__).values(
                report_id=report.report_id, scan_code=report.scan_code, station_id="st1",
                verdict="infected", started_at=report.started_at, finished_at=report.finished_at,
                received_at=now, day=report.finished_at.date(), files_total=1, bytes_total=1,
                findings_total=1, threats_total=1, document="{}",
            )
        )  # fmt: skip
    migrate.upgrade(db)
    assert migrate.current(db) == migrate.head()
    with db.read() as session:
        assert to_handle(session) == {"infected": 1}
        stored = session.scalar(select(StoredReport))
        assert stored is not None and stored.handled_at is None
    with db.engine.connect() as connection:
        command.downgrade(migrate.alembic_config(connection), "0001")
        connection.commit()
    assert migrate.current(db) == "0001"
    migrate.upgrade(db)
    with db.read() as session:
        assert to_handle(session) == {"infected": 1}
    db.dispose()
