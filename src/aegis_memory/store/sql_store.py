"""The SQL implementation of the store, on SQLAlchemy Core.

Each operation is written once, as a plain function over a synchronous SQLAlchemy
``Connection`` inside one transaction, and marked ``@reads`` or ``@writes``. A backend decides
how to run it: the embedded SQLite store runs the whole function on a worker thread (one thread
hop per operation rather than one per statement, which is what makes aiosqlite slow), while a
server database can run the same function on an async driver through
``AsyncConnection.run_sync``. The store knows tables and transactions, nothing of scopes or
keys' rights: the service decides who may do what and hands the store plain records.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from aegis_memory.index import SearchFilter
from aegis_memory.store import browse
from aegis_memory.store import tables as t
from aegis_memory.store.neighbours import embeddings, stream_links
from aegis_memory.store.records import (
    TEXT_SCORE_ROWS,
    ApiKeyRecord,
    ChangeBatch,
    DeltaWrite,
    EventRecord,
    FeatureRecord,
    ImportOutcome,
    InsertOutcome,
    MemoryRecord,
    NewMemory,
    SessionRecord,
    TextSearch,
    VoteRecord,
    searchable,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

_MEMORY_COLUMNS = [c for c in t.memories.c if c.name not in ("embedding", "dedup_key")]
#: The columns a MemoryRecord is read from (everything but the vector and the dedup key).
MEMORY_COLUMNS = _MEMORY_COLUMNS

# Hot-path statements built once: constructing a 27-column SELECT costs more than running it.
_M = t.memories.c
# SQLite: by primary key only; with a project_id term as well its planner may pick the
# (project, namespace, agent) index and scan the whole project. The project is checked in Python.
_BY_ROW_IDS = select(*_MEMORY_COLUMNS).where(_M.row_id.in_(bindparam("row_ids", expanding=True)))
# PostgreSQL: the primary key is (project_id, row_id), so the project is part of the lookup.
_BY_TENANT_ROW_IDS = select(*_MEMORY_COLUMNS).where(
    _M.project_id == bindparam("project_id"),
    _M.row_id.in_(bindparam("row_ids", expanding=True)),
)
_BY_ID = select(*_MEMORY_COLUMNS).where(
    _M.project_id == bindparam("project_id"), _M.id == bindparam("memory_id")
)
_BY_ID_WITH_EMBEDDING = select(*_MEMORY_COLUMNS, _M.embedding).where(
    _M.project_id == bindparam("project_id"), _M.id == bindparam("memory_id")
)
_BY_DEDUP_KEYS = select(_M.dedup_key, *_MEMORY_COLUMNS).where(
    _M.project_id == bindparam("project_id"),
    _M.dedup_key.in_(bindparam("keys", expanding=True)),
    or_(_M.expires_at.is_(None), _M.expires_at > bindparam("now")),
)
_BY_DEDUP_KEY = select(*_MEMORY_COLUMNS).where(
    _M.project_id == bindparam("project_id"), _M.dedup_key == bindparam("dedup_key")
)
_RELEASE_EXPIRED = (
    update(t.memories)
    .where(
        _M.project_id == bindparam("b_project_id"),
        _M.dedup_key.in_(bindparam("b_keys", expanding=True)),
        _M.expires_at.is_not(None),
        _M.expires_at <= bindparam("b_now"),
    )
    .values(dedup_key=None, change_seq=bindparam("b_seq"))
)
_NEXT_SEQ = (
    update(t.counters)
    .where(t.counters.c.name == "memory_seq")
    .values(value=t.counters.c.value + 1)
    .returning(t.counters.c.value)
)
_CHANGES_SINCE = (
    select(*_MEMORY_COLUMNS, _M.embedding)
    .where(_M.change_seq > bindparam("seq"))
    .order_by(_M.change_seq, _M.row_id)
    .limit(bindparam("limit"))
)
_CHANGES_AFTER_CURSOR = (
    select(*_MEMORY_COLUMNS, _M.embedding)
    .where(
        or_(
            _M.change_seq > bindparam("seq"),
            and_(_M.change_seq == bindparam("seq"), _M.row_id > bindparam("row_id")),
        )
    )
    .order_by(_M.change_seq, _M.row_id)
    .limit(bindparam("limit"))
)
_TOMBSTONES_SINCE = select(t.tombstones.c.row_id).where(t.tombstones.c.seq > bindparam("seq"))
_CURRENT_SEQ = select(t.counters.c.value).where(t.counters.c.name == "memory_seq")
_KEY_BY_HASH = select(t.api_keys).where(t.api_keys.c.key_hash == bindparam("key_hash"))

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", bound="SqlStore")


class DuplicateError(Exception):
    """A unique constraint said no (a session or feature that already exists)."""


class StaleRow(Exception):
    """A change was decided from values of a memory's row that have changed since (another
    request committed in between): the caller reads the row again and decides again."""


def _operation(kind: str) -> Callable[..., Any]:
    def decorate(
        fn: Callable[Concatenate[S, Connection, P], R],
    ) -> Callable[Concatenate[S, P], Awaitable[R]]:
        @functools.wraps(fn)
        async def run(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
            call: Callable[[Connection], R] = lambda conn: fn(self, conn, *args, **kwargs)  # noqa: E731
            if kind == "point":
                return await self._run_point(call)
            if kind == "replica":
                return await self._run_replica(call)
            return await self._run(kind == "write", call)

        return run

    return decorate


#: One read transaction (a consistent snapshot).
reads = _operation("read")
#: One write transaction: all of it is committed, or none of it.
writes = _operation("write")
#: A read of a few rows by key, on the hot path of every request (auth, hydrating hits): a
#: backend may run it without a thread hop when that is cheaper than the hop.
point_reads = _operation("point")
#: A read that tolerates replication lag (dashboards, evaluation metrics): a backend with a read
#: replica runs it there. Anything a client may read right after writing it must not use this.
replica_reads = _operation("replica")


def _memory_from_row(row: Any, with_embedding: bool = False) -> MemoryRecord:
    m = row._mapping
    return MemoryRecord(
        row_id=m["row_id"],
        id=m["id"],
        project_id=m["project_id"],
        namespace=m["namespace"],
        agent_id=m["agent_id"],
        user_id=m["user_id"],
        content=m["content"],
        content_hash=m["content_hash"],
        scope=m["scope"],
        shared_with_agents=list(m["shared_with_agents"] or []),
        memory_type=m["memory_type"],
        metadata=dict(m["meta"] or {}),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        expires_at=m["expires_at"],
        bullet_helpful=m["bullet_helpful"],
        bullet_harmful=m["bullet_harmful"],
        is_deprecated=bool(m["is_deprecated"]),
        deprecated_by=m["deprecated_by"],
        superseded_by=m["superseded_by"],
        deprecation_reason=m["deprecation_reason"],
        deprecated_at=m["deprecated_at"],
        error_pattern=m["error_pattern"],
        derived_from_agents=list(m["derived_from_agents"] or []),
        coordination_metadata=dict(m["coordination_metadata"] or {}),
        embedding_model=m["embedding_model"],
        embedding=m["embedding"] if with_embedding else None,
        change_seq=m["change_seq"],
    )


def _vote_of_memory(v: Any, m: Any) -> Any:
    """The join of a vote to its memory, on the whole tenant key (a distributed database keeps
    a project's votes and memories together and can only join them on it)."""
    return and_(m.project_id == v.project_id, m.row_id == v.memory_row_id)


def _memory_values(item: NewMemory, seq: int) -> dict[str, Any]:
    """Column values for inserting a new or restored memory."""
    values = {c: getattr(item, c) for c in NewMemory.__slots__ if c != "metadata"}
    values["embedding"] = searchable(item.embedding)
    values["meta"] = item.metadata
    values["updated_at"] = item.updated_at or item.created_at
    values["change_seq"] = seq
    if item.is_deprecated:
        values["dedup_key"] = None
    return values


#: The columns a bulk import writes, in the order of its prepared rows (`_import_rows`).
_IMPORT_COLUMNS = tuple(c.name for c in t.memories.c if c.name != "row_id")
#: Those of them SQLAlchemy's JSON type would serialise (with ``json.dumps``) on the way in.
_IMPORT_JSON = tuple(c for c in _IMPORT_COLUMNS if isinstance(t.memories.c[c].type, JSON))
_import_row = operator.itemgetter(*_IMPORT_COLUMNS)


def _json_text(value: Any) -> str:
    """``json.dumps``, as SQLAlchemy's JSON type applies it, with the usual empty values
    precomputed (``json.dumps`` is a couple of microseconds, four columns a row)."""
    if not value:
        if isinstance(value, list):
            return "[]"
        if isinstance(value, dict):
            return "{}"
    return json.dumps(value)


def _import_rows(items: Sequence[NewMemory], seq: int) -> list[tuple[Any, ...]]:
    """Driver parameters for a bulk import, one tuple per memory in `_IMPORT_COLUMNS` order:
    `_memory_values`, serialised as SQLAlchemy's JSON type would, without its per-row,
    per-column processing (which was most of an import's insert time)."""
    rows = []
    for item in items:
        values = _memory_values(item, seq)
        for column in _IMPORT_JSON:
            values[column] = _json_text(values[column])
        rows.append(_import_row(values))
    return rows


#: Public name for backends that build their own queries (the PostgreSQL vector search).
memory_from_row = _memory_from_row


def _key_from_row(row: Any) -> ApiKeyRecord:
    m = row._mapping
    return ApiKeyRecord(**{k: m[k] for k in ApiKeyRecord.__slots__})


def _session_from_row(row: Any) -> SessionRecord:
    m = dict(row._mapping)
    m["metadata"] = m.pop("meta") or {}
    m.pop("row_id", None)
    return SessionRecord(**m)


def _session_values(record: SessionRecord) -> dict[str, Any]:
    values = {k: getattr(record, k) for k in SessionRecord.__slots__ if k != "metadata"}
    values["meta"] = record.metadata
    return values


def _feature_from_row(row: Any) -> FeatureRecord:
    m = dict(row._mapping)
    m.pop("row_id", None)
    m["passes"] = bool(m["passes"])
    m["test_steps"] = list(m["test_steps"] or [])
    return FeatureRecord(**m)


def _upgrade(conn: Connection, *, embedding_dim: int | None = None) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    if embedding_dim:
        cfg.attributes["embedding_dim"] = embedding_dim
    command.upgrade(cfg, "head")


class SqlStore:
    """The operations; subclasses say how a transaction runs (``_run``) and the dialect bits."""

    dialect: str = "generic"
    #: Whether primary keys start with project_id (PostgreSQL, migration 0003); lookups by row
    #: id then name the project so they can use the key.
    tenant_primary_keys: bool = False

    async def _run(self, write: bool, call: Callable[[Connection], R]) -> R:
        raise NotImplementedError

    async def _run_point(self, call: Callable[[Connection], R]) -> R:
        return await self._run(False, call)

    async def _run_replica(self, call: Callable[[Connection], R]) -> R:
        return await self._run(False, call)

    # ------------------------------------------------------------------ lifecycle

    async def migrate(self, *, embedding_dim: int | None = None) -> None:
        """Bring the schema to the newest revision (Alembic), in one write transaction.

        ``embedding_dim`` sizes the vector column on backends that store vectors typed.
        """
        await self._run(True, lambda conn: _upgrade(conn, embedding_dim=embedding_dim))

    async def close(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ hybrid search

    def _ranked_matches(
        self, conn: Connection, flt: SearchFilter, terms: Sequence[str], limit: int
    ) -> dict[int, float]:
        """The dialect's full-text search: text scores of the best ``limit`` rows ``flt``
        allows that match any of ``terms``, best first."""
        raise NotImplementedError

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
        """Full-text leg of a search, and the stream neighbours of its candidates, in one
        transaction (one trip to a database thread, or to PostgreSQL). ``with_vectors=False``
        skips reading the top rows' vectors (a text-only search has no use for them).
        ``inline`` runs it
        where point reads run (on SQLite: on the event loop, which an idle server can
        afford for the 1-3 ms it takes, and which saves the thread round trip)."""

        def run(conn: Connection) -> TextSearch:
            scores = self._ranked_matches(conn, flt, terms, max(k, TEXT_SCORE_ROWS)) \
                if terms else {}
            top = list(scores)[:k]  # dicts keep the statement's order
            vectors = embeddings(conn, flt.project_id, top) if with_vectors else {}
            links: dict[int, tuple[int | None, int | None]] = {}
            if neighbours_of is not None:
                links, more = stream_links(conn, flt, [*neighbours_of, *top], self.dialect)
                vectors.update(more)
            return TextSearch(top, scores, links, vectors)

        return await (self._run_point(run) if inline else self._run(False, run))

    # ------------------------------------------------------------------ dialect hooks

    def _before_memory_inserts(
        self, conn: Connection, project_ids: Iterable[str], *, bulk: bool = False
    ) -> None:
        """Called in a write transaction before it inserts memories of these projects (SQLite
        creates a project's full-text table there). ``bulk``: the transaction will report
        the rows it inserted to ``_after_bulk_memory_inserts``."""

    def _after_bulk_memory_inserts(
        self, conn: Connection, project_id: str, rows: Sequence[tuple[int, str]]
    ) -> None:
        """The ``(row id, content)`` of the memories a bulk insert inserted, in its
        transaction."""

    @staticmethod
    def _dialect_insert(table: Any) -> Any:
        """The dialect's INSERT with ON CONFLICT (SQLite's and PostgreSQL's share the API)."""
        raise NotImplementedError

    def _insert_ignore(self, table: Any, conflict: Sequence[str]) -> Any:
        """INSERT .. ON CONFLICT DO NOTHING; an empty ``conflict`` means any unique key (used
        by idempotent imports)."""
        return self._dialect_insert(table).on_conflict_do_nothing(
            index_elements=list(conflict) or None
        )

    def _upsert(
        self,
        table: Any,
        conflict: Sequence[str],
        values: dict[str, Any],
        update_columns: Sequence[str] | None = None,
    ) -> Any:
        stmt = self._dialect_insert(table).values(**values)
        cols = update_columns or [k for k in values if k not in conflict]
        return stmt.on_conflict_do_update(
            index_elements=list(conflict), set_={c: stmt.excluded[c] for c in cols}
        )

    # ------------------------------------------------------------------ helpers

    def _next_seq(self, conn: Connection) -> int:
        """The change number of this write transaction (the index catches up by it)."""
        return int(conn.execute(_NEXT_SEQ).scalar_one())

    def _import_statement(self, conn: Connection) -> str:
        """The bulk import's INSERT .. ON CONFLICT DO NOTHING as driver SQL, compiled once
        for this dialect: positional parameters in `_IMPORT_COLUMNS` order, so that rows go
        to the driver's ``executemany`` as plain tuples."""
        sql = getattr(self, "_import_sql", None)
        if sql is None:
            stmt = self._insert_ignore(t.memories, []).values(
                {c: bindparam(c, type_=t.memories.c[c].type) for c in _IMPORT_COLUMNS}
            )
            # for_executemany: no implicit RETURNING (PostgreSQL adds one for single rows).
            compiled = stmt.compile(dialect=conn.dialect, for_executemany=True)
            order = compiled.positiontup
            if order is None or tuple(order) != _IMPORT_COLUMNS:
                raise RuntimeError(  # pragma: no cover - a dialect with named parameters
                    f"bulk import needs positional parameters in column order, got {order}"
                )
            sql = self._import_sql = compiled.string
        return sql

    def _insert_memory_statement(self) -> Any:
        """INSERT .. ON CONFLICT (project, dedup key) DO NOTHING RETURNING row_id, built once."""
        stmt = getattr(self, "_insert_memory_stmt", None)
        if stmt is None:
            stmt = self._insert_ignore(t.memories, ["project_id", "dedup_key"]).returning(
                t.memories.c.row_id
            )
            self._insert_memory_stmt = stmt
        return stmt

    @staticmethod
    def _insert_events(conn: Connection, events: Iterable[EventRecord]) -> None:
        rows = [
            {
                "id": e.id,
                "project_id": e.project_id,
                "namespace": e.namespace,
                "event_type": e.event_type,
                "agent_id": e.agent_id,
                "memory_ids": e.memory_ids,
                "task_id": e.task_id,
                "retrieval_event_id": e.retrieval_event_id,
                "payload": e.payload,
                "created_at": e.created_at,
            }
            for e in events
        ]
        if rows:
            conn.execute(insert(t.events), rows)

    @staticmethod
    def _lock_memory_row(conn: Connection, which: Any, project_id: str) -> None:
        """Lock one memory row until the transaction ends (PostgreSQL; SQLite's writer holds
        the whole database already)."""
        conn.execute(
            select(_M.row_id).where(_M.project_id == project_id, which)
            .with_for_update(key_share=True)
        ).first()

    @staticmethod
    def _lock_memory_rows(conn: Connection, project_id: str, memory_ids: Sequence[str]) -> None:
        """Lock these memory rows now, in id order (PostgreSQL; a no-op on SQLite, whose
        writer holds the whole database). Transactions changing several rows then take their
        locks in one global order, so two of them listing the same rows differently queue up
        instead of deadlocking."""
        conn.execute(
            select(_M.row_id)
            .where(_M.project_id == project_id, _M.id.in_(sorted(set(memory_ids))))
            .order_by(_M.id)
            .with_for_update(key_share=True)
        ).all()

    @staticmethod
    def _settle_against_row(conn: Connection, project_id: str, memory_id: str | None,
                            values: dict[str, Any]) -> None:
        """Resolve the parts of a change that depend on the row as it is now, read once in
        this transaction under a row lock (nothing to read for a plain change):

        * ``expected``: the columns, and the values read, that the service derived the change
          from. If one has moved, the change is refused (``StaleRow``) rather than written
          over a newer state: a content update must not give its dedup key back to a memory
          deprecated meanwhile, a scope change must not write back a share list a handoff has
          just extended.
        * ``metadata_patch``: merged into the current ``meta``; merged from an earlier read,
          two concurrent patches would each drop the other's keys.
        """
        expected = values.pop("expected", None) or {}
        patch = values.pop("metadata_patch", None)
        if not expected and patch is None:
            return
        row = conn.execute(
            select(_M.meta, *(_M[name] for name in expected))
            .where(_M.project_id == project_id, _M.id == memory_id)
            .with_for_update(key_share=True)
        ).first()
        if row is None:  # the UPDATE finds no row and reports it
            return
        if any(row._mapping[name] != value for name, value in expected.items()):
            raise StaleRow(memory_id)
        if patch is not None:
            values["meta"] = {**(row.meta or {}), **patch}

    # ------------------------------------------------------------------ meta

    @reads
    def get_meta(self, conn: Connection, key: str) -> str | None:
        result = conn.execute(
            select(t.store_meta.c.value).where(t.store_meta.c.key == key)
        )
        return result.scalar_one_or_none()

    @writes
    def set_meta(self, conn: Connection, key: str, value: str) -> None:
        conn.execute(self._upsert(t.store_meta, ["key"], {"key": key, "value": value}))

    # ------------------------------------------------------------------ projects and keys

    @writes
    def ensure_project(self, conn: Connection, project_id: str, now: float) -> None:
        conn.execute(
            self._insert_ignore(t.projects, ["id"]).values(id=project_id, created_at=now)
        )

    @reads
    def list_projects(self, conn: Connection) -> list[str]:
        result = conn.execute(select(t.projects.c.id).order_by(t.projects.c.id))
        return list(result.scalars())

    @writes
    def insert_key(self, conn: Connection, key: ApiKeyRecord) -> None:
        conn.execute(
            self._insert_ignore(t.projects, ["id"]).values(
                id=key.project_id, created_at=key.created_at
            )
        )
        values = {k: getattr(key, k) for k in key.__slots__}
        conn.execute(insert(t.api_keys).values(**values))

    @point_reads
    def find_key(self, conn: Connection, key_hash: str) -> ApiKeyRecord | None:
        row = conn.execute(_KEY_BY_HASH, {"key_hash": key_hash}).first()
        return _key_from_row(row) if row else None

    @reads
    def list_keys(self, conn: Connection, project_id: str) -> list[ApiKeyRecord]:
        result = conn.execute(
            select(t.api_keys)
            .where(t.api_keys.c.project_id == project_id)
            .order_by(t.api_keys.c.created_at)
        )
        return [_key_from_row(r) for r in result]

    @writes
    def revoke_key(self, conn: Connection, project_id: str, key_id: str, now: float) -> bool:
        result = conn.execute(
            update(t.api_keys)
            .where(
                t.api_keys.c.project_id == project_id,
                t.api_keys.c.id == key_id,
                t.api_keys.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        return result.rowcount > 0

    # ------------------------------------------------------------------ memories: writes

    @writes
    def insert_memories(
        self, conn: Connection,
        items: Sequence[NewMemory],
        events: Sequence[EventRecord | None],
        now: float,
    ) -> list[InsertOutcome]:
        """Insert memories in one transaction; a duplicate ``dedup_key`` yields the existing row.

        The unique index decides, not a prior lookup, so concurrent identical adds cannot both
        win. ``events[i]`` is written only when ``items[i]`` really was inserted.
        """
        outcomes: list[InsertOutcome] = []
        seq = self._next_seq(conn)
        self._before_memory_inserts(conn, (i.project_id for i in items))
        # An expired duplicate must not swallow a fresh add: release its dedup key first.
        conn.execute(
            _RELEASE_EXPIRED,
            {"b_project_id": items[0].project_id, "b_keys": [i.dedup_key for i in items],
             "b_now": now, "b_seq": seq},
        )
        insert_stmt = self._insert_memory_statement()
        written: list[EventRecord] = []
        for item, event in zip(items, events, strict=True):
            row_id = conn.execute(insert_stmt, _memory_values(item, seq)).scalar_one_or_none()
            if row_id is not None:
                outcomes.append(InsertOutcome(id=item.id, row_id=row_id, inserted=True))
                if event is not None:
                    written.append(event)
                continue
            existing = conn.execute(
                _BY_DEDUP_KEY, {"project_id": item.project_id, "dedup_key": item.dedup_key}
            ).first()
            if existing is None:  # pragma: no cover - the conflict row vanished mid-txn
                raise RuntimeError("dedup conflict without an existing row")
            record = _memory_from_row(existing)
            outcomes.append(
                InsertOutcome(id=record.id, row_id=record.row_id, inserted=False, record=record)
            )
        self._insert_events(conn, written)
        return outcomes

    @replica_reads
    def eval_inputs(
        self, conn: Connection, project_id: str, namespace: str | None, since: float
    ) -> dict[str, Any]:
        """Raw material for the evaluation metrics: votes, feature outcomes and counts."""
        v, m, e, f = t.votes.c, _M, t.events.c, t.features.c
        in_scope = [m.project_id == project_id]
        if namespace is not None:
            in_scope.append(m.namespace == namespace)
        votes = conn.execute(
            select(v.task_id, v.vote, v.updated_at)
            .select_from(t.votes.join(t.memories, _vote_of_memory(v, m)))
            .where(*in_scope, v.updated_at >= since)
        ).all()
        ev_scope = [e.project_id == project_id, e.created_at >= since]
        if namespace is not None:
            ev_scope.append(e.namespace == namespace)
        feature_events = conn.execute(
            select(e.payload, e.created_at)
            .where(*ev_scope, e.event_type == "feature_updated")
            .order_by(e.created_at, e.row_id)
        ).all()
        queries = conn.execute(
            select(func.count()).where(
                *ev_scope, e.event_type.in_(["query", "query_cross_agent", "playbook"]))
        ).scalar_one()
        f_scope = [f.project_id == project_id]
        if namespace is not None:
            f_scope.append(f.namespace == namespace)
        features = conn.execute(select(f.feature_id, f.passes, f.status).where(*f_scope)).all()
        live, polluting = conn.execute(
            select(func.count(), func.sum(case((m.bullet_harmful > m.bullet_helpful, 1),
                                               else_=0)))
            .where(*in_scope, m.is_deprecated.is_(False))
        ).one()
        return {
            "votes": [(r[0], r[1], r[2]) for r in votes],
            "feature_events": [(dict(r[0] or {}), r[1]) for r in feature_events],
            "queries": int(queries),
            "features": [(r[0], bool(r[1]), r[2]) for r in features],
            "memories": int(live or 0),
            "polluting": int(polluting or 0),
        }

    @replica_reads
    def dashboard_counts(
        self, conn: Connection, project_id: str, namespace: str | None, now: float
    ) -> dict[str, Any]:
        """Aggregates for the dashboard overview (live, non-expired memories)."""
        m, v = _M, t.votes.c
        where = [m.project_id == project_id, or_(m.expires_at.is_(None), m.expires_at > now)]
        if namespace is not None:
            where.append(m.namespace == namespace)

        def grouped(column: Any, limit: int | None = None) -> list[tuple[Any, int]]:
            query = (select(column, func.count()).where(*where, m.is_deprecated.is_(False))
                     .group_by(column).order_by(func.count().desc(), column))
            if limit:
                query = query.limit(limit)
            return [(k, int(n)) for k, n in conn.execute(query).all()]

        helpful, harmful = conn.execute(
            select(func.coalesce(func.sum(m.bullet_helpful), 0),
                   func.coalesce(func.sum(m.bullet_harmful), 0)).where(*where)
        ).one()
        deprecated = conn.execute(
            select(func.count()).where(*where, m.is_deprecated.is_(True))).scalar_one()
        voters = conn.execute(
            select(func.count(func.distinct(v.voter_agent_id)))
            .select_from(t.votes.join(t.memories, _vote_of_memory(v, m))).where(*where)
        ).scalar_one()
        return {
            "by_type": grouped(m.memory_type), "by_scope": grouped(m.scope),
            "top_agents": grouped(m.agent_id, 10), "helpful": int(helpful),
            "harmful": int(harmful), "deprecated": int(deprecated), "voters": int(voters),
        }

    @reads
    def browse_memories(
        self, conn: Connection, flt: SearchFilter, *, only_deprecated: bool = False,
        contains: str | None = None, order: browse.BrowseOrder = "newest", limit: int = 25,
        offset: int = 0,
    ) -> tuple[list[MemoryRecord], int]:
        """A page of the memories ``flt`` allows and their total (see ``store/browse.py``).
        On the primary: a row deleted a moment ago must not come back on the next page."""
        return browse.browse_page(
            conn, self.dialect, _MEMORY_COLUMNS, _memory_from_row, flt,
            only_deprecated=only_deprecated, contains=contains, order=order, limit=limit,
            offset=offset)

    @replica_reads
    def memory_summary(self, conn: Connection, flt: SearchFilter) -> dict[str, Any]:
        """``dashboard_counts`` over the memories ``flt`` allows (see ``store/browse.py``)."""
        return browse.summary(conn, self.dialect, flt)

    @replica_reads
    def memory_facets(self, conn: Connection, project_id: str) -> dict[str, list[str]]:
        """Namespaces and owning agents of a project, for pickers (see ``store/browse.py``)."""
        return browse.facets(conn, project_id)

    @replica_reads
    def events_page(
        self,
        conn: Connection,
        project_id: str,
        *,
        namespace: str | None = None,
        event_type: str | None = None,
        agent_id: str | None = None,
        memory_id: str | None = None,
        since: float | None = None,
        before_row: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Events newest first; ``before_row`` continues from a previous page."""
        e = t.events.c
        query = select(t.events).where(e.project_id == project_id)
        if namespace is not None:
            query = query.where(e.namespace == namespace)
        if event_type is not None:
            query = query.where(e.event_type == event_type)
        if agent_id is not None:
            query = query.where(e.agent_id == agent_id)
        if memory_id is not None:
            # Portable "JSON list contains": ids are hex, so the quoted form is unambiguous.
            query = query.where(cast(e.memory_ids, String).like(f'%"{memory_id}"%'))
        if since is not None:
            query = query.where(e.created_at >= since)
        if before_row is not None:
            query = query.where(e.row_id < before_row)
        rows = conn.execute(query.order_by(e.row_id.desc()).limit(limit)).all()
        return [dict(r._mapping) for r in rows]

    @writes
    def apply_delta(
        self, conn: Connection, project_id: str, writes: Sequence[DeltaWrite], now: float
    ) -> list[InsertOutcome]:
        """Apply planned inserts and column changes in one transaction (all or nothing).

        Returns one outcome per write; an insert that hits a live duplicate reports the
        existing row (``inserted=False``). A change to a row that vanished, or that would make
        a duplicate, raises and rolls the whole transaction back.
        """
        changed = [w.memory_id for w in writes if w.new is None and w.memory_id]
        if len(changed) > 1:
            self._lock_memory_rows(conn, project_id, changed)
        seq = self._next_seq(conn)
        if any(w.new is not None for w in writes):
            self._before_memory_inserts(conn, [project_id])
        insert_stmt = self._insert_memory_statement()
        outcomes: list[InsertOutcome] = []
        events: list[EventRecord] = []
        for w in writes:
            if w.new is not None:
                row_id = conn.execute(insert_stmt, _memory_values(w.new, seq)).scalar_one_or_none()
                if row_id is None:
                    existing = conn.execute(
                        _BY_DEDUP_KEY, {"project_id": project_id, "dedup_key": w.new.dedup_key}
                    ).first()
                    if existing is None:  # pragma: no cover - conflict row vanished mid-txn
                        raise RuntimeError("dedup conflict without an existing row")
                    record = _memory_from_row(existing)
                    outcomes.append(InsertOutcome(record.id, record.row_id, False, record))
                    continue
                outcomes.append(InsertOutcome(w.new.id, row_id, True))
            else:
                values = {("meta" if k == "metadata" else k): v for k, v in w.changes.items()}
                self._settle_against_row(conn, project_id, w.memory_id, values)
                if "embedding" in values:
                    values["embedding"] = searchable(values["embedding"])
                values["change_seq"] = seq
                try:
                    row = conn.execute(
                        update(t.memories)
                        .where(_M.project_id == project_id, _M.id == w.memory_id)
                        .values(**values)
                        .returning(_M.row_id)
                    ).first()
                except IntegrityError as exc:
                    raise DuplicateError(w.memory_id or "") from exc
                if row is None:
                    raise LookupError(w.memory_id)
                outcomes.append(InsertOutcome(w.memory_id or "", row[0], True))
            if w.event is not None:
                events.append(w.event)
        self._insert_events(conn, events)
        return outcomes

    @reads
    def memories_by_error_pattern(
        self, conn: Connection, project_id: str, namespace: str, pattern: str
    ) -> list[MemoryRecord]:
        """Memories recording a given error pattern, with embeddings (for exact ranking)."""
        rows = conn.execute(
            select(*_MEMORY_COLUMNS, _M.embedding).where(
                _M.project_id == project_id,
                _M.namespace == namespace,
                _M.error_pattern == pattern,
            )
        )
        return [_memory_from_row(r, True) for r in rows]

    @writes
    def update_memory(
        self, conn: Connection,
        project_id: str,
        memory_id: str,
        changes: dict[str, Any],
        event: EventRecord | None,
    ) -> MemoryRecord | None:
        """Apply column changes (already decided by the service) and bump the change sequence."""
        try:
            seq = self._next_seq(conn)
            values = {("meta" if k == "metadata" else k): v for k, v in changes.items()}
            self._settle_against_row(conn, project_id, memory_id, values)
            if "embedding" in values:
                values["embedding"] = searchable(values["embedding"])
            values["change_seq"] = seq
            result = conn.execute(
                update(t.memories)
                .where(t.memories.c.project_id == project_id, t.memories.c.id == memory_id)
                .values(**values)
                .returning(*_MEMORY_COLUMNS)
            )
            row = result.first()
            if row is None:
                return None
            if event is not None:
                self._insert_events(conn, [event])
            return _memory_from_row(row)
        except IntegrityError as exc:
            raise DuplicateError(memory_id) from exc

    @writes
    def set_shared_with(
        self,
        conn: Connection,
        project_id: str, memory_ids: Sequence[str], agent_id: str, now: float
    ) -> None:
        """Add ``agent_id`` to each memory's share list (handoff with ``share=true``). The
        lists are read under row locks (in id order): two handoffs sharing one memory with
        different agents at once would otherwise each write back a list without the other."""
        seq = self._next_seq(conn)
        rows = conn.execute(
            select(_M.id, _M.shared_with_agents, _M.scope)
            .where(_M.project_id == project_id, _M.id.in_(memory_ids))
            .order_by(_M.id)
            .with_for_update(key_share=True)
        )
        for mid, shared, scope in rows.all():
            shared = list(shared or [])
            if scope == "global" or agent_id in shared:
                continue
            shared.append(agent_id)
            conn.execute(
                update(t.memories)
                .where(t.memories.c.project_id == project_id, t.memories.c.id == mid)
                .values(
                    shared_with_agents=shared,
                    scope="agent-shared",
                    updated_at=now,
                    change_seq=seq,
                )
            )

    @writes
    def delete_memory(
        self, conn: Connection, project_id: str, memory_id: str, event: EventRecord | None
    ) -> bool:
        seq = self._next_seq(conn)
        result = conn.execute(
            delete(t.memories)
            .where(t.memories.c.project_id == project_id, t.memories.c.id == memory_id)
            .returning(t.memories.c.row_id)
        )
        row_id = result.scalar_one_or_none()
        if row_id is None:
            return False
        conn.execute(delete(t.votes).where(
            t.votes.c.project_id == project_id, t.votes.c.memory_row_id == row_id))
        conn.execute(insert(t.tombstones).values(seq=seq, row_id=row_id))
        if event is not None:
            self._insert_events(conn, [event])
        return True

    @writes
    def upsert_vote(
        self, conn: Connection, project_id: str, vote: VoteRecord, event: EventRecord | None
    ) -> tuple[int, int]:
        """Record one vote per (memory, voter, task); recount the memory's counters atomically.

        The memory's row is locked first: under PostgreSQL's READ COMMITTED two votes would
        otherwise each count the votes without the other's and the later commit would write
        a counter one short (a lost update, found by tests/reliability/test_concurrency.py).
        """
        seq = self._next_seq(conn)
        self._lock_memory_row(conn, t.memories.c.row_id == vote.memory_row_id, project_id)
        conn.execute(
            self._upsert(
                t.votes,
                ["project_id", "memory_row_id", "voter_agent_id", "task_id"],
                {
                    "project_id": project_id,
                    "memory_row_id": vote.memory_row_id,
                    "voter_agent_id": vote.voter_agent_id,
                    "task_id": vote.task_id,
                    "vote": vote.vote,
                    "context": vote.context,
                    "created_at": vote.created_at,
                    "updated_at": vote.updated_at,
                },
                update_columns=("vote", "context", "updated_at"),
            )
        )
        counts = dict(
            (
                conn.execute(
                    select(t.votes.c.vote, func.count())
                    .where(t.votes.c.project_id == project_id,
                           t.votes.c.memory_row_id == vote.memory_row_id)
                    .group_by(t.votes.c.vote)
                )
            ).all()
        )
        helpful, harmful = int(counts.get("helpful", 0)), int(counts.get("harmful", 0))
        conn.execute(
            update(t.memories)
            .where(
                t.memories.c.project_id == project_id,
                t.memories.c.row_id == vote.memory_row_id,
            )
            .values(bullet_helpful=helpful, bullet_harmful=harmful, change_seq=seq)
        )
        if event is not None:
            self._insert_events(conn, [event])
        return helpful, harmful

    @writes
    def add_event(self, conn: Connection, event: EventRecord) -> None:
        self._insert_events(conn, [event])

    @writes
    def add_events(self, conn: Connection, events: Sequence[EventRecord]) -> None:
        self._insert_events(conn, events)

    @writes
    def purge_expired(self, conn: Connection, now: float, limit: int = 1000) -> int:
        """Hard-delete memories whose TTL passed (reads already hide them)."""
        # SKIP LOCKED: API replicas purging at once take disjoint rows (SQLite has one writer
        # and no row locks; the clause is left out there).
        expired = conn.execute(
            select(_M.project_id, _M.row_id)
            .where(_M.expires_at.is_not(None), _M.expires_at <= now)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not expired:
            return 0
        seq = self._next_seq(conn)
        by_project: dict[str, list[int]] = {}
        for project_id, row_id in expired:
            by_project.setdefault(project_id, []).append(row_id)
        for project_id, rows in by_project.items():
            v = t.votes.c
            conn.execute(delete(t.votes).where(
                v.project_id == project_id, v.memory_row_id.in_(rows)))
            conn.execute(delete(t.memories).where(_M.project_id == project_id,
                                                  _M.row_id.in_(rows)))
        conn.execute(insert(t.tombstones), [{"seq": seq, "row_id": r} for _, r in expired])
        return len(expired)

    # ------------------------------------------------------------------ memories: reads

    @point_reads
    def find_by_dedup_keys(
        self, conn: Connection, project_id: str, keys: Sequence[str], now: float
    ) -> dict[str, MemoryRecord]:
        """Existing live memories for these dedup keys (checked before any embedding work)."""
        if not keys:
            return {}
        result = conn.execute(
            _BY_DEDUP_KEYS, {"project_id": project_id, "keys": list(keys), "now": now}
        )
        return {row._mapping["dedup_key"]: _memory_from_row(row) for row in result}

    @point_reads
    def get_memory(
        self, conn: Connection, project_id: str, memory_id: str, *, with_embedding: bool = False
    ) -> MemoryRecord | None:
        stmt = _BY_ID_WITH_EMBEDDING if with_embedding else _BY_ID
        row = conn.execute(stmt, {"project_id": project_id, "memory_id": memory_id}).first()
        return _memory_from_row(row, with_embedding) if row else None

    @point_reads
    def get_memories_by_row_ids(
        self, conn: Connection, project_id: str, row_ids: Sequence[int]
    ) -> dict[int, MemoryRecord]:
        if not row_ids:
            return {}
        if self.tenant_primary_keys:
            result = conn.execute(
                _BY_TENANT_ROW_IDS, {"project_id": project_id, "row_ids": list(row_ids)})
        else:
            result = conn.execute(_BY_ROW_IDS, {"row_ids": list(row_ids)})
        return {
            r._mapping["row_id"]: _memory_from_row(r)
            for r in result
            if r._mapping["project_id"] == project_id
        }

    @reads
    def existing_ids(self, conn: Connection, memory_ids: Sequence[str]) -> dict[str, str]:
        """Which of these public ids exist already, mapped to their project (for import)."""
        if not memory_ids:
            return {}
        result = conn.execute(
            select(t.memories.c.id, t.memories.c.project_id).where(
                t.memories.c.id.in_(list(memory_ids))
            )
        )
        return {mid: pid for mid, pid in result.all()}

    async def iter_memories(
        self,
        project_id: str,
        *,
        namespace: str | None = None,
        user_id: str | None = None,
        agent_id: str | None = None,
        with_embeddings: bool = False,
        batch_size: int = 500,
    ) -> AsyncIterator[list[MemoryRecord]]:
        """Every memory of a project in row order, in batches (keyset pagination)."""
        cols = [*_MEMORY_COLUMNS, t.memories.c.embedding] if with_embeddings else _MEMORY_COLUMNS
        last = 0
        while True:
            query: Select[Any] = select(*cols).where(
                t.memories.c.project_id == project_id, t.memories.c.row_id > last
            )
            if namespace is not None:
                query = query.where(t.memories.c.namespace == namespace)
            if user_id is not None:
                query = query.where(t.memories.c.user_id == user_id)
            if agent_id is not None:
                query = query.where(t.memories.c.agent_id == agent_id)
            query = query.order_by(t.memories.c.row_id).limit(batch_size)
            rows = await self._run(False, lambda conn, q=query: conn.execute(q).all())
            if not rows:
                return
            batch = [_memory_from_row(r, with_embeddings) for r in rows]
            last = batch[-1].row_id
            yield batch

    @reads
    def list_votes(
        self, conn: Connection, project_id: str, row_ids: Sequence[int]
    ) -> dict[int, list[VoteRecord]]:
        if not row_ids:
            return {}
        result = conn.execute(
            select(t.votes).where(t.votes.c.project_id == project_id,
                                  t.votes.c.memory_row_id.in_(list(row_ids)))
        )
        out: dict[int, list[VoteRecord]] = {}
        for row in result:
            m = row._mapping
            out.setdefault(m["memory_row_id"], []).append(
                VoteRecord(**{k: m[k] for k in VoteRecord.__slots__})
            )
        return out

    @writes
    def import_memories(
        self,
        conn: Connection,
        items: Sequence[NewMemory], votes: dict[str, list[VoteRecord]], now: float,
        event: EventRecord | None = None,
    ) -> ImportOutcome:
        """Insert restored memories (ids kept) and their votes, skipping ids or live
        duplicates that exist, in one transaction: all of it or nothing. ``event`` (its
        ``memory_ids`` and ``payload["count"]`` set to what was inserted) is written with them
        when anything was. Imports are the bulk path: one prepared statement for every row,
        fed plain tuples through the driver's ``executemany``."""
        if not items:
            return ImportOutcome()
        seq = self._next_seq(conn)
        self._before_memory_inserts(conn, (i.project_id for i in items), bulk=True)
        conn.exec_driver_sql(self._import_statement(conn), _import_rows(items, seq))
        # Rows this transaction inserted carry its sequence number; skipped ones do not.
        inserted = dict(
            conn.execute(
                select(t.memories.c.id, t.memories.c.row_id).where(
                    t.memories.c.project_id == items[0].project_id,
                    t.memories.c.change_seq == seq,
                    t.memories.c.id.in_([i.id for i in items]),
                )
            ).all()
        )
        vote_rows = [
            {
                "project_id": items[0].project_id,
                "memory_row_id": inserted[mid],
                "voter_agent_id": v.voter_agent_id,
                "task_id": v.task_id,
                "vote": v.vote,
                "context": v.context,
                "created_at": v.created_at,
                "updated_at": v.updated_at,
            }
            for mid, vs in votes.items()
            if mid in inserted
            for v in vs
        ]
        self._after_bulk_memory_inserts(conn, items[0].project_id, [
            (inserted[i.id], i.content) for i in items if i.id in inserted])
        if vote_rows:
            conn.execute(insert(t.votes), vote_rows)
        ids = [i.id for i in items if i.id in inserted]
        if event is not None and ids:
            event.memory_ids = ids
            event.payload = {**event.payload, "count": len(ids)}
            self._insert_events(conn, [event])
        return ImportOutcome(ids=ids, row_ids=[inserted[i] for i in ids], seq=seq)

    # ------------------------------------------------------------------ re-embedding

    @reads
    def embedding_model_counts(self, conn: Connection) -> dict[str | None, int]:
        """How many memories carry vectors of each model (``aegis reindex`` plans with it)."""
        rows = conn.execute(select(_M.embedding_model, func.count()).group_by(_M.embedding_model))
        return {model: int(n) for model, n in rows.all()}

    @reads
    def memories_to_reembed(
        self, conn: Connection, model: str, after: tuple[str, int] | None, limit: int
    ) -> list[tuple[str, int, str, str]]:
        """``(project_id, row_id, content, content_hash)`` of the next ``limit`` memories whose
        vector is not from ``model``, in (project_id, row_id) order after ``after``.

        That order is an index on both backends (PostgreSQL's primary key, SQLite's tenant
        row index). The cursor is applied as "the rest of this project, then the projects
        after it" rather than as one row-value comparison, which SQLite only narrows by
        project (each batch would rescan the project from its start).
        """
        stale = or_(_M.embedding_model.is_(None), _M.embedding_model != model)
        columns = (_M.project_id, _M.row_id, _M.content, _M.content_hash)
        rows: list[Any] = []
        if after is not None:
            rows = conn.execute(
                select(*columns)
                .where(stale, _M.project_id == after[0], _M.row_id > after[1])
                .order_by(_M.row_id).limit(limit)
            ).all()
        if len(rows) < limit:
            rest = select(*columns).where(stale)
            if after is not None:
                rest = rest.where(_M.project_id > after[0])
            rows += conn.execute(
                rest.order_by(_M.project_id, _M.row_id).limit(limit - len(rows))).all()
        return [(r[0], int(r[1]), r[2], r[3]) for r in rows]

    @writes
    def write_embeddings(
        self,
        conn: Connection,
        rows: Sequence[tuple[str, int, str, bytes]],
        model: str,
        meta: dict[str, str],
    ) -> int:
        """Store re-embedded vectors ``(project_id, row_id, content_hash, float32 bytes)`` and
        the ``meta`` entries (the caller's checkpoint) in one transaction; returns how many rows
        were written.

        A row is written only while its content is still the text that was embedded (a server
        may have edited or deleted it meanwhile); the change sequence is bumped so an
        in-process vector index replays the new vectors like any other write.
        """
        seq = self._next_seq(conn)
        stmt = (
            update(t.memories)
            .where(
                _M.project_id == bindparam("b_project_id"),
                _M.row_id == bindparam("b_row_id"),
                _M.content_hash == bindparam("b_content_hash"),
            )
            .values(embedding=bindparam("b_embedding"), embedding_model=model, change_seq=seq)
        )
        written = 0
        for project_id, row_id, chash, embedding in rows:
            result = conn.execute(stmt, {
                "b_project_id": project_id, "b_row_id": row_id, "b_content_hash": chash,
                "b_embedding": searchable(embedding),
            })
            written += result.rowcount
        self._set_meta_values(conn, meta)
        return written

    @writes
    def begin_reembedding(self, conn: Connection, dim: int, meta: dict[str, str]) -> None:
        """Record the start (or resumption) of a re-embedding and make the vector column able
        to hold vectors of ``dim`` beside the old ones, in one transaction."""
        self._prepare_vector_column(conn, dim)
        self._set_meta_values(conn, meta)

    @writes
    def finish_reembedding(
        self, conn: Connection, model: str, dim: int, meta: dict[str, str],
        drop_meta: Sequence[str],
    ) -> int:
        """Switch to ``model`` if every memory is on it: size the vector column for ``dim``,
        write ``meta`` and remove the ``drop_meta`` keys, atomically. Returns how many memories
        still carry another model's vector (nothing is changed then)."""
        self._lock_memories(conn)
        left = conn.execute(
            select(func.count()).where(
                or_(_M.embedding_model.is_(None), _M.embedding_model != model))
        ).scalar_one()
        if left:
            return int(left)
        self._finish_vector_column(conn, dim)
        self._set_meta_values(conn, meta)
        if drop_meta:
            conn.execute(delete(t.store_meta).where(t.store_meta.c.key.in_(list(drop_meta))))
        return 0

    def _set_meta_values(self, conn: Connection, meta: dict[str, str]) -> None:
        for key, value in meta.items():
            conn.execute(self._upsert(t.store_meta, ["key"], {"key": key, "value": value}))

    # Dialect hooks of re-embedding: SQLite stores vectors as untyped blobs and its write
    # transactions already exclude every other writer, so there is nothing to do.

    def _prepare_vector_column(self, conn: Connection, dim: int) -> None:
        """Let the vector column hold vectors of ``dim`` while the old ones are still there."""

    def _finish_vector_column(self, conn: Connection, dim: int) -> None:
        """Type the vector column for ``dim`` (and its index) once every vector has it."""

    def _lock_memories(self, conn: Connection) -> None:
        """Keep other writers out of ``memories`` until this transaction ends."""

    # ------------------------------------------------------------------ index catch-up

    @reads
    def current_seq(self, conn: Connection) -> int:
        return int(conn.execute(_CURRENT_SEQ).scalar_one())

    @reads
    def changes_since(
        self,
        conn: Connection,
        since_seq: int, *, cursor: tuple[int, int] | None = None, limit: int = 5000
    ) -> ChangeBatch:
        """Rows written after ``since_seq`` (with embeddings) and rows deleted after it.

        One read transaction, so the rows and ``max_seq`` are one consistent snapshot. Rows come
        ordered by (change_seq, row_id); to read the next page pass the last row's pair as
        ``cursor``. Deletions are always all of those after ``since_seq`` (they are few).
        """
        max_seq = int(conn.execute(_CURRENT_SEQ).scalar_one())
        if max_seq <= since_seq:
            return ChangeBatch(upserts=[], deleted_row_ids=[], max_seq=max_seq)
        if cursor:
            params = {"seq": cursor[0], "row_id": cursor[1], "limit": limit}
            rows = conn.execute(_CHANGES_AFTER_CURSOR, params).all()
        else:
            rows = conn.execute(_CHANGES_SINCE, {"seq": since_seq, "limit": limit}).all()
        deleted = list(conn.execute(_TOMBSTONES_SINCE, {"seq": since_seq}).scalars())
        return ChangeBatch(
            upserts=[_memory_from_row(r, True) for r in rows],
            deleted_row_ids=deleted,
            max_seq=max_seq,
        )

    @reads
    def recent_memories(
        self,
        conn: Connection,
        project_id: str, namespace: str, agent_id: str, limit: int, now: float
    ) -> list[MemoryRecord]:
        """An agent's newest live memories (handoffs without a task context)."""
        c = t.memories.c
        rows = conn.execute(
            select(*_MEMORY_COLUMNS)
            .where(
                c.project_id == project_id,
                c.namespace == namespace,
                c.agent_id == agent_id,
                c.is_deprecated.is_(False),
                or_(c.expires_at.is_(None), c.expires_at > now),
            )
            .order_by(c.created_at.desc(), c.row_id.desc())
            .limit(limit)
        )
        return [_memory_from_row(r) for r in rows]

    # ------------------------------------------------------------------ sessions

    @reads
    def get_session(
        self, conn: Connection, project_id: str, namespace: str, session_id: str
    ) -> SessionRecord | None:
        row = (
            conn.execute(
                select(t.sessions).where(
                    t.sessions.c.project_id == project_id,
                    t.sessions.c.namespace == namespace,
                    t.sessions.c.session_id == session_id,
                )
            )
        ).first()
        return _session_from_row(row) if row else None

    @reads
    def list_sessions(
        self, conn: Connection, project_id: str, namespace: str, *, agent_id: str | None = None
    ) -> list[SessionRecord]:
        query = select(t.sessions).where(
            t.sessions.c.project_id == project_id, t.sessions.c.namespace == namespace
        )
        if agent_id is not None:
            query = query.where(t.sessions.c.agent_id == agent_id)
        rows = conn.execute(query.order_by(t.sessions.c.updated_at.desc()))
        return [_session_from_row(r) for r in rows]

    # ------------------------------------------------------------------ session progress, features

    @writes
    def insert_session(
        self, conn: Connection, record: SessionRecord, event: EventRecord | None
    ) -> None:
        """A new session; ``DuplicateError`` when (project, namespace, session_id) exists."""
        try:
            conn.execute(insert(t.sessions).values(**_session_values(record)))
        except IntegrityError as exc:
            raise DuplicateError(record.session_id) from exc
        if event is not None:
            self._insert_events(conn, [event])

    @writes
    def modify_session(
        self,
        conn: Connection,
        project_id: str,
        namespace: str,
        session_id: str,
        change: Callable[[SessionRecord | None], SessionRecord],
        event: EventRecord | None,
    ) -> SessionRecord:
        """Read-modify-write of one session in one write transaction (created when missing).

        ``change`` gets the current row (None if there is none) and returns the new one; it may
        raise to refuse, which rolls everything back.
        """
        key = (
            t.sessions.c.project_id == project_id,
            t.sessions.c.namespace == namespace,
            t.sessions.c.session_id == session_id,
        )
        # Locked until the commit: concurrent appends to one session must queue, not each
        # write back the list it read (PostgreSQL's READ COMMITTED lost them).
        row = conn.execute(select(t.sessions).where(*key).with_for_update()).first()
        if row is None:
            record = change(None)
            created = conn.execute(
                self._insert_ignore(t.sessions, ["project_id", "namespace", "session_id"])
                .values(**_session_values(record)).returning(t.sessions.c.row_id)
            ).first()
            if created is not None:
                if event is not None:
                    self._insert_events(conn, [event])
                return record
            # Another first update created it meanwhile: apply this one on top of it.
            row = conn.execute(select(t.sessions).where(*key).with_for_update()).one()
        record = change(_session_from_row(row))
        conn.execute(update(t.sessions).where(*key).values(**_session_values(record)))
        if event is not None:
            self._insert_events(conn, [event])
        return record

    @reads
    def find_sessions(
        self,
        conn: Connection,
        project_id: str,
        namespace: str,
        *,
        status: str | None = None,
        limit: int = 100,
    ) -> list[SessionRecord]:
        """A namespace's sessions, most recently updated first."""
        query = select(t.sessions).where(
            t.sessions.c.project_id == project_id, t.sessions.c.namespace == namespace
        )
        if status is not None:
            query = query.where(t.sessions.c.status == status)
        query = query.order_by(t.sessions.c.updated_at.desc(), t.sessions.c.row_id.desc())
        return [_session_from_row(r) for r in conn.execute(query.limit(limit))]

    @writes
    def insert_feature(
        self, conn: Connection, record: FeatureRecord, event: EventRecord | None
    ) -> None:
        """A new feature; ``DuplicateError`` when (project, namespace, feature_id) exists."""
        values = {k: getattr(record, k) for k in FeatureRecord.__slots__}
        try:
            conn.execute(insert(t.features).values(**values))
        except IntegrityError as exc:
            raise DuplicateError(record.feature_id) from exc
        if event is not None:
            self._insert_events(conn, [event])

    @writes
    def modify_feature(
        self,
        conn: Connection,
        project_id: str,
        namespace: str,
        feature_id: str,
        change: Callable[[FeatureRecord], FeatureRecord],
        event: EventRecord | None,
    ) -> FeatureRecord | None:
        """Read-modify-write of one feature in one write transaction; None when it is missing."""
        key = (
            t.features.c.project_id == project_id,
            t.features.c.namespace == namespace,
            t.features.c.feature_id == feature_id,
        )
        row = conn.execute(select(t.features).where(*key).with_for_update()).first()
        if row is None:
            return None
        record = change(_feature_from_row(row))
        values = {k: getattr(record, k) for k in FeatureRecord.__slots__}
        conn.execute(update(t.features).where(*key).values(**values))
        if event is not None:
            self._insert_events(conn, [event])
        return record

    @reads
    def get_feature(
        self, conn: Connection, project_id: str, namespace: str, feature_id: str
    ) -> FeatureRecord | None:
        row = conn.execute(
            select(t.features).where(
                t.features.c.project_id == project_id,
                t.features.c.namespace == namespace,
                t.features.c.feature_id == feature_id,
            )
        ).first()
        return _feature_from_row(row) if row else None

    @reads
    def list_features(
        self,
        conn: Connection,
        project_id: str,
        namespace: str,
        *,
        status: str | None = None,
        session_id: str | None = None,
        limit: int = 1000,
    ) -> list[FeatureRecord]:
        """A namespace's features in creation order."""
        query = select(t.features).where(
            t.features.c.project_id == project_id, t.features.c.namespace == namespace
        )
        if status is not None:
            query = query.where(t.features.c.status == status)
        if session_id is not None:
            query = query.where(t.features.c.session_id == session_id)
        query = query.order_by(t.features.c.created_at, t.features.c.row_id).limit(limit)
        return [_feature_from_row(r) for r in conn.execute(query)]
