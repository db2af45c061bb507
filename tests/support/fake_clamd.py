"""A small fake clamd on a Unix socket, for the replies a real clamd will not give.

It models what the client branches on: it really reads `z`-commands, really receives the file
descriptor of `FILDES` (SCM_RIGHTS) and closes it, reads INSTREAM chunks, then answers according
to its `behaviour`: a well-formed OK or FOUND, nothing, half a line, ERROR then OK, garbage, or
no answer at all (the connection kept open, as with a stopped clamd).
"""

from __future__ import annotations

import array
import os
import socket
import struct
import threading
from pathlib import Path

BEHAVIOURS = (
    "ok",
    "found",
    "empty",
    "truncated",
    "error_then_ok",
    "error",
    "garbage",
    "hang",
    "ok_no_nul",
    "two_oks",
)


class FakeClamd:
    """A scripted clamd: `behaviour` applies to FILDES; PING/VERSION/INSTREAM are configurable."""

    def __init__(
        self,
        path: Path,
        behaviour: str = "ok",
        *,
        version: str = "ClamAV 1.4.6",
        canary_found: bool = True,
    ) -> None:
        assert behaviour in BEHAVIOURS
        self.path = path
        self.behaviour = behaviour
        self.version = version
        self.canary_found = canary_found
        self.received_fds = 0
        self.commands: list[bytes] = []
        self._stop = threading.Event()
        self._hanging: list[socket.socket] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(16)
        self._server.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving and close every connection."""
        self._stop.set()
        self._thread.join(5)
        for conn in self._hanging:
            conn.close()
        self._server.close()
        self.path.unlink(missing_ok=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _read_command(self, conn: socket.socket) -> bytes:
        data = b""
        while not data.endswith(b"\0"):
            chunk = conn.recv(1)
            if not chunk:
                break
            data += chunk
        return data.rstrip(b"\0")

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            command = self._read_command(conn)
            self.commands.append(command)
            if command == b"zPING":
                conn.sendall(b"PONG\0")
            elif command == b"zVERSION":
                conn.sendall(self.version.encode() + b"\0")
            elif command == b"zINSTREAM":
                while True:
                    (size,) = struct.unpack("!L", _recv_exact(conn, 4))
                    if size == 0:
                        break
                    _recv_exact(conn, size)
                reply = (
                    b"stream: Eicar-Test-Signature FOUND\0"
                    if self.canary_found
                    else (b"stream: OK\0")
                )
                conn.sendall(reply)
            elif command == b"zFILDES":
                fds = array.array("i")
                _msg, ancdata, _flags, _addr = conn.recvmsg(1, socket.CMSG_LEN(fds.itemsize))
                for level, kind, payload in ancdata:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
                for fd in fds:
                    os.close(fd)
                    self.received_fds += 1
                if self._answer(conn):
                    return  # keep hanging connections open
            else:
                conn.sendall(b"UNKNOWN COMMAND\0")
        except OSError:
            pass
        conn.close()

    def _answer(self, conn: socket.socket) -> bool:
        b = self.behaviour
        if b == "ok":
            conn.sendall(b"fd[10]: OK\0")
        elif b == "found":
            conn.sendall(b"fd[10]: Fake.Virus FOUND\0")
        elif b == "empty":
            pass
        elif b == "truncated":
            conn.sendall(b"fd[10]: O")
        elif b == "ok_no_nul":
            conn.sendall(b"fd[10]: OK")
        elif b == "error_then_ok":
            conn.sendall(b"fd[10]: lstat() failed ERROR\0fd[10]: OK\0")
        elif b == "two_oks":
            conn.sendall(b"fd[10]: OK\0fd[10]: OK\0")
        elif b == "error":
            conn.sendall(b"fd[10]: Can't allocate memory ERROR\0")
        elif b == "garbage":
            conn.sendall(b"\xff\xfe nonsense\0")
        elif b == "hang":
            self._hanging.append(conn)
            return True
        return False


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data
