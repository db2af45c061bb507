"""Pure ASGI middleware: body size limit, security headers, and a test-only fault hook."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Refused = Callable[[Scope, int], Awaitable[None]]

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), usb=()"),
]


async def _problem(send: Send, status: int, error: str, message: str) -> None:
    body = json.dumps({"error": error, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _TooLargeError(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over *limit* bytes (413) before anything parses them."""

    def __init__(self, app: ASGIApp, limit: int, refused: Refused | None = None) -> None:
        self.app = app
        self.limit = limit
        self.refused = refused  # told of each refusal (the server keeps them for IT)

    async def _refuse(self, scope: Scope, send: Send, status: int, error: str, text: str) -> None:
        await _problem(send, status, error, text)
        if self.refused is not None:
            await self.refused(scope, status)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._refuse(scope, send, 400, "bad_request", "invalid Content-Length")
                    return
                if declared > self.limit:
                    await self._refuse(
                        scope, send, 413, "too_large", f"the body exceeds {self.limit} bytes"
                    )
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLargeError
            return message

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except _TooLargeError:
            if not started:
                await self._refuse(
                    scope, send, 413, "too_large", f"the body exceeds {self.limit} bytes"
                )


class SecurityHeaders:
    """Send the CSP and friends on every response; no-store on everything but static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {h for h, _ in SECURITY_HEADERS}
                ]
                headers.extend(SECURITY_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class FailAfterCommit:
    """TEST ONLY (enabled by KIOSK_SERVER_TEST_FAULTS=500-after-commit, never in production):
    let every other POST /api/v1/reports be stored, then answer 500 as if the server had died
    between its commit and its answer, so the delivery tests can check exactly-once storage."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0
        self.tag = secrets.token_hex(4)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == "/api/v1/reports"
        ):
            await self.app(scope, receive, send)
            return
        self.count += 1
        if self.count % 2 == 0:
            await self.app(scope, receive, send)
            return
        status: dict[str, Any] = {}

        async def swallow(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]

        await self.app(scope, receive, swallow)  # the report is committed (or refused) by now
        await _problem(send, 500, "internal", f"injected fault {self.tag} after commit")
