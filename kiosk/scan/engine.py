"""The engine as the kiosk sees it: the pre-flight before each scan, and a liveness probe.

A scan may start only when clamd answers PING and VERSION, detects the EICAR canary, and its
signatures (when dated) are not older than the configured age. Anything else is an `EngineError`
whose `reason` says why, and the stick gets an `error` verdict: never green.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

from kiosk.config import ClamdConfig, SignaturesConfig
from kiosk.errors import EngineError
from kiosk.models import EngineInfo, Reason, utcnow
from kiosk.scan.clamd import ClamdClient, ReplyKind

# Kept encoded so that an antivirus does not flag the kiosk's own source files.
_EICAR_B64 = (
    "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNULUZJTEUhJEgrSCo="
)


def eicar() -> bytes:
    """Return the EICAR test string, the canary every pre-flight must see detected."""
    return base64.b64decode(_EICAR_B64)


class Engine:
    """clamd for the scanner: the pre-flight and a liveness probe."""

    def __init__(
        self, clamd: ClamdConfig, signatures: SignaturesConfig, *, file_timeout: float
    ) -> None:
        self.clamd = clamd
        self.signatures = signatures
        self.file_timeout = file_timeout

    def alive(self, timeout: float = 5.0) -> bool:
        """Tell whether clamd answers PING within *timeout* seconds."""
        probe = ClamdClient(self.clamd.socket, connect_timeout=timeout, timeout=timeout)
        try:
            return probe.ping()
        except EngineError:
            return False

    def preflight(self, now: datetime | None = None) -> EngineInfo:
        """PING, VERSION, EICAR canary, signature age; raise EngineError (with reason) if unfit."""
        probe = ClamdClient(
            self.clamd.socket, connect_timeout=self.clamd.connect_timeout, timeout=30.0
        )
        probe.ping()
        info = probe.engine_info()
        canary = probe.scan_bytes(eicar())
        if canary.kind is not ReplyKind.FOUND:
            raise EngineError(
                f"the EICAR canary was not detected ({canary.kind}: {canary.message or 'OK'})",
                reason=Reason.CANARY_MISSED,
            )
        self.check_age(info, now or utcnow())
        return info

    def check_age(self, info: EngineInfo, now: datetime) -> None:
        """Raise EngineError when signatures are too old (or undated while a date is required)."""
        if info.signatures_date is None:
            if self.signatures.require_date:
                raise EngineError("the signatures carry no date", reason=Reason.SIGNATURES_OLD)
            return
        age = now - info.signatures_date
        if age > timedelta(days=self.signatures.max_age_days):
            days = age.total_seconds() / 86400
            raise EngineError(
                f"signatures are {days:.1f} days old (limit {self.signatures.max_age_days:g})",
                reason=Reason.SIGNATURES_OLD,
            )
