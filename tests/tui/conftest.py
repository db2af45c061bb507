"""Fixtures of the kiosk screen's tests: a recorded station on a short socket path."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot

from kiosk.config import UIConfig
from kiosk.tui.app import KioskApp
from tests.tui.fake_station import FakeStation

FAST_LINK = {"retry_min": 0.02, "retry_max": 0.1}


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Screens and snapshots must not depend on the caller's colour settings."""
    for name in ("NO_COLOR", "FORCE_COLOR", "TEXTUAL_THEME", "COLORTERM"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path (a Unix socket path must fit in 108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="kt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def station(short_dir: Path) -> AsyncIterator[FakeStation]:
    """A recorded station listening on a fresh socket."""
    server = FakeStation(short_dir / "events.sock")
    await server.start()
    yield server
    await server.stop()


def make_app(socket: Path | None, language: str = "en", theme: str = "truecolor", **kw) -> KioskApp:
    """A kiosk app on *socket* with a fast reconnect."""
    ui = UIConfig(language=language, theme=theme, contact="Mme Martin (IT)")  # type: ignore[arg-type]
    return KioskApp(str(socket) if socket else None, ui, link_options=FAST_LINK, **kw)


async def until(pilot: Pilot[None], ready: Callable[[], bool], steps: int = 500) -> bool:
    """Let the app run until *ready()* holds (bounded by a number of steps, not a duration)."""
    for _ in range(steps):
        if ready():
            return True
        await pilot.pause(0.02)
    return ready()


async def press_button(pilot: Pilot[None], selector: str) -> None:
    """Click a button once it is mounted and laid out (buttons are mounted after a redraw)."""

    def ready() -> bool:
        found = pilot.app.screen.query(selector)
        return bool(found) and found.first().region.area > 0

    assert await until(pilot, ready), f"{selector} never shown"
    await pilot.click(selector)
