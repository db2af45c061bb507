"""A pytest plugin: SIGTERM ends the run like Ctrl-C, so every fixture is still torn down.

Python's default SIGTERM kills the process at once: no finalizer runs, and what the fixtures
started in sessions of their own (QEMU and the relays it spawns, clamd, PostgreSQL) or set up
in the kernel (loop devices, mounts) outlived the run, holding cores and memory, until someone
found them. A CI job stopped at its time limit, or a developer's `kill`, ends with SIGTERM.
Raised as KeyboardInterrupt, pytest stops the run and tears every fixture down as on Ctrl-C.
"""

from __future__ import annotations

import signal
from types import FrameType

import pytest


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # Once is enough: a second SIGTERM during the teardown kills at once, as the sender meant.
    signal.signal(signum, signal.SIG_DFL)
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def pytest_configure(config: pytest.Config) -> None:
    """Turn SIGTERM into KeyboardInterrupt for this run (pytest's main thread)."""
    signal.signal(signal.SIGTERM, _interrupt)
