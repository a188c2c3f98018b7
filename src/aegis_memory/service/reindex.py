"""``aegis reindex``: re-embed every memory with the configured embedding model, resumably.

Vectors of two models never mix (a query embedded by one model means nothing against vectors
of another), so the database records its model (``embedding_model``/``embedding_dim`` meta) and
the server refuses to start with a different one. This module moves a database to the model
the settings now name, working on the configured database directly, like ``aegis migrate``.

How, and why it is safe to interrupt:

* Memories are re-embedded in place, batch by batch, in (project, row) key order. Each batch
  is one write transaction that stores the vectors, the per-row ``embedding_model`` and the
  checkpoint (``reindex_checkpoint`` meta: the last key done), so a crash or Ctrl-C loses at
  most the batch being embedded. A rerun continues after the checkpoint; rows already on the
  target model are never embedded again (they are selected by their ``embedding_model``).
* While a run is unfinished the database holds vectors of both models. No server may use it
  then, with either model: the old one would rank half its memories against vectors of another
  space (or, on PostgreSQL, fail on mixed sizes), the new one the other half. So the first
  batch is preceded by replacing the recorded model with a marker naming the unfinished run
  (``<old> (unfinished `aegis reindex` to <new>)``): the server's model check refuses every
  model until the run completes, with a message that says to run ``aegis reindex``. Running it
  with the old model's settings instead goes back, re-embedding only the rows already moved.
* Only when no memory is left on another model is the recorded model switched, in the same
  transaction as that final count (on PostgreSQL under a table lock that keeps writers out), so
  a memory written by a server that was left running cannot slip through; any found are
  re-embedded in another pass first.
* The vectors are what the next server start uses: every written row gets a new change
  number (an in-process index replays it like any write), and the SQLite backend's index
  snapshot is deleted at the end, so the next start rebuilds the index from the database.
* PostgreSQL types the column ``vector(N)`` with an HNSW index. For a model of another size
  the column becomes an untyped ``vector`` and the index is dropped during the run; the final
  transaction types it ``vector(new N)`` and rebuilds the index (migration 0002's definition).

A server left running while this runs keeps serving with the old model: its searches get worse
as rows move (and, on PostgreSQL with a size change, fail), and it must be restarted with the
new settings afterwards. Stop it first; the command says so before it starts.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aegis_memory.config import Settings
from aegis_memory.embeddings import Embedder, build_embedder
from aegis_memory.index.persistence import META_FILE
from aegis_memory.store import Store, open_store

META_MODEL = "embedding_model"
META_DIM = "embedding_dim"
#: The model an unfinished run moves to, and its vector size.
META_TARGET = "reindex_model"
META_TARGET_DIM = "reindex_dim"
#: The model recorded before the first unfinished run began (what the data was embedded with).
META_FROM = "reindex_from_model"
META_FROM_DIM = "reindex_from_dim"
#: JSON ``[project_id, row_id]`` of the last memory done, or ``null``.
META_CHECKPOINT = "reindex_checkpoint"
RUN_META = (META_TARGET, META_TARGET_DIM, META_FROM, META_FROM_DIM, META_CHECKPOINT)

DEFAULT_BATCH_SIZE = 256
MAX_BATCH_SIZE = 10_000
#: Passes over rows that a running server wrote with the old model meanwhile, before giving up.
MAX_PASSES = 5
#: pgvector's HNSW index takes at most this many dimensions.
MAX_POSTGRES_DIM = 2000
#: Files of the vector index snapshot (see ``aegis_memory.index.persistence``).
SNAPSHOT_PATTERNS = ("hnsw-*.bin", "attrs-*.npz", "vectors-*.npy", "strings-*.json")


class ReindexError(Exception):
    """A reason the re-embedding cannot go on, as a sentence for the operator."""


class NoDatabase(ReindexError):
    """The configured SQLite file does not exist (a wrong ``AEGIS_DATA_DIR``, most likely):
    reported rather than created empty."""


def unfinished_marker(from_model: str | None, target: str) -> str:
    """What the recorded model reads while a run is unfinished: it matches no real model (so
    every server refuses to start) and says, in the server's refusal, what is going on."""
    return f"{from_model or 'no model'} (unfinished `aegis reindex` to {target})"


@dataclass(slots=True)
class ReindexPlan:
    """Where the database stands relative to the configured model."""

    model: str
    dim: int
    #: The model the data was embedded with before any unfinished run (None: never recorded).
    recorded_model: str | None
    recorded_dim: int | None
    #: The target of an unfinished run, if there is one (this model: the run resumes).
    unfinished_target: str | None
    #: Where an unfinished run to this model stopped.
    checkpoint: tuple[str, int] | None
    total: int
    todo: int
    by_model: dict[str | None, int]
    #: Other Aegis processes connected to the database (PostgreSQL only; None: unknown).
    other_servers: int | None = None

    @property
    def skipped(self) -> int:
        """Memories already embedded with the target model."""
        return self.total - self.todo

    @property
    def resuming(self) -> bool:
        return self.unfinished_target == self.model

    @property
    def nothing_to_do(self) -> bool:
        if self.todo or self.unfinished_target is not None:
            return False
        if self.recorded_model is None:
            return self.total == 0  # a new database: the server records its model at start
        return self.recorded_model == self.model and self.recorded_dim == self.dim


@dataclass(slots=True)
class ReindexResult:
    model: str
    dim: int
    previous_model: str | None
    reembedded: int
    skipped: int
    total: int
    seconds: float
    status: str  # "done" | "nothing_to_do"

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "model": self.model,
            "dim": self.dim,
            "previous_model": self.previous_model,
            "reembedded": self.reembedded,
            "skipped": self.skipped,
            "total": self.total,
            "seconds": round(self.seconds, 3),
        }


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _checkpoint(value: str | None) -> tuple[str, int] | None:
    try:
        data = json.loads(value) if value else None
    except ValueError:
        return None
    if isinstance(data, list) and len(data) == 2:
        return str(data[0]), int(data[1])
    return None


def delete_index_snapshot(directory: Path) -> bool:
    """Delete the in-process vector index snapshot so the next start rebuilds it from the
    database; ``meta.json`` goes first (it is what makes a snapshot exist). Returns whether
    there was one."""
    meta = directory / META_FILE
    existed = meta.exists()
    meta.unlink(missing_ok=True)
    if directory.is_dir():
        for pattern in SNAPSHOT_PATTERNS:
            for path in directory.glob(pattern):
                path.unlink(missing_ok=True)
    return existed


class Reindex:
    """One ``aegis reindex`` over the configured database with the configured model.

    ``plan`` and ``run`` each open and close the store, so that they can run in separate event
    loops (the CLI asks for confirmation between them, outside any loop). ``reembedded``,
    ``processed`` and ``began`` tell what the current ``run`` did so far, for a report after an
    interrupt.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        embedder: Embedder | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
        self.settings = settings
        self.batch_size = batch_size
        # No LRU cache: every text is embedded once, a cache would only hold memory.
        self.embedder = embedder or build_embedder(
            settings.model_copy(update={"aegis_embedding_cache_size": 0}))
        self._dim: int | None = None
        self.reembedded = 0
        self.processed = 0
        #: Whether ``run`` has marked the database as being re-embedded (so an interrupted
        #: run has left something to resume, and servers refuse to start until it is).
        self.began = False

    @property
    def model(self) -> str:
        return self.embedder.model_name

    async def dim(self) -> int:
        if self._dim is None:  # OpenAI with an unknown model: one probe request
            self._dim = await asyncio.to_thread(lambda: self.embedder.dim)
        return self._dim

    async def _open(self) -> Store:
        url = self.settings.resolved_database_url
        if self.settings.is_sqlite and ":///" in url:
            path = Path(url.split(":///", 1)[1]).expanduser()
            if not path.exists():
                raise NoDatabase(
                    f"There is no Aegis database at {path}: set AEGIS_DATA_DIR (or "
                    "DATABASE_URL) to the one the server uses."
                )
        dim = await self.dim()
        store = open_store(self.settings)
        try:
            if store.dialect == "postgresql" and dim > MAX_POSTGRES_DIM:
                raise ReindexError(
                    f"Model '{self.model}' makes {dim}-dimensional vectors; PostgreSQL's HNSW "
                    f"index (pgvector) takes at most {MAX_POSTGRES_DIM}. Choose a smaller model."
                )
            await store.migrate(embedding_dim=dim)
        except BaseException:
            await store.close()
            raise
        return store

    async def _plan(self, store: Store) -> ReindexPlan:
        dim = await self.dim()
        meta = {key: await store.get_meta(key)
                for key in (META_MODEL, META_DIM, *RUN_META)}
        target = meta[META_TARGET] or None
        if target is not None:
            recorded, recorded_dim = meta[META_FROM] or None, _int(meta[META_FROM_DIM])
        else:
            recorded, recorded_dim = meta[META_MODEL], _int(meta[META_DIM])
        by_model = await store.embedding_model_counts()
        total = sum(by_model.values())
        other: int | None = None
        count_others = getattr(store, "other_aegis_connections", None)
        if count_others is not None:
            other = await count_others()
        return ReindexPlan(
            model=self.model, dim=dim, recorded_model=recorded, recorded_dim=recorded_dim,
            unfinished_target=target,
            checkpoint=_checkpoint(meta[META_CHECKPOINT]) if target == self.model else None,
            total=total, todo=total - by_model.get(self.model, 0), by_model=by_model,
            other_servers=other,
        )

    async def plan(self) -> ReindexPlan:
        store = await self._open()
        try:
            return await self._plan(store)
        finally:
            await store.close()

    async def run(
        self,
        on_batch: Callable[[int], None] | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> ReindexResult:
        """Re-embed what is not on the target model yet and switch the recorded model.

        ``on_batch(n)`` is called after each committed batch of ``n`` memories, ``on_status``
        with a few words when the work changes phase (the final switch can take a while on
        PostgreSQL, which rebuilds its vector index then). Raises ``EmbeddingError`` when the
        provider fails (progress so far is kept).
        """
        started = time.perf_counter()
        self.reembedded = self.processed = 0
        self.began = False
        store = await self._open()
        try:
            plan = await self._plan(store)
            if plan.nothing_to_do:
                return self._result(plan, started, "nothing_to_do")
            model, dim = plan.model, plan.dim
            await store.begin_reembedding(dim, {
                META_MODEL: unfinished_marker(plan.recorded_model, model),
                META_TARGET: model,
                META_TARGET_DIM: str(dim),
                META_FROM: plan.recorded_model or "",
                META_FROM_DIM: str(plan.recorded_dim or ""),
                META_CHECKPOINT: json.dumps(list(plan.checkpoint) if plan.checkpoint else None),
            })
            self.began = True
            cursor = plan.checkpoint
            rebuilds_index = store.dialect == "postgresql" and plan.recorded_dim != dim
            for _ in range(MAX_PASSES):
                if on_status is not None:
                    on_status("Re-embedding")
                await self._reembed_from(store, cursor, on_batch)
                if on_status is not None:
                    on_status("Rebuilding the vector index" if rebuilds_index else "Finishing")
                left = await store.finish_reembedding(
                    model, dim, {META_MODEL: model, META_DIM: str(dim)}, RUN_META)
                if not left:
                    break
                cursor = None  # rows written behind the checkpoint meanwhile: another pass
            else:
                raise ReindexError(
                    f"Memories keep being written with another model ({left} left after "
                    f"{MAX_PASSES} passes): is an Aegis server still running on this database? "
                    "Stop it and run `aegis reindex` again."
                )
            if self.settings.is_sqlite:
                delete_index_snapshot(self.settings.index_dir)
            return self._result(plan, started, "done")
        finally:
            await store.close()

    async def _reembed_from(
        self,
        store: Store,
        cursor: tuple[str, int] | None,
        on_batch: Callable[[int], None] | None,
    ) -> None:
        model, dim = self.model, await self.dim()
        while True:
            rows = await store.memories_to_reembed(model, cursor, self.batch_size)
            if not rows:
                return
            vectors = await asyncio.to_thread(self.embedder.embed, [r[2] for r in rows])
            vectors = np.asarray(vectors, dtype=np.float32)
            if vectors.shape != (len(rows), dim):
                raise ReindexError(
                    f"Model '{model}' returned vectors of shape {vectors.shape} for "
                    f"{len(rows)} texts; expected {dim} dimensions each."
                )
            cursor = (rows[-1][0], rows[-1][1])
            self.reembedded += await store.write_embeddings(
                [(project, row_id, chash, vector.tobytes())
                 for (project, row_id, _, chash), vector in zip(rows, vectors, strict=True)],
                model,
                {META_CHECKPOINT: json.dumps(list(cursor))},
            )
            self.processed += len(rows)
            if on_batch is not None:
                on_batch(len(rows))

    def _result(self, plan: ReindexPlan, started: float, status: str) -> ReindexResult:
        return ReindexResult(
            model=plan.model, dim=plan.dim, previous_model=plan.recorded_model,
            reembedded=self.reembedded, skipped=plan.skipped, total=plan.total,
            seconds=time.perf_counter() - started, status=status,
        )
