"""Every word the kiosk screen shows, in the teacher's language: codes become plain sentences."""

from __future__ import annotations

from kiosk.i18n import ntranslator, translator
from kiosk.models import Reason
from kiosk.wording import N_

DOMAIN = "tui"


# Why one file is not clean, said to a teacher. Keys are Reason codes (per file).
_FILE_REASONS: dict[str, str] = {
    Reason.ENCRYPTED: N_("protected by a password: its content cannot be checked"),
    Reason.LIMITS_EXCEEDED: N_("too big or too complex to be checked"),
    Reason.TOO_LARGE: N_("too big to be checked"),
    Reason.ZIP64: N_("an archive format the antivirus cannot open"),
    Reason.EXEC_DISGUISED: N_("a program disguised as a document"),
    Reason.SCRIPT_DISGUISED: N_("a script disguised as a document"),
    Reason.DOUBLE_EXTENSION: N_("a misleading name (double extension)"),
    Reason.DECEPTIVE_NAME: N_("a misleading name (hidden characters)"),
    Reason.AUTORUN: N_("starts a program by itself (autorun)"),
    Reason.EXECUTABLE: N_("a program: not allowed on school computers"),
    Reason.SCRIPT: N_("a script: it can run commands"),
    Reason.MACROS: N_("a document with macros"),
    Reason.SYMLINK: N_("a link to another place: not followed"),
    Reason.SPECIAL_FILE: N_("a special file: not checked"),
    Reason.TOO_DEEP: N_("in too many nested folders to be checked"),
    Reason.READ_ERROR: N_("could not be read"),
    Reason.ENGINE_ERROR: N_("the antivirus failed on it"),
    Reason.ENGINE_TIMEOUT: N_("the antivirus took too long on it"),
    Reason.ENGINE_LOST: N_("the antivirus stopped during the scan"),
    Reason.NOT_SCANNED: N_("not scanned"),
}

# Why a whole stick or the station is not good, said to a teacher. Keys are Reason codes.
_TREE_REASONS: dict[str, str] = {
    Reason.THREATS_FOUND: N_("Threats were found on this stick."),
    Reason.POLICY: N_("Dangerous files were found on this stick."),
    Reason.NOT_VERIFIABLE: N_("Some files could not be checked."),
    Reason.SCAN_ERRORS: N_("Some files could not be checked because of errors."),
    Reason.CANCELLED: N_("The scan was stopped before the end."),
    Reason.DEVICE_REMOVED: N_("The stick was removed before the end of the scan."),
    Reason.PREFLIGHT_FAILED: N_("The antivirus did not pass its check before the scan."),
    Reason.ENGINE_DOWN: N_("The antivirus is not running."),
    Reason.CANARY_MISSED: N_("The antivirus failed its self-test."),
    Reason.SIGNATURES_OLD: N_("The virus signatures are out of date."),
    Reason.UNREADABLE: N_("The stick could not be read."),
    Reason.UNSUPPORTED_FS: N_("The stick's format is not supported."),
    Reason.NO_FILESYSTEM: N_("The stick has no readable content (not formatted?)."),
    Reason.MOUNT_FAILED: N_("The stick could not be opened."),
    Reason.INTERRUPTED: N_("The scan was interrupted (the station restarted)."),
    Reason.OUTBOX_FULL: N_("The station cannot record results any more (disk full)."),
    Reason.DEVICE_REFUSED: N_("Device refused: this is not a plain USB stick. Nothing was read."),
    "station_unreachable": N_("The screen cannot reach the station."),
    "selftest_failed": N_("The station failed its self-test."),
    "selftest_pending": N_("The station has not finished its self-test yet."),
    "not_configured": N_("The station is not configured."),
}


class Words:
    """The screen's translator: `_` and `n_` in one language, plus the code-to-words tables."""

    def __init__(self, language: str) -> None:
        self.language = language
        self._ = translator(DOMAIN, language)
        self.n_ = ntranslator(DOMAIN, language)

    def file_reason(self, reason: str | None, threat: str | None, verdict: str) -> str:
        """Say why one file is not clean, in plain words."""
        if verdict == "infected":
            return self._("virus: {name}").format(name=threat) if threat else self._("a virus")
        if reason in _FILE_REASONS:
            return self._(_FILE_REASONS[reason])
        if verdict == "suspicious":
            return self._("a dangerous kind of file")
        if verdict == "unverifiable":
            return self._("could not be checked")
        return self._("not checked ({code})").format(code=reason or verdict)

    def tree_reason(self, reason: str | None) -> str:
        """Say why a stick or the station is not good, in one plain sentence."""
        if reason in _TREE_REASONS:
            return self._(_TREE_REASONS[reason])
        return self._("A technical problem occurred ({code}).").format(code=reason or "?")

    def duration(self, seconds: float) -> str:
        """Say roughly how long is left."""
        if seconds < 60:
            return self._("About {n} s left").format(n=max(1, round(seconds)))
        minutes = round(seconds / 60)
        return self.n_("About {n} minute left", "About {n} minutes left", minutes).format(n=minutes)


def reason_known(reason: str) -> bool:
    """Tell whether a code has its own sentence (tests check that every Reason has one)."""
    return reason in _FILE_REASONS or reason in _TREE_REASONS
