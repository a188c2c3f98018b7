"""Where searches run: an in-process index kept in step with the database, or the database.

With SQLite the vectors are searched in process (``IndexSync`` over ``VectorIndex``); with
PostgreSQL, pgvector searches them in the database (``DatabaseSearch``), so API replicas hold no
state. The service sees one interface: ``search`` (row ids and scores), ``search_records``
(the rows too), ``catch_up``, ``save`` and ``vector_count``.


Every write bumps a row's ``change_seq``; the index remembers the last sequence it has seen and
replays newer rows (and tombstones). The same path serves start-up after a crash, writes made
by this process and writes made by other workers, so there is one way the index can be right.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import numpy as np

from aegis_memory.index import IndexedRow, SearchFilter, VectorIndex
from aegis_memory.service.scoring import effectiveness
from aegis_memory.store import Store
from aegis_memory.store.records import MemoryRecord, NewMemory, searchable

log = logging.getLogger("aegis_memory.index")


def indexed_row(m: MemoryRecord | NewMemory, label: int | None = None) -> IndexedRow:
    """What the index keeps of a memory; a `NewMemory` needs its row id as ``label``."""
    if label is None:
        assert isinstance(m, MemoryRecord)
        label = m.row_id
    return IndexedRow(
        label=label,
        project_id=m.project_id,
        namespace=m.namespace,
        agent_id=m.agent_id,
        user_id=m.user_id,
        scope=m.scope,
        memory_type=m.memory_type,
        shared_with=tuple(m.shared_with_agents),
        expires_at=m.expires_at,
        deprecated=m.is_deprecated,
        effectiveness=effectiveness(m.bullet_helpful, m.bullet_harmful),
    )


class IndexSync:
    def __init__(self, store: Store, index: VectorIndex, directory: Path | None) -> None:
        self.store = store
        self.index = index
        self.directory = directory
        self._lock = asyncio.Lock()
        self._dirty = False
        self._last_save = time.monotonic()

    @classmethod
    async def open(
        cls, store: Store, *, dim: int, model_name: str, directory: Path | None, store_id: str
    ) -> IndexSync:
        """Load the persisted index if it belongs to this database and model, else start empty.

        Either way ``catch_up`` then replays whatever the file has not seen.
        """
        key = f"{model_name}@{store_id}"
        index: VectorIndex | None = None
        if directory is not None:
            index = await asyncio.to_thread(
                VectorIndex.load, directory, dim=dim, model_name=key, graph="background"
            )
            if index is not None and index.synced_seq > await store.current_seq():
                log.warning("vector index is newer than the database; rebuilding it")
                index = None
        loaded = index is not None
        if index is None:
            index = VectorIndex(dim, key, graph="background")
            index.synced_seq = 0
        sync = cls(store, index, directory)
        started = time.monotonic()
        replayed = await sync.catch_up()
        log.info(
            "vector index %s: %d vectors, %d rows replayed from the database in %.1f s",
            "loaded from snapshot" if loaded else "rebuilt from the database",
            len(index), replayed, time.monotonic() - started,
        )
        return sync

    async def catch_up(self) -> int:
        """Apply every change the index has not seen; returns how many rows were applied."""
        if await self.store.current_seq() <= self.index.synced_seq:
            return 0  # the common case: nothing new, and no transaction opened to learn it
        async with self._lock:
            since = self.index.synced_seq
            batch = await self.store.changes_since(since)
            if batch.max_seq <= since:
                return 0
            applied = 0
            while True:
                if len(batch.upserts) <= 16:
                    # The usual single write: cheaper here than a thread round trip.
                    self._apply(batch.upserts)
                else:
                    await asyncio.to_thread(self._apply, batch.upserts)
                applied += len(batch.upserts)
                if len(batch.upserts) < 5000:
                    break
                last = batch.upserts[-1]
                batch = await self.store.changes_since(
                    since, cursor=(last.change_seq, last.row_id)
                )
            if batch.deleted_row_ids:
                self.index.remove(batch.deleted_row_ids)
            self.index.synced_seq = batch.max_seq
            self._dirty = True
            return applied

    async def add_written(self, seq: int, rows: list[IndexedRow], vectors: np.ndarray) -> None:
        """Take the rows one write transaction (``seq``) inserted, with their unit vectors,
        without reading them back from the database - when that transaction is the only
        change the index has not seen. Otherwise (another writer came between) catch up as
        usual. A bulk import's read-back cost as much as a third of its database time."""
        async with self._lock:
            if self.index.synced_seq == seq - 1:
                if rows:
                    if len(rows) <= 16:
                        self.index.upsert(rows, vectors)
                    else:
                        await asyncio.to_thread(self.index.upsert, rows, vectors)
                self.index.synced_seq = seq
                self._dirty = True
                return
        await self.catch_up()

    async def search(
        self, vector: np.ndarray, k: int, flt: SearchFilter, *, busy: bool = False
    ) -> list[tuple[int, float]]:
        """Search the index. ``busy`` says other requests are waiting for the event loop.

        An idle server searches inline: a search is 0.1-10 ms of CPU, and the filtered graph
        walk calls back into Python for every node it visits, so from a worker thread it
        fights the event loop for the GIL and took ~2 ms longer
        (benchmarks/engine_query_bench.py). Under load the event loop itself is the scarce
        resource: inline searches ran one at a time on one core while the other idled
        (160 queries/s at 1M memories, benchmarks/bench.py), so busy searches run in worker
        threads, side by side.
        """
        await self.catch_up()
        if busy:
            return await asyncio.to_thread(self.index.search, vector, k, flt)
        return self.index.search(vector, k, flt)

    async def search_records(
        self, vector: np.ndarray, k: int, flt: SearchFilter, *, busy: bool = False
    ) -> list[tuple[MemoryRecord, float]]:
        """The hits with their rows, read from the database (the source of truth)."""
        hits = await self.search(vector, k, flt, busy=busy)
        rows = await self.store.get_memories_by_row_ids(flt.project_id, [h[0] for h in hits])
        return [(rows[label], score) for label, score in hits if label in rows]

    @property
    def vector_count(self) -> int | None:
        return len(self.index)

    @property
    def pending(self) -> int | None:
        """Vectors not yet in the HNSW graph (searched exactly until they are)."""
        return self.index.pending

    def close(self) -> None:
        """Stop the graph builder; rows still pending are saved as pending."""
        self.index.close()

    def _apply(self, records: list[MemoryRecord]) -> None:
        dim = self.index.dim
        rows: list[IndexedRow] = []
        vectors: list[np.ndarray] = []
        for m in records:
            if m.embedding is None or len(m.embedding) != dim * 4 or searchable(
                    m.embedding) is None:
                log.warning("memory %s has no usable embedding; it is not searchable", m.id)
                continue
            vector = np.frombuffer(m.embedding, dtype=np.float32)
            rows.append(indexed_row(m))
            vectors.append(vector)
        if rows:
            self.index.upsert(rows, np.vstack(vectors))

    async def save(self, *, force: bool = False, every_seconds: float = 600.0) -> bool:
        """Persist the index when it changed (and, unless forced, not too often).

        Snapshots are large (vectors and graph), and start-up replays whatever came after the
        last one from the database anyway, so saving rarely costs little.
        """
        if self.directory is None or not self._dirty:
            return False
        if not force and time.monotonic() - self._last_save < every_seconds:
            return False
        async with self._lock:
            await asyncio.to_thread(self.index.save, self.directory)
            self._dirty = False
            self._last_save = time.monotonic()
        return True


class DatabaseSearch:
    """Search delegated to the database (pgvector): nothing to load, catch up or save."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def search(
        self, vector: np.ndarray, k: int, flt: SearchFilter, *, busy: bool = False
    ) -> list[tuple[int, float]]:
        return await self.store.search_vector_ids(vector, k, flt)  # type: ignore[attr-defined]

    async def search_records(
        self, vector: np.ndarray, k: int, flt: SearchFilter, *, busy: bool = False
    ) -> list[tuple[MemoryRecord, float]]:
        """Search and rows in one statement and one transaction."""
        return await self.store.search_vectors(vector, k, flt)  # type: ignore[attr-defined]

    async def catch_up(self) -> int:
        return 0

    async def add_written(self, seq: int, rows: list[IndexedRow], vectors: np.ndarray) -> None:
        return None  # the database searches its own rows

    async def save(self, *, force: bool = False, every_seconds: float = 600.0) -> bool:
        return False

    @property
    def vector_count(self) -> int | None:
        return None

    @property
    def pending(self) -> int | None:
        return None

    def close(self) -> None:
        return None


Searcher = IndexSync | DatabaseSearch
