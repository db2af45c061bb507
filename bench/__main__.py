"""Dispatch `python -m bench PART [ARGS]` to bench/PART.py's main(argv); no PART runs them all."""

from __future__ import annotations

import importlib
import sys

PARTS = ("scan", "station", "server")


def main(argv: list[str]) -> int:
    """Run one benchmark part, or every part in turn."""
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("parts:", ", ".join(PARTS))
        return 0
    parts = [argv[0]] if argv and not argv[0].startswith("-") else list(PARTS)
    rest = argv[1:] if argv and not argv[0].startswith("-") else argv
    status = 0
    for part in parts:
        module = importlib.import_module(f"bench.{part}")
        print(f"== bench {part} ==", flush=True)
        status |= int(module.main(rest))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
