"""Names from a stick: reversible escaping of raw bytes, and the one display sanitiser.

Every name that comes from a stick is hostile. Two forms exist:

* the *escaped* form (`escape_name`) is what reports, JSON and the database hold: valid UTF-8
  where the bytes were valid UTF-8, each invalid byte written as ``\\xNN`` and a literal
  backslash doubled, so that `unescape_name` gives back the exact bytes;
* the *display* form (`display_name`) is the only thing that may reach a terminal, a TUI, a web
  page or a log line: control, escape, bidi and zero-width characters are written out visibly as
  ASCII, so that nothing in a name can move a cursor, retitle a terminal or reorder text.
"""

from __future__ import annotations

import re
import unicodedata

_BACKSLASH = "\\"
_ESCAPED_BYTE = re.compile(r"\\(\\|x[0-9a-f]{2})")

# Characters that reorder or hide text; shown as <U+XXXX> and flagged by the file-type policy.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad\u034f\u115f\u1160\u3164")

_DECEPTIVE = BIDI_CONTROLS | ZERO_WIDTH

_NAMED_CONTROLS = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape_name(raw: bytes) -> str:
    """Return the reversible, valid-UTF-8 escaped form of a raw name or path."""
    if raw.isascii() and b"\\" not in raw:
        return raw.decode("ascii")  # most names: nothing to escape (runs once per file)
    out: list[str] = []
    for ch in raw.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if ch == _BACKSLASH:
            out.append(_BACKSLASH * 2)
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(ch)
    return "".join(out)


def unescape_name(escaped: str) -> bytes:
    """Return the raw bytes that `escape_name` turned into *escaped*."""
    out = bytearray()
    pos = 0
    for match in _ESCAPED_BYTE.finditer(escaped):
        out += escaped[pos : match.start()].encode("utf-8")
        token = match.group(1)
        out += b"\\" if token == _BACKSLASH else bytes([int(token[1:], 16)])
        pos = match.end()
    out += escaped[pos:].encode("utf-8")
    return bytes(out)


def is_deceptive(name: str) -> bool:
    """Tell whether a name holds bidi or zero-width characters (a classic disguise)."""
    return not _DECEPTIVE.isdisjoint(name)


def _visible(ch: str) -> str:
    code = ord(ch)
    if ch in _NAMED_CONTROLS:
        return _NAMED_CONTROLS[ch]
    if code < 0x20 or code == 0x7F or 0x80 <= code <= 0x9F:
        return f"\\x{code:02x}"
    if ch in BIDI_CONTROLS or ch in ZERO_WIDTH:
        return f"<U+{code:04X}>"
    category = unicodedata.category(ch)
    # Format (Cf), separators (Zl, Zp), surrogates (Cs), private use (Co), unassigned (Cn):
    # none has a business in a file name on screen.
    if category in {"Cf", "Zl", "Zp", "Cs", "Co", "Cn"}:
        return f"<U+{code:04X}>"
    return ch


def display_name(name: str, max_chars: int | None = None) -> str:
    """Return the inert, printable form of an escaped name, shortened in the middle if asked."""
    shown = "".join(_visible(ch) for ch in name)
    if max_chars is not None:
        shown = shorten_middle(shown, max_chars)
    return shown


def shorten_middle(text: str, max_chars: int) -> str:
    """Shorten *text* to *max_chars* by cutting its middle, keeping both ends readable."""
    if len(text) <= max_chars or max_chars < 5:
        return text[:max_chars] if len(text) > max_chars else text
    keep = max_chars - 3
    head = keep // 2
    tail = keep - head
    return f"{text[:head]}...{text[-tail:]}"
