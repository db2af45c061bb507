"""A small synchronous QMP client (QEMU Machine Protocol) for the VM tests.

One reader thread parses QEMU's JSON lines: replies go to the command waiting for them (matched
by id), events are kept in order so that a test can wait for one (DEVICE_DELETED, RESET ...)
even when it arrived before the wait began.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class QMPError(Exception):
    """QEMU answered a command with an error, or the monitor went away."""


@dataclass
class Event:
    """One QMP event, with the host's monotonic time it was read."""

    name: str
    data: dict[str, Any]
    at: float
    seen: bool = field(default=False)


class QMP:
    """A connected QMP monitor."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                self._sock.connect(str(path))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self._file = self._sock.makefile("rb")
        self._lock = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: list[Event] = []
        self._next_id = 0
        self._closed = False
        greeting = json.loads(self._file.readline())
        if "QMP" not in greeting:
            raise QMPError(f"not a QMP greeting: {greeting!r}")
        self._reader = threading.Thread(target=self._read, name="qmp-reader", daemon=True)
        self._reader.start()
        self.command("qmp_capabilities")

    def _read(self) -> None:
        while True:
            try:
                line = self._file.readline()
            except OSError:
                line = b""
            with self._lock:
                if not line:
                    self._closed = True
                    self._lock.notify_all()
                    return
                message = json.loads(line)
                if "event" in message:
                    self._events.append(
                        Event(message["event"], message.get("data", {}), time.monotonic())
                    )
                elif "id" in message:
                    self._replies[int(message["id"])] = message
                self._lock.notify_all()

    def command(self, name: str, timeout: float = 60.0, **arguments: Any) -> Any:
        """Run one QMP command and return its `return` value; raise QMPError on error."""
        return self.execute(name, arguments, timeout)

    def execute(self, name: str, arguments: dict[str, Any], timeout: float = 60.0) -> Any:
        """Like command(), with arguments whose names are not Python identifiers."""
        with self._lock:
            self._next_id += 1
            ident = self._next_id
        request: dict[str, Any] = {"execute": name, "id": ident}
        if arguments:
            request["arguments"] = arguments
        self._sock.sendall(json.dumps(request).encode() + b"\n")
        deadline = time.monotonic() + timeout
        with self._lock:
            while ident not in self._replies:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    raise QMPError(f"{name}: no reply ({'closed' if self._closed else 'timeout'})")
                self._lock.wait(remaining)
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise QMPError(f"{name}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")

    def wait_event(
        self, name: str, timeout: float = 30.0, since: float = 0.0, **match: Any
    ) -> Event:
        """Wait for an event *name* read after *since* whose data has the *match* items."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for event in self._events:
                    if (
                        not event.seen
                        and event.name == name
                        and event.at >= since
                        and all(event.data.get(k) == v for k, v in match.items())
                    ):
                        event.seen = True
                        return event
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    raise QMPError(f"no {name} event {match} within {timeout} s")
                self._lock.wait(remaining)

    @property
    def closed(self) -> bool:
        """True once QEMU closed the monitor (it exited)."""
        return self._closed

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.join(5)
        self._file.close()
        self._sock.close()
