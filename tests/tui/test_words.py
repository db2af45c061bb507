"""Every word of the screen is translated, every code has plain words, the font draws them all."""

from __future__ import annotations

import ast
import unicodedata
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from kiosk.models import Reason
from kiosk.tui import font
from kiosk.tui.words import Words, reason_known

ROOT = Path(__file__).resolve().parents[2]
LOCALE = ROOT / "kiosk" / "locale"
KEYWORDS = {"_": None, "N_": None, "n_": (1, 2)}


def used_msgids() -> set[str]:
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        ROOT / "kiosk" / "tui", keywords=KEYWORDS, method_map=[("**.py", "python")]
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_string_is_in_the_catalogue(language):
    with (LOCALE / language / "LC_MESSAGES" / "tui.po").open("rb") as fh:
        catalog = read_po(fh)
    translated = {
        (m.id[0] if isinstance(m.id, tuple) else m.id)
        for m in catalog
        if m.id and all(m.string if isinstance(m.string, tuple) else [m.string])
    }
    missing = used_msgids() - translated
    assert not missing, f"not translated in {language}: {sorted(missing)}"


def test_french_is_the_default_and_really_french():
    words = Words("fr")
    assert words._("Insert your USB stick") == "Insérez votre clé USB"
    assert words.n_("{n} THREAT FOUND", "{n} THREATS FOUND", 3) == "{n} MENACES DÉTECTÉES"
    assert words.n_("{n} THREAT FOUND", "{n} THREATS FOUND", 1) == "{n} MENACE DÉTECTÉE"


@pytest.mark.parametrize("reason", list(Reason))
def test_every_reason_code_has_plain_words(reason):
    assert reason_known(reason)
    words = Words("fr")
    tree_fallback = words._("A technical problem occurred ({code}).").format(code=reason.value)
    file_fallback = words._("could not be checked")
    # One of the two tables (per stick, per file) knows it: no fallback sentence.
    assert (
        words.tree_reason(reason) != tree_fallback
        or words.file_reason(reason, None, "unverifiable") != file_fallback
    )


@pytest.mark.parametrize(
    "problem", ["engine_down", "canary_missed", "signatures_old", "selftest_failed", "outbox_full"]
)
def test_health_problems_have_plain_words(problem):
    assert problem not in Words("fr").tree_reason(problem)


def test_unknown_codes_still_say_something():
    words = Words("en")
    assert "brand_new" in words.tree_reason("brand_new")
    assert words.file_reason("brand_new", None, "error") == "not checked (brand_new)"


def test_console_safe_catalogue():
    """The Linux console font has Latin-1 letters but no curly quotes, dashes or ellipsis."""
    text = (LOCALE / "fr" / "LC_MESSAGES" / "tui.po").read_text(encoding="utf-8")
    for bad in "\u2019\u2013\u2014\u2026\u00a0\u202f":
        assert bad not in text


def big_words() -> set[str]:
    """Every big word view.py writes: `big="..."` and `big=_("...")`, found in its source."""
    tree = ast.parse((ROOT / "kiosk" / "tui" / "view.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "big":
            value = node.value
            if isinstance(value, ast.Call) and value.args:
                value = value.args[0]  # _("...")
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(value.value)
            for inner in ast.walk(node.value):  # "VIRUS" if infected else _("DANGER")
                if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                    found.add(inner.value)
    return found


def test_every_big_word_of_the_view_is_found():
    # The scan: f"{percent} %"; drawn below as "0 %" and "100 %".
    assert {"USB", "OK", "VIRUS", "DANGER", "REFUSED", "OUT OF ORDER", "DELETE?"} <= big_words()


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_font_draws_every_big_word_with_its_accents(language):
    words = Words(language)
    for word in [*sorted(big_words() - {" %"}), "100 %", "0 %"]:
        drawn = words._(word) if word[0].isalpha() else word
        rows = font.draw(drawn, font.Scale(1, 1))
        accented = any(unicodedata.normalize("NFD", ch) != ch for ch in drawn)
        assert len(rows) == font.HEIGHT + (font.ABOVE_ROWS if accented else 0), drawn
        assert all(set(row) <= {"#", " "} for row in rows)
        # No letter is drawn as the unknown glyph ("?" is only drawn for a real "?").
        for ch in drawn.replace("?", ""):
            assert font.pixels(ch)[-font.HEIGHT :] != font.pixels("?"), (drawn, ch)


def test_accented_capitals_keep_their_accent():
    """REFUSÉ was drawn REFUSE: the accent changes the word, so it is drawn above the letter."""
    assert font.pixels("REFUSÉ") != font.pixels("REFUSE")
    e_acute = font.pixels("É")
    assert len(e_acute) == font.HEIGHT + font.ABOVE_ROWS
    assert e_acute[0] == "..#." and e_acute[1] == "...."  # the mark, then a blank row
    assert e_acute[font.ABOVE_ROWS :] == font.pixels("E")
    # Each French accent is drawn, and differently: é è ê ë, à â, î ï, ô, ù û ü, ç; œ æ.
    marks = {font.pixels(ch)[0] for ch in "ÉÈÊË"}
    assert len(marks) == 4
    for ch in "ÀÂÎÏÔÙÛÜŸ":
        assert "#" in font.pixels(ch)[0], ch
    cedilla = font.pixels("Ç")
    assert len(cedilla) == font.HEIGHT + font.BELOW_ROWS and "#" in cedilla[-1]
    for ch in "ŒÆ":
        assert font.pixels(ch) != font.pixels("?"), ch
    # Lower case is drawn as capitals, accents included.
    assert font.pixels("refusé") == font.pixels("REFUSÉ")
    # A word without accents keeps its five rows; the widest mark stays within its letter.
    assert len(font.pixels("REFUSE")) == font.HEIGHT
    assert all(len(row) == len(font.pixels("REFUSÉ")[0]) for row in font.pixels("REFUSÉ"))


def test_font_picks_the_largest_scale_that_fits():
    assert font.pick_scale("OK", 200, 40) == font.Scale(6, 3)
    assert font.pick_scale("ATTENTION", 96, 10) == font.Scale(2, 1)
    assert font.pick_scale("ATTENTION", 60, 10) == font.Scale(1, 1)
    assert font.pick_scale("ATTENTION", 40, 10) is None
    # An accented word is two rows taller: the height counts them.
    assert font.word_size("REFUSÉ", font.Scale(4, 2)) == (116, 14)
    assert font.pick_scale("REFUSÉ", 116, 15) == font.Scale(4, 2)
    assert font.pick_scale("REFUSÉ", 116, 13) == font.Scale(2, 1)
