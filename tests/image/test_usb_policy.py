"""The kiosk's USB policy script (image-build/rootfs/usr/local/lib/kiosk/usb-policy), on a fake
sysfs: what it authorises, what it refuses, and that it always says so."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import re
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
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
RECORD = re.compile(r"^[0-9a-f-]{36}\.json$")


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
    ("device_class", "interfaces", "locked", "allowed", "code"),
    [
        (0, (8,), True, True, "mass_storage"),
        (0, (8, 8), True, True, "mass_storage"),
        (9, (9,), True, True, "hub"),
        (0, (3,), True, False, "not_storage"),
        (0, (8, 3), True, False, "storage_composite"),
        (0, (3, 8), False, False, "storage_composite"),  # refused even at boot
        (0, (3,), False, True, "present_at_boot"),
        (0, (), True, False, "no_interface"),
        (0, (2, 10), True, False, "not_storage"),
    ],
)
def test_decide(
    device_class: int, interfaces: tuple[int, ...], locked: bool, allowed: bool, code: str
) -> None:
    """Only mass-storage-only devices and hubs pass once the kiosk has booted."""
    ok, why = policy.decide(device_class, list(interfaces), locked)
    assert ok is allowed
    assert why == code
    assert why in policy.WORDS


def test_interface_classes_read_from_raw_descriptors() -> None:
    """Interface classes come from the raw descriptors, skipping other descriptor kinds."""
    raw = descriptors(0, 8, 3)
    assert policy.interface_classes(raw[18:]) == [8, 3]
    assert policy.interface_classes(b"\x00\x00garbage") == []


def booted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spool: Path) -> list[str]:
    """usb-policy on a booted kiosk (usb-locked), spooling to *spool* (else tmp_path/run/spool).

    Returns the journal lines it writes.
    """
    monkeypatch.setattr(policy, "LOCK", tmp_path / "usb-locked")
    (tmp_path / "usb-locked").write_text("")
    monkeypatch.setattr(policy, "SPOOLS", (spool, tmp_path / "run/spool"))
    logged: list[str] = []
    monkeypatch.setattr(policy.syslog, "syslog", lambda _level, message: logged.append(message))
    return logged


@pytest.fixture
def locked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The kiosk has booted, spools in the temp dir; returns the journal lines."""
    return booted(tmp_path, monkeypatch, tmp_path / "data/usb-refused")


def records(spool: Path) -> list[dict[str, object]]:
    """The refusal records waiting in a spool."""
    return [json.loads(p.read_text()) for p in sorted(spool.iterdir()) if RECORD.match(p.name)]


def test_main_writes_authorized(tmp_path: Path, locked: list[str]) -> None:
    """The script writes the decision to sysfs: 1 for a stick, 0 for a composite."""
    stick = fake_device(tmp_path / "a", descriptors(0, 8))
    assert policy.main(["usb-policy", str(stick)]) == 0
    assert (stick / "authorized").read_text() == "1"
    evil = fake_device(tmp_path / "b", descriptors(0, 8, 3))
    assert policy.main(["usb-policy", str(evil)]) == 0
    assert (evil / "authorized").read_text() == "0"
    assert locked[0].startswith("USB device authorised")
    assert locked[1].startswith("USB device refused") and "interfaces=08,03" in locked[1]


def test_refusal_is_spooled_once_atomically(tmp_path: Path, locked: list[str]) -> None:
    """A refused composite leaves one JSON record named by its UUID; a stick leaves none."""
    spool = tmp_path / "data/usb-refused"
    stick = fake_device(tmp_path / "a", descriptors(0, 8))
    policy.main(["usb-policy", str(stick)])
    assert not spool.exists() or not records(spool)
    evil = fake_device(tmp_path / "b", descriptors(0, 8, 3))
    (evil / "manufacturer").write_text("Evil Corp\n")
    (evil / "serial").write_text("0001\n")
    policy.main(["usb-policy", str(evil)])
    (record,) = records(spool)
    assert (spool / f"{record['id']}.json").exists()
    assert uuid.UUID(str(record["id"])).version == 4
    assert record["v"] == 1 and record["kind"] == "refused"
    assert record["refusal"] == "storage_composite"
    assert (record["vendor_id"], record["product_id"]) == ("0627", "0001")
    assert (record["manufacturer"], record["product"], record["serial"]) == (
        "Evil Corp",
        "Thing",
        "0001",
    )
    assert record["interfaces"] == [8, 3] and record["device_class"] == 0
    assert datetime.fromisoformat(str(record["at"])).tzinfo is not None
    assert str(record["id"]) in locked[-1]
    # Written through a temporary file and a rename: nothing half-written is left behind.
    assert not [p for p in spool.iterdir() if p.name.startswith(".tmp-")]
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700


@pytest.mark.parametrize(("interfaces", "code"), [((3,), "not_storage"), ((), "no_interface")])
def test_every_refusal_code_is_spooled(
    tmp_path: Path, locked: list[str], interfaces: tuple[int, ...], code: str
) -> None:
    """A keyboard alone, and a device whose interfaces cannot be read, are spooled too."""
    device = fake_device(tmp_path / "k", descriptors(0, *interfaces))
    policy.main(["usb-policy", str(device)])
    (record,) = records(tmp_path / "data/usb-refused")
    assert record["refusal"] == code


def test_hostile_strings_stay_data(tmp_path: Path, locked: list[str]) -> None:
    """Descriptor strings are cut, kept as JSON data, and written out visibly in the journal."""
    evil = fake_device(tmp_path / "b", descriptors(0, 8, 3))
    (evil / "manufacturer").write_bytes(b"\x1b]0;owned\x07\x1b[2J" + b"A" * 5000 + b"\n")
    (evil / "product").write_bytes(b'"},{"kind":"x\xff\xfe\n')
    (evil / "idVendor").write_text("../../etc\n")
    policy.main(["usb-policy", str(evil)])
    (record,) = records(tmp_path / "data/usb-refused")
    assert len(str(record["manufacturer"])) == policy.MAX_TEXT
    assert str(record["manufacturer"]).startswith("\x1b]0;owned\x07")
    assert record["product"] == '"},{"kind":"x\ufffd\ufffd'
    assert record["vendor_id"] == ""  # not a hex id: dropped
    assert "\x1b" not in locked[-1] and "\\x1b" in locked[-1]


def test_spool_falls_back_to_run_while_data_is_not_mounted(
    tmp_path: Path, locked: list[str]
) -> None:
    """No data partition yet (here: its spool cannot be made): the record goes to /run."""
    (tmp_path / "data").write_text("not a directory")
    evil = fake_device(tmp_path / "b", descriptors(0, 8, 3))
    policy.main(["usb-policy", str(evil)])
    assert (evil / "authorized").read_text() == "0"
    assert len(records(tmp_path / "run/spool")) == 1
    assert any("cannot spool into" in line for line in locked)


def test_no_spool_at_all_still_refuses(tmp_path: Path, locked: list[str]) -> None:
    """Neither spool can be written: the device is refused all the same, the journal says so."""
    (tmp_path / "data").write_text("")
    (tmp_path / "run").write_text("")
    evil = fake_device(tmp_path / "b", descriptors(0, 8, 3))
    assert policy.main(["usb-policy", str(evil)]) == 0
    assert (evil / "authorized").read_text() == "0"
    assert "not spooled" in locked[-1]


def test_spool_is_bounded_and_counts_the_rest(
    tmp_path: Path, locked: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device re-enumerating in a loop fills MAX_RECORDS; the rest are counted, not kept."""
    monkeypatch.setattr(policy, "MAX_RECORDS", 5)
    evil = fake_device(tmp_path / "b", descriptors(0, 8, 3))
    for _ in range(12):
        policy.main(["usb-policy", str(evil)])
    spool = tmp_path / "data/usb-refused"
    assert len(records(spool)) == 5
    overflow = json.loads((spool / "overflow.json").read_text())
    assert overflow["kind"] == "overflow" and overflow["count"] == 7
    assert overflow["last_refusal"] == "storage_composite"
    assert overflow["last_usb_id"] == "0627:0001"
    uuid.UUID(overflow["id"])
    assert sorted(p.name for p in spool.iterdir() if not RECORD.match(p.name)) == [
        ".lock",
        "overflow.json",
    ]


def test_parallel_refusals_share_the_spool_lock(tmp_path: Path) -> None:
    """udev runs workers in parallel: the cap and the count hold under the spool's flock."""
    spool = tmp_path / "spool"
    record = {"at": "2026-11-29T10:00:00.000+00:00", "refusal": "not_storage"}
    record |= {"vendor_id": "046d", "product_id": "c31c"}

    def many(_: int) -> None:
        for _ in range(25):
            policy.spool_into(spool, {**record, "id": str(uuid.uuid4())}, max_records=40)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(many, range(8)))
    assert len(records(spool)) == 40
    assert json.loads((spool / "overflow.json").read_text())["count"] == 8 * 25 - 40
