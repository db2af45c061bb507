"""The screen's side of the event socket: connect, read lines, send commands, reconnect forever."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from kiosk.protocol import MAX_LINE, Command, ProtocolError, command, decode

log = logging.getLogger(__name__)

OnMessage = Callable[[dict[str, Any]], None]
OnLink = Callable[[bool], None]


class StationLink:
    """A client of the station's Unix socket that never gives up.

    `run()` connects, hands every decoded line to *on_message* and reports the link going up or
    down to *on_link*; on any failure it waits (up to *retry_max* seconds) and tries again. A
    ping is sent every *ping_every* seconds; a station silent for *silence_s* after a ping is
    taken as lost (a hung station must not leave a stale verdict on screen).
    """

    def __init__(
        self,
        path: str,
        on_message: OnMessage,
        on_link: OnLink,
        *,
        retry_min: float = 0.2,
        retry_max: float = 3.0,
        ping_every: float = 10.0,
        silence_s: float = 25.0,
    ) -> None:
        self.path = path
        self._on_message = on_message
        self._on_link = on_link
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._ping_every = ping_every
        self._silence_s = silence_s
        self._writer: asyncio.StreamWriter | None = None
        self.connects = 0

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return self._writer is not None

    async def run(self) -> None:
        """Connect and read forever (cancel the task to stop)."""
        delay = self._retry_min
        while True:
            try:
                reader, writer = await asyncio.open_unix_connection(self.path, limit=MAX_LINE + 1)
            except OSError as exc:
                log.debug("station not reachable at %s: %s", self.path, exc)
            else:
                delay = self._retry_min
                await self._serve(reader, writer)
            await asyncio.sleep(delay)
            delay = min(self._retry_max, delay * 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self.connects += 1
        self._on_link(True)
        pinger = asyncio.create_task(self._ping())
        try:
            while True:
                line = await asyncio.wait_for(reader.readline(), self._silence_s)
                if not line:
                    log.info("station closed the connection")
                    return
                try:
                    message = decode(line)
                except ProtocolError as exc:
                    log.warning("ignored a bad line from the station: %s", exc)
                    continue
                self._on_message(message)
        except (OSError, ValueError, TimeoutError) as exc:
            # ValueError: a line over MAX_LINE; TimeoutError: a silent station.
            log.warning("lost the station: %s", exc or type(exc).__name__)
        finally:
            pinger.cancel()
            self._writer = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            self._on_link(False)

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self._ping_every)
            await self.send(Command.PING)

    async def send(self, kind: Command, **data: Any) -> bool:
        """Send one command; return False when the station is not connected."""
        writer = self._writer
        if writer is None:
            return False
        try:
            writer.write(command(kind, **data))
            await writer.drain()
        except OSError as exc:
            log.warning("could not send %s: %s", kind, exc)
            return False
        return True
