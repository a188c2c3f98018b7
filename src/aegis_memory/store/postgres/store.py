"""PostgreSQL flavour of the SQL store: production and scale-out.

The operations are the ones every SQL backend shares (``SqlStore``); here each runs inside one
transaction on an asyncpg connection through ``AsyncConnection.run_sync``, so many requests
share the pool concurrently and API replicas are stateless. Vector search runs in the database
(pgvector), not in the process, so every replica sees every write at once.

Reads that tolerate replication lag (dashboards, evaluation, export) go to
``DATABASE_READ_REPLICA_URL`` when it is set; writes, key lookups and searches stay on the
primary so an agent always finds what it has just stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import numpy as np
from sqlalchemy import event, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from aegis_memory.index import SearchFilter
from aegis_memory.store import tables as t
from aegis_memory.store.errors import DatabaseUnavailable
from aegis_memory.store.postgres.fulltext import ranked_matches
from aegis_memory.store.postgres.search import (
    VectorSearchPlan,
    search_vector_ids,
    search_vectors,
)
from aegis_memory.store.records import (
    EventRecord,
    ImportOutcome,
    MemoryRecord,
    NewMemory,
    PoolStatus,
    VoteRecord,
    pool_status,
)
from aegis_memory.store.sql_store import SqlStore, _upgrade

R = TypeVar("R")
log = logging.getLogger("aegis_memory.store.postgres")

#: Any constant works; it only has to be the same for every process migrating one database.
_MIGRATION_LOCK = 0x4165_6769_73  # "Aegis"
MIN_PGVECTOR = (0, 8, 0)
ANALYZE_AFTER_IMPORTED = 2000
_NEXT_CHANGE = text("SELECT nextval('memory_change_seq')")
_LAST_CHANGE = text("SELECT last_value FROM memory_change_seq")
#: The declared size of ``memories.embedding`` (pgvector keeps it as the type modifier; -1 when
#: the column is an untyped ``vector``).
_VECTOR_COLUMN_DIM = text(
    "SELECT atttypmod FROM pg_attribute "
    "WHERE attrelid = 'memories'::regclass AND attname = 'embedding'"
)
_HNSW_INDEX = "ix_memories_embedding_hnsw"
#: deadlock_detected and serialization_failure: PostgreSQL rolled the transaction back and
#: running it again is the documented remedy.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
WRITE_ATTEMPTS = 5


def async_url(url: str) -> str:
    """``postgresql://`` (what users write) → the asyncpg driver URL SQLAlchemy needs."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+asyncpg"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise DatabaseUnavailable(
        f"Unsupported PostgreSQL driver {parsed.drivername!r}: use postgresql:// "
        "(Aegis talks to PostgreSQL through asyncpg)."
    )


def _encode_vector(value: bytes | np.ndarray) -> bytes:
    """Little-endian float32 bytes → pgvector's binary format (big-endian, with a header)."""
    array = np.frombuffer(value, dtype="<f4") if isinstance(value, bytes | bytearray) else value
    return struct.pack(">HH", len(array), 0) + np.asarray(array, dtype=">f4").tobytes()


def _decode_vector(value: bytes) -> bytes:
    dim, _ = struct.unpack_from(">HH", value)
    return np.frombuffer(value, dtype=">f4", count=dim, offset=4).astype("<f4").tobytes()


def _engine(url: str, *, pool_size: int, max_overflow: int, name: str) -> AsyncEngine:
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        # No pre-ping: it costs three round trips per transaction (measured 0.35-0.46 ms). A
        # connection the server dropped fails its one request, and SQLAlchemy then discards
        # the pool's other connections of that generation.
        pool_recycle=1800,
        # Errors must not carry statement values (memory content, query text) into logs.
        hide_parameters=True,
        connect_args={"server_settings": {"application_name": f"aegis-memory-{name}"}},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Before the first migration the type does not exist yet; the pool is reset after it.
        with contextlib.suppress(ValueError):
            dbapi_connection.run_async(
                lambda conn: conn.set_type_codec(
                    "vector", schema="public", encoder=_encode_vector, decoder=_decode_vector,
                    format="binary",
                )
            )

    return engine


class PostgresStore(SqlStore):
    dialect = "postgresql"
    tenant_primary_keys = True
    _dialect_insert = staticmethod(pg_insert)

    def __init__(
        self,
        url: str,
        *,
        read_replica_url: str | None = None,
        pool_size: int = 10,
        max_overflow: int = 20,
        embedding_dim: int | None = None,
    ) -> None:
        self.url = url
        self.embedding_dim = embedding_dim
        self._primary = _engine(url, pool_size=pool_size, max_overflow=max_overflow,
                                name="primary")
        self._replica = (
            _engine(read_replica_url, pool_size=pool_size, max_overflow=max_overflow,
                    name="replica")
            if read_replica_url else None
        )
        self.search_plan = VectorSearchPlan()
        self._imported_since_analyze = 0

    # ------------------------------------------------------------------ running operations

    async def _run(self, write: bool, call: Callable[[Connection], R]) -> R:
        """One transaction on the primary. A write that PostgreSQL aborted to break a deadlock
        (or a serialization failure) had no effect, so it runs again, a few times, after a
        short random pause: two transactions locking the same rows in opposite orders (say,
        deltas over the same memories listed differently, or inserts racing on the same
        dedup keys) then both succeed instead of one answering 500."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                async with self._primary.begin() as conn:
                    return await conn.run_sync(call)
            except DBAPIError as exc:
                sqlstate = getattr(exc.orig, "sqlstate", None)
                if not write or sqlstate not in RETRYABLE_SQLSTATES or attempt == WRITE_ATTEMPTS:
                    raise
                log.info("write transaction aborted (%s), attempt %d of %d: running it again",
                         sqlstate, attempt, WRITE_ATTEMPTS)
                await asyncio.sleep(random.uniform(0.0, 0.005 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _run_replica(self, call: Callable[[Connection], R]) -> R:
        """On the read replica when there is one; should it be unreachable, on the primary
        (a dashboard is worth a little primary load, not an error page)."""
        if self._replica is not None:
            try:
                async with self._replica.begin() as conn:
                    return await conn.run_sync(call)
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
                log.warning("read replica unavailable (%s); reading from the primary", exc)
            except DBAPIError as exc:
                if not (exc.connection_invalidated or isinstance(
                        exc.orig, OSError | asyncpg.PostgresConnectionError)):
                    raise
                log.warning("read replica unavailable (%s); reading from the primary", exc.orig)
        return await self._run(False, call)

    async def migrate(self, *, embedding_dim: int | None = None) -> None:
        """Upgrade under an advisory lock, so replicas starting together migrate once."""
        dim = embedding_dim or self.embedding_dim

        def upgrade(conn: Connection) -> None:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            _upgrade(conn, embedding_dim=dim)

        try:
            await self._run(True, upgrade)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(self._unavailable(exc)) from exc
        except DBAPIError as exc:
            message = str(exc.orig)
            if 'extension "vector"' in message or "vector.control" in message:
                raise DatabaseUnavailable(
                    "This PostgreSQL server has no pgvector extension. Install pgvector >= 0.8 "
                    "on it (or use the pgvector/pgvector Docker image), or have a superuser run "
                    f"CREATE EXTENSION vector in the database. ({message.strip()})"
                ) from exc
            if exc.connection_invalidated or isinstance(exc.orig, OSError):
                raise DatabaseUnavailable(self._unavailable(exc.orig)) from exc
            raise
        await self._check_pgvector()
        # Connections opened before the extension existed lack the vector codec.
        await self._primary.dispose()

    def _unavailable(self, exc: BaseException | None) -> str:
        where = make_url(self.url).render_as_string(hide_password=True)
        reason = str(exc).strip() or type(exc).__name__
        return f"Cannot use the PostgreSQL database at {where}: {reason}"

    async def _check_pgvector(self) -> None:
        async with self._primary.connect() as conn:
            version = (await conn.execute(text(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ))).scalar_one_or_none()
        if version is None:
            raise DatabaseUnavailable("The pgvector extension is not installed in this database.")
        parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
        if parts < MIN_PGVECTOR:
            raise DatabaseUnavailable(
                f"pgvector {version} is too old: Aegis needs pgvector >= 0.8 for filtered "
                "searches that never under-return (iterative index scans). "
                "Run ALTER EXTENSION vector UPDATE after installing a newer pgvector."
            )

    async def close(self) -> None:
        await self._primary.dispose()
        if self._replica is not None:
            await self._replica.dispose()

    def pool_status(self) -> dict[str, PoolStatus]:
        pools = {"primary": pool_status(self._primary.sync_engine.pool)}
        if self._replica is not None:
            pools["replica"] = pool_status(self._replica.sync_engine.pool)
        return pools

    # ------------------------------------------------------------------ bulk loads

    async def import_memories(
        self, items: Sequence[NewMemory], votes: dict[str, list[VoteRecord]], now: float,
        event: EventRecord | None = None,
    ) -> ImportOutcome:
        """The shared import, then fresh planner statistics once a few thousand rows came in:
        until autovacuum gets round to it, a freshly loaded table looks empty to the planner,
        which then ranks by sorting instead of using the HNSW index (right, but slow)."""
        inserted = await super().import_memories(items, votes, now, event)
        self._imported_since_analyze += len(inserted.ids)
        if self._imported_since_analyze >= ANALYZE_AFTER_IMPORTED:
            self._imported_since_analyze = 0
            async with self._primary.connect() as conn:
                await conn.execute(text("ANALYZE memories"))
                await conn.commit()
        return inserted

    # ------------------------------------------------------------------ change numbers

    def _next_seq(self, conn: Connection) -> int:
        """From a sequence, not the shared counter row (see migration 0002): concurrent
        writers never wait for each other here."""
        return int(conn.execute(_NEXT_CHANGE).scalar_one())

    async def current_seq(self) -> int:
        async with self._primary.connect() as conn:
            return int((await conn.execute(_LAST_CHANGE)).scalar_one())

    # ------------------------------------------------------------------ vector search

    async def search_vectors(
        self, vector: np.ndarray, k: int, flt: SearchFilter
    ) -> list[tuple[MemoryRecord, float]]:
        """Top-``k`` (memory, cosine similarity) the filter allows, best first, in one
        transaction; never fewer than ``min(k, matching rows)``. Runs on the primary
        (read-your-writes)."""
        query = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        return await self._run(
            False, lambda conn: search_vectors(conn, query, k, flt, self.search_plan)
        )

    async def search_vector_ids(
        self, vector: np.ndarray, k: int, flt: SearchFilter
    ) -> list[tuple[int, float]]:
        """``search_vectors`` without the rows: (row id, cosine similarity), best first."""
        query = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        return await self._run(
            False, lambda conn: search_vector_ids(conn, query, k, flt, self.search_plan)
        )

    def _ranked_matches(
        self, conn: Connection, flt: SearchFilter, terms: Sequence[str], limit: int
    ) -> dict[int, float]:
        return ranked_matches(conn, flt, terms, limit)

    # ------------------------------------------------------------------ re-embedding

    def _prepare_vector_column(self, conn: Connection, dim: int) -> None:
        """While ``aegis reindex`` moves to vectors of another size, the column holds both:
        it becomes an untyped ``vector`` (HNSW needs one size, so its index goes until the
        end). Nothing changes when the size stays the same."""
        typmod = int(conn.execute(_VECTOR_COLUMN_DIM).scalar_one())
        if typmod == dim:
            return
        conn.execute(text(f"DROP INDEX IF EXISTS {_HNSW_INDEX}"))
        if typmod != -1:
            conn.execute(text("ALTER TABLE memories ALTER COLUMN embedding TYPE vector"))

    def _finish_vector_column(self, conn: Connection, dim: int) -> None:
        """``vector(dim)`` and the HNSW index again, as migration 0002 makes them (the index
        is built from the model's definition in ``tables.py``, with the same parameters)."""
        typmod = int(conn.execute(_VECTOR_COLUMN_DIM).scalar_one())
        if typmod != dim:
            conn.execute(text(f"DROP INDEX IF EXISTS {_HNSW_INDEX}"))
            conn.execute(text(
                f"ALTER TABLE memories ALTER COLUMN embedding TYPE vector({int(dim)})"))
        index = next(i for i in t.memories.indexes if i.name == _HNSW_INDEX)
        index.create(conn, checkfirst=True)

    def _lock_memories(self, conn: Connection) -> None:
        # SHARE ROW EXCLUSIVE: readers go on, writers (and another switch) wait for the commit,
        # so no memory of the old model can slip in between the check and the switch.
        conn.execute(text("LOCK TABLE memories IN SHARE ROW EXCLUSIVE MODE"))

    async def other_aegis_connections(self) -> int:
        """Sessions of other Aegis processes (running servers) on this database."""
        async with self._primary.connect() as conn:
            return int((await conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name LIKE 'aegis-memory-%' AND pid <> pg_backend_pid()"
            ))).scalar_one())
