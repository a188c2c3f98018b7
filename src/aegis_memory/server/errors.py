"""The error contract of SPEC §4: ``{"detail": "<sentence>", "code": "<snake_case>"}``.

Every failure, including FastAPI's own validation errors and unexpected exceptions, leaves the
server in this shape, so clients need one parser and people get a sentence, not a stack.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from aegis_memory.server.middleware import BodyTooLarge
from aegis_memory.server.ratelimit import RateLimitExceeded
from aegis_memory.service.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceError,
    Unauthorized,
)

log = logging.getLogger("aegis_memory.server")

_STATUS = {
    InvalidInput: 422,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
}
_HTTP_CODES = {
    400: "bad_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class ValidationIssue(BaseModel):
    """One problem of a 422, as pydantic located it (``["body", "content"]``)."""

    loc: list[str | int]
    msg: str
    type: str | None = None


class ErrorBody(BaseModel):
    """What every error response carries, declared in the OpenAPI schema so that clients (and
    the schema fuzzer, tests/reliability/test_fuzz.py) can rely on it."""

    detail: str
    code: str
    errors: list[ValidationIssue] | None = None


_MEANING = {
    400: "The body is not valid JSON.",
    401: "Missing or invalid API key.",
    403: "The key may not act as that agent, or the call needs a project key.",
    404: "Unknown id (or one the caller may not see), or the admin API is off.",
    409: "Already exists (session, feature, project), or the same content exists.",
    413: "The request body is larger than the limit.",
    422: "Invalid input; `errors` lists the fields for schema violations.",
    429: "Too many requests or failed sign-ins; see `Retry-After`.",
    503: "Not ready.",
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` declaration of these error statuses, all with :class:`ErrorBody`
    (it also replaces FastAPI's default 422 schema, which is not the shape we send)."""
    return {status: {"model": ErrorBody, "description": _MEANING[status]} for status in statuses}


#: Errors any route behind an API key can answer with (SPEC §4).
API_ERRORS = documented(400, 401, 403, 404, 409, 413, 422, 429)
#: The operator API: no agents (403); 429 after too many wrong admin keys.
ADMIN_ERRORS = documented(400, 401, 404, 409, 413, 422, 429)


def error_response(
    status: int, detail: str, code: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code, **extra}, status_code=status,
                        headers=headers)


def _where(loc: tuple[Any, ...]) -> str:
    if loc and loc[0] in ("body", "query", "path", "header"):
        loc = loc[1:]
    return ".".join(str(p) for p in loc) or "body"


def describe_validation(errors: list[dict[str, Any]]) -> tuple[str, str]:
    """Turn pydantic's error list into one readable sentence and a stable code."""
    if any(e.get("type") == "json_invalid" for e in errors):
        first = next(e for e in errors if e.get("type") == "json_invalid")
        reason = (first.get("ctx") or {}).get("error", "syntax error")
        return f"The request body is not valid JSON ({reason}).", "invalid_json"
    messages = []
    for e in errors[:5]:
        msg = str(e.get("msg", "invalid value"))
        msg = msg.removeprefix("Value error, ")
        if e.get("type") == "missing":
            msg = "this field is required"
        elif e.get("type") == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        messages.append(f"{_where(tuple(e.get('loc', ())))}: {msg}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "Invalid request: " + "; ".join(messages) + more + ".", "validation_error"


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 400)
        return error_response(status, exc.detail, exc.code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        detail, code = describe_validation(errors)
        status = 400 if code == "invalid_json" else 422
        safe = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in errors[:20]
        ]
        return error_response(status, detail, code, errors=safe)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, BodyTooLarge):
            # FastAPI turns any error while reading a body into "400 There was an error
            # parsing the body": a streamed (chunked) body over the limit is still a 413.
            return error_response(413, str(exc.__cause__), "payload_too_large")
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and detail == "Not Found":
            detail = "No such endpoint. See /docs for the API."
        if exc.status_code == 405:
            detail = "This endpoint does not accept that HTTP method. See /docs for the API."
        return error_response(
            exc.status_code, detail, _HTTP_CODES.get(exc.status_code, "http_error"),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RateLimitExceeded)
    async def _rate_limited(_: Request, exc: RateLimitExceeded) -> JSONResponse:
        # Retry-After here too: a refused sign-in was not counted against a key, so the
        # headers middleware (which adds X-RateLimit-* for counted keys) may not be there.
        return error_response(429, exc.detail, "rate_limited",
                              headers={"Retry-After": str(exc.decision.retry_after)})

    @app.exception_handler(DBAPIError)
    async def _database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        # PostgreSQL's class 54, "program limit exceeded": a value too big to store or index
        # (an index row holds at most 2,704 bytes). The request's fault, not the server's.
        # The request limits keep every known value below them (share lists since migration
        # 0008); this stays as the net under whatever a future column adds.
        if str(getattr(exc.orig, "sqlstate", "") or "").startswith("54"):
            return error_response(
                422, "A value in the request is too large for the database to store or index.",
                "too_large_for_database")
        raise exc  # every other database error stays an unexpected one (below)

    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return error_response(413, str(exc), "payload_too_large")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The route template, not the path (ids); never the body. The exception text is
        # redacted by the log formatter (server/logs.py: SQL parameters, key-like strings).
        route = getattr(request.scope.get("route"), "path", None) or "unmatched"
        request_id = (request.scope.get("state") or {}).get("request_id")
        log.exception("unhandled error on %s %s", request.method, route,
                      extra={"request_id": request_id, "route": route})
        return error_response(
            500, "The server hit an unexpected error; it has been logged.", "internal_error"
        )
