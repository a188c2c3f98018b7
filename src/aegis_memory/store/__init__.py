"""Storage: the Store protocol and its SQL implementations."""

from aegis_memory.store.protocol import Store, open_store
from aegis_memory.store.sql_store import DuplicateError, StaleRow

__all__ = ["DuplicateError", "StaleRow", "Store", "open_store"]
