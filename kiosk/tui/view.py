"""Which screen to show and what it says: a pure function of the model, with no Textual in it.

Every name that came from a stick goes through `kiosk.names.display_name` here, once, before it
reaches any widget; widgets then show it as plain `Text`, never as markup.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from kiosk.models import Reason
from kiosk.names import display_name
from kiosk.protocol import State
from kiosk.tui import lines
from kiosk.tui.model import Refused, Session, StationModel, Verdict
from kiosk.tui.spec import Action, Button, Context, Kind, Spec, Tone

__all__ = ["Action", "Button", "Context", "Kind", "Spec", "Tone", "build"]

# The station's health before its first self-test (kiosk.station.health.SELFTEST_PENDING; the
# screen does not import the station).
SELFTEST_PENDING = "selftest_pending"

# Verdict reasons that mean "the station could not do its job", not "the stick is bad".
STATION_REASONS = frozenset(
    {
        Reason.PREFLIGHT_FAILED,
        Reason.ENGINE_DOWN,
        Reason.CANARY_MISSED,
        Reason.SIGNATURES_OLD,
        Reason.OUTBOX_FULL,
    }
)
UNREADABLE_REASONS = frozenset(
    {Reason.UNREADABLE, Reason.UNSUPPORTED_FS, Reason.NO_FILESYSTEM, Reason.MOUNT_FAILED}
)
INTERRUPTED_REASONS = frozenset({Reason.DEVICE_REMOVED, Reason.CANCELLED, Reason.INTERRUPTED})


def build(model: StationModel, ctx: Context) -> Spec:
    """Return the screen for the current state of *model*."""
    _ = ctx.words._
    if not model.connected:
        if not model.ever_connected and ctx.now - model.started_at < ctx.startup_s:
            # At boot the screen may come up before the station: no alarm for that.
            return _starting(ctx)
        return _out_of_service(ctx, ["station_unreachable"], footer="")
    session = model.current()
    refused = _recent_refusal(model, ctx)
    if session is None:
        if refused is not None:
            return _device_refused(ctx, refused)
        ended = model.ended
        if ended is not None and ctx.now - model.ended_at < ctx.goodbye_s and _unfinished(ended):
            return _interrupted(ctx, ended)
        health = model.health
        if health is not None and not health.ok:
            if set(health.problems) == {SELFTEST_PENDING}:
                return _starting(ctx)  # not ready, not broken: no sticks yet, no alarm
            return _out_of_service(ctx, list(health.problems) or ["selftest_failed"], footer="")
        return _waiting(model, ctx)
    spec = _session_screen(session, ctx)
    if refused is not None:
        # Another device was refused while this stick is on the kiosk: one line, no new screen.
        note = ctx.words.tree_reason(Reason.DEVICE_REFUSED)
        spec = _with_footer(spec, f"{spec.footer}   {note}" if spec.footer else note)
    others = model.others()
    if others:
        more = ctx.words.n_(
            "{n} more stick is waiting.", "{n} more sticks are waiting.", others
        ).format(n=others)
        return _with_footer(spec, f"{spec.footer}   {more}" if spec.footer else more)
    return spec


def _starting(ctx: Context) -> Spec:
    _ = ctx.words._
    return Spec(
        kind=Kind.STARTING,
        tone=Tone.CALM,
        big="USB",
        caption=_("USB ANTIVIRUS STATION"),
        lead=_("Starting, please wait..."),
    )


def _with_footer(spec: Spec, footer: str) -> Spec:
    return replace(spec, footer=footer)


def _recent_refusal(model: StationModel, ctx: Context) -> Refused | None:
    """The refused USB device to mention, for a few seconds, unless a session ended since."""
    refused = model.refused
    if refused is None or ctx.now - refused.at >= ctx.goodbye_s or refused.at < model.ended_at:
        return None
    return refused


def _device_refused(ctx: Context, refused: Refused) -> Spec:
    _ = ctx.words._
    code = display_name(refused.scan_code, 20) if refused.scan_code else ""
    return Spec(
        kind=Kind.DEVICE_REFUSED,
        tone=Tone.CALM,
        big=_("REFUSED"),
        caption=_("DEVICE NOT ACCEPTED"),
        lead=ctx.words.tree_reason(Reason.DEVICE_REFUSED),
        lines=(_("Only plain USB sticks are accepted here. You can unplug it."),),
        footer=_("Scan code: {code}").format(code=code) if code else "",
    )


def _unfinished(session: Session) -> bool:
    verdict = session.verdict
    return verdict is None or verdict.reason in INTERRUPTED_REASONS


def _waiting(model: StationModel, ctx: Context) -> Spec:
    _ = ctx.words._
    health = model.health
    status: list[str] = []
    if health is not None:
        when = _date(health.signatures_date, _("%Y-%m-%d"))
        if when:
            status.append(_("Signatures of {date}").format(date=when))
        link = {
            "ok": _("central server: connected"),
            "down": _("central server: not reachable"),
        }.get(health.server_link, _("central server: not configured"))
        status.append(link)
    return Spec(
        kind=Kind.WAITING,
        tone=Tone.CALM,
        big="USB",
        caption=_("USB ANTIVIRUS STATION"),
        lead=_("Insert your USB stick"),
        lines=(_("The scan starts by itself."),),
        footer="  ·  ".join(status),
    )


def _date(iso: str | None, pattern: str) -> str | None:
    """Format an ISO date from the station the teacher's way; None when absent or unreadable."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).strftime(pattern)
    except ValueError:
        return None


def _out_of_service(ctx: Context, problems: list[str], footer: str) -> Spec:
    _ = ctx.words._
    reasons = tuple(dict.fromkeys(ctx.words.tree_reason(p) for p in problems))
    return Spec(
        kind=Kind.OUT_OF_SERVICE,
        tone=Tone.BROKEN,
        big=_("OUT OF ORDER"),
        caption=_("THIS STATION CANNOT CHECK STICKS"),
        lead=_("Sticks are NOT verified here for now."),
        lines=(*reasons, _("Please call {contact}.").format(contact=ctx.contact)),
        footer=footer or _("Code for IT: {codes}").format(codes=", ".join(problems)),
    )


def _interrupted(ctx: Context, session: Session) -> Spec:
    _ = ctx.words._
    verdict = session.verdict
    return Spec(
        kind=Kind.INTERRUPTED,
        tone=Tone.WARN,
        big=_("WARNING"),
        caption=_("SCAN NOT FINISHED"),
        lead=ctx.words.tree_reason(verdict.reason if verdict else Reason.DEVICE_REMOVED),
        lines=(_("This stick is NOT verified. Insert it again to scan it."),),
        footer=lines.scan_code(ctx, verdict),
        session_id=session.session_id,
    )


def _session_screen(session: Session, ctx: Context) -> Spec:
    _ = ctx.words._
    verdict = session.verdict
    if session.delete_requested or session.rescanning or session.state == State.DELETING:
        return _deleting(session, ctx)
    if verdict is None:
        if session.state == State.SCANNING or session.progress is not None:
            return _scanning(session, ctx)
        return Spec(
            kind=Kind.PREPARING,
            tone=Tone.CALM,
            big="USB",
            caption=_("READING THE STICK - do not remove it"),
            lead=_("Please wait..."),
            session_id=session.session_id,
        )
    if session.dismissed or session.state == State.WAITING_REMOVAL:
        return Spec(
            kind=Kind.REMOVE,
            tone=Tone.CALM,
            big=_("THANK YOU"),
            caption=_("Please remove your USB stick"),
            lead=_("Thank you!"),
            # Whoever pressed "Done" on a bad result is reminded of it until the stick leaves.
            lines=()
            if verdict.verdict == "clean"
            else (_("Remember: this stick is not safe to use."),),
            footer=lines.scan_code(ctx, verdict),
            session_id=session.session_id,
        )
    if session.confirming_delete:
        return _confirm_delete(session, verdict, ctx)
    return _result(session, verdict, ctx)


def _scanning(session: Session, ctx: Context) -> Spec:
    _ = ctx.words._
    progress = session.progress
    said: list[str] = []
    fraction = 0.0
    current = None
    if progress is not None:
        fraction = progress.fraction
        if progress.files_total:
            said.append(
                _("{done} / {total} files").format(
                    done=progress.files_done, total=progress.files_total
                )
            )
        if progress.eta_s is not None:
            said.append(ctx.words.duration(progress.eta_s))
        if progress.current:
            name = display_name(progress.current, max_chars=max(10, ctx.width - 8))
            current = (_("Current file:"), name)
    percent = int(fraction * 100)
    return Spec(
        kind=Kind.SCANNING,
        tone=Tone.CALM,
        big=f"{percent} %",
        caption=_("SCANNING - do not remove the stick"),
        lines=tuple(said),
        progress=fraction,
        current=current,
        session_id=session.session_id,
    )


def _deleting(session: Session, ctx: Context) -> Spec:
    _ = ctx.words._
    progress = session.progress
    return Spec(
        kind=Kind.DELETING,
        tone=Tone.CALM,
        big=_("DELETING"),
        caption=_("DELETING INFECTED FILES - do not remove the stick"),
        lead=_("The stick will then be scanned again."),
        progress=progress.fraction if progress is not None else None,
        session_id=session.session_id,
    )


def _confirm_delete(session: Session, verdict: Verdict, ctx: Context) -> Spec:
    _ = ctx.words._
    count = verdict.count("infected")
    return Spec(
        kind=Kind.CONFIRM_DELETE,
        tone=Tone.BAD,
        big=_("DELETE?"),
        caption=ctx.words.n_(
            "DELETE {n} INFECTED FILE FROM THE STICK?",
            "DELETE {n} INFECTED FILES FROM THE STICK?",
            count,
        ).format(n=count),
        lead=_("Only the infected files listed here are deleted. Your other files are kept."),
        lines=(_("The stick is then scanned again to check it."),),
        findings=lines.findings_rows(verdict, ctx, infected_only=True),
        buttons=(
            Button(Action.CONFIRM_DELETE, _("Yes, delete them")),
            Button(Action.CANCEL_DELETE, _("Cancel"), default=True),
        ),
        session_id=session.session_id,
    )


def _result(session: Session, verdict: Verdict, ctx: Context) -> Spec:
    _ = ctx.words._
    reason = verdict.reason
    done = _("Done")
    dismiss = Button(Action.DISMISS, done, default=True)
    footer = lines.scan_code(ctx, verdict)
    outcome = lines.deletion_outcome(session, verdict, ctx)
    remove = _("You can remove your USB stick.")
    if verdict.verdict == "clean":
        return Spec(
            kind=Kind.CLEAN,
            tone=Tone.GOOD,
            big="OK",
            caption=_("NO THREAT FOUND"),
            lead=ctx.words.n_("{n} file scanned", "{n} files scanned", verdict.files_total).format(
                n=verdict.files_total
            ),
            lines=(*outcome, remove),
            buttons=(dismiss,),
            footer=footer,
            session_id=session.session_id,
        )
    if verdict.verdict in ("infected", "suspicious"):
        infected = verdict.verdict == "infected"
        # The caption counts only what the big word is about; files that merely could not be
        # read are not threats and are said apart, calmly (see _also).
        count = verdict.count("infected" if infected else "suspicious")
        caption = (
            ctx.words.n_("{n} THREAT FOUND", "{n} THREATS FOUND", count)
            if infected
            else ctx.words.n_("{n} DANGEROUS FILE", "{n} DANGEROUS FILES", count)
        ).format(n=count)
        buttons: tuple[Button, ...] = (dismiss,)
        if infected and verdict.delete == "offer" and verdict.deletion is None:
            buttons = (Button(Action.DELETE, _("Delete the infected files")), dismiss)
        return Spec(
            kind=Kind.THREATS if infected else Kind.DANGEROUS,
            tone=Tone.BAD,
            big="VIRUS" if infected else _("DANGER"),
            caption=caption,
            lead=_("Do not use this stick. Tell {contact}.").format(contact=ctx.contact),
            lines=(
                *outcome,
                *lines.refused_note(session, ctx),
                *lines.also_found(verdict, ctx, infected),
                *lines.damaged_note(verdict, ctx, infected),
            ),
            findings=lines.findings_rows(verdict, ctx),
            after=(_("Remove your USB stick."),),
            buttons=buttons,
            footer=footer,
            session_id=session.session_id,
        )
    if reason in STATION_REASONS:
        spec = _out_of_service(ctx, [reason or "engine_down"], footer=footer)
        return _with_session(spec, session)
    if reason in UNREADABLE_REASONS:
        return Spec(
            kind=Kind.UNREADABLE,
            tone=Tone.WARN,
            big=_("UNREADABLE"),
            caption=_("THIS STICK CANNOT BE READ"),
            lead=ctx.words.tree_reason(reason),
            lines=(
                _("It was NOT verified. Do not use it on a school computer."),
                _("Tell {contact}.").format(contact=ctx.contact),
            ),
            buttons=(dismiss,),
            footer=footer,
            session_id=session.session_id,
        )
    interrupted = reason in INTERRUPTED_REASONS
    return Spec(
        kind=Kind.INTERRUPTED if interrupted else Kind.NOT_VERIFIABLE,
        tone=Tone.WARN,
        big=_("WARNING"),
        caption=_("SCAN NOT FINISHED") if interrupted else _("CANNOT BE VERIFIED"),
        lead=ctx.words.tree_reason(reason),
        lines=outcome,
        findings=lines.findings_rows(verdict, ctx),
        after=(
            _("This stick is not guaranteed safe. Tell {contact}.").format(contact=ctx.contact),
        ),
        buttons=(dismiss,),
        footer=footer,
        session_id=session.session_id,
    )


def _with_session(spec: Spec, session: Session) -> Spec:
    return replace(spec, session_id=session.session_id, buttons=())
