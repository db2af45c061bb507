"""Group commit: one writer thread per process stores the reports waiting, many per transaction.

A report is answered only once the transaction holding it has committed, exactly as when each had
its own: what changes is that a burst of reports from many stations costs one BEGIN, one COMMIT
and one hold of SQLite's write lock, instead of one each (and no thread waits on that lock).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from fastapi import HTTPException, status

from kiosk.server.db import Database
from kiosk.server.ingest import Outcome, store_reports
from kiosk.server.schemas import ReportIn
from kiosk.server.security import stations_for_tokens

log = logging.getLogger(__name__)
MAX_BATCH = 64

Result = Outcome | BaseException


@dataclass(frozen=True)
class _Job:
    token: str
    report: ReportIn
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Outcome]


def _settle(future: asyncio.Future[Outcome], result: Result) -> None:
    if future.done():  # the request went away meanwhile (its report may be stored: a retry
        return  # of it is then a duplicate, which is a success)
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class ReportWriter:
    """Queue of reports to store; its thread starts with the first report (never at import)."""

    def __init__(self, db: Database, tz: ZoneInfo, max_batch: int = MAX_BATCH) -> None:
        self.db = db
        self.tz = tz
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    async def store(self, token: str, report: ReportIn) -> Outcome:
        """Store one report as the station of *token*; raise the HTTP error a refusal is."""
        self._ensure_thread()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._queue.put(_Job(token, report, loop, future))
        return await future

    def close(self, timeout: float = 30.0) -> None:
        """Let the writer finish what is queued, then stop it."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="report-writer", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                batch.append(more)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[_Job]) -> None:
        try:
            results = self._store(batch)
        except Exception as exc:  # the edge of the writer thread: every waiting request is told
            if len(batch) == 1:
                results = [exc]
            else:
                # One report broke the shared transaction (nothing of it was kept): store each
                # on its own, so that the others are not refused with it.
                log.warning("a batch of %d reports failed; storing them one by one", len(batch))
                results = []
                for job in batch:
                    try:
                        results.extend(self._store([job]))
                    except Exception as single:
                        results.append(single)
        for job, result in zip(batch, results, strict=True):
            job.loop.call_soon_threadsafe(_settle, job.future, result)

    def _store(self, batch: list[_Job]) -> list[Result]:
        results: list[Result | None] = [None] * len(batch)
        accepted: list[int] = []
        with self.db.transaction() as connection:
            stations = stations_for_tokens(connection, {job.token for job in batch})
            for i, job in enumerate(batch):
                station = stations.get(job.token)
                if station is None:
                    results[i] = HTTPException(
                        status.HTTP_401_UNAUTHORIZED,
                        "unknown or revoked station token",
                        headers={"WWW-Authenticate": "Bearer"},
                    )
                elif job.report.station_id != station:
                    results[i] = HTTPException(
                        status.HTTP_403_FORBIDDEN, "a station may only send its own reports"
                    )
                else:
                    accepted.append(i)
            outcomes = store_reports(
                connection,
                [(batch[i].report.station_id, batch[i].report) for i in accepted],
                self.tz,
            )
        for i, outcome in zip(accepted, outcomes, strict=True):
            results[i] = (
                HTTPException(status.HTTP_409_CONFLICT, "this report_id belongs to another station")
                if outcome.conflict
                else outcome
            )
        return [r for r in results if r is not None]
