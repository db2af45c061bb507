"""clamd replies parsed strictly, and the pyclamd subclass for the pre-flight's one-shot commands.

Why a subclass and not plain pyclamd (0.4.0), see also the README:
* pyclamd frames commands with a newline (`nSCAN name\\n`): a file name holding a newline splits
  the command and clamd scans a decoy. We never send names at all: the file travels as a file
  descriptor (`FILDES`, SCM_RIGHTS), so clamd needs no access to the stick and scans exactly the
  open file we hash; commands are `z`-prefixed and NUL-terminated.
* pyclamd returns `None` both for "no virus" and for an empty or truncated reply. Here a reply is
  parsed strictly into `EngineReply`: only a complete, NUL-terminated `...: OK` is clean; nothing
  else ever is.
* pyclamd has no `FILDES`, and one instance shared by threads mixes up replies: files go to clamd
  on one pipelined session (`kiosk.scan.session`); this client makes the pre-flight's one-shot
  commands, each on its own connection, and is never shared between threads.
* a stream over `StreamMaxLength` raises a bare `BrokenPipeError`; we turn every socket trouble
  into an `EngineReply` of kind ERROR, or an `EngineError` for the pre-flight commands.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import pyclamd

from kiosk.errors import EngineError
from kiosk.models import EngineInfo

MAX_REPLY = 64 * 1024
_STREAM_CHUNK = 64 * 1024


class ReplyKind(StrEnum):
    """What clamd said about one object."""

    OK = "ok"
    FOUND = "found"
    ERROR = "error"


class Trouble(StrEnum):
    """Why a reply is an ERROR, as far as the kiosk can tell."""

    ENGINE = "engine"  # clamd said ERROR, or said something we do not understand
    TIMEOUT = "timeout"  # no complete reply in time (clamd stopped, or a very slow file)
    UNREACHABLE = "unreachable"  # cannot connect: clamd is gone


@dataclass(frozen=True, slots=True)
class EngineReply:
    """clamd's verdict on one object, parsed strictly."""

    kind: ReplyKind
    signature: str | None = None  # for FOUND
    message: str | None = None  # for ERROR
    trouble: Trouble | None = None

    @property
    def is_limits(self) -> bool:
        """A FOUND that only says a scan limit was hit (AlertExceedsMax)."""
        return bool(self.signature and self.signature.startswith("Heuristics.Limits.Exceeded"))

    @property
    def is_encrypted(self) -> bool:
        """A FOUND that only says the content is encrypted (AlertEncrypted)."""
        return bool(self.signature and self.signature.startswith("Heuristics.Encrypted"))


_OK = EngineReply(ReplyKind.OK)


def _error(message: str, trouble: Trouble) -> EngineReply:
    return EngineReply(ReplyKind.ERROR, message=message, trouble=trouble)


def parse_reply(raw: bytes) -> EngineReply:
    """Parse the whole of what clamd sent for one z-command; anything unexpected is an ERROR."""
    # The common case first, kept cheap (it runs once per file): exactly `NAME: OK`.
    if raw.endswith(b": OK\0") and raw.find(b": ") == len(raw) - 5 > 0 and raw.count(b"\0") == 1:
        return _OK
    if not raw:
        return _error("empty reply", Trouble.ENGINE)
    if not raw.endswith(b"\0"):
        return _error("truncated reply", Trouble.ENGINE)
    body = raw[:-1]
    if b"\0" in body:
        # One command, one reply: a second one (e.g. ERROR then OK) is not to be trusted.
        return _error("more than one reply", Trouble.ENGINE)
    text = body.decode("utf-8", "replace")
    name, sep, verdict = text.partition(": ")
    if not sep or not name:
        return _error(f"unexpected reply {text[:200]!r}", Trouble.ENGINE)
    if verdict == "OK":
        return EngineReply(ReplyKind.OK)
    if verdict.endswith(" FOUND"):
        signature = verdict[: -len(" FOUND")].strip()
        if signature and " " not in signature:
            return EngineReply(ReplyKind.FOUND, signature=signature)
    if verdict.endswith(" ERROR"):
        return _error(verdict[: -len(" ERROR")].strip()[:200] or "ERROR", Trouble.ENGINE)
    return _error(f"unexpected reply {text[:200]!r}", Trouble.ENGINE)


def parse_version(text: str) -> EngineInfo:
    """Parse VERSION: `ClamAV 1.4.6/27480/Thu Nov 28 08:34:09 2024` (or just `ClamAV 1.4.6`)."""
    parts = text.strip().split("/")
    version = parts[0].strip()
    if not version.startswith("ClamAV "):
        raise EngineError(f"unexpected VERSION reply {text[:100]!r}", reason="engine_down")
    signatures = int(parts[1]) if len(parts) > 1 and parts[1].strip().isdigit() else None
    date = None
    if len(parts) > 2:
        try:
            # freshclam's databases carry their build time, in UTC.
            date = datetime.strptime(parts[2].strip(), "%a %b %d %H:%M:%S %Y").replace(tzinfo=UTC)
        except ValueError:
            date = None
    return EngineInfo(version=version, signatures_version=signatures, signatures_date=date)


class ClamdClient(pyclamd.ClamdUnixSocket):  # type: ignore[misc]
    """One thread's connection factory to clamd's Unix socket (not shared between threads)."""

    def __init__(self, path: str, *, connect_timeout: float = 5.0, timeout: float = 150.0) -> None:
        # pyclamd's __init__ connects at once; a kiosk must start even while clamd is down.
        pyclamd.pyclamd._ClamdGeneric.__init__(self)
        self.unix_socket = path
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.clamd_socket: socket.socket | None = None

    # -- connection -------------------------------------------------------------------------
    def _init_socket(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.connect_timeout)
        try:
            sock.connect(self.unix_socket)
        except OSError:
            sock.close()
            raise
        sock.settimeout(self.timeout)
        self.clamd_socket = sock

    def _close_socket(self) -> None:
        if self.clamd_socket is not None:
            self.clamd_socket.close()
            self.clamd_socket = None

    def _send_command(self, cmd: str) -> None:
        assert self.clamd_socket is not None
        self.clamd_socket.sendall(b"z" + cmd.encode("ascii") + b"\0")

    def _read_all(self) -> bytes:
        """Read until clamd closes the connection (it does after each non-session command)."""
        assert self.clamd_socket is not None
        chunks = []
        total = 0
        while True:
            data = self.clamd_socket.recv(4096)
            if not data:
                break
            chunks.append(data)
            total += len(data)
            if total > MAX_REPLY:
                break
        return b"".join(chunks)

    def _exchange(self, send: Callable[[], None]) -> EngineReply:
        try:
            self._init_socket()
        except OSError as exc:
            return _error(f"cannot connect to clamd: {exc.strerror or exc}", Trouble.UNREACHABLE)
        try:
            send()
            return parse_reply(self._read_all())
        except TimeoutError:
            return _error("no reply from clamd in time", Trouble.TIMEOUT)
        except OSError as exc:
            return _error(f"connection to clamd broken: {exc.strerror or exc}", Trouble.ENGINE)
        finally:
            self._close_socket()

    # -- scanning ---------------------------------------------------------------------------
    def scan_bytes(self, data: bytes) -> EngineReply:
        """Scan a buffer with INSTREAM (used for the EICAR canary); never raises."""

        def send() -> None:
            assert self.clamd_socket is not None
            self._send_command("INSTREAM")
            for start in range(0, len(data), _STREAM_CHUNK):
                chunk = data[start : start + _STREAM_CHUNK]
                self.clamd_socket.sendall(struct.pack("!L", len(chunk)) + chunk)
            self.clamd_socket.sendall(struct.pack("!L", 0))

        return self._exchange(send)

    # -- pre-flight commands (raise EngineError) -----------------------------------------
    def _simple(self, command: str) -> str:
        try:
            self._init_socket()
        except OSError as exc:
            raise EngineError(
                f"clamd unreachable at {self.unix_socket}: {exc.strerror or exc}",
                reason="engine_down",
            ) from exc
        try:
            self._send_command(command)
            raw = self._read_all()
        except OSError as exc:
            raise EngineError(
                f"clamd did not answer {command}: {exc}", reason="engine_down"
            ) from exc
        finally:
            self._close_socket()
        if not raw.endswith(b"\0") or b"\0" in raw[:-1]:
            raise EngineError(f"bad reply to {command}: {raw[:100]!r}", reason="engine_down")
        return raw[:-1].decode("utf-8", "replace")

    def ping(self) -> bool:
        """PING clamd; raise EngineError unless it answers PONG."""
        reply = self._simple("PING")
        if reply != "PONG":
            raise EngineError(f"clamd answered {reply[:100]!r} to PING", reason="engine_down")
        return True

    def version(self) -> str:
        """Return clamd's VERSION line; raise EngineError on any trouble."""
        return self._simple("VERSION")

    def engine_info(self) -> EngineInfo:
        """Return the engine and signature versions (and date, when the database has one)."""
        return parse_version(self.version())
