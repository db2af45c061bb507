"""The kiosk screen on the real station: real scans of demo sticks by a real clamd."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kiosk.config import Config, UIConfig
from kiosk.demo_player import Demo, DemoApp
from kiosk.demo_sticks import infected_stick
from kiosk.station.source import ManualSource
from kiosk.station.station import Station
from kiosk.tui.view import Kind
from tests.tui.conftest import make_app, press_button, until

pytestmark = pytest.mark.slow


def kind_of(app) -> Kind | None:
    spec = app.screen.spec
    return spec.kind if spec is not None else None


async def test_demo_shows_every_verdict_of_real_scans(short_dir: Path):
    demo = Demo(Config(), short_dir, hold=0.5, gap=0.2, once=True)
    app = DemoApp(demo, UIConfig(language="en", theme="truecolor"))
    seen: list[Kind] = []
    async with app.run_test(size=(100, 32)) as pilot:
        for _ in range(4000):
            kind = kind_of(app)
            if kind is not None and (not seen or seen[-1] != kind):
                seen.append(kind)
            if not app.is_running or (len(demo.verdicts) == 4 and Kind.DANGEROUS in seen):
                break
            await pilot.pause(0.02)
    assert demo.verdicts == ["clean", "infected", "incomplete", "suspicious"], demo.details
    for kind in (
        Kind.WAITING,
        Kind.SCANNING,
        Kind.CLEAN,
        Kind.THREATS,
        Kind.NOT_VERIFIABLE,
        Kind.DANGEROUS,
    ):
        assert kind in seen, seen


async def test_delete_infected_files_through_the_real_station(clamd, short_dir: Path):
    config = Demo(Config(), short_dir).station_config(clamd.socket)
    source = ManualSource()
    station = Station(config, source)
    task = asyncio.create_task(station.run())
    stick = short_dir / "stick"
    await asyncio.to_thread(infected_stick, stick)
    try:
        await station.ready.wait()
        app = make_app(Path(config.station.event_socket))
        async with app.run_test(size=(100, 36)) as pilot:
            assert await until(pilot, lambda: kind_of(app) == Kind.WAITING)
            volume = source.plug(stick)
            assert await until(pilot, lambda: kind_of(app) == Kind.THREATS, steps=5000)
            assert {name for name, _ in app.screen.spec.findings} == {
                "Jeux/setup_crack.exe",
                "Documents/Facture [@click=app.quit]urgente[b red].pdf",
            }
            await press_button(pilot, "#button-delete")
            assert await until(pilot, lambda: kind_of(app) == Kind.CONFIRM_DELETE)
            await press_button(pilot, "#button-confirm_delete")
            assert await until(pilot, lambda: kind_of(app) == Kind.CLEAN, steps=5000)
            assert app.screen.spec.lines[0].startswith("The infected files were deleted")
            assert not (stick / "Jeux" / "setup_crack.exe").exists()
            assert (stick / "Cours de français" / "Leçon 1 — l'été.txt").exists()
            source.unplug(volume)
            assert await until(pilot, lambda: kind_of(app) == Kind.WAITING, steps=2000)
    finally:
        station.stop()
        await asyncio.gather(task, return_exceptions=True)
