"""Scan a whole tree and answer for it: fail closed.

`Scanner.scan(root)` runs the pre-flight, counts the tree (for progress totals, when progress is
watched) in a thread while it walks it again, opening each regular file itself, and gives each
open file to the pipeline (`pipeline.py`), which sends its descriptor to clamd on one pipelined
session, applies the file-type policy, and hashes the files that are not clean. The tree is
`clean` only when every regular file enumerated got an explicit OK; everything else folds into
infected > suspicious > incomplete > error.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime

from kiosk import __version__
from kiosk.config import Config
from kiosk.errors import EngineError
from kiosk.models import (
    EngineInfo,
    FileVerdict,
    Finding,
    Reason,
    Report,
    TreeVerdict,
    new_report_id,
    tree_verdict,
    utcnow,
)
from kiosk.names import escape_name
from kiosk.scan.engine import Engine
from kiosk.scan.pipeline import Pipeline
from kiosk.scan.policy import FilePolicy
from kiosk.scan.tally import FileRecord, Progress, ProgressCallback, Tally
from kiosk.scan.walker import Entry, Kind, Totals, Walker, open_root, raise_fd_limit

__all__ = ["Progress", "ProgressCallback", "Scanner"]


def _skipped(entry: Entry) -> Finding:
    path = escape_name(entry.path)
    if entry.kind is Kind.SYMLINK:
        return Finding(path, FileVerdict.SKIPPED, reason=Reason.SYMLINK)
    if entry.kind is Kind.SPECIAL:
        return Finding(path, FileVerdict.SKIPPED, reason=Reason.SPECIAL_FILE)
    if entry.kind is Kind.TOO_DEEP:
        return Finding(path, FileVerdict.UNVERIFIABLE, reason=Reason.TOO_DEEP)
    if entry.kind is Kind.OTHER_FS:
        return Finding(path, FileVerdict.UNVERIFIABLE, reason=Reason.NOT_SCANNED, detail="mount")
    return Finding(path, FileVerdict.ERROR, reason=Reason.READ_ERROR, detail=entry.detail)


class Scanner:
    """Scans trees with one engine, one policy and a pool of worker threads."""

    def __init__(self, config: Config, engine: Engine | None = None) -> None:
        self.config = config
        self.engine = engine or Engine(
            config.clamd, config.signatures, file_timeout=config.scan.file_timeout
        )
        self.policy = FilePolicy(config.policy)
        # Files in flight on the session: deep enough that clamd's threads never run dry while
        # this process waits for a core on a busy machine (190 beat 64 on 20,000 small files).
        # Past clamd's MaxQueue, clamd leaves the rest in the socket until it has room, as with
        # clamdscan, which has no window at all. Large files are bounded by bytes too.
        self.workers = config.scan.workers or 190

    def preflight(self) -> EngineInfo:
        """Check the engine (PING, VERSION, canary, signature age); raise EngineError if unfit."""
        return self.engine.preflight()

    def scan(
        self,
        root: str | bytes | os.PathLike[str],
        *,
        report_id: str | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        records: list[FileRecord] | None = None,
    ) -> Report:
        """Scan the tree at *root* and return its report; blocking; never raises for the tree.

        *on_progress* is called from worker threads (keep it cheap and thread-safe), at most every
        50 ms and once at the end. Setting *cancel* stops the scan soon: the verdict is then
        `incomplete` (reason `cancelled`) unless a threat was already found. When *records* is a
        list, every regular file is hashed and appended to it (names of clean files included: for
        IT's own use at a shell, never for a report).
        """
        report_id = report_id or new_report_id()
        cancel = cancel or threading.Event()
        started = utcnow()
        try:
            info = self.engine.preflight()
        except EngineError as exc:
            return Report.failed(
                report_id, started, Reason(exc.reason), str(exc), None, __version__
            )
        raise_fd_limit()
        try:
            root_fd = open_root(root)
        except OSError as exc:
            return Report.failed(
                report_id, started, Reason.UNREADABLE, exc.strerror, info, __version__
            )
        try:
            return self._scan_root(root_fd, report_id, started, info, on_progress, cancel, records)
        except Exception as exc:  # a bug of ours ends as an error verdict: never green, no crash
            detail = f"internal error: {exc!r}"[:500]
            return Report.failed(report_id, started, Reason.SCAN_ERRORS, detail, info, __version__)
        finally:
            os.close(root_fd)

    def _walker(self, root_fd: int, cancel: threading.Event) -> Walker:
        """A walk of the tree at *root_fd* within the configured limits."""
        limits = self.config.scan
        return Walker(
            root_fd, max_depth=limits.max_depth, max_entries=limits.max_entries, cancel=cancel
        )

    def _count_beside(
        self, root_fd: int, tally: Tally, cancel: threading.Event
    ) -> threading.Thread:
        """Count the tree for the progress totals in a thread, while the scan already runs.

        Waiting for the count left clamd's cores idle at the start (0.04 s on 3,000 files,
        0.12 s on 20,000). The count walks a descriptor of its own: two threads listing through
        one descriptor would share its offset and each miss entries.
        """
        count_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=root_fd)

        def count() -> None:
            try:
                totals = self._walker(count_fd, cancel).count()
            except Exception:  # only progress depends on it: shown against what was seen
                totals = Totals(files=0, bytes=0, entries=0)
            finally:
                os.close(count_fd)
            tally.set_totals(totals.files, totals.bytes)

        thread = threading.Thread(target=count, name="kiosk-count", daemon=True)
        thread.start()
        return thread

    def _scan_root(
        self,
        root_fd: int,
        report_id: str,
        started: datetime,
        info: EngineInfo,
        on_progress: ProgressCallback | None,
        cancel: threading.Event,
        records: list[FileRecord] | None,
    ) -> Report:
        limits = self.config.scan
        walker = self._walker(root_fd, cancel)
        tally = Tally(on_progress, records)
        tally.start()
        # The count only feeds progress: with nobody watching (`kiosk scan --json` in a script,
        # the bench) it would walk the whole tree again on the cores clamd needs (23 ms of CPU
        # on 3,000 files).
        counter = self._count_beside(root_fd, tally, cancel) if on_progress else None
        pipeline = Pipeline(
            self.config,
            self.policy,
            self.engine,
            tally,
            window=self.workers,
            hash_all=records is not None,
        )
        root_broken = False
        entries = walker.walk()
        try:
            for entry in entries:
                if entry.kind is not Kind.REGULAR:
                    if entry.path == b"":
                        root_broken = True
                    tally.add(_skipped(entry), regular=False, size=0, path=None)
                    continue
                assert entry.fd is not None
                if cancel.is_set():
                    os.close(entry.fd)
                    break
                try:
                    tally.saw(entry.size)
                except BaseException:
                    os.close(entry.fd)  # not the pipeline's yet
                    raise
                pipeline.submit(entry)
        finally:
            entries.close()  # its directory descriptors, now rather than when collected
            try:
                pipeline.drain()
            finally:
                pipeline.session.close()  # drained or not, no reader thread is left behind
                if counter is not None:
                    counter.join()
        finished = utcnow()
        findings = sorted(tally.findings, key=lambda f: (f.rank, f.path))
        verdict, reason = tree_verdict(findings)
        detail = None
        complete = not (cancel.is_set() or walker.truncated)
        if verdict not in (TreeVerdict.INFECTED, TreeVerdict.SUSPICIOUS):
            if root_broken:
                verdict, reason = TreeVerdict.ERROR, Reason.UNREADABLE
            elif cancel.is_set():
                verdict, reason = TreeVerdict.INCOMPLETE, Reason.CANCELLED
            elif walker.truncated:
                verdict, reason = TreeVerdict.INCOMPLETE, Reason.NOT_SCANNED
                detail = f"more than {limits.max_entries} entries"
            elif tally.engine_lost:
                verdict, reason = TreeVerdict.INCOMPLETE, Reason.ENGINE_LOST
            elif verdict is TreeVerdict.CLEAN and tally.ok_files != tally.files_seen:
                # Belt and braces: green needs one explicit OK per enumerated regular file.
                verdict, reason = TreeVerdict.INCOMPLETE, Reason.SCAN_ERRORS
        return Report(
            report_id=report_id,
            verdict=verdict,
            reason=reason,
            detail=detail,
            started_at=started,
            finished_at=finished,
            files_total=tally.files_seen if complete else max(tally.files_seen, tally.files_total),
            bytes_total=tally.bytes_seen if complete else max(tally.bytes_seen, tally.bytes_total),
            counts={str(k): v for k, v in sorted(tally.counts.items())},
            findings=tuple(findings[: limits.max_findings]),
            engine=info,
            software_version=__version__,
            # The worst come first, so a threat is never among those left out; the counts stay
            # whole. Past the server's limits a report could never be delivered.
            extra=(
                {"findings_omitted": len(findings) - limits.max_findings}
                if len(findings) > limits.max_findings
                else {}
            ),
        )
