"""Scan a whole tree and answer for it: fail closed.

`Scanner.scan(root)` runs the pre-flight, counts the tree (for progress totals), walks it again
opening each regular file itself, and hands each open file to a worker thread that hashes it,
sends its descriptor to clamd and applies the file-type policy. The tree is `clean` only when every
regular file enumerated got an explicit OK; everything else folds into infected > suspicious >
incomplete > error.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
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
from kiosk.scan.clamd import EngineReply, ReplyKind, Trouble
from kiosk.scan.engine import Engine
from kiosk.scan.policy import HEAD_SIZE, FilePolicy
from kiosk.scan.walker import Entry, Kind, Walker, open_root, raise_fd_limit

_HASH_CHUNK = 1 << 20
_PROGRESS_EVERY = 0.05  # seconds between two progress callbacks (the station throttles again)
_UNREACHABLE_LIMIT = 3  # consecutive failed connections before clamd is declared lost

ProgressCallback = Callable[["Progress"], None]


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a scan is: files and bytes done of the totals, the current file, time left."""

    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    current: str | None  # escaped path
    eta_s: float | None


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


class _Tally:
    """Counters shared by the workers, and the throttled progress callback."""

    def __init__(self, files_total: int, bytes_total: int, on_progress: ProgressCallback | None):
        self.lock = threading.Lock()
        self.files_total = files_total
        self.bytes_total = bytes_total
        self.files_seen = 0  # regular files enumerated by the scanning walk
        self.bytes_seen = 0
        self.files_done = 0
        self.bytes_done = 0
        self.ok_files = 0  # regular files with an explicit OK and no policy objection
        self.counts: Counter[str] = Counter()
        self.findings: list[Finding] = []
        self.unreachable = 0
        self.engine_lost = False
        self.on_progress = on_progress
        self.started = time.monotonic()
        self.last_emit = 0.0

    def saw(self, size: int) -> None:
        with self.lock:
            self.files_seen += 1
            self.bytes_seen += size

    def add(self, finding: Finding | None, *, regular: bool, size: int, path: str | None) -> None:
        with self.lock:
            if finding is None:
                self.counts[FileVerdict.CLEAN] += 1
                self.ok_files += 1
            else:
                self.counts[finding.verdict] += 1
                self.findings.append(finding)
            if regular:
                self.files_done += 1
                self.bytes_done += size
                self._emit(path)

    def _emit(self, current: str | None, force: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        last = self.files_done >= self.files_total
        if not (force or last) and now - self.last_emit < _PROGRESS_EVERY:
            return
        self.last_emit = now
        total_files = max(self.files_total, self.files_done)
        total_bytes = max(self.bytes_total, self.bytes_done)
        self.on_progress(
            Progress(
                files_done=self.files_done,
                files_total=total_files,
                bytes_done=self.bytes_done,
                bytes_total=total_bytes,
                current=current,
                eta_s=self._eta(now, total_files, total_bytes),
            )
        )

    def _eta(self, now: float, total_files: int, total_bytes: int) -> float | None:
        parts = []
        if total_files:
            parts.append(self.files_done / total_files)
        if total_bytes:
            parts.append(self.bytes_done / total_bytes)
        done = sum(parts) / len(parts) if parts else 1.0
        elapsed = now - self.started
        if done <= 0 or elapsed < 0.2:
            return None
        return max(0.0, elapsed * (1 - done) / done)

    def start(self) -> None:
        with self.lock:
            self.started = time.monotonic()
            self._emit(None, force=True)


class Scanner:
    """Scans trees with one engine, one policy and a pool of worker threads."""

    def __init__(self, config: Config, engine: Engine | None = None) -> None:
        self.config = config
        self.engine = engine or Engine(
            config.clamd, config.signatures, file_timeout=config.scan.file_timeout
        )
        self.policy = FilePolicy(config.policy)
        self.workers = config.scan.workers or (os.cpu_count() or 1) + 1

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
    ) -> Report:
        """Scan the tree at *root* and return its report; blocking; never raises for the tree.

        *on_progress* is called from worker threads (keep it cheap and thread-safe), at most every
        50 ms and once at the end. Setting *cancel* stops the scan soon: the verdict is then
        `incomplete` (reason `cancelled`) unless a threat was already found.
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
            return self._scan_root(root_fd, report_id, started, info, on_progress, cancel)
        finally:
            os.close(root_fd)

    def _scan_root(
        self,
        root_fd: int,
        report_id: str,
        started: datetime,
        info: EngineInfo,
        on_progress: ProgressCallback | None,
        cancel: threading.Event,
    ) -> Report:
        limits = self.config.scan
        walker = Walker(
            root_fd, max_depth=limits.max_depth, max_entries=limits.max_entries, cancel=cancel
        )
        totals = walker.count()
        tally = _Tally(totals.files, totals.bytes, on_progress)
        tally.start()
        root_broken = False
        # Bounded in-flight work: open fds and queued futures stay O(workers), not O(files).
        slots = threading.BoundedSemaphore(self.workers * 2)
        with ThreadPoolExecutor(self.workers, thread_name_prefix="scan") as pool:
            for entry in walker.walk():
                if entry.kind is not Kind.REGULAR:
                    if entry.path == b"":
                        root_broken = True
                    tally.add(_skipped(entry), regular=False, size=0, path=None)
                    continue
                assert entry.fd is not None
                if cancel.is_set():
                    os.close(entry.fd)
                    break
                tally.saw(entry.size)
                slots.acquire()
                future: Future[None] = pool.submit(self._scan_file, entry, tally)
                future.add_done_callback(lambda _f: slots.release())
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
            files_total=tally.files_seen if complete else max(tally.files_seen, totals.files),
            bytes_total=tally.bytes_seen if complete else max(tally.bytes_seen, totals.bytes),
            counts={str(k): v for k, v in sorted(tally.counts.items())},
            findings=tuple(findings),
            engine=info,
            software_version=__version__,
        )

    # -- one file, in a worker thread ------------------------------------------------------
    def _scan_file(self, entry: Entry, tally: _Tally) -> None:
        assert entry.fd is not None
        path = escape_name(entry.path)
        size = entry.size
        try:
            finding = self._judge(entry, path, tally)
        except Exception as exc:  # an unexpected failure must never turn green
            finding = Finding(path, FileVerdict.ERROR, reason=Reason.READ_ERROR, detail=repr(exc))
        finally:
            os.close(entry.fd)
        tally.add(finding, regular=True, size=size, path=path)

    def _judge(self, entry: Entry, path: str, tally: _Tally) -> Finding | None:
        assert entry.fd is not None
        fd, size = entry.fd, entry.size
        if size > self.config.scan.max_file_size:
            return Finding(
                path,
                FileVerdict.UNVERIFIABLE,
                reason=Reason.TOO_LARGE,
                size=size,
                detail=f"over {self.config.scan.max_file_size} bytes",
            )
        try:
            head = os.pread(fd, HEAD_SIZE, 0)
            sha256, read = _hash(fd)
        except OSError as exc:
            return Finding(
                path, FileVerdict.ERROR, reason=Reason.READ_ERROR, detail=exc.strerror, size=size
            )
        reply = self._ask_engine(fd, tally)
        name = path.rsplit("/", 1)[-1]
        policy = self.policy.check(name, head, fd, read)
        candidates: list[Finding] = []
        base = Finding(path, FileVerdict.CLEAN, sha256=sha256, size=read)
        if reply.kind is ReplyKind.FOUND:
            if reply.is_limits:
                candidates.append(
                    replace(
                        base,
                        verdict=FileVerdict.UNVERIFIABLE,
                        reason=Reason.LIMITS_EXCEEDED,
                        detail=reply.signature,
                    )
                )
            elif reply.is_encrypted:
                candidates.append(
                    replace(
                        base,
                        verdict=FileVerdict.UNVERIFIABLE,
                        reason=Reason.ENCRYPTED,
                        detail=reply.signature,
                    )
                )
            else:
                candidates.append(
                    replace(base, verdict=FileVerdict.INFECTED, threat=reply.signature)
                )
        elif reply.kind is ReplyKind.ERROR:
            candidates.append(
                replace(
                    base,
                    verdict=FileVerdict.ERROR,
                    reason=_error_reason(reply),
                    detail=reply.message,
                )
            )
        if policy is not None:
            candidates.append(
                replace(base, verdict=policy.verdict, reason=policy.reason, detail=policy.detail)
            )
        if not candidates:
            return None
        return min(candidates, key=lambda f: f.rank)

    def _ask_engine(self, fd: int, tally: _Tally) -> EngineReply:
        """Ask clamd about one fd, keeping track of an engine that has gone away."""
        if tally.engine_lost:
            return EngineReply(
                ReplyKind.ERROR,
                message="clamd lost earlier in this scan",
                trouble=Trouble.UNREACHABLE,
            )
        reply = self.engine.client().scan_fd(fd)
        if reply.trouble is Trouble.UNREACHABLE:
            with tally.lock:
                tally.unreachable += 1
                if tally.unreachable >= _UNREACHABLE_LIMIT:
                    tally.engine_lost = True
        elif reply.trouble is Trouble.TIMEOUT:
            # A slow file, or clamd stopped? Ask it something quick before waiting on more files.
            if not self.engine.alive():
                with tally.lock:
                    tally.engine_lost = True
        else:
            with tally.lock:
                tally.unreachable = 0
        return reply


def _error_reason(reply: EngineReply) -> Reason:
    if reply.trouble is Trouble.TIMEOUT:
        return Reason.ENGINE_TIMEOUT
    if reply.trouble is Trouble.UNREACHABLE:
        return Reason.ENGINE_LOST
    return Reason.ENGINE_ERROR


_buffers = threading.local()


def _hash(fd: int) -> tuple[str, int]:
    """Return the sha256 and length of the whole file, read with pread (the fd offset stays 0).

    Each thread reads into its own reused buffer: fresh 1 MB objects per read fragment glibc's
    per-thread arenas and tripled the peak memory on a corpus of large files.
    """
    buffer = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    digest = hashlib.sha256()
    offset = 0
    while True:
        count = os.preadv(fd, [buffer], offset)
        if not count:
            break
        digest.update(view[:count])
        offset += count
    return digest.hexdigest(), offset
