"""gettext for every word a teacher or IT person reads: French first, English too.

Catalogues live in `kiosk/locale/<lang>/LC_MESSAGES/<domain>.po` (one domain per part: `scan`,
`station`, `tui`, `server`), msgids are English, and the `.mo` files are compiled at build
(`tools/compile_catalogs.py`, run by `./run` and by the wheel build).
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"

Translate = Callable[[str], str]


def language_from_env(env: dict[str, str] | None = None) -> str:
    """Pick fr or en from LANGUAGE / LC_ALL / LC_MESSAGES / LANG; French unless English is asked."""
    env = dict(os.environ) if env is None else env
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(var, "")
        if value and value not in ("C", "POSIX", "C.UTF-8"):
            return "en" if value.lower().startswith("en") else DEFAULT_LANGUAGE
    return DEFAULT_LANGUAGE


@cache
def translation(domain: str, language: str) -> gettext.NullTranslations:
    """Return the catalogue of *domain* in *language* (msgids, i.e. English, when none is found)."""
    return gettext.translation(domain, localedir=LOCALE_DIR, languages=[language], fallback=True)


def translator(domain: str, language: str) -> Translate:
    """Return the `_` function of *domain* in *language*."""
    return translation(domain, language).gettext


def ntranslator(domain: str, language: str) -> Callable[[str, str, int], str]:
    """Return the `ngettext` function of *domain* in *language*."""
    return translation(domain, language).ngettext
