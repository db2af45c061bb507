"""The files of one scan in flight: sent to clamd first, then judged here meanwhile.

The walking thread sends each open file's descriptor to clamd on one pipelined session, then,
while clamd works on it, reads the file's first bytes with `pread` and applies the file-type
policy; the session's reader thread brings clamd's reply. Whichever of the two finishes last
folds them into the file's finding; a file that is not clean is then hashed (sha256, `pread` on
the very descriptor clamd scanned). Clean files are hashed only when the caller lists every file
(`kiosk scan --files`), right after the policy while clamd works: the report names and hashes only
findings, and on large files hashing costs a tenth of the CPU clamd needs. clamd works on up to
`window` files at once (and `WINDOW_BYTES` of large ones) on its own threads; there is no Python
worker pool (on small files, thread hand-offs cost more than the work). The walking thread also
watches deadlines: a request without a reply after `scan.file_timeout` is an error, and if clamd
then fails a PING the rest of the tree is not sent at all (every file an `error`, the stick
`incomplete`).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace

from kiosk.config import Config
from kiosk.models import FileVerdict, Finding, Reason
from kiosk.names import escape_name
from kiosk.scan.clamd import EngineReply, ReplyKind, Trouble
from kiosk.scan.engine import Engine
from kiosk.scan.policy import FilePolicy, PolicyFinding
from kiosk.scan.session import ClamdSession, Request, UnreachableError
from kiosk.scan.tally import Tally
from kiosk.scan.walker import Entry

_HASH_CHUNK = 1 << 20
_UNREACHABLE_LIMIT = 3  # consecutive failed connections before clamd is declared lost
_TICK = 0.5  # seconds between two deadline checks while waiting
# Bytes of large files in flight at most (one file always goes): a deep window keeps clamd busy
# on small files, but a request's deadline runs from the moment it is sent, and clamd's cores
# get through ~50 MB/s: 64 large files queued at once would time out at the back of the queue.
WINDOW_BYTES = 256 * 1024 * 1024
_LARGE = 1024 * 1024  # files from this size on count against WINDOW_BYTES


@dataclass(eq=False)
class _Job:
    """One file in flight: clamd's part (reply) and ours (hash, policy) meet here."""

    fd: int
    path: str
    size: int
    sha256: str | None = None  # set when every file is hashed, or once the file is a finding
    policy: PolicyFinding | None = None
    read_error: str | None = None
    reply: EngineReply | None = None
    request: Request | None = None
    retried: bool = False
    reserved: int = 0  # bytes counted against WINDOW_BYTES until the job completes
    # clamd's reply and our own reading of the file each pop one; list.pop is atomic, so the
    # part that pops the last token (False) knows it is the second and completes the job.
    parts: list[bool] = field(default_factory=lambda: [False, True])


def _error_reason(reply: EngineReply) -> Reason:
    if reply.trouble is Trouble.TIMEOUT:
        return Reason.ENGINE_TIMEOUT
    if reply.trouble is Trouble.UNREACHABLE:
        return Reason.ENGINE_LOST
    return Reason.ENGINE_ERROR


def judge(base: Finding, reply: EngineReply, policy: PolicyFinding | None) -> Finding | None:
    """Fold clamd's reply and the policy's objection into one finding (None: clean)."""
    candidates: list[Finding] = []
    if reply.kind is ReplyKind.FOUND:
        if reply.is_limits or reply.is_encrypted:
            reason = Reason.LIMITS_EXCEEDED if reply.is_limits else Reason.ENCRYPTED
            candidates.append(
                replace(
                    base, verdict=FileVerdict.UNVERIFIABLE, reason=reason, detail=reply.signature
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
        self,
        config: Config,
        policy: FilePolicy,
        engine: Engine,
        tally: Tally,
        window: int,
        hash_all: bool = False,
    ) -> None:
        self.config = config
        self.hash_all = hash_all
        self.policy = policy
        self.engine = engine
        self.tally = tally
        self.session = ClamdSession(
            config.clamd.socket, connect_timeout=config.clamd.connect_timeout
        )
        self.window = window
        # A walking thread that finds the window full sleeps until it has room for a batch, not
        # one file: woken once a file, it cost two thread switches a file on the cores clamd needs.
        self.batch = max(1, window // 6)
        self.refill_at = -1  # jobs in flight at which the waiting walker is woken; -1: none waits
        self.draining = False
        self.lock = threading.Condition()
        self.jobs: set[_Job] = set()
        self.retries: deque[_Job] = deque()
        self.large_in_flight = 0  # bytes, under self.lock
        self.unreachable = 0
        self.buffers = threading.local()  # one hash buffer per thread that completes jobs
        self.next_service = 0.0
        # The first unexpected exception of any thread (a bug of ours): `drain` raises it, so the
        # scan ends as an error rather than counting a file it never answered for.
        self.failure: Exception | None = None

    # -- the walking thread ------------------------------------------------------------------
    def submit(self, entry: Entry) -> None:
        """Send one open regular file to clamd, then read and judge it (its fd is ours now)."""
        assert entry.fd is not None
        path = escape_name(entry.path)
        if self.retries or time.monotonic() >= self.next_service:
            self._service()
        limit = self.config.scan.max_file_size
        if entry.size > limit:
            finding = Finding(
                path,
                FileVerdict.UNVERIFIABLE,
                reason=Reason.TOO_LARGE,
                size=entry.size,
                detail=f"over {limit} bytes",
            )
            self._finish(entry.fd, entry.size, path, finding)
            return
        job = _Job(fd=entry.fd, path=path, size=entry.size)
        try:
            self._take_slot(job)
        except BaseException:
            os.close(job.fd)
            raise
        try:
            if job.size >= _LARGE:
                self._reserve(job)
            self._send(job)
        except Exception as exc:  # a bug of ours: the job still completes, the scan fails
            self.failure = self.failure or exc
            if job.request is None and job.reply is None:
                job.reply = EngineReply(ReplyKind.ERROR, message=repr(exc), trouble=Trouble.ENGINE)
                self._part_done(job)
        try:
            job.policy = self.policy.check(path.rsplit("/", 1)[-1], job.fd, job.size)
            if self.hash_all:
                job.sha256, job.size = self._hash(job.fd)
        except OSError as exc:
            job.read_error = exc.strerror or str(exc)
        except Exception as exc:  # an unexpected failure must never turn green
            job.read_error = repr(exc)
        self._part_done(job)

    def _take_slot(self, job: _Job) -> None:
        """Wait until the window has room, then count *job* in flight."""
        while True:
            with self.lock:
                if len(self.jobs) < self.window:
                    self.jobs.add(job)
                    return
                self.refill_at = self.window - self.batch
                self.lock.wait(_TICK)
                self.refill_at = -1
            if self.retries or time.monotonic() >= self.next_service:
                self._service()

    def _reserve(self, job: _Job) -> None:
        """Wait until the large files in flight leave room for this one (or there are none)."""
        while True:
            with self.lock:
                if not self.large_in_flight or self.large_in_flight + job.size <= WINDOW_BYTES:
                    self.large_in_flight += job.size
                    job.reserved = job.size
                    return
                self.lock.wait(_TICK)
            self._service()

    def _hash(self, fd: int) -> tuple[str, int]:
        """sha256 and length of the whole file, with pread into this thread's reused buffer."""
        buffer = getattr(self.buffers, "buffer", None)
        if buffer is None:
            buffer = self.buffers.buffer = bytearray(_HASH_CHUNK)
        view = memoryview(buffer)
        # Imported here: OpenSSL's start-up delayed the first file sent (clean files aren't hashed)
        import hashlib

        digest = hashlib.sha256()
        offset = 0
        while count := os.preadv(fd, [buffer], offset):
            digest.update(view[:count])
            offset += count
        return digest.hexdigest(), offset

    def _send(self, job: _Job) -> None:
        """Send a job; if it cannot be sent, its reply part is an error."""
        reply = EngineReply(
            ReplyKind.ERROR, message="clamd lost earlier in this scan", trouble=Trouble.UNREACHABLE
        )
        for _attempt in (1, 2):  # a session broken while sending is tried once more
            if self.tally.engine_lost:
                break
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
        job.reply = reply
        self._part_done(job)

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
            sent = [j for j in self.jobs if j.request is not None and j.reply is None]
        late = {j for j in sent if j.request is not None and j.request.sent_at < deadline}
        if late and not self.tally.engine_lost and not self.engine.alive():
            self.tally.lose_engine()  # a stopped clamd, not a slow file: give up on the rest
        for job in sent if self.tally.engine_lost else late:
            assert job.request is not None
            if ClamdSession.give_up(job.request):
                trouble = Trouble.TIMEOUT if job in late else Trouble.UNREACHABLE
                job.reply = EngineReply(
                    ReplyKind.ERROR, trouble=trouble, message="no reply in time"
                )
                self._part_done(job)

    def drain(self) -> None:
        """Wait for every file in flight, end the session; raise what broke in the meantime."""
        self.draining = True
        while True:
            with self.lock:
                if not self.jobs and not self.retries:
                    break
                self.lock.wait(_TICK)
            self._service()
        self.session.close()
        if self.failure is not None:
            raise self.failure

    # -- the session's reader thread (and the walking thread) ------------------------------------
    def _on_reply(self, job: _Job, reply: EngineReply, lost: bool) -> None:
        if lost and not job.retried:
            job.retried = True
            with self.lock:
                self.retries.append(job)
                self.lock.notify_all()
            return
        if reply.trouble is None:
            self.unreachable = 0
        job.reply = reply
        self._part_done(job)

    def _part_done(self, job: _Job) -> None:
        """One of the job's two parts is done; the second one completes the job."""
        if not job.parts.pop():
            self._complete(job)

    def _complete(self, job: _Job) -> None:
        reply = job.reply
        assert reply is not None
        try:
            if job.read_error is not None:
                # clamd may still have named a threat in what it could read: worst first.
                base = Finding(job.path, FileVerdict.CLEAN, size=job.size)
                unread = replace(
                    base,
                    verdict=FileVerdict.ERROR,
                    reason=Reason.READ_ERROR,
                    detail=job.read_error,
                )
                engine = judge(base, reply, None)
                finding: Finding | None = min(
                    [f for f in (unread, engine) if f is not None], key=lambda f: f.rank
                )
            elif reply.kind is ReplyKind.OK and job.policy is None:
                finding = None  # the common case, kept cheap: it runs once per file
            else:
                finding = judge(
                    Finding(job.path, FileVerdict.CLEAN, size=job.size), reply, job.policy
                )
                if finding is not None:
                    finding = self._with_hash(job, finding)
        except Exception as exc:  # an unexpected failure must never turn green
            finding = Finding(
                job.path, FileVerdict.ERROR, reason=Reason.ENGINE_ERROR, detail=repr(exc)
            )
        try:
            self._finish(job.fd, job.size, job.path, finding, job.sha256)
        except Exception as exc:  # a bug of ours: kept for the scan to fail, the job still ends
            self.failure = self.failure or exc
        finally:
            with self.lock:
                self.jobs.discard(job)
                if job.reserved:
                    self.large_in_flight -= job.reserved
                if job.reserved or self.draining or len(self.jobs) <= self.refill_at:
                    self.lock.notify_all()

    def _with_hash(self, job: _Job, finding: Finding) -> Finding:
        """The finding with the sha256 and length of the file, read from the fd clamd scanned."""
        if job.sha256 is not None:
            return replace(finding, sha256=job.sha256, size=job.size)
        try:
            sha256, size = self._hash(job.fd)
        except OSError as exc:
            # clamd may have named a threat in what it could read: the worse of the two stands.
            unread = Finding(
                job.path,
                FileVerdict.ERROR,
                reason=Reason.READ_ERROR,
                size=job.size,
                detail=exc.strerror or str(exc),
            )
            return min((finding, unread), key=lambda f: f.rank)
        job.size, job.sha256 = size, sha256
        return replace(finding, sha256=sha256, size=size)

    def _finish(
        self, fd: int, size: int, path: str, finding: Finding | None, sha256: str | None = None
    ) -> None:
        os.close(fd)
        self.tally.add(finding, regular=True, size=size, path=path, sha256=sha256)
