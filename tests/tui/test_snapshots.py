"""Snapshots of every kiosk screen, French and English, truecolor and Linux console.

The SVGs under __snapshots__ are expected outputs: review them (or the PNGs of
`python -m tests.tui.screens_png`) before accepting a change with `--snapshot-update`.
"""

from __future__ import annotations

import pytest

from kiosk.config import UIConfig
from kiosk.tui.app import KioskApp
from tests.tui.scenes import SCENES, Scene, play

SIZE = (100, 32)


def _app(language: str, theme: str) -> KioskApp:
    ui = UIConfig(language=language, theme=theme)  # type: ignore[arg-type]
    return KioskApp(None, ui, startup_s=3600)  # "starting" must not age into "out of order"


def _before(app: KioskApp, scene: Scene):
    async def run_before(pilot) -> None:
        await pilot.pause()
        play(app, scene)
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("language", ["fr", "en"])
@pytest.mark.parametrize("scene", SCENES, ids=lambda s: s.name)
def test_truecolor(snap_compare, scene: Scene, language: str):
    app = _app(language, "truecolor")
    assert snap_compare(app, terminal_size=SIZE, run_before=_before(app, scene))


@pytest.mark.parametrize("scene", SCENES, ids=lambda s: s.name)
def test_linux_console(snap_compare, scene: Scene):
    app = _app("fr", "console")
    assert snap_compare(app, terminal_size=SIZE, run_before=_before(app, scene))


@pytest.mark.parametrize("name", ["threats", "scanning", "confirm_delete"])
def test_small_terminal(snap_compare, name: str):
    """80x24: the compact layout drops blank lines so that nothing is cut."""
    scene = next(s for s in SCENES if s.name == name)
    app = _app("fr", "truecolor")
    assert snap_compare(app, terminal_size=(80, 24), run_before=_before(app, scene))
