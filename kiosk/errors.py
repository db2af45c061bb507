"""The one error root of the project and its few domain subclasses."""

from __future__ import annotations


class KioskError(Exception):
    """Root of every error the kiosk raises on purpose; `hint` tells the reader what to do."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(KioskError):
    """The configuration file is missing, malformed or holds an unknown key."""


class EngineError(KioskError):
    """clamd is unreachable, answered badly, or failed its pre-flight; `reason` is a Reason code."""

    def __init__(
        self, message: str, *, reason: str = "engine_down", hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class ScanError(KioskError):
    """The tree to scan cannot be opened at all."""


class DeviceError(KioskError):
    """A stick cannot be mounted, read or released."""


class OutboxError(KioskError):
    """The local report store refused a write (disk full, corruption)."""


class DeliveryError(KioskError):
    """The central server could not take a report or a heartbeat."""


class ServerError(KioskError):
    """The central server's own configuration or database is unusable."""
