"""The one kiosk screen: a fixed layout whose parts are filled from a `view.Spec`."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.containers import Center, Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Static

from kiosk.tui.spec import Button, Spec, Tone
from kiosk.tui.widgets import Bar, BigWord, Findings, KioskButton

TONES = tuple(f"-{tone}" for tone in Tone)


def _static(id: str) -> Static:
    # markup=False everywhere: a name, a contact or a translation is never parsed as markup.
    return Static("", id=id, markup=False)


class KioskScreen(Screen[None], inherit_bindings=False):
    """Big word, boxed caption, bar, sentences, findings, buttons and a discreet footer."""

    DEFAULT_CSS = """
    KioskScreen { align: center middle; overflow: hidden; }
    KioskScreen.-calm { background: $calm-bg; color: $calm-fg; }
    KioskScreen.-good { background: $good-bg; color: $good-fg; }
    KioskScreen.-bad { background: $bad-bg; color: $bad-fg; }
    KioskScreen.-warn { background: $warn-bg; color: $warn-fg; }
    KioskScreen.-broken { background: $broken-bg; color: $broken-fg; }
    KioskScreen.-calm BigWord { color: $calm-big; }
    KioskScreen.-good BigWord { color: $good-big; }
    KioskScreen.-bad BigWord { color: $bad-big; }
    KioskScreen.-warn BigWord { color: $warn-big; }
    KioskScreen.-broken BigWord { color: $broken-big; }
    KioskScreen.-scanning BigWord { color: $percent; }
    KioskScreen.-calm .accent { color: $calm-accent; }
    KioskScreen.-good .accent { color: $good-accent; }
    KioskScreen.-bad .accent { color: $bad-accent; }
    KioskScreen.-warn .accent { color: $warn-accent; }
    KioskScreen.-broken .accent { color: $broken-accent; }
    KioskScreen.-calm Findings > .findings--why { color: $calm-accent; }
    KioskScreen.-good Findings > .findings--why { color: $good-accent; }
    KioskScreen.-bad Findings > .findings--why { color: $bad-accent; }
    KioskScreen.-warn Findings > .findings--why { color: $warn-accent; }
    KioskScreen.-broken Findings > .findings--why { color: $broken-accent; }

    #frame { width: 100%; max-width: 120; height: auto; padding: 0 2; overflow: hidden; }
    #caption {
        width: 100%; border: solid $foreground; text-style: bold; text-align: center;
        margin: 1 0 1 0;
    }
    KioskScreen.-calm #caption { border: solid $calm-fg; }
    KioskScreen.-good #caption { border: solid $good-fg; }
    KioskScreen.-bad #caption { border: solid $bad-fg; }
    KioskScreen.-warn #caption { border: solid $warn-fg; }
    KioskScreen.-broken #caption { border: solid $broken-fg; }
    Bar { margin: 0 4 1 4; width: 1fr; }
    Bar > .bar--done { background: $bar-done; }
    Bar > .bar--todo { background: $bar-todo; }
    #lead { width: 100%; text-style: bold; text-align: center; margin: 0 0 1 0; }
    #lines { width: 100%; text-align: center; }
    #after { width: 100%; text-align: center; margin: 1 0 0 0; }
    #current { width: 100%; text-align: center; text-style: bold; margin: 1 0 0 0; }
    #findings {
        width: 100%; height: auto; margin: 1 0 0 0; padding: 0 1;
        border: solid $foreground;
    }
    KioskScreen.-calm #findings { border: solid $calm-fg; }
    KioskScreen.-good #findings { border: solid $good-fg; }
    KioskScreen.-bad #findings { border: solid $bad-fg; }
    KioskScreen.-warn #findings { border: solid $warn-fg; }
    KioskScreen.-broken #findings { border: solid $broken-fg; }
    #buttons { width: 100%; height: auto; align: center middle; margin: 1 0 0 0; }
    #footer { dock: bottom; width: 100%; height: 1; text-align: center; padding: 0 1; }

    /* A short terminal (80x24): no blank lines, one-line buttons, so that nothing is cut. */
    KioskScreen.-compact #caption { margin: 0; }
    KioskScreen.-compact #lead { margin: 0; }
    KioskScreen.-compact #current { margin: 0; }
    KioskScreen.-compact #findings { margin: 0; }
    KioskScreen.-compact #after { margin: 0; }
    KioskScreen.-compact #buttons { margin: 0; }
    KioskScreen.-compact Bar { margin: 0 4; }
    KioskScreen.-compact KioskButton {
        height: 1; border: none; padding: 0 1; text-style: bold underline;
    }
    KioskScreen.-compact KioskButton:focus { text-style: bold reverse; }
    /* The colour console shows underline as another colour (cyan), reverse as grey. */
    KioskScreen.-compact KioskButton:ansi { text-style: bold; }
    KioskScreen.-compact KioskButton:ansi:focus { text-style: bold; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.spec: Spec | None = None
        self.ready = False

    COMPACT_BELOW = 30  # rows

    def on_mount(self) -> None:
        """The layout exists from now on."""
        self.ready = True
        self.set_class(self.app.size.height < self.COMPACT_BELOW, "-compact")

    def on_resize(self, event: events.Resize) -> None:
        """Drop the blank lines on a short terminal."""
        self.set_class(event.size.height < self.COMPACT_BELOW, "-compact")

    def compose(self) -> ComposeResult:
        """Lay out every part once; `show` fills them and hides the empty ones."""
        with Vertical(id="frame"):
            yield BigWord(id="big")
            yield _static("caption")
            with Center():
                yield Bar(id="bar")
            yield _static("lead")
            yield _static("lines")
            current = _static("current")
            current.add_class("accent")
            yield current
            yield Findings(id="findings")
            yield _static("after")
            yield Horizontal(id="buttons")
        yield _static("footer")

    def show(self, spec: Spec) -> None:
        """Fill the layout from *spec* (cheap when only the progress changed)."""
        previous = self.spec
        self.spec = spec
        self.remove_class(*TONES, "-scanning")
        self.add_class(f"-{spec.tone}")
        self.set_class(spec.progress is not None and spec.kind == "scanning", "-scanning")
        self.query_one(BigWord).word = spec.big
        self._text("caption", spec.caption)
        bar = self.query_one(Bar)
        bar.display = spec.progress is not None
        bar.fraction = spec.progress or 0.0
        self._text("lead", spec.lead)
        self._text("lines", "\n".join(spec.lines))
        self._current(spec)
        self._findings(spec)
        self._text("after", "\n".join(spec.after))
        self._text("footer", spec.footer, hide=False)
        if previous is None or previous.buttons != spec.buttons:
            self._buttons(spec)
        if previous is None or (previous.kind, previous.tone) != (spec.kind, spec.tone):
            # One frame for a new screen. Each widget reports its repaint and its new size on
            # its own, and the screen's frame timer may fire in between: the new caption was
            # then drawn over the old layout, still showing the scan's bar and current file. A
            # layout of the whole screen, asked for now, comes before any such frame.
            self.refresh(layout=True)

    def _text(self, id: str, text: str, hide: bool = True) -> None:
        widget = self.query_one(f"#{id}", Static)
        widget.update(Text(text))
        if hide:
            widget.display = bool(text)

    def _current(self, spec: Spec) -> None:
        widget = self.query_one("#current", Static)
        widget.display = spec.current is not None
        if spec.current is not None:
            label, name = spec.current
            widget.update(Text.assemble((label + "\n", "not bold"), name))

    def _findings(self, spec: Spec) -> None:
        widget = self.query_one(Findings)
        widget.display = bool(spec.findings)
        widget.rows = spec.findings

    def _buttons(self, spec: Spec) -> None:
        # Hidden now, with the rest of this change; the next set is shown once mounted.
        self.query_one("#buttons", Horizontal).display = False
        # Queued, so that one set of buttons is gone before the next (same ids) is mounted.
        self.call_next(self._rebuild_buttons, spec.buttons)

    async def _rebuild_buttons(self, specs: tuple[Button, ...]) -> None:
        box = self.query_one("#buttons", Horizontal)
        await box.remove_children()
        box.display = bool(specs)
        if not specs:
            return
        buttons = [KioskButton(b.label, b.action, id=f"button-{b.action}") for b in specs]
        await box.mount_all(buttons)
        default = next((i for i, b in enumerate(specs) if b.default), 0)
        buttons[default].focus()
