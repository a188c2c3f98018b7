"""Typed exceptions raised by the SDK, and the one function that maps HTTP responses to them.

Callers branch on the exception *type* (retry on `AegisRateLimitError`, re-authenticate on
`AegisAuthError`, ...) and show ``str(exc)`` to people, so every message is the server's own
sentence (SPEC §4) or, when the server gave none, a sentence of ours. The CLI turns these types
into its exit codes, which is why the hierarchy is flat and stable.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "AegisAuthError",
    "AegisConflictError",
    "AegisConnectionError",
    "AegisError",
    "AegisNotFoundError",
    "AegisPermissionError",
    "AegisRateLimitError",
    "AegisServerError",
    "AegisTimeoutError",
    "AegisValidationError",
    "error_from_response",
]

INVALID_KEY_MESSAGE = "Authentication failed: Invalid API key"


class AegisError(Exception):
    """Base class of every error the SDK raises on purpose.

    ``status_code`` is None for errors that never reached the server (connection failures,
    arguments the SDK rejected before sending). ``code`` is the server's stable snake_case code,
    meant for programs; ``detail`` is the human sentence; ``request_id`` is the server's
    ``X-Request-ID``, which is what an operator needs to find the request in the logs.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.detail = detail if detail is not None else message
        self.request_id = request_id

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        parts = [repr(self.message)]
        if self.status_code is not None:
            parts.append(f"status_code={self.status_code}")
        if self.code is not None:
            parts.append(f"code={self.code!r}")
        if self.request_id is not None:
            parts.append(f"request_id={self.request_id!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


class AegisConnectionError(AegisError):
    """The server could not be reached (refused, DNS, TLS, dropped connection)."""


class AegisTimeoutError(AegisConnectionError):
    """The server did not answer in time.

    A subclass of the connection error because, to a caller, both mean "no usable answer from
    the server; the request may or may not have been applied".
    """


class AegisAuthError(AegisError):
    """401: the API key is missing, unknown, revoked or expired."""


class AegisPermissionError(AegisError):
    """403: the key may not act as the agent named in the request."""


class AegisNotFoundError(AegisError):
    """404: the id is unknown *or* not visible to the acting agent (the server won't say which)."""


class AegisConflictError(AegisError):
    """409: something unique already exists (a session or feature id)."""


class AegisValidationError(AegisError, ValueError):
    """400/413/422, or arguments the SDK rejected before sending.

    Also a ``ValueError`` so that code written against plain Python conventions catches it.
    """


class AegisRateLimitError(AegisError):
    """429: the key's rate limit was hit; ``retry_after`` is how many seconds to wait, if known."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class AegisServerError(AegisError):
    """5xx: the server failed; the request may be retried later."""


_BY_STATUS: dict[int, tuple[type[AegisError], str]] = {
    400: (AegisValidationError, "The request was rejected as invalid"),
    401: (AegisAuthError, INVALID_KEY_MESSAGE),
    403: (AegisPermissionError, "Permission denied: this key may not act as that agent"),
    404: (AegisNotFoundError, "Not found"),
    409: (AegisConflictError, "Conflict: it already exists"),
    413: (AegisValidationError, "The request body is too large"),
    422: (AegisValidationError, "The request was rejected as invalid"),
    429: (AegisRateLimitError, "Rate limit exceeded"),
}


def error_from_response(
    status_code: int,
    body: bytes,
    headers: Mapping[str, str],
) -> AegisError:
    """Turn a non-2xx response into the matching exception (the only place this is decided).

    Tolerant on purpose: a proxy in front of the server may answer with HTML or an empty body,
    and FastAPI's own 422 has a list as ``detail``; the caller still gets the right type and a
    readable sentence.
    """
    detail, code = _detail_and_code(body)
    request_id = headers.get("x-request-id")
    if status_code >= 500:
        cls: type[AegisError] = AegisServerError
        fallback = f"The Aegis server failed (HTTP {status_code})"
    else:
        cls, fallback = _BY_STATUS.get(
            status_code,
            (AegisError, f"Unexpected response from the Aegis server (HTTP {status_code})"),
        )
    message = detail or fallback
    common: dict[str, Any] = {
        "status_code": status_code,
        "code": code,
        "detail": message,
        "request_id": request_id,
    }
    if cls is AegisRateLimitError:
        return AegisRateLimitError(
            message, retry_after=parse_retry_after(headers.get("retry-after")), **common
        )
    return cls(message, **common)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:  # pragma: no cover - older Pythons returned None
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _detail_and_code(body: bytes) -> tuple[str | None, str | None]:
    """Pull ``detail`` and ``code`` out of an error body of any shape."""
    if not body:
        return None, None
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace").strip()
        # A short plain-text body ("Internal Server Error") is worth showing; an HTML page is not.
        if text and len(text) <= 300 and not text.lstrip().startswith("<"):
            return text, None
        return None, None
    if not isinstance(data, dict):
        return None, None
    code = data.get("code") if isinstance(data.get("code"), str) else None
    return _format_detail(data.get("detail")), code


def _format_detail(detail: Any) -> str | None:
    if detail is None:
        return None
    if isinstance(detail, str):
        return detail.strip() or None
    if isinstance(detail, list):
        # FastAPI's default validation body: [{"loc": [...], "msg": "..."}, ...].
        parts = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                loc = [str(p) for p in item.get("loc", []) if p not in ("body", "query", "path")]
                parts.append(f"{'.'.join(loc)}: {item['msg']}" if loc else str(item["msg"]))
            else:
                parts.append(str(item))
        return "; ".join(parts) or None
    return str(detail)
