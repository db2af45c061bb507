"""Plain words for verdicts and reason codes, shared by every screen (CLI, TUI, web).

Codes travel (reports, events); words are made at the last moment, in the reader's language,
through gettext (domain `kiosk`). Teachers read `teacher_reason`; IT also sees `detail`.
"""

from __future__ import annotations

from kiosk.i18n import translator
from kiosk.models import FileVerdict, Reason, TreeVerdict


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Mark a message for extraction without translating it here."""
    return message


TREE_WORDS: dict[TreeVerdict, str] = {
    TreeVerdict.CLEAN: N_("no threat found"),
    TreeVerdict.INFECTED: N_("threats found"),
    TreeVerdict.SUSPICIOUS: N_("suspicious files found"),
    TreeVerdict.INCOMPLETE: N_("could not be fully verified"),
    TreeVerdict.ERROR: N_("not verified"),
}

FILE_WORDS: dict[FileVerdict, str] = {
    FileVerdict.CLEAN: N_("clean"),
    FileVerdict.INFECTED: N_("infected"),
    FileVerdict.SUSPICIOUS: N_("suspicious"),
    FileVerdict.UNVERIFIABLE: N_("not verifiable"),
    FileVerdict.SKIPPED: N_("skipped"),
    FileVerdict.ERROR: N_("error"),
}

REASON_WORDS: dict[Reason, str] = {
    Reason.ENCRYPTED: N_("encrypted, could not be analysed"),
    Reason.LIMITS_EXCEEDED: N_("too big or too deeply packed to be analysed"),
    Reason.TOO_LARGE: N_("too large to be analysed"),
    Reason.ZIP64: N_("an archive format the antivirus cannot open"),
    Reason.EXEC_DISGUISED: N_("a program disguised as a document or picture"),
    Reason.SCRIPT_DISGUISED: N_("a script disguised as a document or picture"),
    Reason.DOUBLE_EXTENSION: N_("a program hiding behind a double extension"),
    Reason.DECEPTIVE_NAME: N_("a name built to mislead (hidden or reversed characters)"),
    Reason.AUTORUN: N_("an autorun file, which starts programs by itself"),
    Reason.EXECUTABLE: N_("a program"),
    Reason.SCRIPT: N_("a script (a program in text form)"),
    Reason.MACROS: N_("a document with macros"),
    Reason.SYMLINK: N_("a link, not followed"),
    Reason.SPECIAL_FILE: N_("a special file, not read"),
    Reason.TOO_DEEP: N_("folders nested too deeply to be analysed"),
    Reason.READ_ERROR: N_("could not be read"),
    Reason.ENGINE_ERROR: N_("the antivirus could not analyse it"),
    Reason.ENGINE_TIMEOUT: N_("the antivirus took too long"),
    Reason.ENGINE_LOST: N_("the antivirus stopped during the analysis"),
    Reason.NOT_SCANNED: N_("not analysed"),
    Reason.THREATS_FOUND: N_("the antivirus recognised known threats"),
    Reason.POLICY: N_("files that are not allowed on school computers"),
    Reason.NOT_VERIFIABLE: N_("some files could not be verified"),
    Reason.SCAN_ERRORS: N_("some files could not be analysed"),
    Reason.CANCELLED: N_("the analysis was stopped"),
    Reason.DEVICE_REMOVED: N_("the stick was removed during the analysis"),
    Reason.PREFLIGHT_FAILED: N_("the antivirus failed its check"),
    Reason.ENGINE_DOWN: N_("the antivirus is not running"),
    Reason.CANARY_MISSED: N_("the antivirus failed its self-test"),
    Reason.SIGNATURES_OLD: N_("the antivirus signatures are out of date"),
    Reason.UNREADABLE: N_("the stick could not be read"),
    Reason.UNSUPPORTED_FS: N_("this kind of stick cannot be read here"),
    Reason.NO_FILESYSTEM: N_("this stick holds no readable file system"),
    Reason.MOUNT_FAILED: N_("the stick could not be opened"),
    Reason.INTERRUPTED: N_("the analysis was interrupted (power cut or restart)"),
    Reason.OUTBOX_FULL: N_("the station's storage is full"),
    Reason.DEVICE_REFUSED: N_(
        "a device that is not a plain USB stick was refused; nothing was read"
    ),
}


class Wording:
    """Verdict and reason words in one language."""

    def __init__(self, language: str) -> None:
        self.language = language
        self._ = translator("kiosk", language)

    def tree(self, verdict: TreeVerdict) -> str:
        """Words for a stick's verdict."""
        return self._(TREE_WORDS[verdict])

    def file(self, verdict: FileVerdict) -> str:
        """Words for a file's verdict."""
        return self._(FILE_WORDS[verdict])

    def reason(self, reason: Reason | str | None) -> str:
        """Words for a reason code (unknown codes are shown as they are: they come from peers)."""
        if reason is None:
            return ""
        try:
            return self._(REASON_WORDS[Reason(reason)])
        except (ValueError, KeyError):
            return str(reason)
