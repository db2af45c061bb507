"""Fixtures of the scanning-core tests: a config pointing at the real clamd, a scan helper."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kiosk.config import Config
from kiosk.models import Report
from kiosk.scan.scanner import Progress, Scanner
from tests.support.clamd import Clamd


@pytest.fixture
def config(clamd: Clamd) -> Config:
    """Defaults, with the session's real clamd."""
    return Config().with_overrides("clamd", socket=str(clamd.socket))


@pytest.fixture
def scan(config: Config) -> Callable[..., Report]:
    """Scan a tree with the real clamd; keyword arguments override `scan` config keys."""

    def run(root: Path, progress: list[Progress] | None = None, **scan_keys: object) -> Report:
        cfg = config.with_overrides("scan", **scan_keys) if scan_keys else config
        return Scanner(cfg).scan(
            root, on_progress=progress.append if progress is not None else None
        )

    return run


def by_path(report: Report) -> dict[str, object]:
    """Map each finding's path to the finding."""
    return {f.path: f for f in report.findings}
