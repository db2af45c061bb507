"""The station daemon: sticks from a source, sessions, the outbox, the event socket; health is
kept by kiosk.station.monitor.

API for other parts (e.g. `kiosk demo`, which runs the station in-process next to the UI)::

    from kiosk.station.station import Station, run_station
    from kiosk.station.source import ManualSource

    source = ManualSource()                 # or kiosk.station.udev.UdevSource(usb_only=...)
    station = Station(config, source)       # scanner=None builds kiosk.scan.scanner.Scanner(config)
    task = asyncio.create_task(station.run())   # or: await run_station(config, source)
    await station.ready.wait()              # event socket listening, outbox recovered
    source.plug("/path/to/folder-or-image") # a "stick"; source.unplug(volume) takes it out
    station.stop(); await task

Everything blocking (mount, scan, SQLite, self-test) runs in threads; the loop only routes events.
A session's report is committed to the outbox before its verdict is published.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiosk import __version__
from kiosk.config import Config
from kiosk.errors import OutboxError
from kiosk.models import Reason, Report, TreeVerdict, new_report_id, utcnow
from kiosk.protocol import PROTOCOL_VERSION, Command, EventType, State, event
from kiosk.station import refused
from kiosk.station.device import Action, DeviceEvent, stick_info
from kiosk.station.events import EventHub
from kiosk.station.health import ScanEngine
from kiosk.station.monitor import Monitor
from kiosk.station.mount import clear_stale, mountable
from kiosk.station.outbox import Outbox, outbox_path
from kiosk.station.scanning import StickScan, delete_infected, failed_report
from kiosk.station.session import (
    Session,
    infected_paths,
    journal,
    journal_line,
    stick_damaged,
    wait_event,
)
from kiosk.station.source import DeviceSource

log = logging.getLogger(__name__)

SOURCE_RETRY = 2.0  # seconds before listening again to a device source that failed or ended
PRESENCE_POLL = 1.0  # seconds between presence checks of a stick whose verdict is shown


def _default_scanner(config: Config) -> ScanEngine:
    from kiosk.scan.scanner import Scanner  # imported late: `kiosk ui` never needs pyclamd

    return Scanner(config)


class Station:
    """The daemon's state and tasks; `run()` until `stop()`."""

    def __init__(
        self,
        config: Config,
        source: DeviceSource,
        *,
        scanner: ScanEngine | None = None,
        outbox: Outbox | None = None,
        socket_path: Path | None = None,
        refused_spools: list[Path] | None = None,
    ) -> None:
        self.config = config
        self.settings = config.station
        self.source = source
        self.scanner = scanner or _default_scanner(config)
        self.outbox = outbox or Outbox(
            outbox_path(config), group=self.settings.outbox_group or None
        )
        self.socket_path = socket_path or Path(self.settings.event_socket)
        self.hub = EventHub(self._snapshot, self._command)
        self.stick_scan = StickScan(
            self.settings,
            self.scanner,
            present=self._present,
            on_mounted=lambda session: self._set_state(session, State.PREFLIGHT),
            on_progress=self._progress,
        )
        self.monitor = Monitor(config, self.scanner, self.outbox, self.hub.publish)
        self.sessions: dict[str, Session] = {}  # by session_id
        self.ready = asyncio.Event()
        self.recovered: list[Report] = []
        self.ended: list[Session] = []  # last few ended sessions, for tests and the bench
        self.listeners: list[Callable[[Session], None]] = []  # called on every state change
        self._stop = asyncio.Event()
        self._slots = asyncio.Semaphore(max(1, self.settings.parallel_sessions))
        self._waiting: list[Session] = []
        self._busy = 0
        self._owns_outbox = outbox is None
        self.refused_spools = (
            refused.spool_dirs(config) if refused_spools is None else refused_spools
        )
        self._usb_wake = asyncio.Event()
        source.on_usb = self._usb_wake.set

    # -- life ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Recover the outbox, open the socket, then serve sticks until `stop()`."""
        await asyncio.to_thread(clear_stale, Path(self.settings.mount_dir))
        self.recovered = await asyncio.to_thread(self.outbox.recover)
        for report in self.recovered:
            journal.info(journal_line(Session(stick="", volumes=[]), report, self.settings.id))
        await self.hub.start(self.socket_path, self.settings.event_socket_group or None)
        await self._drain_refused()
        tasks = [
            asyncio.create_task(self._watch_source(), name="source"),
            asyncio.create_task(self._refused_loop(), name="usb-refused"),
            *self.monitor.start(),
        ]
        self.ready.set()
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for session in list(self.sessions.values()):
                session.cancel.set()
                if session.task:
                    session.task.cancel()
            pending = [*tasks, *(s.task for s in self.sessions.values() if s.task)]
            await asyncio.gather(*pending, return_exceptions=True)
            await self.source.aclose()
            await self.hub.stop()
            if self._owns_outbox:
                await asyncio.to_thread(self.outbox.close)

    def stop(self) -> None:
        """Ask `run()` to end (sessions are cancelled, mounts undone)."""
        self._stop.set()

    # -- events to screens -----------------------------------------------------------------
    def _hello(self) -> bytes:
        return event(
            EventType.HELLO,
            station_id=self.settings.id,
            software_version=__version__,
            protocol=PROTOCOL_VERSION,
        )

    def _snapshot(self) -> list[bytes]:
        lines = [self._hello(), self.monitor.health.to_event()]
        for session in self.sessions.values():
            lines += session.snapshot()
        return lines

    def _set_state(self, session: Session, state: State) -> None:
        session.state = state
        self.hub.publish(session.session_event(), session_id=session.session_id)
        for listener in self.listeners:
            listener(session)

    # -- devices ---------------------------------------------------------------------------
    async def _watch_source(self) -> None:
        while True:
            try:
                async for found in self.source.events():
                    try:
                        self._on_device(found)
                    except Exception:  # error boundary: one odd event must not stop the station
                        log.exception("cannot handle a device event")
            except Exception:  # a broken monitor would leave the kiosk blind: listen again
                log.exception("the device source failed; listening again")
            await asyncio.sleep(SOURCE_RETRY)

    def _session_of(self, found: DeviceEvent) -> Session | None:
        for session in self.sessions.values():
            if any(v.same_stick(found.volume) for v in session.volumes):
                return session
        return None

    def _on_device(self, found: DeviceEvent) -> None:
        session = self._session_of(found)
        if found.action is Action.REMOVE:
            if session is not None:
                _gone(session)
            return
        if session is not None:
            if session.state is State.DETECTED:
                # Still settling: a partition that shows up now belongs to this stick.
                session.volumes = [v for v in session.volumes if v.key != found.volume.key]
                session.volumes.append(found.volume)
                session.grew.set()
            return
        for stale in list(self.sessions.values()):
            there = [v for v in stale.volumes if v.stick == found.volume.stick]
            if there:
                seq = found.volume.diskseq
                if seq is not None and all(
                    v.diskseq is not None and seq < v.diskseq for v in there
                ):
                    # The kernel numbers disks in increasing order: this is a late event about
                    # a disk that left before the session's came, not a new one.
                    log.info("session %s: a late event of an older disk", stale.session_id)
                    return
                if stale.state is State.DETECTED:
                    # Still settling, nothing read: the disk there now is the one to scan. (A
                    # loop device's sequence number moves on once more while it is set up: the
                    # first session was ended as replaced, its screen shown 'incomplete'.)
                    log.info("session %s: a new disk while settling", stale.session_id)
                    stale.volumes = [found.volume]
                    stale.grew.set()
                    return
                # A new disk where a session's stick was: that one left unseen (a lost event).
                log.warning(
                    "session %s: its stick was replaced (disk %s, the session's %s)",
                    stale.session_id,
                    seq,
                    [v.diskseq for v in there],
                )
                _gone(stale)
        session = Session(stick=found.volume.stick, volumes=[found.volume])
        session.delete_policy = "never"
        self.sessions[session.session_id] = session
        session.task = asyncio.create_task(self._run_session(session))
        self._set_state(session, State.DETECTED)

    def _present(self, session: Session) -> bool:
        return all(self.source.present(v) for v in mountable(session.volumes))

    # -- refused USB devices (kiosk.station.refused) ---------------------------------------
    async def _refused_loop(self) -> None:
        while True:
            await wait_event(self._usb_wake, refused.POLL)
            self._usb_wake.clear()  # before the drain: a device announced during it is seen
            await self._drain_refused()

    async def _drain_refused(self) -> None:
        """Turn the refusals usb-policy spooled into reports, then tell the screens."""
        try:
            reports = await asyncio.to_thread(
                refused.drain, self.refused_spools, self.outbox, self.settings.id, __version__
            )
        except Exception:  # error boundary: the spool must never stop the station
            log.exception("cannot drain the refused USB devices")
            return
        shown = [r for r in reports if refused.recent(r)]
        if shown:
            latest = shown[-1]
            self.hub.publish(
                event(
                    EventType.REFUSED,
                    report_id=latest.report_id,
                    scan_code=latest.scan_code,
                    reason=str(latest.reason),
                    refusal=latest.extra.get("refusal"),
                    devices=sum(int(r.extra.get("refused_devices", 1)) for r in shown),
                )
            )
        if reports:
            await self.monitor.refresh_backlog()

    # -- one session -----------------------------------------------------------------------
    async def _run_session(self, session: Session) -> None:
        try:
            await self._session_body(session)
        except asyncio.CancelledError:
            raise
        except Exception:  # error boundary: a broken session must leave the station working
            log.exception("session %s failed", session.session_id)
        finally:
            self.sessions.pop(session.session_id, None)
            if session.state is not State.ENDED:
                self._set_state(session, State.ENDED)
                self.hub.publish(event(EventType.REMOVED, session_id=session.session_id))
            self.ended = [*self.ended[-9:], session]

    async def _session_body(self, session: Session) -> None:
        # Wait for the stick's other partitions, no longer than settle_time, not at all when
        # the kernel's count says they are all here (a whole-disk filesystem, a demo folder).
        deadline = time.monotonic() + self.settings.settle_time
        while not session.removed.is_set() and not session.settled():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            session.grew.clear()
            await wait_event(session.grew, left)
        if session.removed.is_set():
            return
        self._waiting.append(session)
        self._publish_queue()
        try:
            async with self._slots:
                self._busy += 1
                try:
                    self._waiting.remove(session)
                    self._publish_queue()
                    if session.removed.is_set():
                        return  # left while queued: nothing was read, nothing to report
                    await self._scan_session(session)
                finally:
                    self._busy -= 1
        finally:
            if session in self._waiting:
                self._waiting.remove(session)
                self._publish_queue()
        await self._after_verdict(session)

    def _publish_queue(self) -> None:
        free = max(0, self.settings.parallel_sessions - self._busy)
        for position, waiting in enumerate(self._waiting):
            queued = max(0, position + 1 - free)
            if waiting.queued != queued:
                waiting.queued = queued
                self._set_state(waiting, waiting.state)

    async def _scan_session(self, session: Session) -> None:
        session.queued = 0
        session.device = stick_info(session.volumes)
        await self._begin_and_scan(session)

    async def _begin_and_scan(self, session: Session, extra: dict[str, Any] | None = None) -> None:
        """Record the session in the outbox, mount and scan, commit, publish the verdict."""
        report_id = new_report_id()
        started = utcnow()
        try:
            await asyncio.to_thread(
                self.outbox.begin, report_id, started, session.info(), self.settings.id
            )
        except OutboxError as exc:
            log.error("new session refused: %s", exc)
            self.monitor.outbox_full(True)
            refused = failed_report(report_id, started, Reason.OUTBOX_FULL, str(exc))
            await self._finish(session, refused, commit=False)
            return
        self.monitor.outbox_full(False)
        self._set_state(session, State.MOUNTING)
        try:
            report = await self.stick_scan.run(session, report_id, started)
        except Exception as exc:  # error boundary: a failure of ours is an error verdict, stored
            log.exception("session %s: scan failed", session.session_id)
            report = failed_report(report_id, started, Reason.SCAN_ERRORS, repr(exc))
        if extra is not None:
            report = dataclasses.replace(report, extra={**report.extra, **extra})
        await self._finish(session, report)

    def _progress(self, session: Session, progress: Any) -> None:
        if session.state is State.PREFLIGHT:
            session.first_progress_at = time.monotonic()
            self._set_state(session, State.SCANNING)
        if session.state is not State.SCANNING:
            return
        line = session.progress_event(progress)
        self.hub.publish(line, session_id=session.session_id, progress=True)

    async def _finish(self, session: Session, report: Report, *, commit: bool = True) -> None:
        actions = tuple(
            dataclasses.replace(
                a,
                rescan_verdict=report.verdict,
                ok=a.ok and report.verdict is TreeVerdict.CLEAN,
            )
            for a in session.pending_actions
        )
        report = report.with_station(self.settings.id, session.info(), report.actions + actions)
        report = dataclasses.replace(report, software_version=__version__)
        if commit:
            try:
                await asyncio.to_thread(self.outbox.commit, report)
                session.committed_at = time.monotonic()
            except OutboxError as exc:
                log.error("report not stored: %s", exc)
                self.monitor.outbox_full(True)
                report = dataclasses.replace(
                    report, verdict=TreeVerdict.ERROR, reason=Reason.OUTBOX_FULL, detail=str(exc)
                )
        session.report = report
        if report.reason in _ENGINE_REASONS:
            self.monitor.recheck()  # the engine failed a session: re-check health now
        infected = bool(infected_paths(report))
        # Never write to a damaged filesystem (kiosk.station.session.stick_damaged says why).
        session.damaged = stick_damaged(report, session.unclean_mount)
        # One deletion per session: after it, the verdict never offers another.
        again = infected and commit and not actions and not session.damaged
        session.delete_policy = self.settings.delete_infected if again else "never"
        journal.info(journal_line(session, report, self.settings.id))
        self._set_state(session, State.VERDICT)
        verdict = session.verdict_event()
        assert verdict is not None
        self.hub.publish(verdict, session_id=session.session_id)
        await self.monitor.refresh_backlog()

    async def _after_verdict(self, session: Session) -> None:
        if session.delete_policy == "always" and not session.removed.is_set():
            await self._delete_flow(session)
        timeout = self.settings.removal_timeout
        deadline = time.monotonic() + timeout if timeout else math.inf
        while not session.removed.is_set():
            left = min(PRESENCE_POLL, deadline - time.monotonic())
            if left <= 0:
                break  # removal_timeout: the demo goes idle with the stick still "in"
            waits = [asyncio.ensure_future(session.removed.wait())]
            if session.delete_policy == "offer":
                waits.append(asyncio.ensure_future(session.delete_asked.wait()))
            done, pending = await asyncio.wait(
                waits, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
            if not done:
                # A removal no event told of (a lost event, an overrun socket) ends it too.
                if not await asyncio.to_thread(self._present, session):
                    log.warning("session %s: the stick left unannounced", session.session_id)
                    _gone(session)
                continue
            if session.delete_asked.is_set() and not session.removed.is_set():
                session.delete_asked.clear()
                await self._delete_flow(session)
        self._set_state(session, State.ENDED)
        self.hub.publish(event(EventType.REMOVED, session_id=session.session_id))

    # -- delete flow -----------------------------------------------------------------------
    async def _delete_flow(self, session: Session) -> None:
        original = session.report
        assert original is not None
        paths = infected_paths(original)
        session.delete_policy = "never"  # one deletion per session
        self._set_state(session, State.DELETING)
        action = await delete_infected(self.settings, session, paths)
        session.pending_actions = (action,)
        await self._begin_and_scan(session, extra={"rescan_of": original.report_id})
        session.pending_actions = ()
        session.delete_policy = "never"

    # -- commands from screens -------------------------------------------------------------
    async def _command(self, message: dict[str, Any]) -> bytes:
        name = message.get("cmd")
        if name == Command.PING:
            return _ack(name, None)
        session_id = message.get("session_id")
        named = session_id if isinstance(session_id, str) else None
        ack = functools.partial(_ack, session_id=named)
        session = self.sessions.get(str(session_id))
        if name not in (Command.DELETE_INFECTED, Command.DISMISS):
            return ack(name, "unknown_command")
        if session is None:
            return ack(name, "unknown_session")
        if name == Command.DISMISS:
            if session.state is State.VERDICT:
                self._set_state(session, State.WAITING_REMOVAL)
            return ack(name, None)
        if session.state is not State.VERDICT or session.delete_policy != "offer":
            return ack(name, "not_allowed")
        session.delete_asked.set()
        return ack(name, None)


_ENGINE_REASONS = frozenset(
    {
        Reason.ENGINE_DOWN,
        Reason.CANARY_MISSED,
        Reason.SIGNATURES_OLD,
        Reason.PREFLIGHT_FAILED,
        Reason.ENGINE_LOST,
    }
)


def _gone(session: Session) -> None:
    session.removed.set()
    session.cancel.set()
    session.grew.set()  # a session still settling ends now, not at the end of settle_time


def _ack(name: Any, error: str | None, session_id: str | None = None) -> bytes:
    extra = {"session_id": session_id} if session_id is not None else {}
    return event(EventType.ACK, cmd=name, ok=error is None, error=error, **extra)


async def run_station(
    config: Config,
    source: DeviceSource,
    *,
    scanner: ScanEngine | None = None,
    socket_path: Path | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run a station on *source* until *stop* is set (or the task is cancelled)."""
    station = Station(config, source, scanner=scanner, socket_path=socket_path)
    task = asyncio.create_task(station.run())
    try:
        if stop is None:
            await task
            return
        await stop.wait()
    finally:
        station.stop()
        await asyncio.gather(task, return_exceptions=True)
