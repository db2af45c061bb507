"""A USB device the station refused (THREATS row 25): a calm notice for a few seconds.

The `refused` event is not a stick session: the screen says "device refused, nothing was read"
when it is idle, adds one line to the footer when a stick is on the kiosk, and forgets it after
`goodbye_s`. The snapshots of the notice are `test_device_refused_snapshot[...]`.
"""

from __future__ import annotations

from typing import Any

import pytest

from kiosk.config import UIConfig
from kiosk.tui.app import KioskApp
from kiosk.tui.model import StationModel
from kiosk.tui.view import Context, Kind, Tone, build
from kiosk.tui.words import Words
from tests.tui.fake_station import health, hello, removed, session, verdict
from tests.tui.scenes import Scene, play

SID = "5e55a1on"


def refused_event(refusal: str = "storage_composite", devices: int = 1) -> dict[str, Any]:
    return {
        "type": "refused",
        "report_id": "0b8f9c1e-4a57-4c1e-9a57-2f3b9d1e0a11",
        "scan_code": "BOHZ-4HRF",
        "reason": "device_refused",
        "refusal": refusal,
        "devices": devices,
    }


def fed(*messages: dict[str, Any], at: float = 100.0) -> StationModel:
    model = StationModel()
    model.set_connected(True, 0.0)
    for message in messages:
        model.apply(message, at)
    return model


def screen(model: StationModel, now: float, language: str = "fr"):
    return build(model, Context(words=Words(language), contact="IT", now=now, goodbye_s=8.0))


def test_an_idle_kiosk_shows_the_refusal_calmly_then_forgets_it():
    model = fed(hello(), health(), refused_event())
    spec = screen(model, now=101.0)
    assert spec.kind is Kind.DEVICE_REFUSED
    assert spec.tone is Tone.CALM
    assert spec.big == "REFUSÉ"
    assert spec.lead == "Appareil refusé : ce n'est pas une simple clé USB. Rien n'a été lu."
    assert spec.footer == "Code d'analyse : BOHZ-4HRF"
    assert not spec.buttons  # nothing to press: it goes by itself
    assert screen(model, now=108.5).kind is Kind.WAITING


def test_english_words():
    spec = screen(fed(hello(), health(), refused_event()), now=101.0, language="en")
    assert (spec.big, spec.caption) == ("REFUSED", "DEVICE NOT ACCEPTED")
    assert spec.lead == "Device refused: this is not a plain USB stick. Nothing was read."


def test_a_stick_on_the_kiosk_keeps_its_screen_with_one_more_line():
    model = fed(hello(), health(), session(SID, "verdict"), verdict(SID, "clean"), refused_event())
    spec = screen(model, now=101.0)
    assert spec.kind is Kind.CLEAN
    assert "Appareil refusé" in spec.footer and "N4OC-6TUN" in spec.footer
    assert "Appareil refusé" not in screen(model, now=109.0).footer


def test_a_session_that_ends_after_the_refusal_goes_first():
    model = fed(hello(), health(), refused_event())
    model.apply(session(SID, "scanning"), 102.0)
    model.apply(removed(SID), 103.0)
    assert screen(model, now=104.0).kind is Kind.INTERRUPTED


def test_a_lost_station_forgets_the_refusal_and_a_bad_line_changes_nothing():
    model = fed(hello(), health(), refused_event())
    model.set_connected(False, 101.0)
    model.set_connected(True, 101.5)
    assert model.refused is None
    model.apply({"type": "refused", "devices": "many", "scan_code": None}, 102.0)
    spec = screen(model, now=102.5)
    assert spec.kind is Kind.DEVICE_REFUSED and spec.footer == ""  # no code: none shown


SCENE = Scene("device_refused", [hello(), health(), refused_event()])


@pytest.mark.parametrize(
    ("language", "theme"), [("fr", "truecolor"), ("en", "truecolor"), ("fr", "console")]
)
def test_device_refused_snapshot(snap_compare, language: str, theme: str):
    ui = UIConfig(language=language, theme=theme)  # type: ignore[arg-type]
    # goodbye_s: the notice must not age out while the snapshot is taken on a slow machine.
    app = KioskApp(None, ui, startup_s=3600, goodbye_s=3600)

    async def run_before(pilot) -> None:
        await pilot.pause()
        play(app, SCENE)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 32), run_before=run_before)
