"""The files of one scan in flight: read and judged here, scanned by clamd on a shared session.

The walking thread does the cheap per-file work (hash with `pread`, file-type policy) and sends
the descriptor; clamd works on up to `window` files at once on its own threads; the session's
reader thread folds each reply into a finding. No Python worker pool: on small files the thread
hand-offs cost more than the work. The walking thread also watches deadlines: a request without
a reply after `scan.file_timeout` is an error, and if clamd then fails a PING the rest of the
tree is not sent at all (every file an `error`, the stick `incomplete`).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

from kiosk.config import Config
from kiosk.models import FileVerdict, Finding, Reason
from kiosk.names import escape_name
from kiosk.scan.clamd import EngineReply, ReplyKind, Trouble
from kiosk.scan.engine import Engine
from kiosk.scan.policy import HEAD_SIZE, FilePolicy, PolicyFinding
from kiosk.scan.session import ClamdSession, Request, UnreachableError
from kiosk.scan.tally import Tally
from kiosk.scan.walker import Entry

_HASH_CHUNK = 1 << 20
_UNREACHABLE_LIMIT = 3  # consecutive failed connections before clamd is declared lost
_TICK = 0.5  # seconds between two deadline checks while waiting


@dataclass(eq=False)
class _Job:
    fd: int
    path: str
    size: int
    sha256: str
    policy: PolicyFinding | None
    request: Request | None = None
    retried: bool = False


def _error_reason(reply: EngineReply) -> Reason:
    if reply.trouble is Trouble.TIMEOUT:
        return Reason.ENGINE_TIMEOUT
    if reply.trouble is Trouble.UNREACHABLE:
        return Reason.ENGINE_LOST
    return Reason.ENGINE_ERROR


def judge(
    job_path: str, sha256: str, size: int, reply: EngineReply, policy: PolicyFinding | None
) -> Finding | None:
    """Fold clamd's reply and the policy's objection into one finding (None: clean)."""
    base = Finding(job_path, FileVerdict.CLEAN, sha256=sha256, size=size)
    candidates: list[Finding] = []
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
            candidates.append(replace(base, verdict=FileVerdict.INFECTED, threat=reply.signature))
    elif reply.kind is ReplyKind.ERROR:
        candidates.append(
            replace(
                base, verdict=FileVerdict.ERROR, reason=_error_reason(reply), detail=reply.message
            )
        )
    if policy is not None:
        candidates.append(
            replace(base, verdict=policy.verdict, reason=policy.reason, detail=policy.detail)
        )
    return min(candidates, key=lambda f: f.rank) if candidates else None


class Pipeline:
    """Sends one tree's regular files to clamd, at most `window` at a time."""

    def __init__(
        self, config: Config, policy: FilePolicy, engine: Engine, tally: Tally, window: int
    ) -> None:
        self.config = config
        self.policy = policy
        self.engine = engine
        self.tally = tally
        self.session = ClamdSession(
            config.clamd.socket, connect_timeout=config.clamd.connect_timeout
        )
        self.slots = threading.Semaphore(window)
        self.lock = threading.Condition()
        self.jobs: set[_Job] = set()
        self.retries: deque[_Job] = deque()
        self.unreachable = 0
        self.buffer = bytearray(_HASH_CHUNK)
        self.next_service = 0.0

    # -- the walking thread ------------------------------------------------------------------
    def submit(self, entry: Entry) -> None:
        """Judge one open regular file and send it to clamd (its fd is ours from now on)."""
        assert entry.fd is not None
        path = escape_name(entry.path)
        if self.retries or time.monotonic() >= self.next_service:
            self._service()
        try:
            job = self._prepare(entry.fd, path, entry.size)
        except Exception as exc:  # an unexpected failure must never turn green
            job = None
            self._finish(
                entry.fd,
                entry.size,
                path,
                Finding(path, FileVerdict.ERROR, reason=Reason.READ_ERROR, detail=repr(exc)),
            )
        if job is None:
            return
        while not self.slots.acquire(timeout=_TICK):
            self._service()
        self._send(job)

    def _prepare(self, fd: int, path: str, size: int) -> _Job | None:
        limit = self.config.scan.max_file_size
        if size > limit:
            self._finish(
                fd,
                size,
                path,
                Finding(
                    path,
                    FileVerdict.UNVERIFIABLE,
                    reason=Reason.TOO_LARGE,
                    size=size,
                    detail=f"over {limit} bytes",
                ),
            )
            return None
        try:
            head = os.pread(fd, HEAD_SIZE, 0)
            sha256, read = self._hash(fd)
        except OSError as exc:
            self._finish(
                fd,
                size,
                path,
                Finding(
                    path,
                    FileVerdict.ERROR,
                    reason=Reason.READ_ERROR,
                    detail=exc.strerror,
                    size=size,
                ),
            )
            return None
        policy = self.policy.check(path.rsplit("/", 1)[-1], head, fd, read)
        return _Job(fd=fd, path=path, size=read, sha256=sha256, policy=policy)

    def _hash(self, fd: int) -> tuple[str, int]:
        """sha256 and length of the whole file, with pread into one reused buffer."""
        view = memoryview(self.buffer)
        digest = hashlib.sha256()
        offset = 0
        while count := os.preadv(fd, [self.buffer], offset):
            digest.update(view[:count])
            offset += count
        return digest.hexdigest(), offset

    def _send(self, job: _Job) -> None:
        """Send a job that holds a slot; on any failure to send, complete it as an error."""
        if self.tally.engine_lost:
            self._complete(
                job,
                EngineReply(
                    ReplyKind.ERROR,
                    message="clamd lost earlier in this scan",
                    trouble=Trouble.UNREACHABLE,
                ),
            )
            return
        with self.lock:
            self.jobs.add(job)
        for attempt in (1, 2):
            try:
                job.request = self.session.send(
                    job.fd, lambda reply, lost: self._on_reply(job, reply, lost)
                )
                return
            except UnreachableError as exc:
                self._unreachable()
                reply = EngineReply(
                    ReplyKind.ERROR,
                    message=f"cannot reach clamd: {exc.strerror}",
                    trouble=Trouble.UNREACHABLE,
                )
                break
            except OSError as exc:
                reply = EngineReply(
                    ReplyKind.ERROR, message=f"session broken: {exc}", trouble=Trouble.ENGINE
                )
                if attempt == 2:
                    break
        self._complete(job, reply)

    def _unreachable(self) -> None:
        self.unreachable += 1
        if self.unreachable >= _UNREACHABLE_LIMIT:
            self.tally.lose_engine()

    def _service(self) -> None:
        """Resend lost requests, and fail those past their deadline."""
        self.next_service = time.monotonic() + _TICK
        while True:
            with self.lock:
                if not self.retries:
                    break
                job = self.retries.popleft()
            self._send(job)
        deadline = time.monotonic() - self.config.scan.file_timeout
        with self.lock:
            sent = [j for j in self.jobs if j.request is not None]
        late = {j for j in sent if j.request is not None and j.request.sent_at < deadline}
        if late and not self.tally.engine_lost and not self.engine.alive():
            self.tally.lose_engine()  # a stopped clamd, not a slow file: give up on the rest
        for job in sent if self.tally.engine_lost else late:
            assert job.request is not None
            if ClamdSession.give_up(job.request):
                trouble = Trouble.TIMEOUT if job in late else Trouble.UNREACHABLE
                reply = EngineReply(ReplyKind.ERROR, trouble=trouble, message="no reply in time")
                self._complete(job, reply)

    def drain(self) -> None:
        """Wait for every file in flight, then end the session."""
        while True:
            with self.lock:
                if not self.jobs and not self.retries:
                    break
                self.lock.wait(_TICK)
            self._service()
        self.session.close()

    # -- the session's reader thread -----------------------------------------------------------
    def _on_reply(self, job: _Job, reply: EngineReply, lost: bool) -> None:
        if lost and not job.retried:
            job.retried = True
            with self.lock:
                self.retries.append(job)
                self.lock.notify_all()
            return
        if reply.trouble is None:
            self.unreachable = 0
        self._complete(job, reply)

    def _complete(self, job: _Job, reply: EngineReply) -> None:
        try:
            if reply.kind is ReplyKind.OK and job.policy is None:
                finding = None  # the common case, kept cheap: it runs once per file
            else:
                finding = judge(job.path, job.sha256, job.size, reply, job.policy)
        except Exception as exc:  # an unexpected failure must never turn green
            finding = Finding(
                job.path, FileVerdict.ERROR, reason=Reason.ENGINE_ERROR, detail=repr(exc)
            )
        self._finish(job.fd, job.size, job.path, finding)
        with self.lock:
            self.jobs.discard(job)
            self.lock.notify_all()
        self.slots.release()

    def _finish(self, fd: int, size: int, path: str, finding: Finding | None) -> None:
        os.close(fd)
        self.tally.add(finding, regular=True, size=size, path=path)
