"""Linters run as tests: ruff (lint and format) and mypy (strict) over the project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_lint():
    out = _run(str(BIN / "ruff"), "check", "kiosk", "tests", "bench", "tools", "image-build")
    assert out.returncode == 0, out.stdout[-4000:]


def test_ruff_format():
    out = _run(
        str(BIN / "ruff"), "format", "--check", "kiosk", "tests", "bench", "tools", "image-build"
    )
    assert out.returncode == 0, out.stdout[-4000:]


def test_mypy_strict():
    out = _run(str(BIN / "mypy"))
    assert out.returncode == 0, out.stdout[-4000:]


def test_station_and_server_never_import_textual_and_tui_never_imports_pyudev_pyclamd():
    """The parts stay apart (ARCHITECTURE.md): checked on the import graph, in a fresh process."""
    code = (
        "import sys, importlib, pkgutil, kiosk.{pkg}\n"
        "for m in pkgutil.walk_packages(kiosk.{pkg}.__path__, 'kiosk.{pkg}.'):\n"
        "    if '.migrations' not in m.name:  # Alembic scripts run only under Alembic\n"
        "        importlib.import_module(m.name)\n"
        "print(' '.join(sorted(k for k in sys.modules if k.split('.')[0] in {bad})))\n"
    )
    for pkg, bad in (
        ("station", "{'textual'}"),
        ("tui", "{'pyudev', 'pyclamd', 'magic'}"),
        ("server", "{'textual', 'pyudev', 'pyclamd', 'magic'}"),
    ):
        out = subprocess.run(
            [sys.executable, "-c", code.format(pkg=pkg, bad=bad)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip() == "", f"kiosk.{pkg} imports {out.stdout.strip()}"
