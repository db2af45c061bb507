"""A test run stopped by SIGTERM still tears its fixtures down (tests/support/sigterm.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A fixture that starts a process in a session of its own, as the VM and clamd fixtures do.
INNER = """
import subprocess, time
from pathlib import Path
import pytest

HERE = Path(__file__).parent

@pytest.fixture
def child():
    process = subprocess.Popen(["sleep", "300"], start_new_session=True)
    (HERE / "child.pid").write_text(str(process.pid))
    yield process
    process.kill()
    process.wait()
    (HERE / "torn-down").write_text("yes")

def test_runs_until_stopped(child):
    (HERE / "ready").write_text("yes")
    time.sleep(300)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("plugin", [True, False], ids=["with-plugin", "python-default"])
def test_sigterm_tears_the_fixtures_down(tmp_path: Path, plugin: bool) -> None:
    (tmp_path / "test_inner.py").write_text(INNER)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if plugin:
        argv += ["-p", "tests.support.sigterm"]
    run = subprocess.Popen(
        [*argv, str(tmp_path / "test_inner.py")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists():
            assert run.poll() is None, run.communicate()[0].decode()
            assert time.monotonic() < deadline, "the inner test never started"
            time.sleep(0.05)
        child = int((tmp_path / "child.pid").read_text())
        run.send_signal(signal.SIGTERM)
        output = run.communicate(timeout=60)[0].decode()
        if plugin:
            assert (tmp_path / "torn-down").exists(), output
            assert not _alive(child)
            assert "KeyboardInterrupt" in output
        else:
            # What the plugin is for: Python's default leaves the fixture's process behind.
            assert run.returncode == -signal.SIGTERM
            assert not (tmp_path / "torn-down").exists()
            assert _alive(child)
            os.kill(child, signal.SIGKILL)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
