"""Maintain the gettext catalogues (needs Babel).

  python tools/catalog.py update DOMAIN FILE...     extract messages, merge into fr/en .po
  python tools/catalog.py translate DOMAIN LANG DICT.py [VAR]
        fill translations from a dict (msgid -> msgstr; (singular, plural) -> (s, p))

msgids are English; the English catalogue stays identity but exists so `en` is explicit.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po

LOCALE = Path(__file__).resolve().parent.parent / "kiosk" / "locale"
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2), "n_": (1, 2)}
# gettext's classic rules: Babel's CLDR-based French rule has a third form ("many") that
# translators never fill, which would print English for large counts.
PLURALS = {"fr": (2, "(n > 1)"), "en": (2, "(n != 1)")}


def _path(domain: str, lang: str) -> Path:
    return LOCALE / lang / "LC_MESSAGES" / f"{domain}.po"


def _write(catalog: Catalog, po: Path, lang: str) -> None:
    catalog._num_plurals, catalog._plural_expr = PLURALS[lang]
    po.parent.mkdir(parents=True, exist_ok=True)
    with po.open("wb") as fh:
        write_po(fh, catalog, no_location=True, sort_output=True, ignore_obsolete=True)


def _read(po: Path, lang: str, domain: str) -> Catalog:
    with po.open("rb") as fh:
        return read_po(fh, locale=lang, domain=domain)


def update(domain: str, files: list[str]) -> None:
    """Merge the messages of *files* into the fr and en catalogues of *domain*."""
    template = Catalog(domain=domain)
    for name in files:
        for _line, message, _comments, _context in extract_from_file(
            "python", name, keywords=KEYWORDS
        ):
            template.add(message)
    for lang in PLURALS:
        po = _path(domain, lang)
        catalog = _read(po, lang, domain) if po.exists() else Catalog(locale=lang, domain=domain)
        catalog.update(template, no_fuzzy_matching=True)
        _write(catalog, po, lang)


def translate(domain: str, lang: str, source: str, var: str = "FR") -> list[str]:
    """Apply translations from a dict file; return the msgids still untranslated."""
    table = runpy.run_path(source)[var]
    po = _path(domain, lang)
    catalog = _read(po, lang, domain)
    missing = []
    for message in catalog:
        if not message.id:
            continue
        if message.id in table:
            message.string = table[message.id]
        elif not message.string or (isinstance(message.string, tuple) and not all(message.string)):
            missing.append(str(message.id))
    _write(catalog, po, lang)
    return missing


if __name__ == "__main__":
    verb, *rest = sys.argv[1:]
    if verb == "update":
        update(rest[0], rest[1:])
    elif verb == "translate":
        for msgid in translate(*rest):
            print(f"untranslated: {msgid!r}", file=sys.stderr)
    else:
        sys.exit(__doc__)
