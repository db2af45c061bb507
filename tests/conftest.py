"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clamd import Clamd, start_clamd


@pytest.fixture(scope="session")
def clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clamd]:
    """A real clamd shared by the session; tests that break it use `own_clamd` instead."""
    server = start_clamd(tmp_path_factory.mktemp("clamd"))
    yield server
    server.stop()


@pytest.fixture
def own_clamd(tmp_path: Path) -> Iterator[Clamd]:
    """A real clamd of this test alone, free to be killed, stopped or restarted."""
    server = start_clamd(tmp_path / "clamd")
    yield server
    server.stop()
