"""Refused requests, health history, taking threats and alerts in hand, the audit log;
covering indexes for the threats page.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TO_HANDLE_SQL = "handled_at IS NULL AND verdict IN ('infected', 'suspicious')"


def upgrade() -> None:
    """Apply this revision (nullable columns only: instant on big tables, both backends)."""
    op.add_column("reports", sa.Column("handled_at", sa.DateTime(), nullable=True))
    op.add_column("reports", sa.Column("handled_by", sa.String(length=64), nullable=True))
    op.add_column("reports", sa.Column("handled_note", sa.String(length=500), nullable=True))
    for where, name in ((TO_HANDLE_SQL, "ix_reports_to_handle"), ("handled_at IS NOT NULL", "ix_reports_handled")):
        op.create_index(
            name, "reports", ["finished_at", "pk"], unique=False,
            sqlite_where=sa.text(where), postgresql_where=sa.text(where),
        )  # fmt: skip
    op.add_column("stations", sa.Column("alert_ack_problems", sa.String(length=500), nullable=True))
    op.add_column("stations", sa.Column("alert_ack_at", sa.DateTime(), nullable=True))
    op.add_column("stations", sa.Column("alert_ack_by", sa.String(length=64), nullable=True))
    op.add_column("stations", sa.Column("alert_ack_note", sa.String(length=500), nullable=True))
    op.create_table(
        "refusals",
        sa.Column("pk", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("report_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_refusals")),
    )
    op.create_index("ix_refusals_station", "refusals", ["station_id", "pk"], unique=False)
    op.create_index("ix_refusals_at", "refusals", ["at"], unique=False)
    op.create_table(
        "refusal_counts",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("first_at", sa.DateTime(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_refusal_counts")),
    )
    op.create_table(
        "health_history",
        sa.Column("pk", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("silence", sa.Integer(), nullable=True),
        sa.Column("engine_ok", sa.Boolean(), nullable=True),
        sa.Column("signatures_version", sa.BigInteger(), nullable=True),
        sa.Column("signatures_date", sa.DateTime(), nullable=True),
        sa.Column("selftest_ok", sa.Boolean(), nullable=True),
        sa.Column("backlog", sa.Integer(), nullable=True),
        sa.Column("software_version", sa.String(length=50), nullable=True),
        sa.Column("problems", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_health_history")),
    )
    op.create_index("ix_health_history_station", "health_history", ["station_id", "pk"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("pk", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=100), nullable=False),
        sa.Column("comment", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)
    op.drop_index("ix_findings_threat", table_name="findings")
    op.create_index(
        "ix_findings_threat", "findings",
        ["threat", "finished_at", "station_id", "device_serial"], unique=False,
    )  # fmt: skip
    op.drop_index("ix_findings_sha256", table_name="findings")
    op.create_index(
        "ix_findings_sha256", "findings",
        ["sha256", "finished_at", "station_id", "device_serial", "threat", "verdict"], unique=False,
    )  # fmt: skip


def downgrade() -> None:
    """Undo this revision."""
    op.drop_index("ix_findings_sha256", table_name="findings")
    op.create_index("ix_findings_sha256", "findings", ["sha256", "finished_at"], unique=False)
    op.drop_index("ix_findings_threat", table_name="findings")
    op.create_index("ix_findings_threat", "findings", ["threat", "finished_at"], unique=False)
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_health_history_station", table_name="health_history")
    op.drop_table("health_history")
    op.drop_table("refusal_counts")
    op.drop_index("ix_refusals_at", table_name="refusals")
    op.drop_index("ix_refusals_station", table_name="refusals")
    op.drop_table("refusals")
    op.drop_index("ix_reports_handled", table_name="reports")
    op.drop_index("ix_reports_to_handle", table_name="reports")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy would drop `stations`,
    # which the reports' foreign key forbids, and copy millions of reports.
    for column in ("alert_ack_note", "alert_ack_by", "alert_ack_at", "alert_ack_problems"):
        op.drop_column("stations", column)
    for column in ("handled_note", "handled_by", "handled_at"):
        op.drop_column("reports", column)
