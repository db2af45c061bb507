"""What the terminal receives, frame by frame: never part of one screen over another.

Each frame the app writes is fed to pyte, a terminal emulator, as a terminal would receive it
(the headless driver writes nothing, so frames are taken where the app hands them to it).
"""

from __future__ import annotations

import pyte
from textual._compositor import CompositorUpdate  # Textual is pinned: its frame type

from kiosk.tui.app import KioskApp
from tests.tui.conftest import make_app, until
from tests.tui.fake_station import health, hello, progress, session, verdict

SIZE = (160, 50)  # the kiosk's console: 1280x800 in 8x16 cells


class Terminal:
    """Every frame *app* draws, fed to an emulated terminal; `frames`: the screen after each."""

    def __init__(self, app: KioskApp) -> None:
        self.screen = pyte.Screen(*SIZE)
        self.stream = pyte.Stream(self.screen)
        self.frames: list[str] = []
        draw = app._display

        def display(screen, update) -> None:
            if isinstance(update, CompositorUpdate):
                self.stream.feed(update.render_segments(app.console))
                self.frames.append("\n".join(self.screen.display))
            draw(screen, update)

        app._display = display  # type: ignore[method-assign]

    @property
    def shown(self) -> str:
        return self.frames[-1] if self.frames else ""


async def test_the_verdict_is_never_drawn_over_what_is_left_of_the_scan():
    """The screen's frame timer may fire between the verdict's redraw and the widgets' own
    refreshes (each widget sends its own, later): even that frame is the whole result screen.
    Seen on the VM as an OK screen still showing "Fichier en cours" and the scan's bar."""
    app = make_app(None, language="fr", theme="console", env={"TERM": "linux"})
    async with app.run_test(size=SIZE) as pilot:
        terminal = Terminal(app)
        app.set_link(True)
        for message in (hello(), health(), session("s", "scanning")):
            app.feed(message)
        app.feed(progress("s", 617, 1234, "Photos/été.jpg"))
        assert await until(pilot, lambda: "Fichier en cours" in terminal.shown)
        scanning = len(terminal.frames)
        app.feed(session("s", "verdict"))
        app.feed(verdict("s", "clean"))
        app.redraw()  # what the 10 Hz timer does
        app.screen._on_timer_update()  # the frame timer, before any widget had its turn
        assert "AUCUNE MENACE DÉTECTÉE" in terminal.shown
        assert await until(pilot, lambda: "Terminé" in terminal.shown)
        results = [f for f in terminal.frames[scanning:] if "AUCUNE MENACE DÉTECTÉE" in f]
        for frame in results:
            assert "Fichier en cours" not in frame, frame
            assert "617 / 1234" not in frame, frame
