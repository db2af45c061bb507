"""The event socket: catch-up on connect, several screens, a stuck screen never holds the others."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kiosk.protocol import Command, EventType, command, event
from kiosk.station.events import MAX_BACKLOG, EventHub
from tests.station.helpers import Screen


@pytest.fixture
async def hub() -> AsyncIterator[EventHub]:
    path = Path(tempfile.mkdtemp(prefix="kh", dir="/tmp")) / "ev.sock"
    state = {"n": 0}

    def snapshot() -> list[bytes]:
        state["n"] += 1
        return [
            event(EventType.HELLO, station_id="t", software_version="0", protocol=1),
            event(EventType.SESSION, session_id="s0", state="scanning", device=None, queued=0),
        ]

    async def on_command(message: dict[str, Any]) -> bytes:
        if message.get("cmd") == Command.PING:
            return event(EventType.ACK, cmd="ping", ok=True, error=None)
        return event(EventType.ACK, cmd=message.get("cmd"), ok=False, error="unknown_session")

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
