"""Plain ASGI middleware: request ids and body-size limits, and ``WatchedSend``, the view of a
response that every middleware of the server shares (metrics, request log, rate-limit headers).

Written as raw ASGI (not BaseHTTPMiddleware) so streaming responses pass through untouched and
the body limit can stop reading as soon as it is exceeded.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class WatchedSend:
    """An ASGI ``send`` that notes the response's status as it goes out, and lets its owner
    edit the response-start message first (``on_start``, e.g. to add headers)."""

    def __init__(self, send: Send, on_start: Callable[[Message], None] | None = None) -> None:
        self._send = send
        self._on_start = on_start
        #: The response's status once it has started; None while nothing was sent.
        self.status: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if self._on_start is not None:
                self._on_start(message)
        await self._send(message)


def set_headers(
    message: Message, headers: list[tuple[bytes, bytes]], *, drop: Iterable[bytes] = ()
) -> None:
    """Put ``headers`` on a response-start message in place of any of the same names (and of
    the names in ``drop``)."""
    names = {name for name, _ in headers} | set(drop)
    message["headers"] = [
        (k, v) for k, v in message.get("headers", []) if k not in names] + headers


class RequestIdMiddleware:
    """Every response carries ``X-Request-ID`` (the caller's, if sane, else a new one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming or "") else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        stamp = [(b"x-request-id", request_id.encode("latin-1"))]
        await self.app(scope, receive, WatchedSend(send, lambda m: set_headers(m, stamp)))


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``, whether announced by Content-Length or streamed."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, overrides: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Some routes legitimately carry more (imports with embeddings): per-path limits.
        self.overrides = overrides or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.overrides.get(scope.get("path", ""), self.max_bytes)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit)
            return
        seen = 0

        async def _receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(
                        f"The request body is larger than the limit of {limit} bytes."
                    )
            return message

        sent = WatchedSend(send)
        try:
            await self.app(scope, _receive, sent)
        except BodyTooLarge:
            if sent.status is None:
                await self._reject(send, limit)

    async def _reject(self, send: Send, limit: int) -> None:
        body: dict[str, Any] = {
            "detail": f"The request body is larger than the limit of {limit} bytes.",
            "code": "payload_too_large",
        }
        payload = json.dumps(body).encode()
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode())],
        })
        await send({"type": "http.response.body", "body": payload})
