"""`python -m bench server [ingest|read] [ARGS]`: the central server's benchmarks (both by default).

Ingest: reports/s from many concurrent stations (SQLite and PostgreSQL). Read: p50/p95 of the
scans list with filters, the threats page and the dashboard at 1 million reports (--reports N).
"""

from __future__ import annotations

from bench import server_ingest, server_read


def main(argv: list[str]) -> int:
    """Run one or both server benchmarks."""
    if argv and argv[0] in ("ingest", "read"):
        part, rest = argv[0], argv[1:]
        return (server_ingest if part == "ingest" else server_read).main(rest)
    print("-- ingest --", flush=True)
    status = server_ingest.main([a for a in argv if not a.startswith("--reports")])
    print("-- read --", flush=True)
    return status | server_read.main([])
