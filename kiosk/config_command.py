"""`kiosk config`: check a configuration file, or print the reference of every key."""

from __future__ import annotations

import argparse

from kiosk.config import load_config, reference


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `config` subcommand."""
    parser = sub.add_parser("config", help="check a configuration file or print the reference")
    parser.add_argument("--config", help="file to check (default /etc/kiosk/kiosk.toml)")
    parser.add_argument("--reference", action="store_true", help="print every key and default")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the file (errors name the file and key) or print the reference."""
    if args.reference:
        print(reference(), end="")
        return 0
    load_config(args.config)
    print("ok")
    return 0
