"""The kiosk screen app: locked down, a client of the station, drawn on a 10 Hz timer."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from textual import events
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from kiosk.config import UIConfig
from kiosk.protocol import Command
from kiosk.tui.client import StationLink
from kiosk.tui.model import StationModel
from kiosk.tui.screen import KioskScreen
from kiosk.tui.spec import Action, Context, Spec
from kiosk.tui.theme import CONSOLE, LINUX_CONSOLE_PALETTE, pick_theme, themes
from kiosk.tui.view import build
from kiosk.tui.widgets import KioskButton
from kiosk.tui.words import Words

log = logging.getLogger(__name__)

FRAME_S = 0.1  # at most 10 redraws a second, whatever the event rate


class KioskApp(App[None], inherit_bindings=False):
    """Full-screen kiosk UI; no key or click can quit it, open a palette or paste into it."""

    TITLE = "Station Blanche"
    ENABLE_COMMAND_PALETTE = False
    ALLOW_SELECT = False
    # No quit, no palette, no suspend: only moving between the few buttons and backing out.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", show=False),
        Binding("tab,right,down", "focus_next", show=False),
        Binding("shift+tab,left,up", "focus_previous", show=False),
    ]

    def __init__(
        self,
        socket_path: str | None,
        ui: UIConfig | None = None,
        *,
        env: Mapping[str, str] | None = None,
        goodbye_s: float = 8.0,
        startup_s: float = 15.0,
        link_options: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        self.ui = ui or UIConfig()
        self.words = Words(self.ui.language)
        self.model = StationModel()
        self.goodbye_s = goodbye_s
        self.startup_s = startup_s
        self.model.started_at = time.monotonic()
        self.renders = 0
        self.ignored_pastes = 0
        self._theme_name = pick_theme(self.ui.theme, os.environ if env is None else env)
        self.link: StationLink | None = None
        if socket_path is not None:
            self.link = StationLink(
                socket_path, self._station_message, self._station_link, **dict(link_options or {})
            )
        self._sends: set[asyncio.Task[bool]] = set()
        # Before the first screen is built: its CSS uses the theme's variables.
        for theme in themes():
            self.register_theme(theme)
        if self._theme_name == CONSOLE:
            self.ansi_theme_dark = LINUX_CONSOLE_PALETTE
        self.theme = self._theme_name

    # -- life ------------------------------------------------------------------------------

    def on_mount(self) -> None:
        """Show the first screen, start the link and the redraw timer."""
        self.call_after_refresh(self.redraw)
        self.set_interval(FRAME_S, self.redraw)
        if self.link is not None:
            self.run_worker(self._keep_linked(), name="station-link", group="station")

    def get_default_screen(self) -> Screen[Any]:
        """The kiosk has one screen."""
        return KioskScreen()

    async def _keep_linked(self) -> None:
        assert self.link is not None
        while True:
            try:
                await self.link.run()
            except Exception:
                # A bug must not leave the kiosk frozen on an old verdict: log, start over.
                log.exception("station link failed")
                self._station_link(False)
                await asyncio.sleep(1.0)

    def _station_message(self, message: dict[str, Any]) -> None:
        self.model.apply(message, time.monotonic())

    def _station_link(self, up: bool) -> None:
        self.model.set_connected(up, time.monotonic())

    def feed(self, message: dict[str, Any]) -> None:
        """Apply one event as if the station had sent it (tests, screenshots)."""
        self._station_message(message)

    def set_link(self, up: bool) -> None:
        """Mark the station link up or down (tests, screenshots)."""
        self._station_link(up)

    # -- drawing ---------------------------------------------------------------------------

    def spec(self) -> Spec:
        """The screen the model calls for now."""
        width = max(20, min(self.size.width, 120) - 8)
        ctx = Context(
            words=self.words,
            contact=self.ui.contact,
            width=width,
            now=time.monotonic(),
            goodbye_s=self.goodbye_s,
            startup_s=self.startup_s,
        )
        return build(self.model, ctx)

    def redraw(self) -> None:
        """Show the latest state; called on the timer, so bursts of events cost one draw."""
        screen = self.screen
        if not isinstance(screen, KioskScreen) or not screen.ready:
            return
        spec = self.spec()
        self.model.dirty = False
        if spec != screen.spec:
            self.renders += 1
            screen.show(spec)

    # -- input -----------------------------------------------------------------------------

    async def on_event(self, event: events.Event) -> None:
        """Drop pasted text before anything sees it: nothing on the kiosk takes text."""
        if isinstance(event, events.Paste):
            self.ignored_pastes += 1
            event.stop()
            return
        await super().on_event(event)

    def on_kiosk_button_pressed(self, message: KioskButton.Pressed) -> None:
        """Carry out what a button asks for."""
        self.do(Action(message.button.action))

    async def action_back(self) -> None:
        """Escape: cancel a delete confirmation; nothing else."""
        session = self.model.current()
        if session is not None and session.confirming_delete:
            self.do(Action.CANCEL_DELETE)

    def do(self, action: Action) -> None:
        """Apply one button action to the current session."""
        session = self.model.current()
        if session is None:
            return
        if action is Action.DELETE:
            session.confirming_delete = True
        elif action is Action.CANCEL_DELETE:
            session.confirming_delete = False
        elif action is Action.CONFIRM_DELETE:
            session.confirming_delete = False
            session.delete_requested = True
            session.delete_refused = None
            self._send(Command.DELETE_INFECTED, session_id=session.session_id)
        elif action is Action.DISMISS:
            session.dismissed = True
            self._send(Command.DISMISS, session_id=session.session_id)
        self.redraw()

    def _send(self, kind: Command, **data: Any) -> None:
        if self.link is None:
            return
        task = asyncio.create_task(self.link.send(kind, **data))
        self._sends.add(task)  # keep a reference until it is done
        task.add_done_callback(self._sends.discard)

    # A kiosk never quits from the keyboard, whatever reaches these actions.
    async def action_quit(self) -> None:
        """Do nothing: the kiosk does not quit."""

    def action_command_palette(self) -> None:
        """Do nothing: the kiosk has no command palette."""

    def action_suspend_process(self) -> None:
        """Do nothing: the kiosk is never suspended."""

    def action_help_quit(self) -> None:
        """Do nothing: no hint about quitting either."""
