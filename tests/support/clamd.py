"""Start a real clamd (Debian's clamav-daemon) with a signature set written here.

No signature database can be downloaded on CI, so the set is ours: an `.ndb` body signature of
the EICAR string and an `.hdb` hash of clamav-testfiles' `clam.exe` (which clamd then finds inside
the zip, 7z, cab, pdf, ole, mbox ... test files).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_SIGNATURE = "Eicar-Test-Signature"
TESTFILES = Path("/usr/share/clamav-testfiles")
CLAM_EXE = TESTFILES / "clam.exe"
CLAM_EXE_SIGNATURE = "Clamav.Test.File-6"
CLAMD = shutil.which("clamd") or "/usr/sbin/clamd"


def write_signatures(db_dir: Path, extra_lines: dict[str, list[str]] | None = None) -> None:
    """Write the test signature set into *db_dir* (plus any extra `{file: lines}`)."""
    db_dir.mkdir(parents=True, exist_ok=True)
    (db_dir / "kiosk-test.ndb").write_text(f"{EICAR_SIGNATURE}:0:*:{EICAR.hex()}\n")
    body = CLAM_EXE.read_bytes()
    md5 = hashlib.md5(body, usedforsecurity=False).hexdigest()
    (db_dir / "kiosk-test.hdb").write_text(f"{md5}:{len(body)}:{CLAM_EXE_SIGNATURE}\n")
    for name, lines in (extra_lines or {}).items():
        (db_dir / name).write_text("\n".join(lines) + "\n")


@dataclass
class Clamd:
    """A running clamd of the tests, with its directory, socket and process."""

    root: Path
    socket: Path
    process: subprocess.Popen[bytes]
    options: dict[str, str]

    @property
    def log(self) -> str:
        """clamd's log so far."""
        path = self.root / "clamd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop clamd (SIGTERM, then SIGKILL)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def kill(self) -> None:
        """Kill clamd at once (a crash)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        """Start clamd again with the same configuration (after stop or kill)."""
        self.stop()
        self.socket.unlink(missing_ok=True)
        self.process = _spawn(self.root)
        wait_ready(self.socket, self.process, self.root)


def _config_text(root: Path, options: dict[str, str]) -> str:
    base = {
        "LocalSocket": str(root / "clamd.sock"),
        "LocalSocketMode": "660",
        "DatabaseDirectory": str(root / "db"),
        "TemporaryDirectory": str(root / "tmp"),
        "LogFile": str(root / "clamd.log"),
        "LogTime": "yes",
        "PidFile": str(root / "clamd.pid"),
        "Foreground": "yes",
        "MaxThreads": "8",
        "AlertExceedsMax": "yes",
        "AlertEncrypted": "yes",
        "MaxFileSize": "100M",
        "StreamMaxLength": "100M",
    }
    base.update(options)
    return "".join(f"{k} {v}\n" for k, v in base.items())


def _spawn(root: Path) -> subprocess.Popen[bytes]:
    with (root / "clamd.out").open("ab") as out:
        return subprocess.Popen(
            [CLAMD, "--config-file", str(root / "clamd.conf")],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(
    sock: Path, process: subprocess.Popen[bytes], root: Path, timeout: float = 120
) -> None:
    """Wait until clamd answers PING on *sock*."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = (root / "clamd.out").read_text(errors="replace")
            raise RuntimeError(f"clamd exited with {process.returncode}: {out[-2000:]}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2)
                s.connect(str(sock))
                s.sendall(b"zPING\0")
                if s.recv(64).startswith(b"PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"clamd not ready after {timeout} s")


def start_clamd(
    root: Path,
    options: dict[str, str] | None = None,
    signatures: dict[str, list[str]] | None = None,
) -> Clamd:
    """Write a config and signatures under *root*, start clamd and wait until it answers."""
    options = dict(options or {})
    root.mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    write_signatures(root / "db", signatures)
    (root / "clamd.conf").write_text(_config_text(root, options))
    os.chmod(root, 0o755)
    process = _spawn(root)
    sock = root / "clamd.sock"
    wait_ready(sock, process, root)
    return Clamd(root=root, socket=sock, process=process, options=options)
