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
    "wrong_number",
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
        # Like clamd, read with recvmsg: a descriptor may ride on any byte, the command's too.
        data = b""
        while not data.endswith(b"\0"):
            chunk = self._recv_byte(conn)
            if not chunk:
                break
            data += chunk
        return data.rstrip(b"\0")

    def _recv_byte(self, conn: socket.socket) -> bytes:
        fds = array.array("i")
        data, ancdata, _flags, _addr = conn.recvmsg(1, socket.CMSG_SPACE(4 * fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
        for fd in fds:
            os.close(fd)
            self.received_fds += 1
        return data

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            command = self._read_command(conn)
            self.commands.append(command)
            if command == b"zIDSESSION":
                self._session(conn)
                return
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
                found = b"stream: Eicar-Test-Signature FOUND\0"
                conn.sendall(found if self.canary_found else b"stream: OK\0")
            else:
                conn.sendall(b"UNKNOWN COMMAND\0")
        except OSError:
            pass
        conn.close()

    def _session(self, conn: socket.socket) -> None:
        """IDSESSION: numbered replies; the behaviour decides what each FILDES gets."""
        number = 0
        try:
            while True:
                command = self._read_command(conn)
                if not command or command == b"zEND":
                    break
                number += 1
                self.commands.append(command)
                if command != b"zFILDES":
                    conn.sendall(f"{number}: UNKNOWN COMMAND\0".encode())
                    continue
                self._receive_fd(conn)
                if self._answer(conn, number):
                    return  # hanging: keep the connection open, answer nothing
                if self.behaviour in ("empty", "truncated", "ok_no_nul"):
                    break  # these end the connection after their (lack of) reply
        except OSError:
            pass
        conn.close()

    def _receive_fd(self, conn: socket.socket) -> None:
        self._recv_byte(conn)  # the byte after FILDES that carries the descriptor

    def _answer(self, conn: socket.socket, n: int) -> bool:
        b = self.behaviour
        replies = {
            "ok": f"{n}: fd[10]: OK\0",
            "found": f"{n}: fd[10]: Fake.Virus FOUND\0",
            "empty": "",
            "truncated": f"{n}: fd[10]: O",
            "ok_no_nul": f"{n}: fd[10]: OK",
            "error_then_ok": f"{n}: fd[10]: lstat() failed ERROR\0{n}: fd[10]: OK\0",
            "wrong_number": f"{n + 100}: fd[10]: OK\0",
            "error": f"{n}: fd[10]: Can't allocate memory ERROR\0",
            "garbage": "\udcff\udcfe nonsense\0",
        }
        if b == "hang":
            self._hanging.append(conn)
            return True
        conn.sendall(replies[b].encode("utf-8", "surrogateescape"))
        return False


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data
