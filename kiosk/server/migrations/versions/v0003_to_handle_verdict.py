"""The to-handle partial index carries the verdict, so the dashboard's count reads it alone;
on SQLite its condition is one term (see `tables.TO_HANDLE_SQLITE`), so the planner uses it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TO_HANDLE_SQL = "handled_at IS NULL AND verdict IN ('infected', 'suspicious')"
TO_HANDLE_SQLITE = "coalesce(handled_at, verdict) IN ('infected', 'suspicious')"


def upgrade() -> None:
    """Apply this revision (the index is small: only the scans still to handle)."""
    op.drop_index("ix_reports_to_handle", table_name="reports")
    op.create_index(
        "ix_reports_to_handle", "reports", ["finished_at", "pk", "verdict"], unique=False,
        sqlite_where=sa.text(TO_HANDLE_SQLITE), postgresql_where=sa.text(TO_HANDLE_SQL),
    )  # fmt: skip


def downgrade() -> None:
    """Undo this revision."""
    op.drop_index("ix_reports_to_handle", table_name="reports")
    op.create_index(
        "ix_reports_to_handle", "reports", ["finished_at", "pk"], unique=False,
        sqlite_where=sa.text(TO_HANDLE_SQL), postgresql_where=sa.text(TO_HANDLE_SQL),
    )  # fmt: skip
