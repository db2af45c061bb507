"""The station's event protocol: JSON lines over a Unix socket, shared by station and screens.

Version 1. Each line is one JSON object with `"v": 1` and either `"type"` (station to screen) or
`"cmd"` (screen to station). Events carry codes and data, never translated text: the screen
translates. Names inside events are in escaped form (`kiosk.names.escape_name`); a screen must
pass them through `kiosk.names.display_name` before showing them.

Station to screen (`type`):
  hello     {station_id, software_version, protocol}                      first line on connect
  health    {ok, problems: [code], engine_version, signatures_version, signatures_date,
             selftest_at, selftest_ok, server_link: "ok"|"down"|"off", outbox_backlog}
  session   {session_id, state: State, device: DeviceInfo dict | null, queued: int,
             rescan: bool}   rescan: scanning again after delete_infected (until its verdict)
  progress  {session_id, files_done, files_total, bytes_done, bytes_total, current, eta_s}
  verdict   {session_id, report_id, scan_code, verdict, reason, files_total, counts,
             findings: [Finding dict] (at most MAX_FINDINGS), findings_total, delete: "never"|
             "offer"|"always", damaged: bool, actions: [Action dict]}
            damaged: the stick's filesystem looked damaged (it did not mount cleanly, or some
            file or folder could not be read): delete is then "never", the stick goes to IT.
  removed   {session_id}
  refused   {report_id, scan_code, reason: "device_refused", refusal: code | null, devices: int}
            a USB device was refused (a keyboard, a storage+keyboard composite...): not a stick
            session, nothing was read; its report is already in the outbox. A short notice.
  ack       {cmd, ok, error: code | null}
On connect the station sends hello, health, then the latest session/progress/verdict of every live
session, so a screen that reconnects catches up at once (no verdict line while a session deletes
and scans again: the last one is being replaced). Progress is sent at most ~10 times a
second per session; a slow screen loses intermediate progress lines, never the others (a screen
that lets ~1,000 other lines pile up is disconnected; it reconnects and catches up).

A session goes detected (settling; `queued` > 0 while other sticks go first) -> mounting ->
preflight -> scanning -> verdict [-> waiting_removal after dismiss] -> ended, then `removed`. A
stick that cannot be read (no filesystem, unsupported, corrupted) gets a verdict `error` with
reason no_filesystem | unsupported_fs | mount_failed; a full outbox gives `error` / outbox_full.
After delete_infected the same session goes deleting -> mounting -> preflight -> scanning ->
verdict again: a second verdict line with a NEW report_id and scan_code (the rescan's report,
whose actions hold the delete_infected Action and whose `extra.rescan_of` names the first).
ack also carries `session_id` when the command named one; its error codes: unknown_command,
unknown_session, not_allowed, bad_line.

Screen to station (`cmd`):
  delete_infected {session_id}     only when the verdict said delete == "offer"
  dismiss         {session_id}     the teacher acknowledged a result
  ping            {}
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from kiosk.errors import KioskError

PROTOCOL_VERSION = 1
MAX_FINDINGS = 50
MAX_LINE = 1 << 20  # a screen refuses longer lines


class State(StrEnum):
    """The life of one stick session on the kiosk."""

    DETECTED = "detected"
    MOUNTING = "mounting"
    PREFLIGHT = "preflight"
    SCANNING = "scanning"
    VERDICT = "verdict"
    DELETING = "deleting"
    WAITING_REMOVAL = "waiting_removal"
    ENDED = "ended"


class EventType(StrEnum):
    """Kinds of line the station sends."""

    HELLO = "hello"
    HEALTH = "health"
    SESSION = "session"
    PROGRESS = "progress"
    VERDICT = "verdict"
    REMOVED = "removed"
    REFUSED = "refused"
    ACK = "ack"


class Command(StrEnum):
    """Kinds of line a screen sends."""

    DELETE_INFECTED = "delete_infected"
    DISMISS = "dismiss"
    PING = "ping"


def encode(message: dict[str, Any]) -> bytes:
    """Return one protocol line (UTF-8 JSON, newline-terminated) for *message*."""
    body = {"v": PROTOCOL_VERSION, **message}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def event(kind: EventType, **data: Any) -> bytes:
    """Return the line of one station event."""
    return encode({"type": str(kind), **data})


def command(kind: Command, **data: Any) -> bytes:
    """Return the line of one screen command."""
    return encode({"cmd": str(kind), **data})


class ProtocolError(KioskError):
    """A line that is not a valid protocol message."""


def decode(line: bytes) -> dict[str, Any]:
    """Parse one protocol line; raise ProtocolError when it is not a v1 object."""
    if len(line) > MAX_LINE:
        raise ProtocolError("line too long")
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from exc
    if not isinstance(message, dict) or message.get("v") != PROTOCOL_VERSION:
        raise ProtocolError("not a protocol v1 object")
    return message
