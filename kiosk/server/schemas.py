"""The API's strict request and response shapes (pydantic), mirroring `Report.to_dict()`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
)

from kiosk.models import FileVerdict, Reason, TreeVerdict

MAX_FINDINGS = 50_000
MAX_ACTIONS = 100
STATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

Count = Annotated[StrictInt, Field(ge=0, le=2**62)]
# Strings from the stick (vendor, serial, label) or the engine (threat names) may be long once
# escaped; refusing them would make the report undeliverable, so the limit is generous and the
# indexed columns keep a cut copy (the stored document keeps them whole).
Short = Annotated[str, Field(max_length=1024)]
Long = Annotated[str, Field(max_length=4000)]
Path = Annotated[str, Field(min_length=1, max_length=65_536)]  # escaped, may exceed PATH_MAX
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a time zone is required (ISO 8601 with an offset)")
    if not 2000 <= value.year <= 2200:
        raise ValueError("year out of range")
    return value


Moment = Annotated[datetime, AfterValidator(_aware)]


def _storable(value: Any) -> Any:
    # Neither PostgreSQL text nor our pages take NUL; refuse it here rather than fail later.
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("NUL characters are not accepted")
    if isinstance(value, list):
        for item in value:
            _storable(item)
    if isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable(item)
    return value


class Strict(BaseModel):
    """Unknown keys are an error: a typo in a client must not be dropped silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return _storable(value)


class FindingIn(Strict):
    """One flagged file."""

    path: Path
    verdict: FileVerdict
    threat: Short | None = None
    reason: Reason | None = None
    detail: Long | None = None
    sha256: Sha256 | None = None
    size: Count | None = None


class EngineIn(Strict):
    """The engine that scanned."""

    version: Short
    signatures_version: Count | None = None
    signatures_date: Moment | None = None


class DeviceIn(Strict):
    """The stick's identity (all of it from the stick)."""

    vendor: Short | None = None
    model: Short | None = None
    serial: Short | None = None
    size: Count | None = None
    fs_type: Annotated[str, Field(max_length=50)] | None = None
    label: Short | None = None


class ActionIn(Strict):
    """Something the station did to the stick after the scan."""

    kind: Annotated[str, Field(max_length=50)]
    at: Moment
    ok: StrictBool
    files: Annotated[list[Path], Field(max_length=MAX_FINDINGS)] = []
    rescan_verdict: TreeVerdict | None = None
    detail: Long | None = None


class ReportIn(Strict):
    """A report as the kiosk sends it (`Report.to_dict()`, schema 1)."""

    schema_: Literal[1] = Field(1, alias="schema")
    report_id: Annotated[str, Field(pattern=UUID_PATTERN)]
    scan_code: Annotated[str, Field(max_length=9)] | None = None  # derived; recomputed here
    station_id: Annotated[str, Field(pattern=STATION_ID_PATTERN)]
    software_version: Annotated[str, Field(max_length=50)] | None = None
    verdict: TreeVerdict
    reason: Reason | None = None
    detail: Long | None = None
    started_at: Moment
    finished_at: Moment
    files_total: Count
    bytes_total: Count
    counts: dict[FileVerdict, Count] = {}
    findings: Annotated[list[FindingIn], Field(max_length=MAX_FINDINGS)] = []
    engine: EngineIn | None = None
    device: DeviceIn | None = None
    actions: Annotated[list[ActionIn], Field(max_length=MAX_ACTIONS)] = []
    extra: Annotated[dict[Short, Short | StrictInt | StrictBool | None], Field(max_length=50)] = {}

    def document(self) -> dict[str, Any]:
        """Return the JSON form to store (the same shape as `Report.to_dict()`)."""
        return self.model_dump(mode="json", by_alias=True)


class HealthIn(Strict):
    """The station's health as the station measured it (absent fields: unknown)."""

    measured_at: Moment | None = None
    ok: StrictBool | None = None
    problems: Annotated[list[Annotated[str, Field(max_length=40)]], Field(max_length=20)] = []
    engine_ok: StrictBool | None = None
    engine_version: Annotated[str, Field(max_length=100)] | None = None
    signatures_version: Count | None = None
    signatures_date: Moment | None = None
    selftest_ok: StrictBool | None = None
    selftest_at: Moment | None = None


class HeartbeatIn(Strict):
    """A station's sign of life, once a minute."""

    station_id: Annotated[str, Field(pattern=STATION_ID_PATTERN)]
    sent_at: Moment
    software_version: Annotated[str, Field(max_length=50)] | None = None
    backlog: Count | None = None
    health: HealthIn | None = None


class Stored(BaseModel):
    """The server's answer to a report: it is stored (now, or it already was)."""

    report_id: str
    stored: Literal[True] = True
    duplicate: bool
    scan_code: str


class Ack(BaseModel):
    """The server's answer to a heartbeat."""

    ok: Literal[True] = True
    server_time: datetime


class Problem(BaseModel):
    """Every API error: a code and one sentence, never a trace."""

    error: str
    message: str
    details: list[dict[str, Any]] | None = None


class Health(BaseModel):
    """`GET /api/v1/health`: the server and its database answer."""

    status: Literal["ok"]
    version: str
    schema_revision: str | None
