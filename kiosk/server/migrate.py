"""Schema migrations with Alembic, serialised across server processes."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from kiosk.server.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: every server process asks PostgreSQL for the same advisory lock.
_PG_LOCK = 0x5B1A_0C4E


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Return Alembic's configuration, pointed at our scripts (no alembic.ini needed)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to *revision*; several processes may call this at once."""
    with database.engine.connect() as connection:
        if database.is_sqlite:
            # One SQLite file: the write lock of BEGIN IMMEDIATE serialises migrators.
            connection = connection.execution_options(sqlite_immediate=True)
            command.upgrade(alembic_config(connection), revision)
            connection.commit()
        else:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK})
            try:
                command.upgrade(alembic_config(connection), revision)
                connection.commit()
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK})
                connection.commit()


def current(database: Database) -> str | None:
    """Return the revision the database is at (None when empty)."""
    with database.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str | None:
    """Return the newest revision the code knows."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
