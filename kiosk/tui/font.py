"""A small block-letter font for the one big word of each screen, drawn with no special glyph.

Every pixel becomes terminal cells painted with the word's colour (a reversed space), so the word
reads the same on the Linux console, whose fonts lack half blocks and shades, and on a truecolor
terminal. Letters are five pixels high. An accented capital (REFUSÉ) gets its mark one blank
pixel row above the letter (a cedilla one row below), so a word with accents is two rows taller
(seven) and a word without keeps its five: never a dropped accent, which changes the word.
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
_GLYPHS["Œ"] = (".####", "#.#..", "#.###", "#.#..", ".####")
_GLYPHS["Æ"] = (".####", "#.#..", "####.", "#.#..", "#.###")
_UNKNOWN = _GLYPHS["?"]

# Combining marks (after NFD) drawn above a letter: acute, grave, circumflex, diaeresis.
_ABOVE = ("\u0301", "\u0300", "\u0302", "\u0308")
_CEDILLA = "\u0327"
ABOVE_ROWS = 2  # the mark, then a blank row so that it does not merge with the letter
BELOW_ROWS = 1  # a cedilla hangs from the letter


def _mark(mark: str, width: int) -> str:
    """Return the one pixel row of *mark* over a glyph *width* pixels wide."""
    if mark == "\u0301":  # acute: right of the middle
        return _dot(width, (width + 1) // 2)
    if mark == "\u0300":  # grave: left of the middle
        return _dot(width, (width - 2) // 2)
    if mark == "\u0302":  # circumflex: two pixels in the middle
        left = max(0, (width - 2) // 2)
        return ("." * left + "##" + "." * width)[:width]
    return "#" + "." * (width - 2) + "#" if width > 2 else "#" * width  # diaeresis


def _dot(width: int, at: int) -> str:
    at = min(max(at, 0), width - 1)
    return "." * at + "#" + "." * (width - at - 1)


def _split(ch: str) -> tuple[str, str]:
    """Return the glyph key of *ch* (upper-cased base letter) and its combining marks."""
    decomposed = unicodedata.normalize("NFD", ch.upper())
    base, marks = decomposed[0], decomposed[1:]
    if ch.upper() in _GLYPHS:  # Œ, Æ: letters of their own, not decomposed
        return ch.upper(), ""
    return (base if base in _GLYPHS else "?"), marks


def pixels(text: str) -> list[str]:
    """Return the word as rows of '#' (ink) and '.' (paper), one pixel per character.

    HEIGHT rows, plus ABOVE_ROWS when a letter has an accent and BELOW_ROWS for a cedilla.
    """
    parts = [_split(ch) for ch in text]
    above = any(m in _ABOVE for _, marks in parts for m in marks)
    below = any(_CEDILLA in marks for _, marks in parts)
    rows = [""] * (HEIGHT + (ABOVE_ROWS if above else 0) + (BELOW_ROWS if below else 0))
    for index, (key, marks) in enumerate(parts):
        glyph = _GLYPHS[key]
        width = len(glyph[0])
        column: list[str] = []
        if above:
            mark = next((_mark(m, width) for m in marks if m in _ABOVE), "." * width)
            column += [mark, "." * width]
        column += list(glyph)
        if below:
            column.append(_dot(width, width // 2) if _CEDILLA in marks else "." * width)
        for row, pixels_row in enumerate(column):
            rows[row] += ("." if index else "") + pixels_row
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
    rows = pixels(text)
    return len(rows[0]) * scale.across, len(rows) * scale.down


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
