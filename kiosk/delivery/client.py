"""The HTTP side of delivery: one report or one heartbeat, and what the answer means."""

from __future__ import annotations

import json
import logging
from enum import Enum
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import httpx

from kiosk import __version__
from kiosk.errors import DeliveryError
from kiosk.models import Report

log = logging.getLogger(__name__)


class Result(Enum):
    """What the server's answer means for the report."""

    STORED = "stored"  # 2xx with our own confirmation: delete from the outbox
    RETRY = "retry"  # unreachable, 5xx, 429, timeouts: try again later, as is
    AUTH = "auth"  # 401: token missing or revoked; keep everything, retry slowly
    REJECTED = "rejected"  # 4xx the same body will always get: keep it, set it aside


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """Accept https, or http to this machine only (tests); return the URL without a final /."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname or "")):
        return url.rstrip("/")
    raise DeliveryError(f"server_url {url!r} must be https://", hint="plain http only to 127.0.0.1")


class ServerClient:
    """Talks to the central server with the station's token."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        ca_file: str = "",
        timeout: float = 20.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(
            base_url=check_url(base_url),
            transport=transport,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"station-blanche-shipper/{__version__}",
                "Content-Type": "application/json",
            },
            verify=ca_file or True,
            timeout=timeout,
            follow_redirects=False,
        )

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response | None:
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            return self._client.post(path, content=data)
        except httpx.HTTPError as exc:
            log.info("server unreachable on %s: %s", path, type(exc).__name__)
            return None

    def send_report(self, report: Report) -> Result:
        """Deliver one report; STORED only when the server says it holds this very report."""
        response = self._post("/api/v1/reports", report.to_dict())
        if response is None:
            return Result.RETRY
        result = _judge(response)
        if result is Result.STORED:
            # A captive portal or a misconfigured proxy may answer 200: that is not a receipt.
            try:
                receipt = response.json()
            except ValueError:
                return Result.RETRY
            if not (
                isinstance(receipt, dict)
                and receipt.get("stored") is True
                and receipt.get("report_id") == report.report_id
            ):
                log.warning("a 2xx without a receipt for %s: not deleting it", report.report_id)
                return Result.RETRY
        elif result is Result.REJECTED:
            log.warning(
                "server refused report %s (%d): %s",
                report.report_id,
                response.status_code,
                response.text[:300],
            )
        return result

    def send_heartbeat(self, beat: dict[str, Any]) -> Result:
        """Deliver one heartbeat."""
        response = self._post("/api/v1/heartbeats", beat)
        return Result.RETRY if response is None else _judge(response)


def _judge(response: httpx.Response) -> Result:
    code = response.status_code
    if 200 <= code < 300:
        return Result.STORED
    if code == 401:
        return Result.AUTH
    if code in (408, 425, 429) or code >= 500 or 300 <= code < 400:
        return Result.RETRY
    return Result.REJECTED
