"""The demo's player: a throw-away clamd, the real station on folder "sticks", and the screen."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from textual.binding import Binding, BindingType

from kiosk.config import Config, UIConfig
from kiosk.demo_engine import DemoEngine, start_engine
from kiosk.demo_sticks import build_sticks
from kiosk.errors import KioskError
from kiosk.protocol import State
from kiosk.tui.app import KioskApp

log = logging.getLogger(__name__)

BUSY = frozenset({State.DELETING, State.MOUNTING, State.PREFLIGHT, State.SCANNING})


@dataclass
class Demo:
    """The demo's station, engine and sticks, played in a loop (or once)."""

    base: Config
    workdir: Path
    hold: float = 10.0
    gap: float = 4.0
    once: bool = False
    verdicts: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # verdict, reason and detail, for IT
    engine: DemoEngine | None = None
    # The screen says when someone is in the middle of something (a delete confirmation).
    keep: Callable[[], bool] = lambda: False
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def socket(self) -> Path:
        """The station's event socket, where the screen connects."""
        return self.workdir / "events.sock"

    def station_config(self, clamd_socket: Path) -> Config:
        """The demo station's configuration: everything in the work directory."""
        config = self.base.with_overrides("clamd", socket=str(clamd_socket))
        return config.with_overrides(
            "station",
            id="demo-station",
            data_dir=str(self.workdir / "data"),
            mount_dir=str(self.workdir / "mnt"),
            event_socket=str(self.socket),
            event_socket_group="",
            usb_only=False,
            delete_infected="offer",
            removal_timeout=0.0,
            selftest_interval=3600.0,
        )

    async def run(self) -> None:
        """Start clamd and the station, then insert and remove the sticks."""
        from kiosk.station.source import ManualSource  # the station only for the demo
        from kiosk.station.station import Station

        self.engine = await asyncio.to_thread(start_engine, self.workdir / "clamd")
        source = ManualSource()
        station = Station(self.station_config(self.engine.socket), source)
        task = asyncio.create_task(station.run())
        try:
            await station.ready.wait()
            self.ready.set()
            while True:
                await self._play_all(station, source)
                if self.once:
                    return
        finally:
            station.stop()
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.to_thread(self.stop_engine)

    async def _play_all(self, station: Any, source: Any) -> None:
        sticks_dir = self.workdir / "sticks"
        # Afresh each round: the delete flow really deletes files from the demo sticks.
        await asyncio.to_thread(shutil.rmtree, sticks_dir, True)
        sticks = await asyncio.to_thread(build_sticks, sticks_dir)
        for stick in sticks:
            await asyncio.sleep(self.gap)
            await self._play(station, source, stick)

    async def _play(self, station: Any, source: Any, stick: Path) -> None:
        changed = asyncio.Event()
        seen: list[Any] = []

        def listener(session: Any) -> None:
            seen[:] = [session]
            changed.set()

        station.listeners.append(listener)
        volume = source.plug(stick)
        try:
            # Wait for the verdict, then leave it on screen; a deletion asked on screen
            # (delete, rescan, new verdict) runs to its end before the stick is pulled.
            while not seen or seen[0].state is not State.VERDICT:
                changed.clear()
                await changed.wait()
                if seen and seen[0].state is State.ENDED:
                    break
            if seen and seen[0].report is not None:
                report = seen[0].report
                self.verdicts.append(str(report.verdict))
                self.details.append(f"{report.verdict} {report.reason} {report.detail}")
            while seen and seen[0].state is not State.ENDED:
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), self.hold)
                if not changed.is_set() and seen[0].state not in BUSY and not self.keep():
                    break
        finally:
            station.listeners.remove(listener)
        source.unplug(volume)
        if seen:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(seen[0].removed.wait(), 10)

    def stop_engine(self) -> None:
        """Stop the demo clamd (idempotent)."""
        if self.engine is not None:
            self.engine.stop()


class DemoApp(KioskApp, inherit_bindings=False):
    """The kiosk screen plus the demo; unlike the kiosk, Ctrl+C leaves it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *KioskApp.BINDINGS,
        Binding("ctrl+c", "leave", show=False, priority=True),
    ]

    def __init__(self, demo: Demo, ui: UIConfig, **options: Any) -> None:
        super().__init__(str(demo.socket), ui, **options)
        self.demo = demo
        demo.keep = self._confirming

    def _confirming(self) -> bool:
        session = self.model.current()
        return session is not None and session.confirming_delete

    def on_mount(self) -> None:
        """Start the demo next to the screen (Textual runs KioskApp.on_mount too)."""
        self.run_worker(self._play(), name="demo", group="demo", exit_on_error=False)

    async def _play(self) -> None:
        try:
            await self.demo.run()
        except KioskError as exc:
            self.exit(return_code=2, message=f"kiosk demo: {exc}")
            return
        if self.demo.once:
            self.exit()

    def action_leave(self) -> None:
        """Leave the demo."""
        self.exit()
