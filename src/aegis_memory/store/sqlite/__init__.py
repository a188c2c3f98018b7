"""The embedded default: one SQLite file, WAL mode, zero set-up."""

from aegis_memory.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
