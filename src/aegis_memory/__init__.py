"""Aegis Memory: a self-hostable memory engine for multi-agent AI systems.

``import aegis_memory`` stays light (httpx + pydantic): the server and its dependencies are only
imported by local mode (`AegisClient.local`) or by ``aegis serve``.
"""

from aegis_memory.client import (
    AegisAuthError,
    AegisClient,
    AegisConflictError,
    AegisConnectionError,
    AegisError,
    AegisNotFoundError,
    AegisPermissionError,
    AegisRateLimitError,
    AegisServerError,
    AegisTimeoutError,
    AegisValidationError,
    AsyncAegisClient,
    QueryResult,
)
from aegis_memory.client._version import VERSION as __version__
from aegis_memory.schemas import (
    AddResult,
    ApiKeyInfo,
    CreatedApiKey,
    ExportedMemory,
    HandoffBaton,
    HealthResponse,
    ImportResponse,
    Memory,
    MemoryFields,
    VoteResult,
)
from aegis_memory.smart import (
    AsyncSmartMemory,
    ContextResult,
    ExtractedFact,
    LLMError,
    SmartMemory,
    TurnResult,
)

__all__ = [
    "AddResult",
    "AegisAuthError",
    "AegisClient",
    "AegisConflictError",
    "AegisConnectionError",
    "AegisError",
    "AegisNotFoundError",
    "AegisPermissionError",
    "AegisRateLimitError",
    "AegisServerError",
    "AegisTimeoutError",
    "AegisValidationError",
    "ApiKeyInfo",
    "AsyncAegisClient",
    "AsyncSmartMemory",
    "ContextResult",
    "CreatedApiKey",
    "ExportedMemory",
    "ExtractedFact",
    "HandoffBaton",
    "HealthResponse",
    "ImportResponse",
    "LLMError",
    "Memory",
    "MemoryFields",
    "QueryResult",
    "SmartMemory",
    "TurnResult",
    "VoteResult",
    "__version__",
]
