"""The engine: business rules with no HTTP and no SQL."""

from aegis_memory.service.access import Identity
from aegis_memory.service.engine import MemoryService
from aegis_memory.service.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceError,
    StartupError,
    Unauthorized,
)

__all__ = [
    "Conflict",
    "Forbidden",
    "Identity",
    "InvalidInput",
    "MemoryService",
    "NotFound",
    "ServiceError",
    "StartupError",
    "Unauthorized",
]
