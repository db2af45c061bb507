"""Every word of the web pages has its French translation (the pages are French by default)."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po

SERVER = Path(__file__).resolve().parents[2] / "kiosk" / "server"
PO = SERVER.parent / "locale" / "fr" / "LC_MESSAGES" / "server.po"
CALL = re.compile(r"""(?:\b_|N_|fmt\._|self\._)\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")


def msgids() -> set[str]:
    found = set()
    for path in SERVER.rglob("*"):
        if path.suffix in (".py", ".html"):
            for match in CALL.finditer(path.read_text(encoding="utf-8")):
                found.add(match.group(1) if match.group(1) is not None else match.group(2))
    return found


def test_every_msgid_of_the_server_has_a_french_translation() -> None:
    with PO.open("rb") as fh:
        catalog = read_po(fh, locale="fr")
    translated = {m.id for m in catalog if m.id and m.string}
    used = msgids()
    assert len(used) > 150  # the extraction itself works
    assert sorted(used - translated) == []


def test_placeholders_survive_translation() -> None:
    with PO.open("rb") as fh:
        catalog = read_po(fh, locale="fr")
    for message in catalog:
        if message.id and message.string:
            wanted = sorted(re.findall(r"%\(\w+\)\w", str(message.id)))
            assert sorted(re.findall(r"%\(\w+\)\w", str(message.string))) == wanted, message.id
