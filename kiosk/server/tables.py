"""The server's tables (SQLAlchemy 2 declarative); Alembic migrations mirror them exactly."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The verdicts IT must act on, and the condition of a scan still waiting for IT.
TO_HANDLE = ("infected", "suspicious")
TO_HANDLE_SQL = "handled_at IS NULL AND verdict IN ('infected', 'suspicious')"
# The same condition for SQLite, as one term that no other index can serve: its planner would
# rather search `verdict` (and read every such row for `handled_at`) than scan the partial index
# that holds exactly the rows wanted. (handled_at, when set, is a date, never a verdict.)
TO_HANDLE_SQLITE = "coalesce(handled_at, verdict) IN ('infected', 'suspicious')"


def to_handle_sql(dialect: str) -> str:
    """The to-handle condition as the partial index of *dialect* states it."""
    return TO_HANDLE_SQLITE if dialect == "sqlite" else TO_HANDLE_SQL


# A BIGINT primary key that is still SQLite's rowid (only INTEGER PRIMARY KEY is).
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC on both backends (sortable text on SQLite), read back aware."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Root of the server's tables."""

    metadata = MetaData(naming_convention=NAMING)


class Station(Base):
    """A kiosk: its identity, its hashed token and the health of its last heartbeat."""

    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    school: Mapped[str] = mapped_column(String(200), default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_report_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    health_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    engine_ok: Mapped[bool | None] = mapped_column(Boolean())
    engine_version: Mapped[str | None] = mapped_column(String(100))
    signatures_version: Mapped[int | None] = mapped_column(BigInteger())
    signatures_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    selftest_ok: Mapped[bool | None] = mapped_column(Boolean())
    selftest_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    backlog: Mapped[int | None] = mapped_column(Integer())
    software_version: Mapped[str | None] = mapped_column(String(50))
    problems: Mapped[str] = mapped_column(String(500), default="")  # comma-separated codes
    # IT's "taken in hand" of the station's alert: it holds while the problems stay these.
    alert_ack_problems: Mapped[str | None] = mapped_column(String(500))
    alert_ack_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    alert_ack_by: Mapped[str | None] = mapped_column(String(64))
    alert_ack_note: Mapped[str | None] = mapped_column(String(500))


class StoredReport(Base):
    """One report, as received (the JSON document) plus the columns the pages filter on."""

    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_finished", "finished_at", "pk"),
        Index("ix_reports_station_finished", "station_id", "finished_at", "pk"),
        Index("ix_reports_verdict_finished", "verdict", "finished_at", "pk"),
        Index("ix_reports_day_verdict", "day", "verdict"),
        Index("ix_reports_serial", "device_serial", "finished_at"),
        Index("ix_reports_scan_code", "scan_code"),
        # Small partial indexes: the threats still to handle, and those handled.
        Index(
            "ix_reports_to_handle",
            "finished_at",
            "pk",
            "verdict",
            sqlite_where=text(TO_HANDLE_SQLITE),
            postgresql_where=text(TO_HANDLE_SQL),
        ),
        Index(
            "ix_reports_handled",
            "finished_at",
            "pk",
            sqlite_where=text("handled_at IS NOT NULL"),
            postgresql_where=text("handled_at IS NOT NULL"),
        ),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = mapped_column(String(36), unique=True)
    scan_code: Mapped[str] = mapped_column(String(9))
    station_id: Mapped[str] = mapped_column(String(64), ForeignKey("stations.id"))
    verdict: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    day: Mapped[date] = mapped_column(Date())  # finished_at's date in the server's time zone
    files_total: Mapped[int] = mapped_column(BigInteger())
    bytes_total: Mapped[int] = mapped_column(BigInteger())
    findings_total: Mapped[int] = mapped_column(Integer())
    threats_total: Mapped[int] = mapped_column(Integer())
    first_threat: Mapped[str | None] = mapped_column(String(200))
    first_problem: Mapped[str | None] = mapped_column(String(32))  # reason of the first finding
    engine_version: Mapped[str | None] = mapped_column(String(100))
    signatures_version: Mapped[int | None] = mapped_column(BigInteger())
    signatures_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    software_version: Mapped[str | None] = mapped_column(String(50))
    device_vendor: Mapped[str | None] = mapped_column(String(200))
    device_model: Mapped[str | None] = mapped_column(String(200))
    device_serial: Mapped[str | None] = mapped_column(String(200))
    device_size: Mapped[int | None] = mapped_column(BigInteger())
    device_fs: Mapped[str | None] = mapped_column(String(50))
    device_label: Mapped[str | None] = mapped_column(String(200))
    document: Mapped[str] = mapped_column(Text())  # the validated report, as JSON
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    handled_by: Mapped[str | None] = mapped_column(String(64))
    handled_note: Mapped[str | None] = mapped_column(String(500))


class StoredFinding(Base):
    """One flagged file of a report, with the columns the threats page groups by."""

    __tablename__ = "findings"
    __table_args__ = (
        Index("ix_findings_report", "report_pk"),
        # Covering the threats page's aggregates, so they read the index alone (no row visits).
        Index("ix_findings_threat", "threat", "finished_at", "station_id", "device_serial"),
        Index(
            "ix_findings_sha256",
            "sha256",
            "finished_at",
            "station_id",
            "device_serial",
            "threat",
            "verdict",
        ),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    report_pk: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"),
        ForeignKey("reports.pk", ondelete="CASCADE"),
    )
    position: Mapped[int] = mapped_column(Integer())
    path: Mapped[str] = mapped_column(Text())
    verdict: Mapped[str] = mapped_column(String(16))
    threat: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text())
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(BigInteger())
    # Copied from the report so that the threats page needs no join over millions of rows.
    station_id: Mapped[str] = mapped_column(String(64))
    device_serial: Mapped[str | None] = mapped_column(String(200))
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())


class User(Base):
    """An IT account for the web pages (created from the command line)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer(), primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    full_name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean(), default=False)


class WebSession(Base):
    """A logged-in browser: the cookie holds the secret, the table only its hash."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_expires_at", "expires_at"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer(), ForeignKey("users.id", ondelete="CASCADE"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoginFailure(Base):
    """Failed logins per key (user name or client address), shared by every server process."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer())
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Refusal(Base):
    """A request of a station that the server refused (no body kept: when, what, and why)."""

    __tablename__ = "refusals"
    __table_args__ = (
        Index("ix_refusals_station", "station_id", "pk"),
        Index("ix_refusals_at", "at"),
    )

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str | None] = mapped_column(String(64))  # None: no valid token
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(16))  # report | heartbeat
    status: Mapped[int] = mapped_column(Integer())
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(String(200))
    report_id: Mapped[str | None] = mapped_column(String(36))


class RefusalCount(Base):
    """How many requests were refused per station ("" for those without a valid token)."""

    __tablename__ = "refusal_counts"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger())
    first_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())


class HealthSample(Base):
    """A station's health when it changed, when it came back after a silence, or hourly."""

    __tablename__ = "health_history"
    __table_args__ = (Index("ix_health_history_station", "station_id", "pk"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    silence: Mapped[int | None] = mapped_column(Integer())  # seconds without a heartbeat before
    engine_ok: Mapped[bool | None] = mapped_column(Boolean())
    signatures_version: Mapped[int | None] = mapped_column(BigInteger())
    signatures_date: Mapped[datetime | None] = mapped_column(UTCDateTime())
    selftest_ok: Mapped[bool | None] = mapped_column(Boolean())
    backlog: Mapped[int | None] = mapped_column(Integer())
    software_version: Mapped[str | None] = mapped_column(String(50))
    problems: Mapped[str] = mapped_column(String(500))


class AuditEntry(Base):
    """Something an IT account did to the data (taking a threat or an alert in hand)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    pk: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(100))
    comment: Mapped[str | None] = mapped_column(String(500))
