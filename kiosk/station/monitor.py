"""The station's health over time: the self-test loop, the outbox backlog, the health file.

`Monitor` holds the station's current `Health` (kiosk.station.health), publishes every change to
the screens, re-runs the self-test on its interval or at once when a session saw the engine fail,
and rewrites the health file the shipper sends in its heartbeats.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from kiosk import __version__
from kiosk.config import Config
from kiosk.errors import OutboxError
from kiosk.models import utcnow
from kiosk.station import health as health_mod
from kiosk.station.health import Health, ScanEngine
from kiosk.station.outbox import Outbox
from kiosk.station.session import wait_event

log = logging.getLogger(__name__)

HEALTH_FILE_EVERY = 60.0  # seconds: the shipper treats an older file as stale


def server_link(config: Config, oldest_pending: datetime | None) -> str:
    """Tell the screens how delivery goes: off (no server), ok, or down (reports stuck).

    The shipper runs in another process and says nothing to the station; a report that waited
    longer than twice the shipper's longest backoff is the sign that the link is down.
    """
    if not config.shipper.server_url:
        return "off"
    if oldest_pending is None:
        return "ok"
    waited = (utcnow() - oldest_pending).total_seconds()
    return "down" if waited > 2 * config.shipper.backoff_max + 60 else "ok"


def health_file(config: Config) -> Path:
    """Where the station writes its health for the shipper."""
    if config.shipper.health_file:
        return Path(config.shipper.health_file)
    return Path(config.station.data_dir) / "health.json"


def _has_room(path: Path, need: int = 4 << 20) -> bool:
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize >= need


class Monitor:
    """The station's health, kept up to date and told to the screens and the shipper."""

    def __init__(
        self,
        config: Config,
        scanner: ScanEngine,
        outbox: Outbox,
        publish: Callable[[bytes], None],
    ) -> None:
        self.config = config
        self.scanner = scanner
        self.outbox = outbox
        self.publish = publish
        self.path = health_file(config)
        self.health = Health()  # selftest_pending until a self-test passed: fail closed
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()

    def set(self, health: Health) -> None:
        """Make *health* the station's, tell the screens and rewrite the file soon."""
        self.health = health
        self.publish(health.to_event())
        self._changed.set()

    def outbox_full(self, full: bool) -> None:
        """Raise or clear the `outbox_full` problem (only a change is published)."""
        if (health_mod.OUTBOX_FULL in self.health.problems) != full:
            self.set(self.health.with_problem(health_mod.OUTBOX_FULL, full))

    def recheck(self) -> None:
        """Run the self-test now (a session saw the engine fail)."""
        self._wake.set()

    def start(self) -> list[asyncio.Task[None]]:
        """Start the self-test and health-file loops; the caller cancels them."""
        return [
            asyncio.create_task(self._selftest_loop(), name="health"),
            asyncio.create_task(self._file_loop(), name="health-file"),
        ]

    async def refresh_backlog(self) -> None:
        """Look at the outbox again: its backlog and what it says of the server link."""
        try:
            backlog = await asyncio.to_thread(self.outbox.backlog)
            oldest = await asyncio.to_thread(self.outbox.oldest_pending)
        except OutboxError:
            return
        link = server_link(self.config, oldest)
        if (backlog, link) != (self.health.outbox_backlog, self.health.server_link):
            self.set(dataclasses.replace(self.health, outbox_backlog=backlog, server_link=link))

    async def _file_loop(self) -> None:
        # For the shipper's heartbeats: on every change, and at least every minute. The shipper
        # drains the outbox from another process: the backlog is looked at here too.
        while True:
            await self.refresh_backlog()
            try:
                await asyncio.to_thread(
                    health_mod.write_health_file, self.path, self.health, __version__
                )
            except OSError as exc:
                log.warning("cannot write %s: %s", self.path, exc)
            await wait_event(self._changed, HEALTH_FILE_EVERY)
            self._changed.clear()

    async def _selftest_loop(self) -> None:
        settings = self.config.station
        while True:
            checked = await asyncio.to_thread(health_mod.selftest, self.scanner, self.health)
            if health_mod.OUTBOX_FULL in checked.problems and _has_room(self.outbox.path):
                checked = checked.with_problem(health_mod.OUTBOX_FULL, False)
            self.set(checked)
            await self.refresh_backlog()
            if not checked.ok:
                log.warning("station out of service: %s", ", ".join(sorted(checked.problems)))
            delay = settings.selftest_interval if checked.ok else settings.health_retry
            await wait_event(self._wake, delay)
            self._wake.clear()
