"""Every word of the web pages has its French translation (the pages are French by default)."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po

SERVER = Path(__file__).resolve().parents[2] / "kiosk" / "server"
PO = SERVER.parent / "locale" / "fr" / "LC_MESSAGES" / "server.po"
CALL = re.compile(r"""(?:\b_|N_|fmt\._|self\._)\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
PLURAL = re.compile(r"""\bn_\(\s*"((?:[^"\\]|\\.)*)",\s*"((?:[^"\\]|\\.)*)",""")


def msgids() -> set[str | tuple[str, str]]:
    found: set[str | tuple[str, str]] = set()
    for path in SERVER.rglob("*"):
        if path.suffix in (".py", ".html"):
            text = path.read_text(encoding="utf-8")
            for match in CALL.finditer(text):
                found.add(match.group(1) if match.group(1) is not None else match.group(2))
            for match in PLURAL.finditer(text):
                found.add((match.group(1), match.group(2)))
    return found


def _done(string: str | tuple[str, ...]) -> bool:
    return all(string) if isinstance(string, tuple) else bool(string)


def test_every_msgid_of_the_server_has_a_french_translation() -> None:
    with PO.open("rb") as fh:
        catalog = read_po(fh, locale="fr")
    translated = {m.id for m in catalog if m.id and _done(m.string)}
    used = msgids()
    assert len(used) > 150  # the extraction itself works
    assert any(isinstance(m, tuple) for m in used)  # and finds plural forms
    assert sorted(map(str, used - translated)) == []


def test_placeholders_survive_translation() -> None:
    with PO.open("rb") as fh:
        catalog = read_po(fh, locale="fr")
    for message in catalog:
        if not (message.id and _done(message.string)):
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = {tuple(sorted(re.findall(r"%\(\w+\)\w", i))) for i in ids}
        for string in strings:
            got = tuple(sorted(re.findall(r"%\(\w+\)\w", string)))
            assert got in wanted, message.id
