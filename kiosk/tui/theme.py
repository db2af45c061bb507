"""The two displays: the Linux console (8 ANSI background colours) and a truecolor terminal."""

from __future__ import annotations

from collections.abc import Mapping

from rich.terminal_theme import TerminalTheme
from textual.theme import Theme

CONSOLE = "kiosk-console"
TRUECOLOR = "kiosk-truecolor"

# The VGA palette the Linux console starts with, so that screenshots of the console theme show
# what a real tty shows (bright backgrounds do not exist there: only the first 8 are used as
# backgrounds).
LINUX_CONSOLE_PALETTE = TerminalTheme(
    (0, 0, 0),
    (170, 170, 170),
    [
        (0, 0, 0),
        (170, 0, 0),
        (0, 170, 0),
        (170, 85, 0),
        (0, 0, 170),
        (170, 0, 170),
        (0, 170, 170),
        (170, 170, 170),
    ],
    [
        (85, 85, 85),
        (255, 85, 85),
        (85, 255, 85),
        (255, 255, 85),
        (85, 85, 255),
        (255, 85, 255),
        (85, 255, 255),
        (255, 255, 255),
    ],
)

# Per tone: background, text, big word, accent (names, threats). Words never rely on colour
# alone: every screen also has its own big word and caption.
_TRUECOLOR_TONES = {
    "calm": ("#10223b", "#ffffff", "#ffffff", "#fcd34d"),
    "good": ("#0b6e30", "#ffffff", "#ffffff", "#fde68a"),
    "bad": ("#a30f1e", "#ffffff", "#ffffff", "#fde68a"),
    "warn": ("#e07800", "#000000", "#000000", "#000000"),
    "broken": ("#1c1c1c", "#ffffff", "#f59e0b", "#f59e0b"),
}
_CONSOLE_TONES = {
    "calm": ("ansi_blue", "ansi_bright_white", "ansi_bright_white", "ansi_bright_yellow"),
    "good": ("ansi_green", "ansi_bright_white", "ansi_bright_white", "ansi_bright_yellow"),
    "bad": ("ansi_red", "ansi_bright_white", "ansi_bright_white", "ansi_bright_yellow"),
    # The console's "yellow" background is brown: white reads better on it than black.
    "warn": ("ansi_yellow", "ansi_bright_white", "ansi_bright_white", "ansi_bright_white"),
    "broken": ("ansi_black", "ansi_bright_white", "ansi_bright_yellow", "ansi_bright_yellow"),
}


def _variables(
    tones: Mapping[str, tuple[str, str, str, str]], bar: tuple[str, str]
) -> dict[str, str]:
    out: dict[str, str] = {"bar-done": bar[0], "bar-todo": bar[1]}
    for tone, (bg, fg, big, accent) in tones.items():
        out[f"{tone}-bg"] = bg
        out[f"{tone}-fg"] = fg
        out[f"{tone}-big"] = big
        out[f"{tone}-accent"] = accent
    return out


def themes() -> list[Theme]:
    """Return the kiosk's two themes."""
    truecolor = Theme(
        name=TRUECOLOR,
        primary="#4ade80",
        background="#10223b",
        foreground="#ffffff",
        dark=True,
        variables={**_variables(_TRUECOLOR_TONES, ("#4ade80", "#334155")), "percent": "#4ade80"},
    )
    console = Theme(
        name=CONSOLE,
        primary="ansi_green",
        secondary="ansi_cyan",
        warning="ansi_yellow",
        error="ansi_red",
        success="ansi_green",
        accent="ansi_yellow",
        foreground="ansi_bright_white",
        background="ansi_blue",
        surface="ansi_blue",
        panel="ansi_blue",
        boost="ansi_default",
        dark=True,
        ansi=True,
        variables={
            # What Textual's own ANSI widgets expect of an ansi theme (as in its "ansi-dark").
            "ansi-background": "ansi_black",
            "ansi-foreground": "ansi_white",
            "border-blurred": "ansi_black",
            "block-cursor-foreground": "ansi_black",
            "block-cursor-background": "ansi_white",
            "screen-selection-background": "ansi_white",
            "screen-selection-foreground": "ansi_black",
            **_variables(_CONSOLE_TONES, ("ansi_green", "ansi_black")),
            "percent": "ansi_bright_green",
        },
    )
    return [truecolor, console]


def pick_theme(setting: str, env: Mapping[str, str]) -> str:
    """Return the theme to use: the config's choice, or by TERM when it says auto."""
    if setting == "console":
        return CONSOLE
    if setting == "truecolor":
        return TRUECOLOR
    return CONSOLE if env.get("TERM", "") == "linux" else TRUECOLOR
