"""A clamd session (IDSESSION) with pipelined FILDES requests, the way clamdscan does it.

Opening one connection per file costs clamd an accept and a dispatch each time: the kiosk ran
up to 13x slower than `clamdscan --multiscan --fdpass` on small files. clamdscan keeps one
session and pipelines its requests; so does this. `send` passes an open file descriptor over
SCM_RIGHTS and returns at once; a reader thread matches each reply to its request by number
(clamd numbers a session's requests 1, 2, 3 ... in the order it receives them) and calls the
request's callback; while many requests are queued, it lets replies gather for 10 ms between two
reads. Strictness is kept: a reply whose number nobody waits for (nor has given up
on) poisons the session, and every request still waiting gets an ERROR marked `lost`, as when
the connection ends before its reply; the caller may send a lost request once more.
"""

from __future__ import annotations

import array
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kiosk.scan.clamd import EngineReply, ReplyKind, Trouble, parse_reply

# clamd closes a session idle for IdleTimeout (30 s by default): start a new one before that.
_IDLE_RECONNECT = 10.0
_MAX_BUFFER = 1 << 20
# With this many requests queued at clamd, its threads have work for a while: the reader lets
# replies gather for a moment before reading them, instead of waking once a reply (on small
# files, the reader's wake-ups cost more CPU than clamd spent on the files).
_GATHER_PENDING = 64
_GATHER_S = 0.010
_FILDES = b"zFILDES\0\0"

ReplyCallback = Callable[[EngineReply, bool], None]  # (reply, lost before a reply)


class UnreachableError(OSError):
    """clamd's socket refused the connection, or is not there."""


def _error(message: str, trouble: Trouble) -> EngineReply:
    return EngineReply(ReplyKind.ERROR, message=message, trouble=trouble)


@dataclass(eq=False)
class Request:
    """One FILDES request in flight on a session."""

    number: int
    callback: ReplyCallback
    connection: _Connection
    sent_at: float = field(default_factory=time.monotonic)


class _Connection:
    """One IDSESSION connection: its socket, its request numbers, its reader thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.next_number = 1
        self.pending: dict[int, Request] = {}
        self.given_up: set[int] = set()  # late replies to these are dropped, not suspicious
        self.alive = True
        self.last_used = time.monotonic()
        self.reader = threading.Thread(target=self._read_loop, name="clamd-session", daemon=True)

    def _read_loop(self) -> None:
        buffer = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                # One recv may bring hundreds of replies: split them once, not one at a time
                # (each split copied the rest of the buffer again).
                *replies, buffer = (buffer + data).split(b"\0")
                for raw in replies:
                    if not self._deliver(raw):
                        return
                if len(buffer) > _MAX_BUFFER:
                    return
                if len(self.pending) >= _GATHER_PENDING:
                    time.sleep(_GATHER_S)
        except OSError:
            pass
        finally:
            self.close(lost=True)

    def _deliver(self, raw: bytes) -> bool:
        number_text, sep, rest = raw.partition(b": ")
        if not (sep and number_text.isdigit()):
            return False
        number = int(number_text)
        with self.lock:
            request = self.pending.pop(number, None)
            late = request is None and number in self.given_up
            self.given_up.discard(number)
        if late:
            return True
        if request is None:
            return False  # a reply nobody asked for: nothing on this session can be trusted
        request.callback(parse_reply(rest + b"\0"), False)
        return True

    def close(self, *, lost: bool) -> None:
        """End the connection; every request still waiting gets an ERROR."""
        with self.lock:
            self.alive = False
            waiting = list(self.pending.values())
            self.pending.clear()
        for request in waiting:
            request.callback(
                _error("clamd closed the session before replying", Trouble.ENGINE), lost
            )
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class ClamdSession:
    """A pipelined IDSESSION to clamd; `send` may be called from any thread."""

    def __init__(self, path: str, *, connect_timeout: float = 5.0) -> None:
        self.path = path
        self.connect_timeout = connect_timeout
        self._send_lock = threading.Lock()
        self._conn: _Connection | None = None

    def _connect(self) -> _Connection:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout)
        try:
            sock.connect(self.path)
            sock.sendall(b"zIDSESSION\0")
        except OSError as exc:
            sock.close()
            raise UnreachableError(exc.errno, exc.strerror or str(exc)) from exc
        sock.settimeout(None)  # replies are awaited per request, with their own deadline
        conn = _Connection(sock)
        conn.reader.start()
        return conn

    def _current(self) -> _Connection:
        conn = self._conn
        idle = conn is not None and time.monotonic() - conn.last_used > _IDLE_RECONNECT
        if conn is not None and conn.alive and not conn.pending and idle:
            self._end(conn)
            conn = None
        if conn is None or not conn.alive:
            conn = self._conn = self._connect()
        return conn

    def send(self, fd: int, callback: ReplyCallback) -> Request:
        """Send FILDES for *fd*; *callback* gets the reply (from the reader thread).

        Raises UnreachableError when clamd cannot be reached, OSError when the session broke
        while sending (the request was not sent; try again).
        """
        with self._send_lock:
            conn = self._current()
            with conn.lock:
                request = Request(conn.next_number, callback, conn)
                conn.next_number += 1
                conn.pending[request.number] = request
            try:
                # clamd wants the command, then the descriptor riding on one more byte; both
                # in one message (one system call a file): clamd takes the byte that follows
                # the command as the descriptor's carrier when it is already there.
                sent = conn.sock.sendmsg(
                    [_FILDES], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
                )
                if sent < len(_FILDES):
                    conn.sock.sendall(_FILDES[sent:])
            except OSError:
                with conn.lock:
                    ours = conn.pending.pop(request.number, None) is not None
                conn.close(lost=True)
                if ours:
                    raise
                # The reader closed the session first and already answered this request as
                # lost (its callback resends it once): raising as well would answer it twice.
            conn.last_used = time.monotonic()
            return request

    @staticmethod
    def give_up(request: Request) -> bool:
        """Stop waiting for *request*; True if it was still waiting (its callback won't run)."""
        conn = request.connection
        with conn.lock:
            if conn.pending.pop(request.number, None) is None:
                return False
            conn.given_up.add(request.number)
            return True

    def _end(self, conn: _Connection) -> None:
        with contextlib.suppress(OSError):
            conn.sock.sendall(b"zEND\0")
        conn.close(lost=False)
        conn.reader.join(5)

    def close(self) -> None:
        """End the session."""
        with self._send_lock:
            if self._conn is not None:
                self._end(self._conn)
                self._conn = None

    def __enter__(self) -> ClamdSession:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
