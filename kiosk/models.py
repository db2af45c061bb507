"""The shared vocabulary: verdicts, findings, engine and device identity, and the report.

The station, the TUI, the shipper and the central server all speak in these types; the report's
JSON form (`Report.to_dict` / `Report.from_dict`) is the contract between the kiosk and the server.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

REPORT_SCHEMA = 1


class FileVerdict(StrEnum):
    """What the kiosk concluded about one entry of the tree."""

    CLEAN = "clean"
    INFECTED = "infected"
    SUSPICIOUS = "suspicious"
    UNVERIFIABLE = "unverifiable"
    SKIPPED = "skipped"
    ERROR = "error"


class TreeVerdict(StrEnum):
    """What the kiosk concluded about a whole stick (or folder)."""

    CLEAN = "clean"
    INFECTED = "infected"
    SUSPICIOUS = "suspicious"
    INCOMPLETE = "incomplete"
    ERROR = "error"

    @property
    def exit_code(self) -> int:
        """Exit code of `kiosk scan`, like clamscan: 0 clean, 1 threats, 2 not verified."""
        if self is TreeVerdict.CLEAN:
            return 0
        if self in (TreeVerdict.INFECTED, TreeVerdict.SUSPICIOUS):
            return 1
        return 2


class Reason(StrEnum):
    """Machine codes for why a file or a tree is not clean; screens translate them."""

    # per file
    ENCRYPTED = "encrypted"
    LIMITS_EXCEEDED = "limits_exceeded"
    TOO_LARGE = "too_large"
    ZIP64 = "zip64"
    EXEC_DISGUISED = "exec_disguised"
    SCRIPT_DISGUISED = "script_disguised"
    DOUBLE_EXTENSION = "double_extension"
    DECEPTIVE_NAME = "deceptive_name"
    AUTORUN = "autorun"
    EXECUTABLE = "executable"
    SCRIPT = "script"
    MACROS = "macros"
    SYMLINK = "symlink"
    SPECIAL_FILE = "special_file"
    TOO_DEEP = "too_deep"
    READ_ERROR = "read_error"
    ENGINE_ERROR = "engine_error"
    ENGINE_TIMEOUT = "engine_timeout"
    ENGINE_LOST = "engine_lost"
    NOT_SCANNED = "not_scanned"
    # per tree
    THREATS_FOUND = "threats_found"
    POLICY = "policy"
    NOT_VERIFIABLE = "not_verifiable"
    SCAN_ERRORS = "scan_errors"
    CANCELLED = "cancelled"
    DEVICE_REMOVED = "device_removed"
    PREFLIGHT_FAILED = "preflight_failed"
    ENGINE_DOWN = "engine_down"
    CANARY_MISSED = "canary_missed"
    SIGNATURES_OLD = "signatures_old"
    UNREADABLE = "unreadable"
    UNSUPPORTED_FS = "unsupported_fs"
    NO_FILESYSTEM = "no_filesystem"
    MOUNT_FAILED = "mount_failed"
    INTERRUPTED = "interrupted"
    OUTBOX_FULL = "outbox_full"
    # a USB device the kiosk refused (usb-policy): not a scan, nothing was read
    DEVICE_REFUSED = "device_refused"


_RANK = {
    FileVerdict.INFECTED: 0,
    FileVerdict.SUSPICIOUS: 1,
    FileVerdict.UNVERIFIABLE: 2,
    FileVerdict.ERROR: 3,
    FileVerdict.SKIPPED: 4,
    FileVerdict.CLEAN: 5,
}


def utcnow() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """Return the ISO 8601 form of a UTC moment (seconds precision kept to milliseconds)."""
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_iso(text: str | None) -> datetime | None:
    """Parse what `iso` wrote."""
    return None if text is None else datetime.fromisoformat(text).astimezone(UTC)


def scan_code(report_id: str) -> str:
    """Return the short code a teacher reads off the screen and IT types into the server."""
    raw = uuid.UUID(report_id).bytes
    letters = base64.b32encode(raw).decode("ascii")[:8]
    return f"{letters[:4]}-{letters[4:]}"


@dataclass(frozen=True, slots=True)
class Finding:
    """One entry of a tree that is not clean: where, what, and why."""

    path: str  # escaped form (kiosk.names.escape_name), relative to the scanned root
    verdict: FileVerdict
    threat: str | None = None  # signature name, when clamd named one
    reason: Reason | None = None
    detail: str | None = None  # short technical detail for IT (never shown to teachers)
    sha256: str | None = None
    size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {k: (str(v) if isinstance(v, StrEnum) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        """Build from the JSON form."""
        return cls(
            path=data["path"],
            verdict=FileVerdict(data["verdict"]),
            threat=data.get("threat"),
            reason=Reason(data["reason"]) if data.get("reason") else None,
            detail=data.get("detail"),
            sha256=data.get("sha256"),
            size=data.get("size"),
        )

    @property
    def rank(self) -> int:
        """Sort key: worst first."""
        return _RANK[self.verdict]


@dataclass(frozen=True, slots=True)
class EngineInfo:
    """The engine that answered the pre-flight."""

    version: str  # e.g. "ClamAV 1.4.6"
    signatures_version: int | None = None
    signatures_date: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "version": self.version,
            "signatures_version": self.signatures_version,
            "signatures_date": iso(self.signatures_date),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineInfo:
        """Build from the JSON form."""
        return cls(
            version=data["version"],
            signatures_version=data.get("signatures_version"),
            signatures_date=parse_iso(data.get("signatures_date")),
        )


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the kiosk knows of the stick itself (all of it from the stick: hostile)."""

    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    size: int | None = None
    fs_type: str | None = None
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceInfo:
        """Build from the JSON form."""
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class Action:
    """Something the station did to the stick after the scan (e.g. deleting infected files)."""

    kind: str  # "delete_infected"
    at: datetime
    ok: bool
    files: tuple[str, ...] = ()  # escaped paths
    rescan_verdict: TreeVerdict | None = None
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form."""
        return {
            "kind": self.kind,
            "at": iso(self.at),
            "ok": self.ok,
            "files": list(self.files),
            "rescan_verdict": str(self.rescan_verdict) if self.rescan_verdict else None,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Action:
        """Build from the JSON form."""
        at = parse_iso(data["at"])
        assert at is not None
        rescan = data.get("rescan_verdict")
        return cls(
            kind=data["kind"],
            at=at,
            ok=bool(data["ok"]),
            files=tuple(data.get("files", ())),
            rescan_verdict=TreeVerdict(rescan) if rescan else None,
            detail=data.get("detail"),
        )


def new_report_id() -> str:
    """Return a fresh report UUID (made when a session starts, so retries never duplicate)."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Report:
    """One scan of one tree: the document `kiosk scan --json` prints and the server stores.

    Names of clean files never appear: only `findings` carry paths.
    """

    report_id: str
    verdict: TreeVerdict
    reason: Reason | None
    started_at: datetime
    finished_at: datetime
    files_total: int  # regular files the kiosk enumerated itself
    bytes_total: int
    counts: dict[str, int]  # per FileVerdict value, over every entry (skipped included)
    findings: tuple[Finding, ...]
    engine: EngineInfo | None
    detail: str | None = None  # technical detail of `reason`, for IT
    station_id: str | None = None
    device: DeviceInfo | None = None
    actions: tuple[Action, ...] = ()
    software_version: str | None = None
    schema: int = REPORT_SCHEMA
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(
        cls,
        report_id: str,
        started_at: datetime,
        reason: Reason,
        detail: str | None = None,
        engine: EngineInfo | None = None,
        software_version: str | None = None,
    ) -> Report:
        """Return the report of a tree that could not be scanned at all (verdict `error`)."""
        return cls(
            report_id=report_id,
            verdict=TreeVerdict.ERROR,
            reason=reason,
            detail=detail,
            started_at=started_at,
            finished_at=utcnow(),
            files_total=0,
            bytes_total=0,
            counts={},
            findings=(),
            engine=engine,
            software_version=software_version,
        )

    @property
    def scan_code(self) -> str:
        """Short code shown with every result."""
        return scan_code(self.report_id)

    def with_station(
        self, station_id: str, device: DeviceInfo | None, actions: tuple[Action, ...] = ()
    ) -> Report:
        """Return a copy carrying the station's identity, the device and the actions taken."""
        return replace(self, station_id=station_id, device=device, actions=actions)

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (the kiosk-server contract)."""
        return {
            "schema": self.schema,
            "report_id": self.report_id,
            "scan_code": self.scan_code,
            "station_id": self.station_id,
            "software_version": self.software_version,
            "verdict": str(self.verdict),
            "reason": str(self.reason) if self.reason else None,
            "detail": self.detail,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "files_total": self.files_total,
            "bytes_total": self.bytes_total,
            "counts": dict(self.counts),
            "findings": [f.to_dict() for f in self.findings],
            "engine": self.engine.to_dict() if self.engine else None,
            "device": self.device.to_dict() if self.device else None,
            "actions": [a.to_dict() for a in self.actions],
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Build from the JSON form (trusted input: our own outbox; the server validates first)."""
        started = parse_iso(data["started_at"])
        finished = parse_iso(data["finished_at"])
        assert started is not None and finished is not None
        return cls(
            schema=int(data.get("schema", REPORT_SCHEMA)),
            report_id=data["report_id"],
            station_id=data.get("station_id"),
            software_version=data.get("software_version"),
            verdict=TreeVerdict(data["verdict"]),
            reason=Reason(data["reason"]) if data.get("reason") else None,
            detail=data.get("detail"),
            started_at=started,
            finished_at=finished,
            files_total=int(data["files_total"]),
            bytes_total=int(data["bytes_total"]),
            counts={str(k): int(v) for k, v in data.get("counts", {}).items()},
            findings=tuple(Finding.from_dict(f) for f in data.get("findings", ())),
            engine=EngineInfo.from_dict(data["engine"]) if data.get("engine") else None,
            device=DeviceInfo.from_dict(data["device"]) if data.get("device") else None,
            actions=tuple(Action.from_dict(a) for a in data.get("actions", ())),
            extra=dict(data.get("extra", {})),
        )


def tree_verdict(
    findings: list[Finding] | tuple[Finding, ...],
) -> tuple[TreeVerdict, Reason | None]:
    """Fold per-file findings into the verdict of a whole tree (skipped entries don't count)."""
    verdicts = {f.verdict for f in findings}
    if FileVerdict.INFECTED in verdicts:
        return TreeVerdict.INFECTED, Reason.THREATS_FOUND
    if FileVerdict.SUSPICIOUS in verdicts:
        return TreeVerdict.SUSPICIOUS, Reason.POLICY
    if FileVerdict.ERROR in verdicts:
        return TreeVerdict.INCOMPLETE, Reason.SCAN_ERRORS
    if FileVerdict.UNVERIFIABLE in verdicts:
        return TreeVerdict.INCOMPLETE, Reason.NOT_VERIFIABLE
    return TreeVerdict.CLEAN, None
