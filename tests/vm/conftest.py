"""Fixtures of the VM tests: the test image, a real central server on 127.0.0.1, artifacts."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.vm import TestImage, qemu_available

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "vm"
STATION_ID = "vm-kiosk-1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """VM tests need root (chroot, loop for exFAT) and QEMU; elsewhere they cannot run."""
    for item in items:
        if "vm" in item.keywords and (os.geteuid() != 0 or not qemu_available()):
            item.add_marker(pytest.mark.skip(reason="needs root and qemu-system-x86_64"))


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots, logs and timings are kept for people to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()  # screenshots of an earlier run would mix with this one's
    return ARTIFACTS


@pytest.fixture(scope="session")
def test_image(artifacts: Path) -> TestImage:
    """`image-build/build --test`, built once per session (the debootstrap base is cached)."""
    out = REPO / "image-build" / "out" / "vm-test"
    started = time.monotonic()
    with (artifacts / "build.log").open("w") as log:
        done = subprocess.run(
            [sys.executable, str(REPO / "image-build" / "build.py"), "--test", str(out)],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        tail = (artifacts / "build.log").read_text(errors="replace")[-3000:]
        pytest.fail(f"image build failed ({done.returncode}):\n{tail}")
    (artifacts / "build-seconds.txt").write_text(f"{time.monotonic() - started:.1f}\n")
    return TestImage.load(out)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class CentralServer:
    """`kiosk server run` on 127.0.0.1 with its SQLite database."""

    port: int
    database: Path
    token: str
    process: subprocess.Popen[bytes]

    def reports(self) -> list[dict[str, Any]]:
        """Every stored report (read straight from the server's database)."""
        if not self.database.exists():
            return []
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10) as db:
            db.row_factory = sqlite3.Row
            try:
                rows = db.execute("SELECT * FROM reports ORDER BY pk").fetchall()
            except sqlite3.OperationalError:
                return []
        return [dict(r) for r in rows]

    def station(self) -> dict[str, Any] | None:
        """The kiosk's station row (heartbeats land there)."""
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM stations WHERE id = ?", (STATION_ID,)).fetchone()
        return dict(row) if row else None


@pytest.fixture(scope="module")
def central_server(
    tmp_path_factory: pytest.TempPathFactory, artifacts: Path
) -> Iterator[CentralServer]:
    """The real central server, on a random port of 127.0.0.1, with the kiosk's station."""
    root = tmp_path_factory.mktemp("server")
    database = root / "kiosk.db"
    port = free_port()
    config = root / "server.toml"
    config.write_text(
        "[server]\n"
        f'database_url = "sqlite:///{database}"\n'
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        "secure_cookies = false\n"
    )
    kiosk = [sys.executable, "-m", "kiosk", "server", "--config", str(config)]
    subprocess.run([*kiosk, "migrate"], check=True, capture_output=True)
    added = subprocess.run(
        [*kiosk, "station", "add", STATION_ID], check=True, capture_output=True, text=True
    )
    token = added.stdout.strip().splitlines()[-1]
    with (artifacts / "server.log").open("wb") as log:
        process = subprocess.Popen(
            [*kiosk, "run"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            break
        except urllib.error.HTTPError:
            break  # it answers (a redirect to login, a 401...): it is up
        except OSError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "central server did not start; see artifacts/vm/server.log"
                ) from exc
            time.sleep(0.3)
    yield CentralServer(port=port, database=database, token=token, process=process)
    if database.exists():
        shutil.copyfile(database, artifacts / "server.db")
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
