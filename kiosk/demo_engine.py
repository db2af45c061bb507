"""A throw-away clamd for `kiosk demo`: Debian's clamd on a signature set written here.

No signature database can be downloaded for a demo, so the set is one `.ndb` body signature of
the EICAR test string. clamd then starts in about a second. On a real kiosk clamd comes from the
system (clamav-daemon) with its own databases; this module is never used there.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kiosk.errors import EngineError

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLAMD = "/usr/sbin/clamd"


@dataclass
class DemoEngine:
    """A running demo clamd: its directory, socket and process."""

    root: Path
    socket: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Stop clamd (SIGTERM, then SIGKILL after a while)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _config(root: Path) -> str:
    options = {
        "LocalSocket": str(root / "clamd.sock"),
        "DatabaseDirectory": str(root / "db"),
        "TemporaryDirectory": str(root / "tmp"),
        "LogFile": str(root / "clamd.log"),
        "PidFile": str(root / "clamd.pid"),
        "Foreground": "yes",
        "MaxThreads": "4",
        "AlertExceedsMax": "yes",
        "AlertEncrypted": "yes",
        "MaxFileSize": "100M",
        "StreamMaxLength": "100M",
    }
    return "".join(f"{key} {value}\n" for key, value in options.items())


def start_engine(root: Path, timeout: float = 120.0) -> DemoEngine:
    """Write a config and the EICAR signature under *root*, start clamd, wait for PONG (blocks)."""
    binary = shutil.which("clamd") or CLAMD
    if not Path(binary).exists():
        raise EngineError("clamd is not installed", hint="apt-get install clamav-daemon")
    (root / "db").mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    (root / "db" / "kiosk-demo.ndb").write_text(f"Eicar-Test-Signature:0:*:{EICAR.hex()}\n")
    (root / "clamd.conf").write_text(_config(root))
    with (root / "clamd.out").open("ab") as out:
        process = subprocess.Popen(
            [binary, "--config-file", str(root / "clamd.conf")],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # the terminal's Ctrl+C must not reach it before we stop it
        )
    engine = DemoEngine(root=root, socket=root / "clamd.sock", process=process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (root / "clamd.out").read_text(errors="replace")[-1000:]
            raise EngineError(f"clamd exited with {process.returncode}: {tail}")
        if _pong(engine.socket):
            return engine
        time.sleep(0.1)
    engine.stop()
    raise EngineError(f"clamd did not answer within {timeout:.0f} s")


def _pong(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(path))
            sock.sendall(b"zPING\0")
            return sock.recv(64).startswith(b"PONG")
    except OSError:
        return False
