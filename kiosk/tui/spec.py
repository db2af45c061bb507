"""What one kiosk screen shows, as plain data: the view builds it, the screen draws it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kiosk.tui.words import Words


class Kind(StrEnum):
    """Every screen of the kiosk."""

    STARTING = "starting"
    WAITING = "waiting"
    PREPARING = "preparing"
    SCANNING = "scanning"
    CLEAN = "clean"
    THREATS = "threats"
    DANGEROUS = "dangerous"
    NOT_VERIFIABLE = "not_verifiable"
    INTERRUPTED = "interrupted"
    UNREADABLE = "unreadable"
    OUT_OF_SERVICE = "out_of_service"
    CONFIRM_DELETE = "confirm_delete"
    DELETING = "deleting"
    REMOVE = "remove"
    DEVICE_REFUSED = "device_refused"  # a USB device the kiosk refused: a short notice


class Tone(StrEnum):
    """The background colour family of a screen (a CSS class); never the only signal."""

    CALM = "calm"  # navy
    GOOD = "good"  # green
    BAD = "bad"  # red
    WARN = "warn"  # orange
    BROKEN = "broken"  # black


class Action(StrEnum):
    """What a button asks for."""

    DELETE = "delete"
    CONFIRM_DELETE = "confirm_delete"
    CANCEL_DELETE = "cancel_delete"
    DISMISS = "dismiss"


@dataclass(frozen=True, slots=True)
class Button:
    """One button of a screen."""

    action: Action
    label: str
    default: bool = False  # focused first, pressed by Enter


@dataclass(frozen=True, slots=True)
class Spec:
    """Everything one screen shows; names in it are already in display form."""

    kind: Kind
    tone: Tone
    big: str  # the block-letter word ("" for none)
    caption: str  # the boxed line
    lead: str = ""  # the bold sentence under the caption
    lines: tuple[str, ...] = ()
    findings: tuple[tuple[str, str], ...] = ()  # (name, why)
    after: tuple[str, ...] = ()  # sentences under the findings
    progress: float | None = None
    current: tuple[str, str] | None = None  # (label, name) of the file being scanned
    buttons: tuple[Button, ...] = ()
    footer: str = ""
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What the view needs besides the model."""

    words: Words
    contact: str
    width: int = 80  # columns available for a name
    now: float = 0.0
    goodbye_s: float = 8.0  # how long an interrupted session (or a refusal) stays on screen
    startup_s: float = 15.0  # before the first connection, "starting" rather than "out of order"
