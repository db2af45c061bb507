"""The one command line: `kiosk scan|station|ui|demo|server|ship|config`.

Each part registers its own subcommands from a small `command` module that imports its heavy
dependencies only when run, so `kiosk scan` never loads the web server and the UI never loads
pyudev or pyclamd. A part whose third-party packages are not installed (a kiosk image has no
FastAPI; a server has no Textual) still shows its commands, which then say what is missing.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from kiosk import __version__
from kiosk.errors import KioskError

# (module defining register(subparsers), the commands it registers)
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("kiosk.scan.command", ("scan",)),
    ("kiosk.config_command", ("config",)),
    ("kiosk.server.command", ("server",)),
    ("kiosk.delivery.command", ("ship",)),
    ("kiosk.station.command", ("station",)),
    ("kiosk.tui.command", ("ui",)),
    ("kiosk.demo", ("demo",)),
)


def _missing(commands: tuple[str, ...], sub: argparse._SubParsersAction, package: str) -> None:  # type: ignore[type-arg]
    def run(_args: argparse.Namespace) -> int:
        raise KioskError(
            f"this command needs the Python package '{package}', not installed here",
            hint="install station-blanche with the extra it belongs to, e.g. [server]",
        )

    for name in commands:
        parser = sub.add_parser(name, help=f"(unavailable: needs {package})", add_help=False)
        parser.add_argument("rest", nargs=argparse.REMAINDER)
        parser.set_defaults(func=run)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Build the argument parser: only *command*'s part when given (keeps `kiosk scan` small)."""
    parser = argparse.ArgumentParser(prog="kiosk", description="Station Blanche, USB kiosk.")
    parser.add_argument("--version", action="version", version=f"kiosk {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = [p for p in PARTS if command in p[1]] or list(PARTS)
    for module, commands in wanted:
        try:
            part = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if not exc.name or exc.name.split(".")[0] == "kiosk":
                raise  # our own module missing is a bug, not an optional extra
            _missing(commands, sub, exc.name)
            continue
        part.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kiosk` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except KioskError as exc:
        print(f"kiosk: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
