"""Errors the service raises. Faces (HTTP, CLI, local mode) map them to their own form.

Each carries a stable ``code`` and a sentence a person understands.
"""

from __future__ import annotations


class ServiceError(Exception):
    code = "error"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code


class InvalidInput(ServiceError):
    code = "invalid_input"


class Unauthorized(ServiceError):
    code = "invalid_api_key"


class Forbidden(ServiceError):
    code = "forbidden"


class NotFound(ServiceError):
    code = "not_found"


class Conflict(ServiceError):
    code = "conflict"


class StartupError(ServiceError):
    """The server cannot start as configured (wrong model for the data, unsafe production key)."""

    code = "startup_error"
