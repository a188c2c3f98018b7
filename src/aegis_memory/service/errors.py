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


#: How many times a change is decided again from fresh reads when a memory it was decided from
#: changed before it could be written (``store.StaleRow``): contention on one memory's
#: share list or content is brief, so a few rounds settle it.
DECIDE_ATTEMPTS = 5


def kept_changing(memory_id: str) -> Conflict:
    """The answer when every round found the memory changed again."""
    return Conflict(f"Memory '{memory_id}' kept changing while this request was being "
                    "applied; nothing was changed, send it again.", code="concurrent_update")


class StartupError(ServiceError):
    """The server cannot start as configured (wrong model for the data, unsafe production key)."""

    code = "startup_error"
