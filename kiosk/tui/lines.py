"""The lines screens share: findings, what a deletion did, the other findings, the scan code.

Names from a stick (paths, threat names, the scan code) go through `display_name` here.
"""

from __future__ import annotations

from kiosk.models import Reason
from kiosk.names import display_name
from kiosk.tui.model import Session, Verdict
from kiosk.tui.spec import Context

MAX_FINDINGS_SHOWN = 6


def deletion_outcome(session: Session, verdict: Verdict, ctx: Context) -> tuple[str, ...]:
    """What the deletion did, said on the verdict that followed it (nothing without one)."""
    _ = ctx.words._
    action = verdict.deletion
    if action is None:
        return ()
    if action.ok and action.rescan_verdict == "clean":
        return (_("The infected files were deleted and the stick was scanned again: clean."),)
    if action.ok:
        return (_("The infected files were deleted, but the new scan is not clean."),)
    return (_("The infected files could NOT be deleted."),)


def also_found(verdict: Verdict, ctx: Context, infected: bool) -> tuple[str, ...]:
    """The other findings of a virus or danger screen, each kind counted apart from the caption."""
    n_ = ctx.words.n_
    lines: list[str] = []
    dangerous = verdict.count("suspicious") if infected else 0
    if dangerous:
        lines.append(
            n_("{n} other file is dangerous.", "{n} other files are dangerous.", dangerous).format(
                n=dangerous
            )
        )
    unchecked = verdict.count("error") + verdict.count("unverifiable")
    if unchecked:
        shown = [f for f in verdict.findings if f.verdict in ("error", "unverifiable")]
        # "Could not be read" only when every one of them is known to be a read error.
        unread = len(shown) == unchecked and all(f.reason == Reason.READ_ERROR for f in shown)
        said = (
            n_("{n} file could not be read.", "{n} files could not be read.", unchecked)
            if unread
            else n_("{n} file could not be checked.", "{n} files could not be checked.", unchecked)
        )
        lines.append(said.format(n=unchecked))
    return tuple(lines)


def damaged_note(verdict: Verdict, ctx: Context, infected: bool) -> tuple[str, ...]:
    """Why there is no delete button on a virus screen: the station never writes to a damaged
    filesystem (kiosk.station.session.stick_damaged)."""
    if not (infected and verdict.damaged):
        return ()
    return (
        # The line above already names whom to tell ({contact}); one contact per screen.
        ctx.words._("This stick is damaged: the infected files cannot be deleted here."),
    )


def refused_note(session: Session, ctx: Context) -> tuple[str, ...]:
    """Say that the station refused a deletion the screen asked for."""
    if session.delete_refused is None:
        return ()
    return (ctx.words._("The station refused to delete the files."),)


def findings_rows(
    verdict: Verdict, ctx: Context, infected_only: bool = False
) -> tuple[tuple[str, str], ...]:
    """Rows (name, why) of the findings to show, at most MAX_FINDINGS_SHOWN, then "and N more"."""
    rows = [f for f in verdict.findings if not infected_only or f.verdict == "infected"]
    shown: list[tuple[str, str]] = []
    for finding in rows[:MAX_FINDINGS_SHOWN]:
        why = ctx.words.file_reason(
            finding.reason,
            display_name(finding.threat, max_chars=40) if finding.threat else None,
            finding.verdict,
        )
        # The widget puts the reason under the name when both do not fit on one line.
        shown.append((display_name(finding.path, max_chars=max(12, ctx.width - 4)), why))
    total = verdict.count("infected") if infected_only else verdict.findings_total
    hidden = total - len(shown)
    if hidden > 0:
        more = ctx.words.n_("... and {n} more file", "... and {n} more files", hidden)
        shown.append((more.format(n=hidden), ""))
    return tuple(shown)


def scan_code(ctx: Context, verdict: Verdict | None) -> str:
    """The footer that gives the scan code IT will ask for."""
    if verdict is None or not verdict.scan_code:
        return ""
    return ctx.words._("Scan code: {code}").format(code=display_name(verdict.scan_code, 20))
