"""Initial schema: stations, reports, findings, users, web sessions, login failures.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('login_failures',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('first_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_failures'))
    )
    op.create_table('stations',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('school', sa.String(length=200), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(), nullable=True),
    sa.Column('last_report_at', sa.DateTime(), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
    sa.Column('health_at', sa.DateTime(), nullable=True),
    sa.Column('engine_ok', sa.Boolean(), nullable=True),
    sa.Column('engine_version', sa.String(length=100), nullable=True),
    sa.Column('signatures_version', sa.BigInteger(), nullable=True),
    sa.Column('signatures_date', sa.DateTime(), nullable=True),
    sa.Column('selftest_ok', sa.Boolean(), nullable=True),
    sa.Column('selftest_at', sa.DateTime(), nullable=True),
    sa.Column('backlog', sa.Integer(), nullable=True),
    sa.Column('software_version', sa.String(length=50), nullable=True),
    sa.Column('problems', sa.String(length=500), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_stations_token_hash'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('full_name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('reports',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('report_id', sa.String(length=36), nullable=False),
    sa.Column('scan_code', sa.String(length=9), nullable=False),
    sa.Column('station_id', sa.String(length=64), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('files_total', sa.BigInteger(), nullable=False),
    sa.Column('bytes_total', sa.BigInteger(), nullable=False),
    sa.Column('findings_total', sa.Integer(), nullable=False),
    sa.Column('threats_total', sa.Integer(), nullable=False),
    sa.Column('first_threat', sa.String(length=200), nullable=True),
    sa.Column('first_problem', sa.String(length=32), nullable=True),
    sa.Column('engine_version', sa.String(length=100), nullable=True),
    sa.Column('signatures_version', sa.BigInteger(), nullable=True),
    sa.Column('signatures_date', sa.DateTime(), nullable=True),
    sa.Column('software_version', sa.String(length=50), nullable=True),
    sa.Column('device_vendor', sa.String(length=200), nullable=True),
    sa.Column('device_model', sa.String(length=200), nullable=True),
    sa.Column('device_serial', sa.String(length=200), nullable=True),
    sa.Column('device_size', sa.BigInteger(), nullable=True),
    sa.Column('device_fs', sa.String(length=50), nullable=True),
    sa.Column('device_label', sa.String(length=200), nullable=True),
    sa.Column('document', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_reports_station_id_stations')),
    sa.PrimaryKeyConstraint('pk', name=op.f('pk_reports')),
    sa.UniqueConstraint('report_id', name=op.f('uq_reports_report_id'))
    )
    op.create_index('ix_reports_day_verdict', 'reports', ['day', 'verdict'], unique=False)
    op.create_index('ix_reports_finished', 'reports', ['finished_at', 'pk'], unique=False)
    op.create_index('ix_reports_scan_code', 'reports', ['scan_code'], unique=False)
    op.create_index('ix_reports_serial', 'reports', ['device_serial', 'finished_at'], unique=False)
    op.create_index('ix_reports_station_finished', 'reports', ['station_id', 'finished_at', 'pk'], unique=False)
    op.create_index('ix_reports_verdict_finished', 'reports', ['verdict', 'finished_at', 'pk'], unique=False)
    op.create_table('web_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_web_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_web_sessions'))
    )
    op.create_index('ix_web_sessions_expires_at', 'web_sessions', ['expires_at'], unique=False)
    op.create_table('findings',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('report_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('threat', sa.String(length=200), nullable=True),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('size', sa.BigInteger(), nullable=True),
    sa.Column('station_id', sa.String(length=64), nullable=False),
    sa.Column('device_serial', sa.String(length=200), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['report_pk'], ['reports.pk'], name=op.f('fk_findings_report_pk_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk', name=op.f('pk_findings'))
    )
    op.create_index('ix_findings_report', 'findings', ['report_pk'], unique=False)
    op.create_index('ix_findings_sha256', 'findings', ['sha256', 'finished_at'], unique=False)
    op.create_index('ix_findings_threat', 'findings', ['threat', 'finished_at'], unique=False)


def downgrade() -> None:
    """Undo this revision."""
    op.drop_index('ix_findings_threat', table_name='findings')
    op.drop_index('ix_findings_sha256', table_name='findings')
    op.drop_index('ix_findings_report', table_name='findings')
    op.drop_table('findings')
    op.drop_index('ix_web_sessions_expires_at', table_name='web_sessions')
    op.drop_table('web_sessions')
    op.drop_index('ix_reports_verdict_finished', table_name='reports')
    op.drop_index('ix_reports_station_finished', table_name='reports')
    op.drop_index('ix_reports_serial', table_name='reports')
    op.drop_index('ix_reports_scan_code', table_name='reports')
    op.drop_index('ix_reports_finished', table_name='reports')
    op.drop_index('ix_reports_day_verdict', table_name='reports')
    op.drop_table('reports')
    op.drop_table('users')
    op.drop_table('stations')
    op.drop_table('login_failures')
