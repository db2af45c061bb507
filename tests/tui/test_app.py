"""Pilot tests of the kiosk screen against a recorded station on a real Unix socket."""

from __future__ import annotations

from pathlib import Path

from textual import events
from textual.widgets import Static

from kiosk.tui.view import Kind
from tests.tui.conftest import make_app, press_button, until
from tests.tui.fake_station import (
    FakeStation,
    finding,
    health,
    new_id,
    progress,
    removed,
    session,
    verdict,
)
from tests.tui.scenes import DELETED


def kind_of(app) -> Kind | None:
    spec = app.screen.spec
    return spec.kind if spec is not None else None


def scanning_with_file(app) -> bool:
    spec = app.screen.spec
    return spec is not None and spec.kind == Kind.SCANNING and spec.current is not None


async def test_waiting_scanning_clean_then_back_to_waiting(station: FakeStation):
    app = make_app(station.path)
    async with app.run_test(size=(100, 32)) as pilot:
        assert await until(pilot, lambda: kind_of(app) == Kind.WAITING)
        assert "Signatures of 2026-11-28" in app.screen.spec.footer
        assert "central server: connected" in app.screen.spec.footer
        sid = new_id()
        await station.send(session(sid, "detected"))
        assert await until(pilot, lambda: kind_of(app) == Kind.PREPARING)
        await station.send(session(sid, "scanning"), progress(sid, 617, 1234, "Photos/été.jpg"))
        # Lines arrive and frames are drawn on their own clocks: wait for the frame with both.
        assert await until(pilot, lambda: scanning_with_file(app))
        spec = app.screen.spec
        assert spec.big == "50 %"
        assert spec.current == ("Current file:", "Photos/été.jpg")
        assert "617 / 1234 files" in spec.lines
        await station.send(session(sid, "verdict"), verdict(sid, "clean"))
        assert await until(pilot, lambda: kind_of(app) == Kind.CLEAN)
        assert app.screen.spec.footer == "Scan code: N4OC-6TUN"
        await station.send(session(sid, "ended"), removed(sid))
        assert await until(pilot, lambda: kind_of(app) == Kind.WAITING)


async def test_delete_offer_confirm_escape_then_delete_and_rescan(station: FakeStation):
    app = make_app(station.path)
    sid = new_id()
    infected = [
        finding("Jeux/setup_crack.exe", "infected", threat="Eicar-Test-Signature"),
        finding("Devoirs/rapport.pdf", "suspicious", reason="exec_disguised"),
    ]
    async with app.run_test(size=(100, 36)) as pilot:
        assert await until(pilot, lambda: kind_of(app) == Kind.WAITING)
        await station.send(
            session(sid, "verdict"),
            verdict(sid, "infected", "threats_found", infected, delete="offer"),
        )
        assert await until(pilot, lambda: kind_of(app) == Kind.THREATS)
        spec = app.screen.spec
        assert spec.findings[0] == ("Jeux/setup_crack.exe", "virus: Eicar-Test-Signature")
        assert spec.findings[1] == ("Devoirs/rapport.pdf", "a program disguised as a document")
        assert "Mme Martin (IT)" in spec.lead
        await press_button(pilot, "#button-delete")
        assert await until(pilot, lambda: kind_of(app) == Kind.CONFIRM_DELETE)
        # Only the infected file is listed for deletion; Escape backs out.
        assert [name for name, _ in app.screen.spec.findings] == ["Jeux/setup_crack.exe"]
        await pilot.press("escape")
        assert await until(pilot, lambda: kind_of(app) == Kind.THREATS)
        assert not station.commands
        await press_button(pilot, "#button-delete")
        assert await until(pilot, lambda: kind_of(app) == Kind.CONFIRM_DELETE)
        await press_button(pilot, "#button-confirm_delete")
        assert await until(pilot, lambda: bool(station.commands))
        assert station.commands[0]["cmd"] == "delete_infected"
        assert station.commands[0]["session_id"] == sid
        assert kind_of(app) == Kind.DELETING
        await station.send(session(sid, "deleting"), session(sid, "mounting"))
        await station.send(session(sid, "scanning"), progress(sid, 3, 10))
        assert await until(pilot, lambda: app.screen.spec.progress == 0.3)
        assert kind_of(app) == Kind.DELETING
        await station.send(session(sid, "verdict"), verdict(sid, "clean", actions=[DELETED]))
        assert await until(pilot, lambda: kind_of(app) == Kind.CLEAN)
        assert app.screen.spec.lines[0].startswith("The infected files were deleted")


async def test_done_sends_dismiss_and_asks_to_remove_the_stick(station: FakeStation):
    app = make_app(station.path, language="fr")
    sid = new_id()
    async with app.run_test(size=(100, 32)) as pilot:
        await station.send(session(sid, "verdict"), verdict(sid, "clean"))
        assert await until(pilot, lambda: kind_of(app) == Kind.CLEAN)
        assert app.screen.spec.caption == "AUCUNE MENACE DÉTECTÉE"
        assert await until(pilot, lambda: getattr(app.focused, "id", None) == "button-dismiss")
        await pilot.press("enter")  # "Terminé" has the focus
        assert await until(pilot, lambda: bool(station.commands))
        assert station.commands[0] == {"v": 1, "cmd": "dismiss", "session_id": sid}
        assert kind_of(app) == Kind.REMOVE
        assert app.screen.spec.big == "MERCI"


async def test_lost_station_is_out_of_service_then_reconnects(station: FakeStation):
    app = make_app(station.path)
    sid = new_id()
    async with app.run_test(size=(100, 32)) as pilot:
        await station.send(session(sid, "verdict"), verdict(sid, "clean"))
        assert await until(pilot, lambda: kind_of(app) == Kind.CLEAN)
        await station.stop()
        # A green verdict from a station that is gone is not shown any more.
        assert await until(pilot, lambda: kind_of(app) == Kind.OUT_OF_SERVICE)
        assert "The screen cannot reach the station." in app.screen.spec.lines
        await station.start()
        assert await until(pilot, lambda: kind_of(app) == Kind.WAITING)
        assert station.connections == 2


async def test_unhealthy_station_is_out_of_service_and_says_whom_to_call(station: FakeStation):
    station.opening[1] = health(ok=False, problems=["signatures_old", "selftest_failed"])
    app = make_app(station.path, language="fr")
    async with app.run_test(size=(100, 32)) as pilot:
        assert await until(pilot, lambda: kind_of(app) == Kind.OUT_OF_SERVICE)
        spec = app.screen.spec
        assert spec.big == "HORS SERVICE"
        assert "Les signatures antivirus ne sont plus à jour." in spec.lines
        assert "Prévenez Mme Martin (IT)." in spec.lines
        assert "signatures_old" in spec.footer


async def test_keys_and_paste_never_leave_the_kiosk(station: FakeStation):
    app = make_app(station.path)
    async with app.run_test(size=(100, 32)) as pilot:
        assert await until(pilot, lambda: kind_of(app) == Kind.WAITING)
        for key in ("ctrl+c", "ctrl+q", "escape", "ctrl+p", "ctrl+z", "ctrl+d", "f1", "q"):
            await pilot.press(key)
        app.post_message(events.Paste("[@click=app.quit]rm -rf /\n"))
        await pilot.pause()
        assert app.ignored_pastes == 1
        assert app.is_running and app.return_code is None
        assert kind_of(app) == Kind.WAITING
        assert not app.ENABLE_COMMAND_PALETTE


async def test_names_are_shown_inert_and_visible(station: FakeStation):
    app = make_app(station.path)
    sid = new_id()
    hostile = "a\x1b[2J\x1b]0;pwned\x07[@click=app.quit]x[/red]\u202egpj.exe"
    async with app.run_test(size=(120, 32)) as pilot:
        await station.send(session(sid, "scanning"), progress(sid, 1, 2, hostile))
        assert await until(pilot, lambda: scanning_with_file(app))
        _label, shown = app.screen.spec.current
        assert shown == "a\\x1b[2J\\x1b]0;pwned\\x07[@click=app.quit]x[/red]<U+202E>gpj.exe"
        await pilot.pause()
        rendered = str(app.screen.query_one("#current", Static).render())
        assert shown in rendered
        await pilot.click("#current")
        assert app.is_running


async def test_malformed_lines_are_skipped(station: FakeStation):
    app = make_app(station.path)
    sid = new_id()
    async with app.run_test(size=(100, 32)) as pilot:
        assert await until(pilot, lambda: kind_of(app) == Kind.WAITING)
        await station.send_raw(b"not json\n" + b'{"v": 2, "type": "hello"}\n')
        await station.send_raw(b'{"v": 1, "type": "verdict", "session_id": "x"}\n')
        await station.send(session(sid, "scanning"), progress(sid, 1, 4))
        assert await until(pilot, lambda: kind_of(app) == Kind.SCANNING)
        assert app.model.bad_events == 1  # the verdict without a verdict; the others never parse
        assert station.connections == 1


async def test_a_second_stick_is_announced(station: FakeStation):
    app = make_app(station.path)
    first, second = new_id(), new_id()
    async with app.run_test(size=(100, 32)) as pilot:
        await station.send(session(first, "scanning"), progress(first, 1, 4))
        await station.send(session(second, "detected", queued=1))
        assert await until(pilot, lambda: kind_of(app) == Kind.SCANNING)
        assert await until(pilot, lambda: "1 more stick is waiting." in app.screen.spec.footer)
        assert app.screen.spec.session_id == first


async def test_pulled_mid_scan_says_not_verified_then_waits(station: FakeStation):
    app = make_app(station.path, goodbye_s=0.3)
    sid = new_id()
    async with app.run_test(size=(100, 32)) as pilot:
        await station.send(session(sid, "scanning"), progress(sid, 1, 4))
        assert await until(pilot, lambda: kind_of(app) == Kind.SCANNING)
        await station.send(
            verdict(sid, "incomplete", "device_removed"), session(sid, "ended"), removed(sid)
        )
        assert await until(pilot, lambda: kind_of(app) == Kind.INTERRUPTED)
        assert await until(pilot, lambda: kind_of(app) == Kind.WAITING)


async def test_twenty_thousand_progress_events_do_not_lag(station: FakeStation):
    app = make_app(station.path)
    sid = new_id()
    total = 20_000
    async with app.run_test(size=(100, 32)) as pilot:
        assert await until(pilot, lambda: kind_of(app) == Kind.WAITING)
        await station.send(session(sid, "scanning"))
        renders_before = app.renders
        for start in range(0, total, 1000):
            batch = [
                progress(sid, n + 1, total, f"dossier/fichier_{n}.txt")
                for n in range(start, start + 1000)
            ]
            await station.send(*batch)
        await station.send(session(sid, "verdict"), verdict(sid, "clean", files=total))
        assert await until(pilot, lambda: kind_of(app) == Kind.CLEAN, steps=3000)
        assert app.model.progress_events == total
        # Drawn on a timer: a handful of frames, not one per event.
        assert app.renders - renders_before < total // 20
        assert app.screen.spec.lead == "20000 files scanned"


async def test_no_station_socket_at_all(short_dir: Path):
    app = make_app(short_dir / "nothing.sock", startup_s=3600)
    async with app.run_test(size=(100, 32)) as pilot:
        # At boot the screen may come up first: "starting", then out of order if it lasts.
        assert await until(pilot, lambda: kind_of(app) == Kind.STARTING)
        app.startup_s = 0.0  # the boot grace is over (not timed: a busy machine is slow to draw)
        assert await until(pilot, lambda: kind_of(app) == Kind.OUT_OF_SERVICE)
        assert app.link is not None and app.link.connects == 0


async def test_an_oversized_line_drops_the_connection_and_the_screen_reconnects(
    station: FakeStation,
):
    app = make_app(station.path)
    async with app.run_test(size=(100, 32)) as pilot:
        assert await until(pilot, lambda: kind_of(app) == Kind.WAITING)
        await station.send_raw(b'{"v": 1, "type": "health", "pad": "' + b"x" * (1 << 20) + b'"}\n')
        assert await until(pilot, lambda: station.connections == 2)
        assert await until(pilot, lambda: kind_of(app) == Kind.WAITING)


def test_the_display_is_picked_from_term_unless_configured():
    from kiosk.tui.theme import CONSOLE, TRUECOLOR, pick_theme

    assert pick_theme("auto", {"TERM": "linux"}) == CONSOLE
    assert pick_theme("auto", {"TERM": "foot"}) == TRUECOLOR
    assert pick_theme("auto", {}) == TRUECOLOR
    assert pick_theme("console", {"TERM": "foot"}) == CONSOLE
    assert pick_theme("truecolor", {"TERM": "linux"}) == TRUECOLOR


async def test_console_theme_is_native_ansi():
    app = make_app(None, theme="console", env={"TERM": "linux"})
    async with app.run_test(size=(100, 32)) as pilot:
        await pilot.pause()
        assert app.current_theme.ansi
        assert app.native_ansi_color
