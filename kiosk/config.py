"""The kiosk's one typed configuration file (TOML), with a documented default for every key.

`load_config(path)` reads `/etc/kiosk/kiosk.toml` by default. Every key has a default, so an empty
file (or none at all, for the demo) is a valid configuration. An unknown key or a value of the
wrong type is a `ConfigError` naming the file and the key. `reference()` renders every key with its
default and its documentation: the README's config reference is generated from it.
"""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from kiosk.errors import ConfigError

DEFAULT_PATH = Path("/etc/kiosk/kiosk.toml")

T = TypeVar("T")


def _doc(default: Any, doc: str) -> Any:
    """Declare a config field with its default and its one-line documentation."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True)
class ClamdConfig:
    """How to reach clamd."""

    socket: str = _doc("/run/clamav/clamd.ctl", "Unix socket of clamd (LocalSocket in clamd.conf).")
    connect_timeout: float = _doc(5.0, "Seconds to wait for clamd to accept a connection.")


@dataclass(frozen=True)
class ScanConfig:
    """How the tree is walked and scanned."""

    workers: int = _doc(
        0, "Files in flight to clamd at once (one pipelined session); 0: 190, large ones 256 MB."
    )
    file_timeout: float = _doc(
        150.0, "Seconds clamd may spend on one file before it is an error (over MaxScanTime)."
    )
    max_file_size: int = _doc(
        100 * 1024 * 1024,
        "Bytes; a larger file is 'unverifiable' without being sent (match clamd's MaxFileSize).",
    )
    max_depth: int = _doc(
        4096, "Directory levels; anything deeper is 'unverifiable' (the stick is not green)."
    )
    max_findings: int = _doc(
        20_000, "Findings kept in a report, worst first (the counts stay whole); the rest omitted."
    )
    max_entries: int = _doc(
        2_000_000, "Directory entries; past this the scan stops as 'incomplete'."
    )


@dataclass(frozen=True)
class SignaturesConfig:
    """What makes the engine 'up to date'."""

    max_age_days: float = _doc(
        7.0, "Signatures dated older than this put the station out of service."
    )
    require_date: bool = _doc(
        False, "Refuse signatures that carry no date (a custom-only database has none)."
    )


Rule = Literal["allow", "flag"]


@dataclass(frozen=True)
class PolicyConfig:
    """File-type policy (python-magic); disguised executables are always flagged."""

    executables: Rule = _doc("flag", "'flag' or 'allow' plain executables (PE, ELF, Mach-O, MSI).")
    scripts: Rule = _doc(
        "flag", "'flag' or 'allow' scripts (batch, VBScript, PowerShell, shell...)."
    )
    macros: Rule = _doc("flag", "'flag' or 'allow' office documents that carry macros.")


@dataclass(frozen=True)
class StationConfig:
    """The station daemon."""

    id: str = _doc("demo-station", "This kiosk's identity on the central server.")
    data_dir: str = _doc("/var/lib/kiosk", "Persistent data: the outbox database lives here.")
    mount_dir: str = _doc("/run/kiosk/mnt", "Private directory where sticks are mounted (0700).")
    event_socket: str = _doc("/run/kiosk/events.sock", "Unix socket the screens connect to.")
    event_socket_group: str = _doc("kiosk-ui", "Group allowed to connect to the event socket.")
    usb_only: bool = _doc(True, "Accept only devices with ID_BUS=usb (tests turn this off).")
    delete_infected: Literal["never", "offer", "always"] = _doc(
        "offer", "Delete infected files from the stick: never, offer (teacher confirms), always."
    )
    selftest_interval: float = _doc(3600.0, "Seconds between self-tests (EICAR through the path).")
    removal_timeout: float = _doc(
        0.0, "Seconds to wait for removal after a verdict before going idle; 0 waits forever."
    )
    filesystems: list[str] = _doc(
        ["vfat", "exfat", "ntfs", "ext2", "ext3", "ext4", "iso9660", "udf"],
        "Filesystems the station mounts; any other is 'cannot read this stick' (btrfs possible).",
    )
    device_pattern: str = _doc(
        "", "Glob on device nodes accepted besides the bus filter (tests: '/dev/loop*'); '' any."
    )
    parallel_sessions: int = _doc(1, "Sticks scanned at once; the others wait, shown as queued.")
    settle_time: float = _doc(
        1.0, "Seconds to wait after a stick appears so that all its partitions are seen."
    )
    health_retry: float = _doc(
        15.0, "Seconds between health checks while the station is out of service."
    )
    outbox_group: str = _doc(
        "kiosk-outbox", "Group given read-write access to the outbox (the shipper's); '' none."
    )


@dataclass(frozen=True)
class ShipperConfig:
    """Delivery of reports and heartbeats to the central server."""

    server_url: str = _doc("", "Base URL of the central server (https://...); empty: keep local.")
    token_file: str = _doc("/var/lib/kiosk/token", "File holding this station's API token.")
    ca_file: str = _doc("", "CA bundle to trust for the server; empty: the system's.")
    heartbeat_interval: float = _doc(60.0, "Seconds between heartbeats.")
    backoff_max: float = _doc(300.0, "Longest wait between two delivery attempts, in seconds.")
    outbox_file: str = _doc("", "The station's outbox database; empty: <data_dir>/outbox.db.")
    health_file: str = _doc(
        "", "JSON health the station writes for heartbeats; empty: <data_dir>/health.json."
    )
    health_max_age: float = _doc(
        300.0, "Seconds after which the health file is stale (heartbeat then says unknown)."
    )
    timeout: float = _doc(20.0, "Seconds one HTTP request to the server may take.")
    poll_interval: float = _doc(2.0, "Seconds between two looks at an empty outbox.")


@dataclass(frozen=True)
class UIConfig:
    """The kiosk screen."""

    language: Literal["fr", "en"] = _doc("fr", "Language of the screen: fr or en.")
    theme: Literal["auto", "console", "truecolor"] = _doc(
        "auto", "auto picks 'console' on TERM=linux, 'truecolor' elsewhere."
    )
    contact: str = _doc(
        "le référent informatique", "Whom teachers are told to call (shown as written)."
    )


@dataclass(frozen=True)
class ServerConfig:
    """The central server (`kiosk server`)."""

    database_url: str = _doc(
        "sqlite:////var/lib/kiosk-server/kiosk.db",
        "SQLAlchemy URL: sqlite:///... or postgresql+psycopg://...",
    )
    host: str = _doc("127.0.0.1", "Address to listen on (put a TLS reverse proxy in front).")
    port: int = _doc(8000, "Port to listen on.")
    workers: int = _doc(1, "Server processes (uvicorn workers); more need PostgreSQL to pay off.")
    retention_days: int = _doc(365, "Reports older than this are deleted by the daily job.")
    language: Literal["fr", "en"] = _doc("fr", "Default language of the web pages.")
    secure_cookies: bool = _doc(True, "Mark cookies Secure (turn off only for plain-HTTP tests).")
    station_silent_after: float = _doc(
        900.0, "Seconds without a heartbeat before a station is flagged silent."
    )
    signatures_max_age_days: float = _doc(
        3.0, "Signature age past which a station is flagged unprotected."
    )
    organisation: str = _doc("", "Shown under the site name in the web pages, e.g. the town.")
    timezone: str = _doc("Europe/Paris", "Time zone of dates shown in the web pages and CSV.")
    max_body_bytes: int = _doc(
        16 * 1024 * 1024, "Largest API request body, in bytes (a report of ~50,000 findings fits)."
    )
    session_hours: float = _doc(12.0, "Hours a web login lasts.")
    login_max_failures: int = _doc(5, "Failed logins per user or address before throttling.")
    login_window: float = _doc(900.0, "Seconds over which failed logins are counted.")
    auto_migrate: bool = _doc(True, "Upgrade the database schema when the server starts.")


@dataclass(frozen=True)
class Config:
    """The whole configuration file."""

    clamd: ClamdConfig = field(default_factory=ClamdConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    signatures: SignaturesConfig = field(default_factory=SignaturesConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    station: StationConfig = field(default_factory=StationConfig)
    shipper: ShipperConfig = field(default_factory=ShipperConfig)
    ui: UIConfig = field(default_factory=UIConfig)
    server: ServerConfig = field(default_factory=ServerConfig)

    def with_overrides(self, section: str, **values: Any) -> Config:
        """Return a copy with some keys of one section replaced (for the CLI and tests)."""
        current = getattr(self, section)
        return replace(self, **{section: replace(current, **values)})


def _check(value: Any, hint: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin is Literal:
        if value not in get_args(hint):
            choices = ", ".join(repr(a) for a in get_args(hint))
            raise ConfigError(f"{where}: {value!r} is not one of {choices}")
        return value
    if origin in (types.UnionType, typing.Union):
        errors = []
        for arm in get_args(hint):
            if arm is type(None):
                if value is None:
                    return None
                continue
            try:
                return _check(value, arm, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: wrong type")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list")
        (item,) = get_args(hint)
        return [_check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {hint!r}")  # pragma: no cover


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(
                f"{where}: unknown key '{key}'", hint="see the README's config reference"
            )
        hint = hints[key]
        if is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: [{key}] must be a table")
            values[key] = _build(hint, value, f"{where}: [{key}]")  # type: ignore[arg-type]
        else:
            values[key] = _check(value, hint, f"{where} key '{key}'")
    return cls(**values)


def parse_config(text: str, source: str = "<string>") -> Config:
    """Parse the TOML text of a configuration file."""
    import tomllib  # here: ~7 ms of every `kiosk scan` start-up without a config file

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    return _build(Config, data, source)


def load_config(path: Path | str | None = None) -> Config:
    """Load the configuration; the default path may be absent (then every default applies)."""
    explicit = path is not None
    target = Path(path) if path is not None else DEFAULT_PATH
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"{target}: no such configuration file") from None
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{target}: cannot read: {exc}") from exc
    return parse_config(text, str(target))


def reference() -> str:
    """Render every key, its default and its documentation, as the README's config reference."""
    lines: list[str] = []
    for section in fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        lines.append(f"[{section.name}]  # {cls.__doc__}")
        for f in fields(cls):
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[operator]
            rendered = _toml_value(default)
            lines.append(f"# {f.metadata['doc']}")
            lines.append(f"{f.name} = {rendered}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
