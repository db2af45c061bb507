"""The event socket: JSON lines to every connected screen, commands back (see kiosk/protocol.py).

Each client has its own writer task and its own queue, so a slow or stuck screen never slows the
scan or the other screens. Progress lines are coalesced per session (a client only ever has the
latest one pending), every other line is queued in order; a client that lets more than
`MAX_BACKLOG` other lines pile up is dropped (it reconnects and catches up). On connect a client
first receives the station's snapshot (hello, health, the live sessions).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kiosk.protocol import MAX_LINE, EventType, ProtocolError, decode, event

log = logging.getLogger(__name__)

MAX_BACKLOG = 1000
MAX_CLIENTS = 16

Snapshot = Callable[[], list[bytes]]
CommandHandler = Callable[[dict[str, Any]], Awaitable[bytes]]


class Client:
    """One connected screen: an ordered queue, the latest progress per session, a writer task."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.lines: deque[bytes] = deque()
        self.progress: dict[str, bytes] = {}
        self.wake = asyncio.Event()
        self.closed = False
        self.sent = 0

    def push(self, line: bytes, *, session_id: str | None = None, progress: bool = False) -> bool:
        """Queue one line; return False when this client is hopelessly behind."""
        if self.closed:
            return False
        if progress and session_id is not None:
            self.progress[session_id] = line
        else:
            if session_id is not None and session_id in self.progress:
                # Keep the order of one session: its latest progress goes before what follows.
                self.lines.append(self.progress.pop(session_id))
            self.lines.append(line)
            if len(self.lines) > MAX_BACKLOG:
                return False
        self.wake.set()
        return True

    def next_line(self) -> bytes | None:
        """Return the next line to send, if any."""
        if self.lines:
            return self.lines.popleft()
        if self.progress:
            key = next(iter(self.progress))
            return self.progress.pop(key)
        return None

    async def run_writer(self) -> None:
        """Send queued lines until the client goes away."""
        try:
            while not self.closed:
                line = self.next_line()
                if line is None:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                self.writer.write(line)
                await self.writer.drain()
                self.sent += 1
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        """Forget this client and close its connection."""
        self.closed = True
        self.wake.set()
        # abort, not close: close() would wait to flush to a screen that may never read.
        with contextlib.suppress(Exception):
            self.writer.transport.abort()


class EventHub:
    """The Unix socket server: broadcast events, hand commands to the station."""

    def __init__(self, snapshot: Snapshot, on_command: CommandHandler) -> None:
        self._snapshot = snapshot
        self._on_command = on_command
        self._clients: set[Client] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._handlers: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.path: Path | None = None

    @property
    def clients(self) -> int:
        """Number of connected screens."""
        return len(self._clients)

    async def start(self, path: Path, group: str | None = None) -> None:
        """Listen on *path* (mode 0660, owned by *group* when that group exists)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(path), limit=MAX_LINE)
        gid = -1
        if group:
            try:
                gid = grp.getgrnam(group).gr_gid
            except KeyError:
                log.info("group %s does not exist: event socket left to root", group)
        if gid >= 0:
            os.chown(path, -1, gid)
        os.chmod(path, 0o660)
        self.path = path

    async def stop(self) -> None:
        """Close the socket and every client."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for client in list(self._clients):
            client.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._handlers:
            # Each handler ends by itself once its connection is aborted: wait, never cancel.
            await asyncio.wait(list(self._handlers), timeout=5)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def publish(
        self, line: bytes, *, session_id: str | None = None, progress: bool = False
    ) -> None:
        """Send one event line to every client (never blocks)."""
        for client in list(self._clients):
            if not client.push(line, session_id=session_id, progress=progress):
                log.warning("dropping a screen that does not read its events")
                client.close()
                self._clients.discard(client)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = Client(writer)
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        if self._stopping or len(self._clients) >= MAX_CLIENTS:
            # Stopping: a connection accepted just before the socket closed but served after
            # the clients were closed would be kept open, outlive stop() and be cancelled with
            # the loop (Python 3.11 logs that as an error from this handler).
            client.close()
            return
        for line in self._snapshot():
            client.push(line)
        self._clients.add(client)
        writer_task = asyncio.ensure_future(client.run_writer())
        self._tasks.add(writer_task)
        writer_task.add_done_callback(self._tasks.discard)
        try:
            while not client.closed:
                try:
                    raw = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    break  # a line over MAX_LINE: not a screen we want to talk to
                except (ConnectionError, OSError):
                    break
                if not raw:
                    break
                try:
                    message = decode(raw)
                except ProtocolError as exc:
                    client.push(event(EventType.ACK, cmd=None, ok=False, error="bad_line"))
                    log.info("bad line from a screen: %s", exc)
                    continue
                client.push(await self._on_command(message))
        finally:
            self._clients.discard(client)
            client.close()
