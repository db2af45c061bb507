"""The station without a usable configuration: out of service, visibly, until the file is fixed.

An image built without `--config`, or a configuration file that does not parse, used to make
`kiosk station` exit at once; systemd restarted it in a loop and the screen, which never found a
station, said "Starting, please wait..." forever. Failing closed must be seen: the station
instead serves its event socket (at the default path, or `--socket`) with a health that is not ok
(`not_configured`), so the screen shows it out of service and tells the teacher to call IT. It
reads no stick (no udev, no mount, no scan) and refuses every command. It looks at the file
again every CONFIG_POLL seconds and exits 0 once it loads, so that systemd starts the real
station as soon as IT has put the configuration in place.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from kiosk import __version__
from kiosk.config import StationConfig, load_config
from kiosk.errors import ConfigError
from kiosk.protocol import PROTOCOL_VERSION, Command, EventType, event
from kiosk.station.events import EventHub
from kiosk.station.health import NOT_CONFIGURED, Health
from kiosk.station.session import wait_event

log = logging.getLogger(__name__)

CONFIG_POLL = 5.0  # seconds between two looks at the configuration file


def snapshot() -> list[bytes]:
    """Return what a screen gets on connect: hello, then a health that is not ok."""
    health = Health(problems=frozenset({NOT_CONFIGURED}), selftest_ok=False)
    hello = event(
        EventType.HELLO, station_id=None, software_version=__version__, protocol=PROTOCOL_VERSION
    )
    return [hello, health.to_event()]


async def _refuse(message: dict[str, Any]) -> bytes:
    name = message.get("cmd")
    known = name in {str(c) for c in Command}
    error = None if name == Command.PING else "not_allowed" if known else "unknown_command"
    data: dict[str, Any] = {"cmd": name, "ok": error is None, "error": error}
    if isinstance(message.get("session_id"), str):
        data["session_id"] = message["session_id"]
    return event(EventType.ACK, **data)


def _loads(path: str | None) -> bool:
    try:
        load_config(path)
    except ConfigError:
        return False
    return True


async def serve(config_path: str | None, socket: str | None, problem: str) -> int:
    """Serve the out-of-service screen until stopped (1) or the configuration loads (0)."""
    defaults = StationConfig()
    log.error("station out of service: configuration error: %s", problem)
    hub = EventHub(snapshot, _refuse)
    await hub.start(Path(socket or defaults.event_socket), defaults.event_socket_group)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    fixed = False
    try:
        while not stop.is_set():
            if await wait_event(stop, CONFIG_POLL):
                break
            fixed = await asyncio.to_thread(_loads, config_path)
            if fixed:
                log.info("the configuration loads now: restarting as the station")
                break
    finally:
        await hub.stop()
    return 0 if fixed else 1
