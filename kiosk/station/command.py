"""`kiosk station`: the daemon on udev, or on demo folders and images with `--demo PATH...`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from kiosk.config import Config, load_config
from kiosk.errors import ConfigError
from kiosk.i18n import language_from_env, translator
from kiosk.models import Report, TreeVerdict
from kiosk.names import display_name, escape_name
from kiosk.protocol import State
from kiosk.station import unconfigured
from kiosk.station.session import Session
from kiosk.station.source import DeviceSource, ManualSource, path_volume
from kiosk.station.station import Station
from kiosk.wording import Wording


def _demo_line(path: Path, report: Report) -> str:
    language = language_from_env()
    words = Wording(language)
    _ = translator("station", language)
    verdict = words.tree(report.verdict)
    if report.reason:
        verdict = f"{verdict} ({words.reason(report.reason)})"
    return _("%(stick)s: %(verdict)s, scan code %(code)s") % {
        "stick": display_name(escape_name(os.fsencode(path))),
        "verdict": verdict,
        "code": report.scan_code,
    }


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `station` subcommand."""
    parser = sub.add_parser("station", help="run the station daemon (udev, mount, scan, report)")
    parser.add_argument("--config", help="configuration file (default /etc/kiosk/kiosk.toml)")
    parser.add_argument(
        "--demo",
        nargs="+",
        metavar="PATH",
        help="scan these folders or image files as sticks, one after the other, then exit",
    )
    parser.add_argument("--socket", help="event socket (overrides station.event_socket)")
    parser.add_argument("--data-dir", help="outbox directory (overrides station.data_dir)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log debug lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the station until SIGTERM (or, with --demo, until every path was scanned)."""
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        if args.demo:
            raise  # at a shell: the error is shown to whoever typed the command
        # The daemon: out of service on the screen rather than an exit loop nobody sees.
        return asyncio.run(unconfigured.serve(args.config, args.socket, str(exc)))
    overrides: dict[str, object] = {}
    if args.socket:
        overrides["event_socket"] = args.socket
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if args.demo:
        # A demo folder plugged once is scanned once, then goes idle by itself.
        overrides.setdefault("settle_time", 0.0)
    if overrides:
        config = config.with_overrides("station", **overrides)
    return asyncio.run(_main(config, [Path(p) for p in args.demo or []]))


async def _main(config: Config, demo: list[Path]) -> int:
    source: DeviceSource
    if demo:
        source = ManualSource()
    else:
        from kiosk.station.udev import UdevSource  # pyudev only for the real daemon

        source = UdevSource(usb_only=config.station.usb_only, pattern=config.station.device_pattern)
    station = Station(config, source)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, station.stop)
    task = asyncio.create_task(station.run())
    if isinstance(source, ManualSource):
        await station.ready.wait()
        verdicts = await play_demo(station, source, demo)
        station.stop()
        await task
        return max((v.exit_code for v in verdicts), default=0)
    await task
    return 0


async def play_demo(station: Station, source: ManualSource, paths: list[Path]) -> list[TreeVerdict]:
    """Plug each path in turn, wait for its verdict, unplug it; return the verdicts."""
    verdicts: list[TreeVerdict] = []
    for path in paths:
        volume = path_volume(path)
        changed = asyncio.Event()
        mine: list[Session] = []

        def listener(
            session: Session,
            changed: asyncio.Event = changed,
            mine: list[Session] = mine,
            stick: str = volume.stick,
        ) -> None:
            if session.stick == stick:  # only this stick's session, not the previous one's
                mine[:] = [session]
                changed.set()

        station.listeners.append(listener)
        source.plug(volume)
        try:
            while not mine or mine[0].state not in (State.VERDICT, State.ENDED):
                changed.clear()
                await changed.wait()
            report = mine[0].report
            if report is not None:
                verdicts.append(report.verdict)
                print(_demo_line(path, report), flush=True)
            source.unplug(volume)
            while mine[0].state is not State.ENDED:  # gone for good before the next one
                changed.clear()
                await changed.wait()
        finally:
            station.listeners.remove(listener)
    return verdicts
