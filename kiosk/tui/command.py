"""`kiosk ui`: the kiosk screen, full-screen on this terminal, a client of the station socket."""

from __future__ import annotations

import argparse
import logging
import logging.handlers
from pathlib import Path

from kiosk.config import Config, load_config
from kiosk.errors import ConfigError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `ui` subcommand."""
    parser = sub.add_parser("ui", help="the kiosk screen (a client of the station)")
    parser.add_argument("--config", help="configuration file (default /etc/kiosk/kiosk.toml)")
    parser.add_argument("--socket", help="station event socket (default: station.event_socket)")
    parser.add_argument("--log", help="write the screen's log to this file")
    parser.set_defaults(func=run)


def quiet_logging(log_file: str | None) -> None:
    """Send logs anywhere but the terminal: Textual draws on it, a stray line would corrupt it."""
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.INFO)
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8")
    elif Path("/dev/log").exists():
        try:
            handler = logging.handlers.SysLogHandler(address="/dev/log")
        except OSError:
            handler = logging.NullHandler()
    else:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("kiosk-ui %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)


def run(args: argparse.Namespace) -> int:
    """Run the kiosk screen until the process is stopped (no key quits it)."""
    from kiosk.tui.app import KioskApp  # Textual loads only for this command

    quiet_logging(args.log)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        # The screen needs nothing from the file to say so: the station, on the same bad file,
        # reports itself out of service (kiosk.station.unconfigured); an exit here would leave
        # tty1 blank in a restart loop.
        logging.getLogger(__name__).error("configuration error, defaults used: %s", exc)
        config = Config()
    KioskApp(args.socket or config.station.event_socket, config.ui).run()
    return 0
