"""The screen's model and link alone: late lines, refused commands, a hung station."""

from __future__ import annotations

import asyncio
from pathlib import Path

from kiosk.config import UIConfig
from kiosk.tui.app import KioskApp
from kiosk.tui.model import StationModel
from kiosk.tui.view import Context, Kind, build
from kiosk.tui.words import Words
from tests.tui.conftest import until
from tests.tui.fake_station import (
    FakeStation,
    finding,
    health,
    hello,
    line,
    progress,
    removed,
    session,
    verdict,
)


def fed(*messages) -> StationModel:
    model = StationModel()
    model.set_connected(True, 0.0)
    for message in messages:
        model.apply(message, 0.0)
    return model


def screen(model: StationModel, now: float = 100.0):
    return build(model, Context(words=Words("en"), contact="IT", now=now))


def test_a_late_line_does_not_bring_an_ended_session_back():
    model = fed(
        session("a", "scanning"),
        verdict("a", "clean"),
        session("a", "ended"),
        removed("a"),
        progress("a", 5, 10),
        session("a", "verdict"),
    )
    assert model.current() is None
    assert screen(model).kind == Kind.WAITING


def test_a_late_progress_line_after_the_verdict_brings_no_bar_back():
    threat = [finding("x.exe", "infected", threat="T")]
    model = fed(
        session("a", "scanning"),
        progress("a", 9, 10, "Photos/x.jpg"),
        session("a", "verdict"),
        verdict("a", "infected", "threats_found", threat, delete="offer"),
        progress("a", 10, 10, "Photos/y.jpg"),  # late: the scan was judged already
    )
    current = model.current()
    assert current is not None and current.progress is None
    assert screen(model).kind == Kind.THREATS
    # Delete confirmed: no bar (least of all the old scan's) until the rescan's own progress.
    current.delete_requested = True
    assert (screen(model).kind, screen(model).progress) == (Kind.DELETING, None)
    model.apply(session("a", "deleting"), 0.0)
    model.apply(session("a", "scanning"), 0.0)
    model.apply(progress("a", 1, 4), 0.0)
    assert screen(model).progress == 0.25
    model.apply(session("a", "verdict"), 0.0)
    model.apply(verdict("a", "clean"), 0.0)
    assert current.progress is None and screen(model).kind == Kind.CLEAN


def test_a_station_before_its_first_selftest_is_starting_not_waiting():
    from kiosk.station import health as station_health
    from kiosk.tui import view

    assert view.SELFTEST_PENDING == station_health.SELFTEST_PENDING
    pending = fed(hello(), health(ok=False, problems=["selftest_pending"]))
    assert screen(pending).kind == Kind.STARTING  # no "insert your stick" yet, and no alarm
    pending.apply(health(ok=False, problems=["selftest_pending", "outbox_full"]), 0.0)
    assert screen(pending).kind == Kind.OUT_OF_SERVICE
    pending.apply(health(), 0.0)
    assert screen(pending).kind == Kind.WAITING


def test_hello_starts_afresh_and_a_lost_link_forgets_everything():
    model = fed(session("a", "scanning"))
    model.apply(hello(), 0.0)
    assert model.current() is None
    model.apply(session("b", "verdict"), 0.0)
    model.apply(verdict("b", "clean"), 0.0)
    model.set_connected(False, 0.0)
    assert model.current() is None and model.health is None
    assert screen(model).kind == Kind.OUT_OF_SERVICE


def test_a_refused_delete_is_said():
    model = fed(
        session("a", "verdict"),
        verdict(
            "a",
            "infected",
            "threats_found",
            [finding("x.exe", "infected", threat="T")],
            delete="offer",
        ),
    )
    current = model.current()
    assert current is not None
    current.delete_requested = True
    model.apply({"type": "ack", "cmd": "delete_infected", "ok": False, "error": "not_allowed"}, 0)
    spec = screen(model)
    assert spec.kind == Kind.THREATS
    assert "The station refused to delete the files." in spec.lines


def test_an_unhealthy_station_never_shows_waiting_and_a_session_goes_first():
    model = fed(health(ok=False, problems=["engine_down"]))
    assert screen(model).kind == Kind.OUT_OF_SERVICE
    model.apply(session("a", "verdict"), 0.0)
    model.apply(verdict("a", "error", "engine_down", files=0), 0.0)
    spec = screen(model)
    assert spec.kind == Kind.OUT_OF_SERVICE  # the stick was not checked: never green
    assert spec.footer == "Scan code: N4OC-6TUN"


def test_many_findings_are_cut_with_a_count():
    findings = [finding(f"f{n}.exe", "infected", threat="T") for n in range(40)]
    model = fed(session("a", "verdict"), verdict("a", "infected", "threats_found", findings))
    spec = screen(model)
    assert spec.caption == "40 THREATS FOUND"
    assert spec.findings[-1] == ("... and 34 more files", "")


async def test_a_hung_station_is_taken_as_lost(short_dir: Path):
    """A station that accepts, says hello, then never answers a ping: out of service."""
    connections = 0
    done = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writers.append(writer)
        writer.write(line(hello()) + line(health()))
        await writer.drain()
        await done.wait()
        writer.close()

    server = await asyncio.start_unix_server(mute, path=str(short_dir / "mute.sock"))
    app = KioskApp(
        str(short_dir / "mute.sock"),
        UIConfig(language="en"),
        link_options={"ping_every": 0.05, "silence_s": 0.3, "retry_min": 0.02},
    )
    try:
        async with app.run_test(size=(100, 32)) as pilot:
            # Each connection is dropped after its silence, and tried again.
            assert await until(pilot, lambda: connections >= 3)
    finally:
        done.set()
        server.close()
        await server.wait_closed()
        for writer in writers:
            writer.close()


async def test_the_app_answers_pings_only_through_the_link(station: FakeStation):
    app = KioskApp(
        str(station.path),
        UIConfig(language="en"),
        link_options={"ping_every": 0.05, "retry_min": 0.02},
    )
    async with app.run_test(size=(100, 32)) as pilot:
        assert await until(pilot, lambda: station.pings > 0)
        assert station.connections == 1


def test_a_damaged_stick_gets_no_delete_button_and_is_sent_to_it():
    """The station sends delete "never" and damaged on a stick whose filesystem looked damaged
    (kiosk.station.session.stick_damaged): no delete button, and the teacher is told why."""
    threat = finding("Cours/virus.com", "infected", threat="Win.Test.EICAR_HDB-1")
    unread = finding("Abime", "error", reason="read_error")
    model = fed(
        hello(),
        health(),
        session("a", "verdict"),
        {**verdict("a", "infected", "threats_found", [threat, unread]), "damaged": True},
    )
    spec = build(model, Context(words=Words("fr"), contact="IT", now=100.0))
    assert spec.kind is Kind.THREATS
    assert [b.action for b in spec.buttons] == ["dismiss"]
    assert (
        "Cette clé est abîmée : les fichiers infectés ne peuvent pas être supprimés ici."
        in spec.lines
    )
    assert not any("informatique" in line for line in spec.lines)  # the contact is named above
    healthy = fed(
        hello(),
        health(),
        session("a", "verdict"),
        verdict("a", "infected", "threats_found", [threat], delete="offer"),
    )
    assert [b.action for b in screen(healthy).buttons] == ["delete", "dismiss"]
    assert not any("damaged" in line for line in screen(healthy).lines)
