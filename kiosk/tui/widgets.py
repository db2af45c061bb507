"""The few widgets of the kiosk: a block-letter word, a bar and a button.

None of them uses half blocks, eighth blocks or heavy lines: the Linux console has no such glyph.
The only block is the full block, on the console (its VGA and Lat15 fonts have it).
"""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.events import Click
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from kiosk.tui import font

# On the Linux console, reverse video swaps only the colours and leaves the brightness with the
# glyph: a reversed bright white cell shows the console's plain white, which is grey. So on an
# ANSI (console) theme the block letters are full blocks in the foreground colour, which stays
# bright; elsewhere they are reversed spaces (no gaps between rows whatever the font).
FULL_BLOCK = "\u2588"


class BigWord(Widget):
    """One word in block letters, as large as the space allows."""

    DEFAULT_CSS = """
    BigWord { width: 100%; height: auto; content-align: center middle; }
    """

    word: reactive[str] = reactive("", layout=True)

    def __init__(self, word: str = "", *, max_rows: int = 15, id: str | None = None) -> None:
        super().__init__(id=id)
        self.max_rows = max_rows
        self.set_reactive(BigWord.word, word)

    def _layout(self, width: int) -> list[str]:
        text = self.word.strip()
        if not text:
            return []
        rows = max(font.HEIGHT, min(self.max_rows, self.app.size.height // 3))
        scale = font.pick_scale(text, width, rows)
        if scale is not None:
            return font.draw(text, scale)
        # Too wide even at the narrowest scale: one block word per line, else plain text.
        parts = text.split()
        each = max(font.HEIGHT, (rows - len(parts) + 1) // max(1, len(parts)))
        picked = [font.pick_scale(part, width, each) for part in parts]
        if len(parts) < 2 or any(p is None for p in picked):
            return [text]
        smallest = max(font.SCALES.index(p) for p in picked if p is not None)
        lines: list[str] = []
        for part in parts:
            lines.extend([*font.draw(part, font.SCALES[smallest]), ""])
        return lines[:-1]

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """Rows taken by the word at the width given."""
        return len(self._layout(width)) or 1

    def render(self) -> Text:
        """Draw the word: '#' cells become cells of the widget's colour."""
        lines = self._layout(self.size.width)
        solid = self.app.native_ansi_color
        pixel = FULL_BLOCK if solid else " "
        ink = Style() if solid else Style(reverse=True)
        out = Text(justify="center", no_wrap=True, overflow="crop")
        for index, line in enumerate(lines):
            if index:
                out.append("\n")
            if "#" not in line and line.strip():
                out.append(line, Style(bold=True))  # the plain-text fallback
                continue
            for run_start, run in _runs(line):
                if run_start == "#":
                    out.append(pixel * len(run), ink)
                else:
                    out.append(run)
        return out


def _runs(line: str) -> list[tuple[str, str]]:
    """Split a drawn line into runs of the same cell ('#' or ' ')."""
    runs: list[tuple[str, str]] = []
    for ch in line:
        if runs and runs[-1][0] == ch:
            runs[-1] = (ch, runs[-1][1] + ch)
        else:
            runs.append((ch, ch))
    return runs


class Bar(Widget):
    """A progress bar of coloured spaces (no partial-block glyphs)."""

    DEFAULT_CSS = """
    Bar { width: 100%; height: 1; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"bar--done", "bar--todo"}

    fraction: reactive[float] = reactive(0.0)

    def render(self) -> Text:
        """Draw the done part and the rest as two runs of spaces."""
        width = self.size.width
        done = round(width * min(1.0, max(0.0, self.fraction)))
        out = Text(no_wrap=True)
        out.append(" " * done, self.get_component_rich_style("bar--done"))
        out.append(" " * (width - done), self.get_component_rich_style("bar--todo"))
        return out


class Findings(Widget):
    """The files that are not clean: name in bold, why in the accent colour, one per line."""

    DEFAULT_CSS = """
    Findings { height: auto; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"findings--why"}

    rows: reactive[tuple[tuple[str, str], ...]] = reactive((), layout=True)

    def render(self) -> Text:
        """One line per file; names are display forms already, shown as plain text."""
        why_style = self.get_component_rich_style("findings--why")
        width = self.size.width
        out = Text(no_wrap=True, overflow="ellipsis")
        for index, (name, why) in enumerate(self.rows):
            if index:
                out.append("\n")
            out.append(name, "bold")
            if why and len(name) + 2 + len(why) <= width:
                out.append("  ")
                out.append(why, why_style)
            elif why:
                out.append("\n    ")
                out.append(why, why_style)
        return out

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        """One line per file, two when the reason does not fit beside the name."""
        return (
            sum(1 if not why or len(name) + 2 + len(why) <= width else 2 for name, why in self.rows)
            or 1
        )


class KioskButton(Static, can_focus=True):
    """A plain button: a boxed label; Enter, Space or a click presses it."""

    DEFAULT_CSS = """
    KioskButton {
        width: auto; height: 3; padding: 0 2; margin: 0 2;
        border: solid $foreground; text-style: bold; content-align: center middle;
    }
    KioskButton:focus { text-style: bold reverse; }
    /* Not reverse on the console (see FULL_BLOCK): bright red on grey there. */
    KioskButton:ansi:focus { background: ansi_black; color: ansi_bright_white; text-style: bold; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter,space", "press", show=False)]

    class Pressed(Message):
        """The button was pressed."""

        def __init__(self, button: KioskButton) -> None:
            super().__init__()
            self.button = button

    def __init__(self, label: str, action: str, *, id: str | None = None) -> None:
        # Text, not str: a label is never parsed as markup.
        super().__init__(Text(label), id=id, markup=False)
        self.action = action

    def action_press(self) -> None:
        """Tell the app the button was pressed."""
        self.post_message(self.Pressed(self))

    def on_click(self, event: Click) -> None:
        """A click presses the button too."""
        event.stop()
        self.action_press()
