"""Refused USB devices: the spool that usb-policy writes, drained into reports in the outbox.

THREATS.md row 25. The kernel leaves every new USB device unauthorised; usb-policy
(`image-build/rootfs/usr/local/lib/kiosk/usb-policy`, run by udev as root) authorises plain mass
storage and hubs, and for each device it refuses writes one JSON record, atomically, as
`<uuid>.json` into `<station.data_dir>/usb-refused/` (`/var/lib/kiosk/usb-refused/` on the
kiosk), or into `/run/kiosk-usb/refused/` while the data partition is not mounted yet. Past
`MAX_RECORDS` records it only counts, in `overflow.json`.

The station drains both spools when it starts and whenever udev announces a USB device (udev
tells its listeners after the rule's RUN program has finished, so the record is there), and
looks again every `POLL` seconds in case an event was lost. Each record becomes one report:
verdict `suspicious`, reason `device_refused`, `files_total` 0, the device in `device`, and as
`report_id` the record's own UUID (its file name). The report is committed to the outbox before
the file is removed, so a crash between the two commits it again under the same id: the outbox
keeps one row (UNIQUE report_id) and the server one report (idempotent on report_id).

A record is partly hostile (the device's own strings): it is read with a size cap and strict
types. A record that is too big, not JSON, or of the wrong shape still becomes a report, one that
says so; nothing in the spool is dropped silently.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import stat
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kiosk.config import Config
from kiosk.errors import KioskError, OutboxError
from kiosk.models import DeviceInfo, Reason, Report, TreeVerdict, utcnow
from kiosk.names import display_name, escape_name
from kiosk.station.outbox import Outbox

log = logging.getLogger(__name__)
journal = logging.getLogger("kiosk.station.journal")

SPOOL_NAME = "usb-refused"  # under station.data_dir
VOLATILE_SPOOL = Path("/run/kiosk-usb/refused")  # usb-policy's fallback before data is mounted
OVERFLOW = "overflow.json"
POLL = 30.0  # seconds between two looks at the spools when no USB event came
NOTICE_WINDOW = 60.0  # seconds: an older refusal is reported, but not shown on the screen
STALE_TMP = 300.0  # seconds after which a temporary file of usb-policy is a record of its own
MAX_RECORD_BYTES = 16 * 1024
MAX_TEXT = 128
MAX_INTERFACES = 32
REFUSALS = frozenset({"storage_composite", "not_storage", "no_interface"})
RECORD_NAME = re.compile(r"^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.json$")
_HEX_ID = re.compile(r"^[0-9a-fA-F]{0,4}$")


class RecordError(KioskError):
    """A spool record that is not what usb-policy writes (never leaves this module)."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """One spool record, checked: a refused device, an overflow count, or a malformed file."""

    report_id: str
    kind: str  # "refused", "overflow" or "malformed"
    at: datetime
    refusal: str | None = None  # storage_composite | not_storage | no_interface
    usb_id: str | None = None  # vendor:product, hex
    manufacturer: str | None = None  # escaped form (kiosk.names.escape_name)
    product: str | None = None
    serial: str | None = None
    device_class: int | None = None
    interfaces: tuple[int, ...] = ()
    busid: str | None = None
    count: int = 1  # devices this record stands for (an overflow counts many)
    problem: str | None = None  # why a malformed record is malformed


def spool_dirs(config: Config) -> list[Path]:
    """Return the spools to drain: the data partition's, then the volatile one."""
    return [Path(config.station.data_dir) / SPOOL_NAME, VOLATILE_SPOOL]


# -- reading a record ----------------------------------------------------------------------------
def _text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise RecordError(f"{key} is not a string")
    value = value[:MAX_TEXT]
    return escape_name(value.encode("utf-8", "surrogateescape")) or None


def _small_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise RecordError(f"{key} is not a number from 0 to 255")
    return value


def _moment(value: Any, key: str) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise RecordError(f"{key} is not a time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RecordError(f"{key} is not a time") from None
    if moment.tzinfo is None or not 2000 <= moment.year <= 2200:
        raise RecordError(f"{key} has no time zone or is out of range")
    return moment.astimezone(UTC)


def _usb_id(vendor: Any, product: Any) -> str | None:
    if not isinstance(vendor, str) or not isinstance(product, str):
        raise RecordError("vendor_id or product_id is not a string")
    if not _HEX_ID.match(vendor) or not _HEX_ID.match(product):
        raise RecordError("vendor_id or product_id is not hexadecimal")
    return f"{vendor.lower()}:{product.lower()}" if vendor or product else None


def _parse(data: Any, report_id: str) -> Refusal:
    if not isinstance(data, dict):
        raise RecordError("not a JSON object")
    if data.get("v") != 1:
        raise RecordError("unknown record version")
    if data.get("id") != report_id:
        raise RecordError("the record's id is not its file name")
    kind = data.get("kind")
    if kind == "overflow":
        count = data.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 < count < 2**31:
            raise RecordError("count is not a positive number")
        last = data.get("last_refusal")
        usb = data.get("last_usb_id")
        if not isinstance(usb, str) or usb.count(":") != 1:
            raise RecordError("last_usb_id is not vendor:product")
        return Refusal(
            report_id=report_id,
            kind="overflow",
            at=_moment(data.get("last_at"), "last_at"),
            refusal=last if last in REFUSALS else None,
            usb_id=_usb_id(*usb.split(":")),
            count=count,
        )
    if kind != "refused":
        raise RecordError("unknown record kind")
    refusal = data.get("refusal")
    if refusal not in REFUSALS:
        raise RecordError("unknown refusal code")
    interfaces = data.get("interfaces")
    if not isinstance(interfaces, list) or len(interfaces) > MAX_INTERFACES:
        raise RecordError("interfaces is not a short list")
    busid = data.get("busid", "")
    if not isinstance(busid, str) or len(busid) > 32:
        raise RecordError("busid is not a short string")
    return Refusal(
        report_id=report_id,
        kind="refused",
        at=_moment(data.get("at"), "at"),
        refusal=str(refusal),
        usb_id=_usb_id(data.get("vendor_id"), data.get("product_id")),
        manufacturer=_text(data, "manufacturer"),
        product=_text(data, "product"),
        serial=_text(data, "serial"),
        device_class=_small_int(data.get("device_class"), "device_class"),
        interfaces=tuple(_small_int(c, "interfaces") for c in interfaces),
        busid=escape_name(busid.encode("utf-8", "surrogateescape")) or None,
    )


def read_record(path: Path) -> Refusal:
    """Read one `<uuid>.json` record; anything wrong gives a `malformed` Refusal, never raises."""
    report_id = path.name.removesuffix(".json")
    fallback = utcnow()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            fallback = datetime.fromtimestamp(info.st_mtime, UTC)
            if not stat.S_ISREG(info.st_mode):
                raise RecordError("not a regular file")
            raw = os.read(fd, MAX_RECORD_BYTES + 1)
        finally:
            os.close(fd)
        if len(raw) > MAX_RECORD_BYTES:
            raise RecordError(f"over {MAX_RECORD_BYTES} bytes")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise RecordError("not JSON") from None
        return _parse(data, report_id)
    except (RecordError, OSError) as exc:
        problem = str(exc) if isinstance(exc, RecordError) else f"cannot be read: {exc.strerror}"
        return Refusal(report_id=report_id, kind="malformed", at=fallback, problem=problem)


# -- a record as a report ------------------------------------------------------------------------
def _detail(refusal: Refusal) -> str:
    usb = refusal.usb_id or "?:?"
    if refusal.kind == "malformed":
        return f"a refused USB device; its record is malformed ({refusal.problem})"
    if refusal.kind == "overflow":
        return (
            f"{refusal.count} more refused USB devices, counted only (the spool was full); "
            f"the last: USB {usb}, {refusal.refusal or '?'}"
        )
    interfaces = ",".join(f"{c:02x}" for c in refusal.interfaces) or "-"
    return f"USB {usb}, interfaces {interfaces}: {refusal.refusal}"


def to_report(refusal: Refusal, station_id: str, software_version: str | None = None) -> Report:
    """Return the report of one record (the same record always gives the same report)."""
    extra: dict[str, Any] = {"record": refusal.kind, "refused_devices": refusal.count}
    if refusal.refusal:
        extra["refusal"] = refusal.refusal
    if refusal.usb_id:
        extra["usb_id"] = refusal.usb_id
    if refusal.kind == "refused":
        extra["interfaces"] = ",".join(f"{c:02x}" for c in refusal.interfaces)
        extra["device_class"] = refusal.device_class
        if refusal.busid:
            extra["busid"] = refusal.busid
    device = None
    if refusal.manufacturer or refusal.product or refusal.serial:
        device = DeviceInfo(
            vendor=refusal.manufacturer, model=refusal.product, serial=refusal.serial
        )
    return Report(
        report_id=refusal.report_id,
        verdict=TreeVerdict.SUSPICIOUS,
        reason=Reason.DEVICE_REFUSED,
        detail=_detail(refusal),
        started_at=refusal.at,
        finished_at=refusal.at,
        files_total=0,
        bytes_total=0,
        counts={},
        findings=(),
        engine=None,
        station_id=station_id,
        device=device,
        software_version=software_version,
        extra=extra,
    )


def journal_line(report: Report) -> str:
    """Return the refusal's one structured journal line (the device's strings made inert)."""
    device = report.device or DeviceInfo()

    def shown(value: str | None) -> str | None:
        return display_name(value, 80) if value else None

    return json.dumps(
        {
            "event": "usb_refused",
            "report_id": report.report_id,
            "scan_code": report.scan_code,
            "reason": str(report.reason),
            "detail": display_name(report.detail or "", 300),
            "vendor": shown(device.vendor),
            "model": shown(device.model),
            "serial": shown(device.serial),
        },
        ensure_ascii=True,
        separators=(",", ":"),
    )


# -- the spool -----------------------------------------------------------------------------------
def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _free_name(spool: Path, wanted: str | None) -> str:
    if wanted and RECORD_NAME.match(f"{wanted}.json") and not (spool / f"{wanted}.json").exists():
        return f"{wanted}.json"
    return f"{uuid.uuid4()}.json"  # read back as malformed: the id inside is not the name


def _id_in(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            data = json.loads(os.read(fd, MAX_RECORD_BYTES))
        finally:
            os.close(fd)
    except (OSError, ValueError, RecursionError):
        return None
    found = data.get("id") if isinstance(data, dict) else None
    return found if isinstance(found, str) else None


def freeze(spool: Path, now: float | None = None) -> None:
    """Turn what is not a record yet into records: the overflow count, stale temporary files.

    Under usb-policy's lock: the count it keeps adding to becomes a record of its own (named by
    its id), and usb-policy starts a new one. A temporary file older than STALE_TMP was left by
    a usb-policy that died mid-write (power cut): it becomes a record too, reported malformed
    if it is not whole.
    """
    now = time.time() if now is None else now
    lock = os.open(spool / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        moved = False
        overflow = spool / OVERFLOW
        if overflow.exists():
            os.rename(overflow, spool / _free_name(spool, _id_in(overflow)))
            moved = True
        for entry in os.scandir(spool):
            if (
                entry.name.startswith(".tmp-")
                and entry.is_file(follow_symlinks=False)
                and now - entry.stat(follow_symlinks=False).st_mtime > STALE_TMP
            ):
                log.warning("a half-written USB refusal record is reported: %s", entry.name)
                os.rename(entry.path, spool / _free_name(spool, _id_in(Path(entry.path))))
                moved = True
        if moved:
            _fsync_dir(spool)
    finally:
        os.close(lock)


def records(spool: Path) -> list[Path]:
    """Return the records waiting in *spool*, oldest first (by modification time, then name)."""
    found: list[tuple[float, str]] = []
    try:
        entries = list(os.scandir(spool))
    except FileNotFoundError:
        return []
    for entry in entries:
        if RECORD_NAME.match(entry.name):
            try:
                when = entry.stat(follow_symlinks=False).st_mtime
            except OSError:
                when = 0.0
            found.append((when, entry.name))
    return [spool / name for _, name in sorted(found)]


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:  # a directory named like a record: reported, then gone
        os.rmdir(path)
    _fsync_dir(path.parent)


def drain(
    spools: list[Path],
    outbox: Outbox,
    station_id: str,
    software_version: str | None = None,
) -> list[Report]:
    """Commit every waiting record to *outbox* as a report, then remove it; return the reports.

    Blocking (files, SQLite): run it in a thread. An outbox that cannot store (a full disk)
    stops the drain: the records not committed stay in the spool for the next one.
    """
    done: list[Report] = []
    for spool in spools:
        if not spool.is_dir():
            continue
        try:
            freeze(spool)
        except OSError as exc:
            log.warning("cannot prepare the USB refusal spool %s: %s", spool, exc)
        for path in records(spool):
            report = to_report(read_record(path), station_id, software_version)
            try:
                outbox.commit(report)  # durable before the record goes
            except OutboxError as exc:
                log.error("refused USB devices kept in the spool for now: %s", exc)
                return done
            try:
                _remove(path)
            except OSError as exc:
                # Committed already: the next drain commits it again under the same id.
                log.warning("cannot remove %s: %s", path, exc)
            journal.warning(journal_line(report))
            done.append(report)
    return done


def recent(report: Report, now: datetime | None = None) -> bool:
    """Tell whether a refusal is fresh enough to be shown on the screen."""
    age = ((now or utcnow()) - report.finished_at).total_seconds()
    return -NOTICE_WINDOW < age < NOTICE_WINDOW
