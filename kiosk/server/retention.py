"""Retention: what is older than the town's period is deleted daily, and only that.

Reports and their findings, refused requests, health history and the audit log."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete, select

from kiosk.models import utcnow
from kiosk.server import history, refusals
from kiosk.server.db import Database
from kiosk.server.security import purge_expired
from kiosk.server.tables import AuditEntry, StoredFinding, StoredReport

log = logging.getLogger(__name__)
DAY = 86_400.0


def cutoff(retention_days: int, now: datetime | None = None) -> datetime:
    """Return the moment before which a report is past retention."""
    return (now or utcnow()) - timedelta(days=retention_days)


def purge(
    db: Database, retention_days: int, now: datetime | None = None, batch: int = 5_000
) -> int:
    """Delete what is older than the cutoff (0 days keeps everything); return how many reports."""
    if retention_days <= 0:
        return 0
    limit = cutoff(retention_days, now)
    total = 0
    while True:
        # Small batches: each transaction holds the (SQLite) write lock only briefly.
        with db.write() as session:
            pks = session.scalars(
                select(StoredReport.pk).where(StoredReport.finished_at < limit).limit(batch)
            ).all()
            if not pks:
                break
            session.execute(delete(StoredFinding).where(StoredFinding.report_pk.in_(pks)))
            session.execute(delete(StoredReport).where(StoredReport.pk.in_(pks)))
            total += len(pks)
    with db.write() as session:
        # What IT saw beside the reports goes with them: refusals, health history, audit log.
        refusals.purge(session, limit)
        history.purge(session, limit)
        session.execute(delete(AuditEntry).where(AuditEntry.at < limit))
    return total


def purge_logins(db: Database, window: float, now: datetime | None = None) -> None:
    """Delete expired web sessions and stale login failure counters."""
    with db.write() as session:
        purge_expired(session, now or utcnow(), window)


async def daily(db: Database, retention_days: int, login_window: float) -> None:
    """Run the purge now and then every day, for as long as the server runs."""
    while True:
        try:
            deleted = await run_in_threadpool(purge, db, retention_days)
            await run_in_threadpool(purge_logins, db, login_window)
            log.info("retention: %d reports older than %d days deleted", deleted, retention_days)
        except Exception:  # the edge of a background task: log, and try again tomorrow
            log.exception("retention: purge failed")
        await asyncio.sleep(DAY)
