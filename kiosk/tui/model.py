"""What the screen knows of the station: the latest of each event, folded into plain state.

Applying an event is cheap and renders nothing: progress lines only replace the previous one
(toolong's `can_replace` idea), and the app draws the latest state on its own timer, so a flood
of events never makes the screen lag behind.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kiosk.models import Action, Finding
from kiosk.protocol import EventType, State

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Health:
    """The station's health as last published."""

    ok: bool
    problems: tuple[str, ...] = ()
    signatures_date: str | None = None
    server_link: str = "off"

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> Health:
        """Build from a `health` event."""
        return cls(
            ok=data.get("ok") is True,
            problems=tuple(str(p) for p in data.get("problems") or ()),
            signatures_date=_str_or_none(data.get("signatures_date")),
            server_link=str(data.get("server_link") or "off"),
        )


@dataclass(frozen=True, slots=True)
class Progress:
    """The latest progress of a session."""

    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0
    current: str | None = None  # escaped name: display_name() before showing
    eta_s: float | None = None

    @property
    def fraction(self) -> float:
        """Done, from 0 to 1 (by bytes when known, else by files)."""
        if self.bytes_total > 0:
            return min(1.0, max(0.0, self.bytes_done / self.bytes_total))
        if self.files_total > 0:
            return min(1.0, max(0.0, self.files_done / self.files_total))
        return 0.0

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> Progress:
        """Build from a `progress` event."""
        eta = data.get("eta_s")
        return cls(
            files_done=_int(data.get("files_done")),
            files_total=_int(data.get("files_total")),
            bytes_done=_int(data.get("bytes_done")),
            bytes_total=_int(data.get("bytes_total")),
            current=_str_or_none(data.get("current")),
            eta_s=float(eta) if isinstance(eta, int | float) and eta >= 0 else None,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verdict of a session, as the station sent it."""

    verdict: str
    reason: str | None
    scan_code: str | None
    files_total: int
    findings: tuple[Finding, ...]
    findings_total: int
    delete: str
    actions: tuple[Action, ...]
    # Entries per file verdict over the whole stick (the findings sent are at most MAX_FINDINGS).
    counts: dict[str, int] = field(default_factory=dict)
    damaged: bool = False  # the filesystem looked damaged: the station will not delete there

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> Verdict:
        """Build from a `verdict` event; raise ValueError/KeyError/TypeError when malformed."""
        findings = tuple(Finding.from_dict(f) for f in data.get("findings") or ())
        return cls(
            verdict=str(data["verdict"]),
            reason=_str_or_none(data.get("reason")),
            scan_code=_str_or_none(data.get("scan_code")),
            files_total=_int(data.get("files_total")),
            findings=tuple(sorted(findings, key=lambda f: f.rank)),
            findings_total=max(_int(data.get("findings_total")), len(findings)),
            delete=str(data.get("delete") or "never"),
            actions=tuple(Action.from_dict(a) for a in data.get("actions") or ()),
            counts=_counts(data.get("counts")),
            damaged=data.get("damaged") is True,
        )

    def count(self, verdict: str) -> int:
        """How many entries of the stick got *verdict* (never fewer than the findings show)."""
        shown = sum(1 for f in self.findings if f.verdict == verdict)
        return max(self.counts.get(verdict, 0), shown)

    @property
    def deletion(self) -> Action | None:
        """The latest delete-infected action, if any."""
        done = [a for a in self.actions if a.kind == "delete_infected"]
        return done[-1] if done else None


@dataclass(frozen=True, slots=True)
class Refused:
    """A USB device the station refused (not a stick session: nothing was read)."""

    scan_code: str | None
    refusal: str | None  # storage_composite | not_storage | no_interface
    devices: int
    at: float  # when the screen heard of it (monotonic)

    @classmethod
    def from_event(cls, data: dict[str, Any], now: float) -> Refused:
        """Build from a `refused` event."""
        return cls(
            scan_code=_str_or_none(data.get("scan_code")),
            refusal=_str_or_none(data.get("refusal")),
            devices=max(1, _int(data.get("devices"))),
            at=now,
        )


@dataclass(slots=True)
class Session:
    """One stick session as the screen sees it."""

    session_id: str
    state: str = State.DETECTED
    queued: int = 0
    progress: Progress | None = None
    verdict: Verdict | None = None
    removed: bool = False
    # What the teacher did on this screen (not the station's state).
    dismissed: bool = False
    confirming_delete: bool = False
    delete_requested: bool = False
    delete_refused: str | None = None  # error code of a refused delete command
    rescanning: bool = False  # deleting infected files, then scanning again

    @property
    def live(self) -> bool:
        """Still on the kiosk (not removed, not ended)."""
        return not self.removed and self.state != State.ENDED


@dataclass(slots=True)
class StationModel:
    """Everything the screen knows; `apply` folds one event in, `dirty` says a redraw is due."""

    connected: bool = False
    ever_connected: bool = False
    started_at: float = 0.0  # when the screen started (monotonic), for the boot grace
    station_id: str | None = None
    health: Health | None = None
    sessions: dict[str, Session] = field(default_factory=dict)
    ended: Session | None = None  # the last session that ended, for a short goodbye
    ended_at: float = 0.0
    gone: deque[str] = field(default_factory=lambda: deque(maxlen=64))  # ended session ids
    refused: Refused | None = None  # the latest USB device refused, for a short notice
    events: int = 0
    progress_events: int = 0
    bad_events: int = 0
    dirty: bool = True

    def set_connected(self, connected: bool, now: float) -> None:
        """Record that the link to the station came up or went down."""
        if connected == self.connected:
            return
        self.connected = connected
        self.ever_connected |= connected
        if not connected:
            # A lost station vouches for nothing: forget what it said.
            self.sessions.clear()
            self.health = None
            self.refused = None
        self.dirty = True

    def apply(self, message: dict[str, Any], now: float) -> None:
        """Fold one decoded protocol message in; a malformed one is counted and skipped."""
        self.events += 1
        try:
            self._apply(message, now)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            self.bad_events += 1
            log.warning("ignored a malformed %r event: %s", message.get("type"), exc)
        self.dirty = True

    def _apply(self, message: dict[str, Any], now: float) -> None:
        kind = message.get("type")
        if kind == EventType.HELLO:
            # The station sends every live session again after hello: start afresh.
            self.station_id = _str_or_none(message.get("station_id"))
            self.sessions.clear()
        elif kind == EventType.HEALTH:
            self.health = Health.from_event(message)
        elif kind == EventType.SESSION:
            state = str(State(message["state"]))  # parse first: a bad line creates nothing
            session = self._session(message)
            session.state = state
            session.queued = _int(message.get("queued"))
            if session.state == State.DELETING:
                session.rescanning = True
                session.progress = None
            elif message.get("rescan") is True:
                session.rescanning = True  # a screen that connected after the delete started
            if session.state == State.ENDED:
                self._end(session, now)
        elif kind == EventType.PROGRESS:
            self.progress_events += 1
            latest = Progress.from_event(message)
            session = self._session(message)
            if session.verdict is None or session.rescanning:
                session.progress = latest
            # else a late line of a scan already judged: its bar must not come back.
        elif kind == EventType.VERDICT:
            result = Verdict.from_event(message)
            session = self._session(message)
            session.verdict = result
            session.progress = None  # that scan is over
            session.delete_requested = False
            session.confirming_delete = False
            session.rescanning = False
        elif kind == EventType.REMOVED:
            gone = self.sessions.get(str(message["session_id"]))
            if gone is not None:
                gone.removed = True
                self._end(gone, now)
        elif kind == EventType.REFUSED:
            self.refused = Refused.from_event(message, now)
        elif kind == EventType.ACK:
            self._ack(message)

    def _ack(self, message: dict[str, Any]) -> None:
        if message.get("cmd") != "delete_infected" or message.get("ok") is not False:
            return
        for session in self.sessions.values():
            if session.delete_requested:
                session.delete_requested = False
                session.delete_refused = str(message.get("error") or "refused")

    def _session(self, message: dict[str, Any]) -> Session:
        session_id = str(message["session_id"])
        if session_id in self.gone:
            # A late line about a session that ended must not bring it back as a ghost.
            return Session(session_id, state=State.ENDED)
        found = self.sessions.get(session_id)
        if found is None:
            found = self.sessions[session_id] = Session(session_id)
        return found

    def _end(self, session: Session, now: float) -> None:
        if session.session_id in self.gone:
            return
        self.gone.append(session.session_id)
        self.sessions.pop(session.session_id, None)
        self.ended = session
        self.ended_at = now

    def current(self) -> Session | None:
        """The session the screen is about: the oldest live one."""
        for session in self.sessions.values():
            if session.live:
                return session
        return None

    def others(self) -> int:
        """How many more sticks are on the kiosk or queued behind the current one."""
        live = [s for s in self.sessions.values() if s.live]
        queued = max((s.queued for s in live), default=0)
        return max(len(live) - 1, queued)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _counts(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): _int(v) for k, v in value.items()}


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
