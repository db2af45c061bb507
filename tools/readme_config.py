"""Rewrite the README's config reference from kiosk.config.reference() (between markers)."""

from __future__ import annotations

import re
from pathlib import Path

from kiosk.config import reference

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def render() -> str:
    """The fenced block that goes between the markers."""
    return f"{START}\n```toml\n{reference()}```\n{END}"


def main() -> None:
    """Replace the block in README.md."""
    text = README.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {START} ... {END} block")
    README.write_text(pattern.sub(lambda _m: render(), text), encoding="utf-8")


if __name__ == "__main__":
    main()
