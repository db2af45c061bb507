"""A recorded station: a Unix-socket server that speaks protocol v1 from a script of events.

Used in-process by pilot tests (edge timings, floods, a station that goes away) and as a program
by the tmux test: `python -m tests.tui.fake_station SOCKET SCRIPT.json` serves the script to every
client that connects and then stays up, answering pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from kiosk.protocol import MAX_FINDINGS, EventType, decode, event


def hello(station_id: str = "test-station") -> dict[str, Any]:
    return {"type": "hello", "station_id": station_id, "software_version": "0", "protocol": 1}


def health(ok: bool = True, problems: list[str] | None = None, link: str = "ok") -> dict[str, Any]:
    return {
        "type": "health",
        "ok": ok,
        "problems": problems or [],
        "engine_version": "ClamAV 1.0",
        "signatures_version": 27000,
        "signatures_date": "2026-11-28T04:10:00.000+00:00",
        "selftest_at": None,
        "selftest_ok": ok,
        "server_link": link,
        "outbox_backlog": 0,
    }


def session(sid: str, state: str, queued: int = 0) -> dict[str, Any]:
    return {"type": "session", "session_id": sid, "state": state, "device": None, "queued": queued}


def progress(sid: str, done: int, total: int, current: str | None = None, eta: float | None = 24):
    return {
        "type": "progress",
        "session_id": sid,
        "files_done": done,
        "files_total": total,
        "bytes_done": done * 1000,
        "bytes_total": total * 1000,
        "current": current,
        "eta_s": eta,
    }


def finding(path: str, verdict: str, threat: str | None = None, reason: str | None = None):
    return {"path": path, "verdict": verdict, "threat": threat, "reason": reason}


def verdict(
    sid: str,
    tree: str,
    reason: str | None = None,
    findings: list[dict[str, Any]] | None = None,
    *,
    files: int = 1234,
    delete: str = "never",
    actions: list[dict[str, Any]] | None = None,
    report_id: str = "6f1c2f4e-8d6b-4c1e-9a57-2f3b9d1e0a11",
    counts: dict[str, int] | None = None,
) -> dict[str, Any]:
    findings = findings or []
    if counts is None:
        # As the station's tally does: one per entry and verdict, clean files included.
        counts = {}
        for f in findings:
            counts[f["verdict"]] = counts.get(f["verdict"], 0) + 1
        counts["clean"] = max(0, files - len(findings))
    return {
        "type": "verdict",
        "session_id": sid,
        "report_id": report_id,
        "scan_code": "N4OC-6TUN",
        "verdict": tree,
        "reason": reason,
        "files_total": files,
        "counts": counts,
        "findings": findings[:MAX_FINDINGS],
        "findings_total": len(findings),
        "delete": delete,
        "actions": actions or [],
    }


def removed(sid: str) -> dict[str, Any]:
    return {"type": "removed", "session_id": sid}


def new_id() -> str:
    return uuid.uuid4().hex


def line(message: dict[str, Any]) -> bytes:
    data = dict(message)
    kind = EventType(data.pop("type"))
    return event(kind, **data)


class FakeStation:
    """Serves `opening` to each client on connect; `send` broadcasts; commands are recorded."""

    def __init__(self, path: Path, opening: list[dict[str, Any]] | None = None) -> None:
        self.path = path
        self.opening = opening if opening is not None else [hello(), health()]
        self.commands: list[dict[str, Any]] = []
        self.replies: dict[str, dict[str, Any]] = {}  # cmd -> extra ack fields
        self.clients: list[asyncio.StreamWriter] = []
        self.connections = 0
        self.pings = 0
        self._server: asyncio.Server | None = None
        self.command_seen = asyncio.Event()

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def stop(self) -> None:
        """Go away like a crashed station: close the socket and every connection."""
        if self._server is not None:
            self._server.close()
        for writer in self.clients:
            writer.close()
        self.clients.clear()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self.path.unlink(missing_ok=True)

    async def send(self, *messages: dict[str, Any]) -> None:
        data = b"".join(line(m) for m in messages)
        for writer in list(self.clients):
            with contextlib.suppress(OSError):
                writer.write(data)
                await writer.drain()

    async def send_raw(self, data: bytes) -> None:
        for writer in list(self.clients):
            writer.write(data)
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"".join(line(m) for m in self.opening))
        await writer.drain()
        self.clients.append(writer)
        try:
            while raw := await reader.readline():
                message = decode(raw)
                cmd = message.get("cmd")
                if cmd == "ping":
                    self.pings += 1  # kept apart: a slow test may see a ping at any time
                else:
                    self.commands.append(message)
                    self.command_seen.set()
                ack = {"type": "ack", "cmd": cmd, "ok": True, "error": None}
                ack.update(self.replies.get(str(cmd), {}))
                writer.write(line(ack))
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if writer in self.clients:
                self.clients.remove(writer)
            writer.close()


async def _main(socket_path: str, script: str) -> None:
    messages = json.loads(Path(script).read_text(encoding="utf-8"))
    station = FakeStation(Path(socket_path), opening=messages)
    await station.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2]))
