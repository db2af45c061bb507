"""The station's health file, read defensively for the heartbeats.

Contract with the station (version 1): the station writes `<data_dir>/health.json` atomically
(write a temporary file in the same directory, fsync, rename) whenever its health changes and at
least every minute. One JSON object; every key is optional, unknown keys are ignored:

    {"v": 1, "measured_at": "2026-11-29T15:00:00.000+00:00", "ok": true,
     "problems": ["engine_down", "canary_missed", "signatures_old", ...],
     "engine_ok": true, "engine_version": "ClamAV 1.0.7",
     "signatures_version": 27792, "signatures_date": "2026-11-29T06:14:00+00:00",
     "selftest_ok": true, "selftest_at": "2026-11-29T14:30:00+00:00",
     "software_version": "0.1.0"}

The keys are those of the `health` event of `kiosk.protocol` plus `measured_at` and `engine_ok`,
so the station can dump that event's data. A missing, unreadable, oversized or malformed file
means "health unknown"; a file older than `health_max_age` is sent with the `health_stale` problem.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from kiosk.models import parse_iso, utcnow

MAX_BYTES = 64 * 1024
_STRINGS = {"engine_version": 100, "software_version": 50}
_BOOLS = ("ok", "engine_ok", "selftest_ok")
_MOMENTS = ("measured_at", "signatures_date", "selftest_at")


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = parse_iso(value)
    except ValueError:
        return None
    if moment is None or moment.tzinfo is None or not 2000 <= moment.year <= 2200:
        return None
    return moment


def read_health(path: Path, max_age: float, now: datetime | None = None) -> dict[str, Any] | None:
    """Return the heartbeat's `health` object from the file, or None when there is none to trust."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
            mtime = path.stat().st_mtime
    except OSError:
        return None
    if len(raw) > MAX_BYTES:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None
    now = now or utcnow()
    health: dict[str, Any] = {}
    for key in _BOOLS:
        if isinstance(data.get(key), bool):
            health[key] = data[key]
    for key, limit in _STRINGS.items():
        if isinstance(data.get(key), str):
            health[key] = data[key][:limit]
    version = data.get("signatures_version")
    if isinstance(version, int) and not isinstance(version, bool) and 0 <= version < 2**62:
        health["signatures_version"] = version
    for key in _MOMENTS:
        moment = _moment(data.get(key))
        if moment is not None:
            health[key] = moment
    measured = health.get("measured_at") or datetime.fromtimestamp(mtime, tz=now.tzinfo)
    health["measured_at"] = measured
    problems = data.get("problems")
    codes = (
        [p[:40] for p in problems if isinstance(p, str)][:19] if isinstance(problems, list) else []
    )
    if (now - measured).total_seconds() > max_age:
        codes.append("health_stale")
    health["problems"] = codes
    health.pop("software_version", None)  # sent at the top of the heartbeat, not in health
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in health.items()}


def software_version(path: Path) -> str | None:
    """Return the station's software version from the health file, if it says."""
    try:
        with path.open("rb") as fh:
            data = json.loads(fh.read(MAX_BYTES + 1))
    except (OSError, ValueError, RecursionError):
        return None
    value = data.get("software_version") if isinstance(data, dict) else None
    return value[:50] if isinstance(value, str) else None
