"""`kiosk demo`: the whole kiosk in this terminal, on demo sticks, with no USB hardware.

One process runs three things: a throw-away clamd (`kiosk.demo_engine`), the real station on a
`ManualSource` whose "sticks" are folders built at start (`kiosk.demo_sticks`), and the kiosk
screen, a client of the station's socket exactly as on a kiosk. A stick is "inserted" a few
seconds after the previous one was "removed", its result stays on screen a while (the buttons
work: delete the infected files, done), then it is "removed". Ctrl+C leaves the demo (the kiosk
itself has no such key).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from kiosk.config import Config, load_config
from kiosk.models import TreeVerdict


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `demo` subcommand."""
    parser = sub.add_parser("demo", help="the kiosk on demo sticks, in this terminal")
    parser.add_argument("--config", help="configuration file (its [ui] and [policy] are used)")
    parser.add_argument("--lang", choices=("fr", "en"), help="language of the screen")
    parser.add_argument("--theme", choices=("auto", "console", "truecolor"), help="display")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds a result stays")
    parser.add_argument("--gap", type=float, default=4.0, help="seconds between two sticks")
    parser.add_argument(
        "--once", action="store_true", help="show each stick once, then exit (code as kiosk scan)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl+C (or, with --once, until every stick was shown)."""
    base = load_config(args.config) if args.config else Config()
    ui = base.ui
    if args.lang:
        ui = replace(ui, language=args.lang)
    if args.theme:
        ui = replace(ui, theme=args.theme)
    from kiosk.demo_player import Demo, DemoApp  # Textual and the station only for this command
    from kiosk.tui.command import quiet_logging

    with tempfile.TemporaryDirectory(prefix="kiosk-demo-") as tmp:
        workdir = Path(tmp)
        quiet_logging(str(workdir / "demo.log"))
        demo = Demo(base, workdir, hold=args.hold, gap=args.gap, once=args.once)
        app = DemoApp(demo, ui)
        try:
            app.run()
        finally:
            demo.stop_engine()  # whatever happened to the worker, no clamd is left behind
        if demo.verdicts:
            print("kiosk demo: " + ", ".join(demo.verdicts))
        if app.return_code:
            return app.return_code
        # Like `kiosk scan` and clamscan: 0 all clean, 1 threats, 2 not verified.
        return max((TreeVerdict(v).exit_code for v in demo.verdicts), default=0)
