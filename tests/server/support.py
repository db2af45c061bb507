"""Helpers shared by the server and delivery tests: reports, a real PostgreSQL, a real uvicorn."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from kiosk.models import (
    Action,
    DeviceInfo,
    EngineInfo,
    FileVerdict,
    Finding,
    Reason,
    Report,
    TreeVerdict,
    new_report_id,
    utcnow,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")
ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

XSS_NAMES = ("<script>alert(1)</script>.pdf", '"><svg onload=alert(1)>')


def make_report(
    station_id: str,
    *,
    verdict: TreeVerdict = TreeVerdict.CLEAN,
    finished_at: datetime | None = None,
    findings: tuple[Finding, ...] = (),
    serial: str = "4C530001230517109382",
    report_id: str | None = None,
    vendor: str = "SanDisk",
) -> Report:
    """A plausible report; infected ones carry one finding unless told otherwise."""
    finished = finished_at or utcnow()
    if verdict is TreeVerdict.INFECTED and not findings:
        findings = (
            Finding(
                path="JEUX/minecraft_gratuit.exe",
                verdict=FileVerdict.INFECTED,
                threat="Win.Trojan.Agent-1234",
                sha256=uuid.uuid4().hex * 2,
                size=2_400_000,
            ),
        )
    reason = {
        TreeVerdict.INFECTED: Reason.THREATS_FOUND,
        TreeVerdict.SUSPICIOUS: Reason.POLICY,
        TreeVerdict.INCOMPLETE: Reason.NOT_VERIFIABLE,
        TreeVerdict.ERROR: Reason.DEVICE_REMOVED,
    }.get(verdict)
    return Report(
        report_id=report_id or new_report_id(),
        verdict=verdict,
        reason=reason,
        started_at=finished - timedelta(seconds=95),
        finished_at=finished,
        files_total=1236,
        bytes_total=3_800_000_000,
        counts={"clean": 1236 - len(findings), **({"infected": len(findings)} if findings else {})},
        findings=findings,
        engine=EngineInfo("ClamAV 1.0.7", 27792, finished - timedelta(hours=8)),
        station_id=station_id,
        device=DeviceInfo(vendor, "Cruzer Blade", serial, 32_000_000_000, "vfat", "CM2-B"),
        actions=(
            Action(
                kind="delete_infected",
                at=finished + timedelta(seconds=30),
                ok=True,
                files=tuple(f.path for f in findings),
                rescan_verdict=TreeVerdict.CLEAN,
            ),
        )
        if findings
        else (),
        software_version="0.1.0",
    )


def body(report: Report) -> bytes:
    """The JSON body the shipper sends."""
    return json.dumps(report.to_dict()).encode()


def free_port() -> int:
    """Return a TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Postgres:
    """A throw-away PostgreSQL cluster listening only on a Unix socket in its own directory."""

    root: Path
    port: int
    as_postgres: bool
    created: list[str] = field(default_factory=list)

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of one database."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.root}&port={self.port}"

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self.as_postgres else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    def create_database(self) -> str:
        """Create a fresh database and return its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host=str(self.root), port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url(name)

    def stop(self) -> None:
        """Stop the cluster and delete its files."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> Postgres:
    """initdb + pg_ctl start in a temp dir (as the postgres user when we are root)."""
    as_postgres = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="kiosk-pg-", dir="/tmp"))
    if as_postgres:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
    pg = Postgres(root, free_port(), as_postgres)
    pg._run(
        str(PG_BIN / "initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth=trust",
        "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
    )  # fmt: skip
    options = (
        f"-k {root} -p {pg.port} -c listen_addresses='' -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
        "-c shared_buffers=256MB"
    )
    pg._run(
        str(PG_BIN / "pg_ctl"), "-D", str(root / "data"), "-o", options, "-l",
        str(root / "log"), "-w", "-t", "60", "start",
    )  # fmt: skip
    return pg


@dataclass
class Uvicorn:
    """The real server in a subprocess on 127.0.0.1 and a random port, to stop and start."""

    config_path: Path
    port: int
    log_path: Path
    env: dict[str, str]
    workers: int = 1
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait until /api/v1/health answers."""
        env = {**os.environ, **self.env, "KIOSK_CONFIG": str(self.config_path)}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                PYTHON, "-m", "uvicorn", "kiosk.server.app:app_from_env", "--factory",
                "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
            ],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("uvicorn did not come up")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)
        self.process = None

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        self.process = None


def write_config(path: Path, database_url: str, **server: Any) -> Path:
    """Write a kiosk.toml whose [server] points at *database_url*."""
    lines = ["[server]", f'database_url = "{database_url}"', "secure_cookies = false"]
    for key, value in server.items():
        lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path
