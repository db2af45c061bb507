"""Jinja2 for the web pages: autoescape always, one sanitiser for names, local dates, gettext."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from kiosk.i18n import ntranslator, translator
from kiosk.names import display_name

TEMPLATES = Path(__file__).parent / "templates"


def N_(msgid: str) -> str:  # noqa: N802 (the gettext convention for "translate later")
    """Mark a string for translation where it is defined; it is translated where it is shown."""
    return msgid


VERDICTS = {
    "clean": N_("Clean"),
    "infected": N_("Infected"),
    "suspicious": N_("Suspicious"),
    "incomplete": N_("Not verifiable"),
    "error": N_("Error"),
    "unverifiable": N_("Not verifiable"),
    "skipped": N_("Skipped"),
}
REASONS = {
    "encrypted": N_("Encrypted, not analysed"),
    "limits_exceeded": N_("Over the scan limits"),
    "too_large": N_("File too large to analyse"),
    "zip64": N_("ZIP64 archive, not analysed"),
    "exec_disguised": N_("Program disguised as a document"),
    "script_disguised": N_("Script disguised as a document"),
    "double_extension": N_("Double extension"),
    "deceptive_name": N_("Deceptive name (hidden characters)"),
    "autorun": N_("Autorun file"),
    "executable": N_("Program"),
    "script": N_("Script"),
    "macros": N_("Document with macros"),
    "symlink": N_("Link"),
    "special_file": N_("Special file"),
    "too_deep": N_("Folders too deep"),
    "read_error": N_("Read error"),
    "engine_error": N_("Engine error"),
    "engine_timeout": N_("Engine timeout"),
    "engine_lost": N_("Engine lost"),
    "not_scanned": N_("Not scanned"),
    "threats_found": N_("Threats found"),
    "policy": N_("File type policy"),
    "not_verifiable": N_("Some files could not be verified"),
    "scan_errors": N_("Errors during the scan"),
    "cancelled": N_("Cancelled"),
    "device_removed": N_("Stick pulled during the scan"),
    "preflight_failed": N_("Engine check failed"),
    "engine_down": N_("Engine down"),
    "canary_missed": N_("Self-test failed"),
    "signatures_old": N_("Old signatures"),
    "unreadable": N_("Stick unreadable"),
    "unsupported_fs": N_("Unsupported file system"),
    "no_filesystem": N_("No file system"),
    "mount_failed": N_("Mount failed"),
    "interrupted": N_("Station stopped during the scan"),
    "outbox_full": N_("Station disk full"),
    "device_refused": N_("USB device refused (not a plain stick)"),
}
PROBLEMS = {
    "silent": N_("No heartbeat"),
    "never_seen": N_("Never seen"),
    "health_unknown": N_("Health unknown"),
    "engine_down": N_("Engine down"),
    "selftest_failed": N_("Self-test failed"),
    "selftest_pending": N_("Self-test not passed yet"),
    "signatures_old": N_("Old signatures"),
    "health_stale": N_("Health report too old"),
    "canary_missed": N_("Test virus not detected"),
    "outbox_full": N_("Station disk full"),
    "reports_refused": N_("Reports refused"),
}
STATES = {
    "ok": N_("In service"),
    "silent": N_("Silent"),
    "unprotected": N_("Not protecting"),
    "never": N_("Never seen"),
    "revoked": N_("Revoked"),
    "unknown": N_("Health unknown"),
    "refused": N_("Reports refused"),
}


def environment() -> Environment:
    """Build the template environment (once, in `create_app`)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Every string from a report or a station goes through the one sanitiser, then autoescape.
    env.filters["name"] = lambda value, n=None: "" if value is None else display_name(str(value), n)
    return env


class Formats:
    """Dates, numbers, sizes and labels in the reader's language and the server's time zone."""

    def __init__(self, language: str, tz: ZoneInfo, now: datetime) -> None:
        self.language = language
        self.tz = tz
        self.now = now
        self.gettext: Callable[[str], str] = translator("server", language)
        self.ngettext: Callable[[str, str, int], str] = ntranslator("server", language)

    def _(self, msgid: str) -> str:
        """Translate."""
        return self.gettext(msgid)

    def n_(self, singular: str, plural: str, n: int) -> str:
        """Translate the form that fits *n* (French: 0 and 1 take the singular)."""
        return self.ngettext(singular, plural, n)

    def num(self, value: int | None) -> str:
        """Group thousands the local way."""
        if value is None:
            return "—"
        text = f"{value:,}"
        return text.replace(",", "\u202f") if self.language == "fr" else text

    def local(self, moment: datetime) -> datetime:
        """Return a moment in the server's time zone."""
        return moment.astimezone(self.tz)

    def date(self, moment: datetime | date | None) -> str:
        """A day."""
        if moment is None:
            return "—"
        day = self.local(moment).date() if isinstance(moment, datetime) else moment
        return day.strftime("%d/%m/%Y") if self.language == "fr" else day.isoformat()

    def time(self, moment: datetime | None, seconds: bool = False) -> str:
        """A time of day."""
        if moment is None:
            return "—"
        return self.local(moment).strftime("%H:%M:%S" if seconds else "%H:%M")

    def when(self, moment: datetime | None) -> str:
        """A day and a time."""
        if moment is None:
            return "—"
        return f"{self.date(moment)} {self.time(moment)}"

    def iso(self, moment: datetime | None) -> str:
        """Machine-readable local time for <time datetime>."""
        return "" if moment is None else self.local(moment).isoformat(timespec="seconds")

    def ago(self, moment: datetime | None) -> str:
        """How long ago, in words."""
        if moment is None:
            return self._("never")
        return self.duration(self.now - moment)

    def duration(self, span: timedelta | None) -> str:
        """A span of time, roughly."""
        if span is None:
            return "—"
        seconds = max(0, int(span.total_seconds()))
        if seconds < 60:
            return self._("%(n)d s") % {"n": seconds}
        if seconds < 3600:
            return self._("%(n)d min") % {"n": seconds // 60}
        if seconds < 86400 * 2:
            return self._("%(h)d h %(m)02d") % {"h": seconds // 3600, "m": seconds % 3600 // 60}
        return self._("%(n)d days") % {"n": seconds // 86400}

    def seconds(self, value: int | None) -> str:
        """A span of time given in seconds, roughly."""
        return "—" if value is None else self.duration(timedelta(seconds=value))

    def size(self, value: int | None) -> str:
        """A size in bytes, in the local units."""
        if value is None:
            return "—"
        units = (
            ("o", "Ko", "Mo", "Go", "To")
            if self.language == "fr"
            else ("B", "KB", "MB", "GB", "TB")
        )
        amount = float(value)
        for unit in units:
            if amount < 1000 or unit == units[-1]:
                text = f"{amount:.0f}" if unit == units[0] else f"{amount:.1f}"
                if self.language == "fr":
                    text = text.replace(".", ",")
                return f"{text}\u00a0{unit}"
            amount /= 1000
        return str(value)  # pragma: no cover

    def verdict(self, code: str | None) -> str:
        """The word of a verdict (colours never come alone)."""
        return self._(VERDICTS.get(code or "", code or "—"))

    def reason(self, code: str | None) -> str:
        """The words of a reason code."""
        if not code:
            return ""
        return self._(REASONS[code]) if code in REASONS else display_name(code)

    def problem(self, code: str) -> str:
        """The words of a station problem code."""
        return self._(PROBLEMS[code]) if code in PROBLEMS else display_name(code)

    def state(self, code: str) -> str:
        """The words of a station state."""
        return self._(STATES.get(code, code))
