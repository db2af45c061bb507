"""The one sanitiser and the reversible escaping of names from sticks."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from kiosk.names import display_name, escape_name, is_deceptive, shorten_middle, unescape_name


@given(st.binary(max_size=300))
def test_escape_is_reversible_and_valid_utf8(raw):
    escaped = escape_name(raw)
    escaped.encode("utf-8")  # never raises: storable in JSON, SQLite, PostgreSQL
    assert unescape_name(escaped) == raw


@given(st.text(max_size=200))
def test_display_is_inert(text):
    shown = display_name(text)
    for ch in shown:
        assert unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}, repr(ch)


def test_display_examples():
    assert display_name("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert display_name("osc\x1b]0;t\x07") == "osc\\x1b]0;t\\x07"
    assert display_name("x\u202etxt.exe") == "x<U+202E>txt.exe"
    assert display_name("zero\u200bwidth") == "zero<U+200B>width"
    assert display_name("tab\there\nnl") == "tab\\there\\nnl"
    assert display_name("c1\x9bx") == "c1\\x9bx"
    assert display_name(escape_name(b"caf\xe9")) == "caf\\xe9"
    assert display_name("Été [/red] [@click=app.quit]") == "Été [/red] [@click=app.quit]"


def test_deceptive():
    assert is_deceptive("a\u202eb") and is_deceptive("a\u200db") and not is_deceptive("été")


def test_shorten_middle_keeps_both_ends():
    text = "Photos/Sortie scolaire 2024/IMG_0042.JPG"
    short = shorten_middle(text, 20)
    assert len(short) == 20 and short.startswith("Photos/") and short.endswith(".JPG")
    assert shorten_middle("court", 20) == "court"
