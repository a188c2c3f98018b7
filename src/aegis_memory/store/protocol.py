"""The one storage interface every backend implements (and the contract tests exercise).

Methods take and return the plain records of ``records.py``. Every multi-row write is one
transaction. Nothing here knows about scopes' meaning: the service passes in what to store and
filters what it reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from aegis_memory.config import Settings
from aegis_memory.index import SearchFilter
from aegis_memory.store.records import (
    ApiKeyRecord,
    ChangeBatch,
    DeltaWrite,
    EventRecord,
    FeatureRecord,
    ImportOutcome,
    InsertOutcome,
    MemoryRecord,
    NewMemory,
    PoolStatus,
    SessionRecord,
    TextSearch,
    VoteRecord,
)


class Store(Protocol):
    dialect: str

    async def migrate(self, *, embedding_dim: int | None = None) -> None: ...
    async def close(self) -> None: ...
    def pool_status(self) -> dict[str, PoolStatus]:
        """Each connection pool by name (for the metrics)."""
        ...

    async def get_meta(self, key: str) -> str | None: ...
    async def set_meta(self, key: str, value: str) -> None: ...

    async def ensure_project(self, project_id: str, now: float) -> None: ...
    async def list_projects(self) -> list[str]: ...
    async def insert_key(self, key: ApiKeyRecord) -> None: ...
    async def find_key(self, key_hash: str) -> ApiKeyRecord | None: ...
    async def list_keys(self, project_id: str) -> list[ApiKeyRecord]: ...
    async def revoke_key(self, project_id: str, key_id: str, now: float) -> bool: ...

    async def insert_memories(
        self, items: Sequence[NewMemory], events: Sequence[EventRecord | None], now: float
    ) -> list[InsertOutcome]: ...
    async def update_memory(
        self, project_id: str, memory_id: str, changes: dict[str, Any], event: EventRecord | None
    ) -> MemoryRecord | None: ...
    async def eval_inputs(
        self, project_id: str, namespace: str | None, since: float
    ) -> dict[str, Any]: ...
    async def dashboard_counts(
        self, project_id: str, namespace: str | None, now: float
    ) -> dict[str, Any]: ...
    async def browse_memories(
        self, flt: SearchFilter, *, only_deprecated: bool = False, contains: str | None = None,
        order: str = "newest", limit: int = 25, offset: int = 0,
    ) -> tuple[list[MemoryRecord], int]:
        """A page of the memories ``flt`` allows (with or without a vector), whose content
        contains ``contains`` in any case, newest or most effective first; and their total."""
        ...
    async def memory_summary(self, flt: SearchFilter) -> dict[str, Any]:
        """``dashboard_counts`` over the memories ``flt`` allows."""
        ...
    async def memory_facets(self, project_id: str) -> dict[str, list[str]]:
        """``{"namespaces": [...], "agents": [...]}`` in use in a project, sorted."""
        ...
    async def events_page(
        self,
        project_id: str,
        *,
        namespace: str | None = None,
        event_type: str | None = None,
        agent_id: str | None = None,
        memory_id: str | None = None,
        since: float | None = None,
        before_row: int | None = None,
        limit: int = 100,
    ) -> list[Any]: ...
    async def apply_delta(
        self, project_id: str, writes: Sequence[DeltaWrite], now: float
    ) -> list[InsertOutcome]: ...
    async def memories_by_error_pattern(
        self, project_id: str, namespace: str, pattern: str
    ) -> list[MemoryRecord]: ...
    async def set_shared_with(
        self, project_id: str, memory_ids: Sequence[str], agent_id: str, now: float
    ) -> None: ...
    async def delete_memory(
        self, project_id: str, memory_id: str, event: EventRecord | None
    ) -> bool: ...
    async def upsert_vote(
        self, project_id: str, vote: VoteRecord, event: EventRecord | None
    ) -> tuple[int, int]: ...
    async def add_event(self, event: EventRecord) -> None: ...
    async def add_events(self, events: Sequence[EventRecord]) -> None: ...
    async def purge_expired(self, now: float, limit: int = 1000) -> int: ...

    async def find_by_dedup_keys(
        self, project_id: str, keys: Sequence[str], now: float
    ) -> dict[str, MemoryRecord]: ...
    async def get_memory(
        self, project_id: str, memory_id: str, *, with_embedding: bool = False
    ) -> MemoryRecord | None: ...
    async def get_memories_by_row_ids(
        self, project_id: str, row_ids: Sequence[int]
    ) -> dict[int, MemoryRecord]: ...
    async def existing_ids(self, memory_ids: Sequence[str]) -> dict[str, str]: ...
    def iter_memories(
        self,
        project_id: str,
        *,
        namespace: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        with_embeddings: bool = False,
        batch_size: int = 500,
    ) -> AsyncIterator[list[MemoryRecord]]: ...
    async def list_votes(
        self, project_id: str, row_ids: Sequence[int]
    ) -> dict[int, list[VoteRecord]]: ...
    async def import_memories(
        self, items: Sequence[NewMemory], votes: dict[str, list[VoteRecord]], now: float,
        event: EventRecord | None = None,
    ) -> ImportOutcome: ...

    async def embedding_model_counts(self) -> dict[str | None, int]: ...
    async def memories_to_reembed(
        self, model: str, after: tuple[str, int] | None, limit: int
    ) -> list[tuple[str, int, str, str]]: ...
    async def write_embeddings(
        self, rows: Sequence[tuple[str, int, str, bytes]], model: str, meta: dict[str, str]
    ) -> int: ...
    async def begin_reembedding(self, dim: int, meta: dict[str, str]) -> None: ...
    async def finish_reembedding(
        self, model: str, dim: int, meta: dict[str, str], drop_meta: Sequence[str]
    ) -> int: ...

    async def search_text(
        self,
        flt: SearchFilter,
        terms: Sequence[str],
        k: int,
        *,
        neighbours_of: Sequence[int] | None = None,
        inline: bool = False,
        with_vectors: bool = True,
    ) -> TextSearch:
        """The ``k`` memories ``flt`` allows that match any of ``terms`` best, the text
        scores of the best matches, and - with ``neighbours_of`` - the stream neighbours of
        those rows and of the best matches, all in one transaction (see ``TextSearch``)."""
        ...

    async def current_seq(self) -> int: ...
    async def changes_since(
        self, since_seq: int, *, cursor: tuple[int, int] | None = None, limit: int = 5000
    ) -> ChangeBatch: ...
    async def recent_memories(
        self, project_id: str, namespace: str, agent_id: str, limit: int, now: float
    ) -> list[MemoryRecord]: ...

    async def get_session(
        self, project_id: str, namespace: str, session_id: str
    ) -> SessionRecord | None: ...
    async def list_sessions(
        self, project_id: str, namespace: str, *, agent_id: str | None = None
    ) -> list[SessionRecord]: ...
    async def insert_session(self, record: SessionRecord, event: EventRecord | None) -> None: ...
    async def modify_session(
        self,
        project_id: str,
        namespace: str,
        session_id: str,
        change: Callable[[SessionRecord | None], SessionRecord],
        event: EventRecord | None,
    ) -> SessionRecord: ...
    async def find_sessions(
        self, project_id: str, namespace: str, *, status: str | None = None, limit: int = 100
    ) -> list[SessionRecord]: ...
    async def insert_feature(self, record: FeatureRecord, event: EventRecord | None) -> None: ...
    async def modify_feature(
        self,
        project_id: str,
        namespace: str,
        feature_id: str,
        change: Callable[[FeatureRecord], FeatureRecord],
        event: EventRecord | None,
    ) -> FeatureRecord | None: ...
    async def get_feature(
        self, project_id: str, namespace: str, feature_id: str
    ) -> FeatureRecord | None: ...
    async def list_features(
        self,
        project_id: str,
        namespace: str,
        *,
        status: str | None = None,
        session_id: str | None = None,
        limit: int = 1000,
    ) -> list[FeatureRecord]: ...


def open_store(settings: Settings) -> Store:
    """Pick the backend from the database URL (SQLite file by default)."""
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        from aegis_memory.store.sqlite import SQLiteStore

        return SQLiteStore(url, synchronous=settings.sqlite_synchronous)
    if url.startswith(("postgresql", "postgres")):
        try:
            from aegis_memory.store.postgres.store import PostgresStore
        except ImportError as exc:  # asyncpg is in the [postgres] extra
            raise RuntimeError(
                "DATABASE_URL points at PostgreSQL, but its driver is not installed: "
                "pip install 'aegis-memory[postgres]'."
            ) from exc
        return PostgresStore(
            url,
            read_replica_url=settings.database_read_replica_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
    raise RuntimeError(f"Unsupported DATABASE_URL scheme: {url.split(':', 1)[0]!r}")
