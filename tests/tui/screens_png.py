"""Save a PNG of every kiosk screen, to look at them (not a test; PNGs are not committed).

    .venv/bin/python -m tests.tui.screens_png [OUTDIR] [--size 100x32]

Each screen is exported as SVG with the palette of its display (the Linux console's VGA colours
for the console theme) and turned into a PNG by headless Chromium.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.terminal_theme import TerminalTheme

from kiosk.config import UIConfig
from kiosk.tui.app import KioskApp
from kiosk.tui.theme import LINUX_CONSOLE_PALETTE
from tests.tui.scenes import SCENES, play

# The truecolor theme uses no ANSI colour: any palette shows it as it is.
TRUECOLOR_PALETTE = LINUX_CONSOLE_PALETTE


def export_svg(app: KioskApp, palette: TerminalTheme) -> str:
    """Like App.export_screenshot, with the palette of the real display."""
    width, height = app.size
    console = Console(
        width=width,
        height=height,
        file=io.StringIO(),
        force_terminal=True,
        color_system="truecolor",
        record=True,
        legacy_windows=False,
        safe_box=False,
    )
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_svg(title="Station Blanche", theme=palette)


async def shoot(outdir: Path, size: tuple[int, int]) -> list[Path]:
    svgs = []
    for theme, palette in (("truecolor", TRUECOLOR_PALETTE), ("console", LINUX_CONSOLE_PALETTE)):
        for language in ("fr", "en"):
            for scene in SCENES:
                ui = UIConfig(language=language, theme=theme)  # type: ignore[arg-type]
                app = KioskApp(None, ui, startup_s=3600)
                async with app.run_test(size=size) as pilot:
                    await pilot.pause()
                    play(app, scene)
                    await pilot.pause()
                    svg = outdir / f"{theme}-{language}-{scene.name}.svg"
                    svg.write_text(export_svg(app, palette), encoding="utf-8")
                    svgs.append(svg)
    return svgs


def to_png(svg: Path, size: tuple[int, int]) -> Path:
    png = svg.with_suffix(".png")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("chromium is needed to turn SVG into PNG (apt-get install chromium)")
    width, height = size[0] * 13 + 40, size[1] * 25 + 80
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            svg.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
    )
    return png


def main(argv: list[str]) -> None:
    outdir = Path(argv[0]) if argv and not argv[0].startswith("--") else Path("artifacts/screens")
    size = (100, 32)
    if "--size" in argv:
        w, h = argv[argv.index("--size") + 1].split("x")
        size = (int(w), int(h))
    outdir.mkdir(parents=True, exist_ok=True)
    for svg in asyncio.run(shoot(outdir, size)):
        print(to_png(svg, size))


if __name__ == "__main__":
    main(sys.argv[1:])
