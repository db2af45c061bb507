"""The running count of one scan: verdicts, findings, and the throttled progress callback."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from kiosk.models import FileVerdict, Finding

_PROGRESS_EVERY = 0.05  # seconds between two progress callbacks (the station throttles again)

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


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One regular file as scanned: escaped path, size, sha256 (None when unread), verdict."""

    path: str
    size: int
    sha256: str | None
    verdict: FileVerdict


class Tally:
    """Counters shared by the workers, and the throttled progress callback."""

    def __init__(
        self, on_progress: ProgressCallback | None, records: list[FileRecord] | None = None
    ) -> None:
        self.lock = threading.Lock()
        self.records = records  # when a list: every regular file is appended to it
        # Counted beside the scan (set_totals); until then no progress is shown, since a
        # fraction of an unknown total would read as nearly done.
        self.counted = False
        self.files_total = 0
        self.bytes_total = 0
        self.files_seen = 0  # regular files enumerated by the scanning walk
        self.bytes_seen = 0
        self.files_done = 0
        self.bytes_done = 0
        self.ok_files = 0  # regular files with an explicit OK and no policy objection
        self.counts: Counter[str] = Counter()
        self.findings: list[Finding] = []
        self.engine_lost = False
        self.on_progress = on_progress
        self.started = time.monotonic()
        self.last_emit = 0.0

    def set_totals(self, files_total: int, bytes_total: int) -> None:
        """The counting walk has finished: progress can be shown against its totals."""
        with self.lock:
            self.files_total, self.bytes_total = files_total, bytes_total
            self.counted = True
            self._emit(None, force=True)

    def lose_engine(self) -> None:
        """Mark clamd as gone for the rest of this scan."""
        with self.lock:
            self.engine_lost = True

    def saw(self, size: int) -> None:
        with self.lock:
            self.files_seen += 1
            self.bytes_seen += size

    def add(
        self,
        finding: Finding | None,
        *,
        regular: bool,
        size: int,
        path: str | None,
        sha256: str | None = None,
    ) -> None:
        with self.lock:
            if regular and self.records is not None and path is not None:
                verdict = FileVerdict.CLEAN if finding is None else finding.verdict
                self.records.append(FileRecord(path, size, sha256, verdict))
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
        if self.on_progress is None or not self.counted:
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
