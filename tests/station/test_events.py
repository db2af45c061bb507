"""The event socket: catch-up on connect, several screens, a stuck screen never holds the others,
a stop with screens connected logs nothing."""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.config import Config
from kiosk.protocol import Command, EventType, command, event
from kiosk.station.events import MAX_BACKLOG, EventHub
from tests.station.conftest import live_station
from tests.station.helpers import Screen


def snapshot() -> list[bytes]:
    return [
        event(EventType.HELLO, station_id="t", software_version="0", protocol=1),
        event(EventType.SESSION, session_id="s0", state="scanning", device=None, queued=0),
    ]


async def on_command(message: dict[str, Any]) -> bytes:
    if message.get("cmd") == Command.PING:
        return event(EventType.ACK, cmd="ping", ok=True, error=None)
    return event(EventType.ACK, cmd=message.get("cmd"), ok=False, error="unknown_session")


@pytest.fixture
async def hub() -> AsyncIterator[EventHub]:
    path = Path(tempfile.mkdtemp(prefix="kh", dir="/tmp")) / "ev.sock"
    server = EventHub(snapshot, on_command)
    await server.start(path, None)
    yield server
    await server.stop()
    path.parent.rmdir()


def progress(n: int, session: str = "s1") -> bytes:
    return event(
        EventType.PROGRESS,
        session_id=session,
        files_done=n,
        files_total=10**6,
        bytes_done=n,
        bytes_total=10**6,
        current=f"f{n}",
        eta_s=None,
    )


async def test_catch_up_then_live_events_to_every_screen(hub: EventHub) -> None:
    assert hub.path is not None
    first = await Screen().connect(hub.path)
    second = await Screen().connect(hub.path)
    for screen in (first, second):
        await screen.wait_for(lambda m: m.get("type") == "session")
        assert [m["type"] for m in screen.lines[:2]] == ["hello", "session"]
        assert screen.lines[0]["v"] == 1
    hub.publish(event(EventType.REMOVED, session_id="s0"), session_id="s0")
    for screen in (first, second):
        await screen.wait_for(lambda m: m.get("type") == "removed")
        await screen.close()


async def test_commands_are_acknowledged(hub: EventHub) -> None:
    assert hub.path is not None
    screen = await Screen().connect(hub.path)
    await screen.send(command(Command.PING))
    ack = await screen.wait_for(lambda m: m.get("type") == "ack")
    assert ack == {"v": 1, "type": "ack", "cmd": "ping", "ok": True, "error": None}
    start = len(screen.lines)
    await screen.send(b"{not json\n")
    bad = await screen.wait_for(lambda m: m.get("type") == "ack", start=start)
    assert bad["ok"] is False and bad["error"] == "bad_line"
    start = len(screen.lines)
    await screen.send(command(Command.DISMISS, session_id="nope"))
    refused = await screen.wait_for(lambda m: m.get("type") == "ack", start=start)
    assert refused["error"] == "unknown_session"
    await screen.close()


async def test_progress_coalesces_and_order_holds(hub: EventHub) -> None:
    assert hub.path is not None
    screen = await Screen().connect(hub.path)
    await screen.wait_for(lambda m: m.get("type") == "session")
    # Published faster than any screen reads: only the latest progress may be pending.
    for n in range(5000):
        hub.publish(progress(n), session_id="s1", progress=True)
    hub.publish(event(EventType.VERDICT, session_id="s1", verdict="clean"), session_id="s1")
    verdict = await screen.wait_for(lambda m: m.get("type") == "verdict")
    seen = [m["files_done"] for m in screen.of("progress")]
    assert seen, "the latest progress must reach the screen"
    assert seen == sorted(seen)  # never backwards
    assert seen[-1] == 4999  # the latest one came before the verdict
    assert len(seen) < 5000  # intermediate ones were dropped, not queued
    assert screen.lines.index(verdict) > screen.lines.index(screen.of("progress")[-1])
    await screen.close()


async def test_a_stuck_screen_never_slows_the_others(hub: EventHub) -> None:
    assert hub.path is not None
    stuck = socket.socket(socket.AF_UNIX)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(str(hub.path))  # connects and never reads a byte
    stuck.setblocking(False)
    good = await Screen().connect(hub.path)
    await good.wait_for(lambda m: m.get("type") == "session")
    while hub.clients < 2:
        await asyncio.sleep(0.01)
    big = "x" * 2000
    for n in range(MAX_BACKLOG * 3):
        hub.publish(
            event(
                EventType.SESSION,
                session_id=f"s{n}",
                state="detected",
                device={"label": big},
                queued=0,
            ),
            session_id=f"s{n}",
        )
        hub.publish(progress(n), session_id="live", progress=True)
        await asyncio.sleep(0)  # the station publishes from a loop that also serves screens
    last = f"s{MAX_BACKLOG * 3 - 1}"
    await good.wait_for(lambda m: m.get("session_id") == last, timeout=60)
    sessions = [m["session_id"] for m in good.of("session")][1:]  # after the snapshot's
    assert sessions == [f"s{n}" for n in range(MAX_BACKLOG * 3)]  # nothing lost, in order
    # The stuck screen fell more than MAX_BACKLOG lines behind and was dropped.
    assert hub.clients == 1
    stuck.close()
    await good.close()


async def end_of_loop() -> None:
    """What asyncio.run does once the station's main returns: cancel whatever is left."""
    left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in left:
        task.cancel()
    await asyncio.gather(*left, return_exceptions=True)
    await asyncio.sleep(0)  # the done-callbacks of what was cancelled (where 3.11 logged)


def _served_soon() -> bool:
    """Whether asyncio has made the handler task of a new connection, not yet started."""
    return any(
        getattr(task.get_coro(), "__qualname__", "") == "EventHub._serve"
        and inspect.getcoroutinestate(task.get_coro()) == inspect.CORO_CREATED
        for task in asyncio.all_tasks()
    )


async def test_stopping_with_screens_connected_logs_nothing(
    hub: EventHub, caplog: pytest.LogCaptureFixture
) -> None:
    """A screen connected, and one whose connection is accepted as the station stops (a screen
    reconnecting): the stop closes both, and nothing is left for the loop to cancel. Before,
    the late one was kept open and cancelled with the loop, which Python 3.11 logged as a
    CancelledError from EventHub._serve."""
    assert hub.path is not None
    screen = await Screen().connect(hub.path)
    await screen.wait_for(lambda m: m.get("type") == "session")
    late = socket.socket(socket.AF_UNIX)
    late.setblocking(False)
    late.connect(str(hub.path))
    for _ in range(1000):  # loop turns, not time: accept, then the handler task is made
        if _served_soon():
            break
        await asyncio.sleep(0)
    assert _served_soon()
    with caplog.at_level(logging.DEBUG):
        await hub.stop()
        await end_of_loop()
    assert hub.clients == 0
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    late.setblocking(True)
    assert late.recv(1) == b""  # closed by the station, not left hanging
    late.close()
    await screen.close()


async def test_a_station_stopped_with_a_screen_connected_logs_nothing(
    station_config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        async with live_station(station_config) as live:
            await live.screen.wait_for(lambda m: m.get("type") == "health")
        await end_of_loop()
    assert live.task.done() and live.station.hub.clients == 0
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
