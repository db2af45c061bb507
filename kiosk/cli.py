"""The one command line: `kiosk scan|station|ui|demo|server|config`.

Each part registers its own subcommand; parts are imported lazily so that `kiosk scan` never
loads the web server and the UI never loads pyudev or pyclamd.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kiosk import __version__
from kiosk.errors import KioskError

# module -> it defines register(subparsers) and the handler it sets with set_defaults(func=...)
PARTS = (
    "kiosk.scan.command",
    "kiosk.config_command",
    "kiosk.server.command",
    "kiosk.delivery.command",
    "kiosk.station.command",
    "kiosk.tui.command",
    "kiosk.demo",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every part's subcommand."""
    parser = argparse.ArgumentParser(prog="kiosk", description="Station Blanche, USB kiosk.")
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in PARTS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kiosk` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KioskError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
