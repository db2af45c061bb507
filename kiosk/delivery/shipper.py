"""The shipper: drain the outbox to the server, forever, and send a heartbeat every minute.

Exactly once, end to end: the outbox keeps a report until the server confirmed it (a 2xx with a
receipt naming it); the server stores a report once per UUID and answers a repeat as a success.
So the shipper may be killed at any instant, or the server may die after its commit and before
its answer: the report is sent again and stored once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from kiosk.delivery.client import Result
from kiosk.models import Report, iso, utcnow

log = logging.getLogger(__name__)


class OutboxLike(Protocol):
    """What the shipper needs of `kiosk.station.outbox.Outbox`."""

    def pending(self, limit: int = 100) -> list[Report]: ...
    def acknowledge(self, report_id: str) -> None: ...
    def backlog(self) -> int: ...


class ClientLike(Protocol):
    """What the shipper needs of `kiosk.delivery.client.ServerClient`."""

    def send_report(self, report: Report) -> Result: ...
    def send_heartbeat(self, beat: dict[str, Any]) -> Result: ...


class Backoff:
    """Exponential backoff with jitter, from 1 s up to a cap, reset by a success."""

    def __init__(self, cap: float, first: float = 1.0) -> None:
        self.cap = max(cap, first)
        self.first = first
        self.current = 0.0

    def failed(self) -> float:
        """Return how long to wait after one more failure."""
        self.current = min(self.cap, self.current * 2 if self.current else self.first)
        return self.current * random.uniform(0.8, 1.0)  # noqa: S311 (jitter, not secrecy)

    def succeeded(self) -> None:
        """Start again from the first delay."""
        self.current = 0.0


class Shipper:
    """One loop: heartbeat when due, send what is pending, wait (backoff or poll)."""

    def __init__(
        self,
        outbox: OutboxLike,
        client: ClientLike,
        station_id: str,
        *,
        health: Callable[[], dict[str, Any] | None] = lambda: None,
        software_version: str | None = None,
        heartbeat_interval: float = 60.0,
        backoff_max: float = 300.0,
        poll_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self.station_id = station_id
        self.health = health
        self.software_version = software_version
        self.heartbeat_interval = heartbeat_interval
        self.backoff = Backoff(backoff_max)
        self.backoff_max = backoff_max
        self.poll_interval = poll_interval
        self.clock = clock
        self.parked: dict[str, float] = {}  # refused reports -> when to offer them again
        self.delivered = 0

    def heartbeat(self) -> Result:
        """Send the station's health now."""
        try:
            backlog: int | None = self.outbox.backlog()
        except Exception:  # a broken outbox is itself news for IT: say "unknown", keep going
            log.exception("cannot read the outbox backlog")
            backlog = None
        beat = {
            "station_id": self.station_id,
            "sent_at": iso(utcnow()),
            "software_version": self.software_version,
            "backlog": backlog,
            "health": self.health(),
        }
        result = self.client.send_heartbeat(beat)
        if result is not Result.STORED:
            log.info("heartbeat not delivered (%s)", result.value)
        return result

    def drain(self, stop: threading.Event) -> Result | None:
        """Send pending reports until none is left or one fails; return the failure, if any."""
        while not stop.is_set():
            now = self.clock()
            waiting = {k: t for k, t in self.parked.items() if t > now}
            self.parked = waiting
            batch = [
                r for r in self.outbox.pending(100 + len(waiting)) if r.report_id not in waiting
            ]
            if not batch:
                return None
            for report in batch:
                if stop.is_set():
                    return None
                if not report.station_id:
                    report = replace(report, station_id=self.station_id)
                result = self.client.send_report(report)
                if result is Result.STORED:
                    self.outbox.acknowledge(report.report_id)
                    self.delivered += 1
                    self.backoff.succeeded()
                elif result is Result.REJECTED:
                    self.parked[report.report_id] = self.clock() + self.backoff_max
                else:
                    return result
        return None

    def run(self, stop: threading.Event) -> None:
        """Loop until *stop* is set (SIGTERM); every error short of that is waited out."""
        next_beat = self.clock()
        while not stop.is_set():
            if self.clock() >= next_beat:
                try:
                    self.heartbeat()
                except Exception:  # the edge of the loop: log and carry on
                    log.exception("heartbeat failed")
                next_beat = self.clock() + self.heartbeat_interval
            try:
                failure = self.drain(stop)
            except Exception:  # e.g. the outbox is locked or the disk is failing: wait, retry
                log.exception("delivery failed")
                failure = Result.RETRY
            if failure is None:
                wait = self.poll_interval
            else:
                wait = self.backoff.failed()
                if failure is Result.AUTH:
                    log.error("the server refuses this station's token (revoked or wrong)")
            stop.wait(max(0.0, min(wait, next_beat - self.clock())))
