"""The kiosk's systemd units: hardening figures (`systemd-analyze security`, offline)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze"
)


def exposure(unit: str) -> float:
    """The overall exposure level systemd-analyze gives the unit file."""
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", unit],
        cwd=SYSTEMD,
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout + done.stderr)
    assert found, done.stdout + done.stderr
    return float(found.group(1))


@pytest.mark.parametrize("unit", ["kiosk-ui.service", "kiosk-shipper.service"])
def test_ui_and_shipper_are_at_most_2(unit: str) -> None:
    """Issue 6: the UI and the shipper at 2.0 or below."""
    assert exposure(unit) <= 2.0


def test_station_is_as_low_as_mounting_allows() -> None:
    """The privileged station keeps only what mounting needs; the unit says why."""
    assert exposure("kiosk-station.service") <= 3.0
    assert "mount" in (SYSTEMD / "kiosk-station.service").read_text()


def test_ui_runs_on_tty1_with_no_login() -> None:
    """The screen: tty1, stderr on the tty (Textual draws there), an unprivileged user."""
    text = (SYSTEMD / "kiosk-ui.service").read_text()
    for line in ("TTYPath=/dev/tty1", "StandardError=tty", "User=kiosk-ui", "Restart=always"):
        assert line in text


def test_shipper_runs_unprivileged() -> None:
    """The shipper: the user kiosk-ship, the outbox through its group, no capability."""
    lines = (SYSTEMD / "kiosk-shipper.service").read_text().splitlines()
    for line in (
        "User=kiosk-ship",
        "SupplementaryGroups=kiosk-outbox",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "NoNewPrivileges=yes",
        "Restart=on-failure",  # without a server_url it exits 0 once, not every 5 s forever
    ):
        assert line in lines, line
    assert not [
        line for line in lines if line.startswith("CapabilityBoundingSet=") and "CAP_" in line
    ]
