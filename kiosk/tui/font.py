"""A small block-letter font for the one big word of each screen, drawn with no special glyph.

Every pixel becomes terminal cells painted with the word's colour (a reversed space), so the word
reads the same on the Linux console, whose fonts lack half blocks and shades, and on a truecolor
terminal. Glyphs are five pixels high; accents are dropped (É is drawn as E).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

HEIGHT = 5

_GLYPHS: dict[str, tuple[str, ...]] = {
    "A": (".##.", "#..#", "####", "#..#", "#..#"),
    "B": ("###.", "#..#", "###.", "#..#", "###."),
    "C": (".###", "#...", "#...", "#...", ".###"),
    "D": ("###.", "#..#", "#..#", "#..#", "###."),
    "E": ("####", "#...", "###.", "#...", "####"),
    "F": ("####", "#...", "###.", "#...", "#..."),
    "G": (".###", "#...", "#.##", "#..#", ".###"),
    "H": ("#..#", "#..#", "####", "#..#", "#..#"),
    "I": ("###", ".#.", ".#.", ".#.", "###"),
    "J": ("..##", "...#", "...#", "#..#", ".##."),
    "K": ("#..#", "#.#.", "##..", "#.#.", "#..#"),
    "L": ("#...", "#...", "#...", "#...", "####"),
    "M": ("#...#", "##.##", "#.#.#", "#...#", "#...#"),
    "N": ("#...#", "##..#", "#.#.#", "#..##", "#...#"),
    "O": (".##.", "#..#", "#..#", "#..#", ".##."),
    "P": ("###.", "#..#", "###.", "#...", "#..."),
    "Q": (".##.", "#..#", "#..#", "#.##", ".###"),
    "R": ("###.", "#..#", "###.", "#.#.", "#..#"),
    "S": (".###", "#...", ".##.", "...#", "###."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#..#", "#..#", "#..#", "#..#", ".##."),
    "V": ("#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "W": ("#...#", "#...#", "#.#.#", "##.##", "#...#"),
    "X": ("#...#", ".#.#.", "..#..", ".#.#.", "#...#"),
    "Y": ("#...#", ".#.#.", "..#..", "..#..", "..#.."),
    "Z": ("####", "...#", ".##.", "#...", "####"),
    "0": (".##.", "#..#", "#..#", "#..#", ".##."),
    "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###.", "...#", ".##.", "#...", "####"),
    "3": ("###.", "...#", ".##.", "...#", "###."),
    "4": ("#..#", "#..#", "####", "...#", "...#"),
    "5": ("####", "#...", "###.", "...#", "###."),
    "6": (".##.", "#...", "###.", "#..#", ".##."),
    "7": ("####", "...#", "..#.", ".#..", ".#.."),
    "8": (".##.", "#..#", ".##.", "#..#", ".##."),
    "9": (".##.", "#..#", ".###", "...#", ".##."),
    "%": ("##..#", "##.#.", "..#..", ".#.##", "#..##"),
    "-": ("...", "...", "###", "...", "..."),
    "?": ("###.", "...#", ".##.", "....", ".#.."),
    "!": ("#", "#", "#", ".", "#"),
    ".": (".", ".", ".", ".", "#"),
    " ": (".", ".", ".", ".", "."),
}
_UNKNOWN = _GLYPHS["?"]


def _plain(ch: str) -> str:
    """Return the base letter of *ch*, upper-cased, without its accent."""
    base = unicodedata.normalize("NFD", ch)[0].upper()
    return base if base in _GLYPHS else "?"


def pixels(text: str) -> list[str]:
    """Return the word as HEIGHT rows of '#' (ink) and '.' (paper), one pixel per character."""
    rows = [""] * HEIGHT
    for index, ch in enumerate(text):
        glyph = _GLYPHS.get(_plain(ch), _UNKNOWN)
        for row in range(HEIGHT):
            rows[row] += ("." if index else "") + glyph[row]
    return rows


@dataclass(frozen=True, slots=True)
class Scale:
    """How many terminal cells one font pixel takes (a cell is about twice as tall as wide)."""

    across: int
    down: int


# Largest first; the 2:1 scales give square pixels, 1x1 is the narrow fallback.
SCALES = (Scale(6, 3), Scale(4, 2), Scale(2, 1), Scale(1, 1))


def word_size(text: str, scale: Scale) -> tuple[int, int]:
    """Return (columns, rows) that *text* takes at *scale*."""
    return len(pixels(text)[0]) * scale.across, HEIGHT * scale.down


def pick_scale(text: str, width: int, height: int) -> Scale | None:
    """Return the largest scale at which *text* fits in width x height cells, or None."""
    for scale in SCALES:
        cols, rows = word_size(text, scale)
        if cols <= width and rows <= height:
            return scale
    return None


def draw(text: str, scale: Scale) -> list[str]:
    """Return the rows of cells of *text* at *scale*: '#' for ink, ' ' for paper."""
    out: list[str] = []
    for row in pixels(text):
        line = "".join(("#" if px == "#" else " ") * scale.across for px in row)
        out.extend([line] * scale.down)
    return out
