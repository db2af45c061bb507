"""The kiosk's USB policy script (image-build/rootfs/usr/local/lib/kiosk/usb-policy), on a fake
sysfs: what it authorises, what it refuses, and that it always says so."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "image-build/rootfs/usr/local/lib/kiosk/usb-policy"


def load() -> ModuleType:
    """Import the script (it has no .py suffix: it is installed as a command)."""
    loader = importlib.machinery.SourceFileLoader("usb_policy", str(SCRIPT))
    spec = importlib.util.spec_from_loader("usb_policy", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


policy = load()


def descriptors(device_class: int, *interfaces: int) -> bytes:
    """Raw sysfs `descriptors`: a device descriptor, then one configuration with interfaces."""
    device = bytes([18, 1, 0, 2, device_class, 0, 0, 64]) + bytes(10)
    body = b""
    for number, cls in enumerate(interfaces):
        body += bytes([9, 4, number, 0, 2, cls, 6 if cls == 8 else 1, 0x50 if cls == 8 else 1, 0])
        body += bytes([7, 5, 0x81, 2, 0, 2, 0])  # an endpoint, skipped by the parser
    config = bytes([9, 2, 9 + len(body), 0, len(interfaces), 1, 0, 0x80, 50])
    return device + config + body


def fake_device(root: Path, raw: bytes) -> Path:
    """A sysfs USB device directory, unauthorised, as the kernel leaves a new device."""
    dev = root / "1-1"
    dev.mkdir(parents=True)
    (dev / "descriptors").write_bytes(raw)
    (dev / "authorized").write_text("0\n")
    (dev / "devpath").write_text("1\n")
    (dev / "idVendor").write_text("0627\n")
    (dev / "idProduct").write_text("0001\n")
    (dev / "product").write_text("Thing\n")
    return dev


@pytest.mark.parametrize(
    ("device_class", "interfaces", "locked", "allowed", "reason"),
    [
        (0, (8,), True, True, "mass storage only"),
        (0, (8, 8), True, True, "mass storage only"),
        (9, (9,), True, True, "hub"),
        (0, (3,), True, False, "not mass storage"),
        (0, (8, 3), True, False, "mass storage combined"),
        (0, (3, 8), False, False, "mass storage combined"),  # refused even at boot
        (0, (3,), False, True, "present at boot"),
        (0, (), True, False, "no interface"),
        (0, (2, 10), True, False, "not mass storage"),
    ],
)
def test_decide(
    device_class: int, interfaces: tuple[int, ...], locked: bool, allowed: bool, reason: str
) -> None:
    """Only mass-storage-only devices and hubs pass once the kiosk has booted."""
    ok, why = policy.decide(device_class, list(interfaces), locked)
    assert ok is allowed
    assert reason in why


def test_interface_classes_read_from_raw_descriptors() -> None:
    """Interface classes come from the raw descriptors, skipping other descriptor kinds."""
    raw = descriptors(0, 8, 3)
    assert policy.interface_classes(raw[18:]) == [8, 3]
    assert policy.interface_classes(b"\x00\x00garbage") == []


def test_main_writes_authorized(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The script writes the decision to sysfs: 1 for a stick, 0 for a composite."""
    monkeypatch.setattr(policy, "LOCK", tmp_path / "usb-locked")
    (tmp_path / "usb-locked").write_text("")
    logged: list[str] = []
    monkeypatch.setattr(policy.syslog, "syslog", lambda _level, message: logged.append(message))
    stick = fake_device(tmp_path / "a", descriptors(0, 8))
    assert policy.main(["usb-policy", str(stick)]) == 0
    assert (stick / "authorized").read_text() == "1"
    evil = fake_device(tmp_path / "b", descriptors(0, 8, 3))
    assert policy.main(["usb-policy", str(evil)]) == 0
    assert (evil / "authorized").read_text() == "0"
    assert logged[0].startswith("USB device authorised")
    assert logged[1].startswith("USB device refused") and "interfaces=08,03" in logged[1]
