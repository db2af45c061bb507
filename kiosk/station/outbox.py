"""The durable report store: a SQLite outbox that the station writes and the shipper drains.

One row per stick session, keyed by the report UUID made when the session starts. `begin` records
a session as soon as it starts; `commit` stores the finished report (durably, before the verdict is
shown); a row still `begun` when the station starts again is a session that never finished (power
cut, SIGKILL): `recover` turns it into an `incomplete` / `interrupted` report. The shipper, in
another process, reads `pending()` and calls `acknowledge()` once the server confirmed.

WAL and `synchronous=FULL`: a committed report survives a power cut; readers in another process do
not block the writer. A full disk is an `OutboxError` (the station then refuses new sessions).
"""

from __future__ import annotations

import errno
import grp
import json
import os
import sqlite3
import threading
from datetime import datetime
from pathlib import Path

from kiosk.config import Config
from kiosk.errors import OutboxError
from kiosk.models import DeviceInfo, Reason, Report, TreeVerdict, iso, parse_iso, utcnow

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id   TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL CHECK (state IN ('begun', 'committed')),
    station_id  TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    device      TEXT,
    body        TEXT,
    committed_at TEXT
);
CREATE INDEX IF NOT EXISTS reports_state ON reports (state, seq);
"""

BEGUN = "begun"
COMMITTED = "committed"


def _is_full(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "full" in str(exc).lower()


def outbox_path(config: Config) -> Path:
    """Return the outbox path: `shipper.outbox_file`, else `<station.data_dir>/outbox.db`."""
    if config.shipper.outbox_file:
        return Path(config.shipper.outbox_file)
    return Path(config.station.data_dir) / "outbox.db"


def _share(path: Path, group: str) -> None:
    """Create the database file read-write for *group* (the shipper's), when that group exists."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o660)
    try:
        os.fchown(fd, -1, gid)
        os.fchmod(fd, 0o660)  # SQLite gives its -wal and -shm files the same owner and mode
    finally:
        os.close(fd)


class Outbox:
    """The SQLite outbox; safe to share between threads of one process and between processes."""

    def __init__(self, path: Path, *, group: str | None = None) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if group:
                _share(self.path, group)
            # isolation_level=None: we open our own transactions (BEGIN IMMEDIATE) so that a
            # write is one short transaction, committed with an fsync before we return.
            self._db = sqlite3.connect(
                str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=30000")
            # A small page cache: the daemon runs for months, its memory must stay flat.
            self._db.execute("PRAGMA cache_size=-512")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise self._error("cannot open the outbox", exc) from exc
        except OSError as exc:
            raise OutboxError(f"{self.path}: cannot open the outbox: {exc}") from exc

    def _error(self, what: str, exc: sqlite3.Error | OSError) -> OutboxError:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            return OutboxError(
                f"{self.path}: {what}: disk full", hint="free space on the data disk"
            )
        if isinstance(exc, sqlite3.Error) and _is_full(exc):
            return OutboxError(
                f"{self.path}: {what}: disk full", hint="free space on the data disk"
            )
        return OutboxError(f"{self.path}: {what}: {exc}")

    def _write(self, what: str, sql: str, params: tuple[object, ...]) -> int:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    cursor = self._db.execute(sql, params)
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as exc:
                raise self._error(what, exc) from exc
            return cursor.rowcount

    def begin(
        self, report_id: str, started_at: datetime, device: DeviceInfo | None, station_id: str
    ) -> None:
        """Record that a session started (so that a crash before `commit` is found later)."""
        device_json = json.dumps(device.to_dict()) if device else None
        self._write(
            "cannot record the session",
            "INSERT INTO reports (report_id, state, station_id, started_at, device) "
            "VALUES (?, 'begun', ?, ?, ?) ON CONFLICT (report_id) DO NOTHING",
            (report_id, station_id, iso(started_at), device_json),
        )

    def commit(self, report: Report) -> None:
        """Store the finished report durably (fsync'd before this returns)."""
        body = json.dumps(report.to_dict(), ensure_ascii=False, separators=(",", ":"))
        device_json = json.dumps(report.device.to_dict()) if report.device else None
        self._write(
            "cannot store the report",
            "INSERT INTO reports (report_id, state, station_id, started_at, device, body, "
            "committed_at) VALUES (?, 'committed', ?, ?, ?, ?, ?) "
            "ON CONFLICT (report_id) DO UPDATE SET state = 'committed', body = excluded.body, "
            "device = excluded.device, committed_at = excluded.committed_at",
            (
                report.report_id,
                report.station_id or "",
                iso(report.started_at),
                device_json,
                body,
                iso(utcnow()),
            ),
        )

    def recover(self) -> list[Report]:
        """Commit every begun-but-never-committed session as incomplete/interrupted; return them."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT report_id, station_id, started_at, device FROM reports "
                    "WHERE state = 'begun' ORDER BY seq"
                ).fetchall()
            except sqlite3.Error as exc:
                raise self._error("cannot read the outbox", exc) from exc
        recovered = []
        now = utcnow()
        for report_id, station_id, started_text, device_json in rows:
            started = parse_iso(started_text) or now
            report = Report(
                report_id=report_id,
                verdict=TreeVerdict.INCOMPLETE,
                reason=Reason.INTERRUPTED,
                started_at=started,
                finished_at=now,
                files_total=0,
                bytes_total=0,
                counts={},
                findings=(),
                engine=None,
                detail="the station stopped before this session finished",
                station_id=station_id or None,
                device=DeviceInfo.from_dict(json.loads(device_json)) if device_json else None,
            )
            self.commit(report)
            recovered.append(report)
        return recovered

    def pending(self, limit: int = 100) -> list[Report]:
        """Return committed reports not yet acknowledged by the server, oldest first."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT body FROM reports WHERE state = 'committed' ORDER BY seq LIMIT ?",
                    (limit,),
                ).fetchall()
            except sqlite3.Error as exc:
                raise self._error("cannot read the outbox", exc) from exc
        return [Report.from_dict(json.loads(body)) for (body,) in rows]

    def get(self, report_id: str) -> Report | None:
        """Return one committed report (None when unknown, begun only, or acknowledged)."""
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT body FROM reports WHERE report_id = ? AND state = 'committed'",
                    (report_id,),
                ).fetchone()
            except sqlite3.Error as exc:
                raise self._error("cannot read the outbox", exc) from exc
        return None if row is None else Report.from_dict(json.loads(row[0]))

    def acknowledge(self, report_id: str) -> None:
        """Forget a report the server confirmed (only a committed one: a begun row stays)."""
        self._write(
            "cannot acknowledge",
            "DELETE FROM reports WHERE report_id = ? AND state = 'committed'",
            (report_id,),
        )

    def backlog(self) -> int:
        """Return how many committed reports wait for delivery."""
        with self._lock:
            try:
                (count,) = self._db.execute(
                    "SELECT count(*) FROM reports WHERE state = 'committed'"
                ).fetchone()
            except sqlite3.Error as exc:
                raise self._error("cannot read the outbox", exc) from exc
        return int(count)

    def oldest_pending(self) -> datetime | None:
        """Return when the oldest report still waiting for delivery was committed (None: none)."""
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT committed_at FROM reports WHERE state = 'committed' "
                    "ORDER BY seq LIMIT 1"
                ).fetchone()
            except sqlite3.Error as exc:
                raise self._error("cannot read the outbox", exc) from exc
        return None if row is None else parse_iso(row[0])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
