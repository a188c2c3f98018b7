"""The Aegis Memory SDK: `AegisClient` (blocking) and `AsyncAegisClient` (asyncio).

Both are thin transports over one shared description of the API (`_api`, `_core`); results are
the wire models of `aegis_memory.schemas`, errors the types in `aegis_memory.client.errors`.
"""

from aegis_memory.client._core import Call, ResolvedConfig, resolve_config
from aegis_memory.client._progress import (
    AsyncFeatures,
    AsyncProgress,
    Feature,
    FeatureList,
    Features,
    Progress,
    SessionProgress,
)
from aegis_memory.client.async_client import AsyncAegisClient, AsyncKeys
from aegis_memory.client.errors import (
    AegisAuthError,
    AegisConflictError,
    AegisConnectionError,
    AegisError,
    AegisNotFoundError,
    AegisPermissionError,
    AegisRateLimitError,
    AegisServerError,
    AegisTimeoutError,
    AegisValidationError,
)
from aegis_memory.client.sync_client import AegisClient, Keys
from aegis_memory.client.types import ExportFilters, QueryResult

__all__ = [
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
    "AsyncAegisClient",
    "AsyncFeatures",
    "AsyncKeys",
    "AsyncProgress",
    "Call",
    "ExportFilters",
    "Feature",
    "FeatureList",
    "Features",
    "Keys",
    "Progress",
    "QueryResult",
    "ResolvedConfig",
    "SessionProgress",
    "resolve_config",
]
