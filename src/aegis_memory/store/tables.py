"""Table definitions (SQLAlchemy Core), shared by every SQL backend.

Times are stored as epoch seconds (double precision): one representation on SQLite and
PostgreSQL, cheap to compare, converted to ``datetime`` only at the API edge.

Tenant keys: every tenant table has ``project_id``, and on PostgreSQL every primary key and
unique key starts with it (migration 0003), so Citus can shard on it. The primary keys below
are SQLite's (``row_id`` alone, which AUTOINCREMENT requires); Alembic does not compare primary
keys, and objects that exist on one dialect only carry ``info={"dialect": ...}``. The schema itself
is created by the Alembic migrations in ``migrations/``; these objects describe it for queries
and for the drift test that compares both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.base import ischema_names as pg_ischema_names
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine, UserDefinedType

metadata = MetaData()


class PgVector(UserDefinedType[bytes]):
    """pgvector's ``vector`` column. Values pass through untouched: the PostgreSQL store
    registers a binary codec on each connection that maps our float32 bytes to the wire format.
    """

    cache_ok = True

    def __init__(self, dim: int | None = None) -> None:
        # The dimension lives in the schema (sized at migration time), not in the model.
        self.dim = dim

    def get_col_spec(self, **_kw: Any) -> str:
        return "VECTOR" if self.dim is None else f"VECTOR({self.dim})"


# So that reflection (the migration drift test, Alembic autogenerate) knows the type.
pg_ischema_names.setdefault("vector", PgVector)


class Embedding(TypeDecorator[bytes]):
    """An embedding as little-endian float32 bytes in Python, whatever the backend.

    SQLite keeps the bytes as a blob (search runs in process); PostgreSQL stores a pgvector
    ``vector`` so the database itself can search it.
    """

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(PgVector())
        return dialect.type_descriptor(LargeBinary())


def postgres_only(**info: Any) -> dict[str, Any]:
    """``info`` for schema objects that exist on PostgreSQL only (the drift test skips them
    elsewhere)."""
    return {"dialect": "postgresql", **info}


def sqlite_only(**info: Any) -> dict[str, Any]:
    """``info`` for schema objects that exist on SQLite only."""
    return {"dialect": "sqlite", **info}


def schema_filter(dialect_name: str) -> Callable[..., bool]:
    """Alembic ``include_object`` for comparing the models with a database of this dialect:
    leaves out objects of other dialects and the expression indexes listed below."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
        if type_ == "index" and name in EXPRESSION_INDEXES:
            return False
        if type_ == "table" and name is not None and name.startswith(FULLTEXT_TABLE):
            return False  # SQLite's FTS5 table and its shadow tables (migration 0005)
        if type_ == "column" and name in GENERATED_COLUMNS:
            return False
        info = getattr(obj, "info", None) or getattr(other, "info", None) or {}
        return info.get("dialect") in (None, dialect_name)

    return include

#: 64-bit ids on PostgreSQL; SQLite only autoincrements a column declared exactly INTEGER.
RowId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")
Ident = String(256)

projects = Table(
    "projects",
    metadata,
    Column("id", Ident, primary_key=True),
    Column("created_at", Float, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project_id", Ident, nullable=False, index=True),
    Column("agent_id", Ident),
    Column("name", Ident),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
)

memories = Table(
    "memories",
    metadata,
    # row_id is the integer label the vector index uses; id is the public identifier.
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False),
    Column("project_id", Ident, nullable=False),
    Column("namespace", Ident, nullable=False),
    Column("agent_id", Ident),
    Column("user_id", Ident),
    Column("content", Text, nullable=False),
    Column("content_hash", String(64), nullable=False),
    # NULL once a memory is deprecated or expired, so the same text can be stored again.
    Column("dedup_key", String(64)),
    Column("scope", String(16), nullable=False),
    Column("shared_with_agents", Json, nullable=False),
    Column("memory_type", String(32), nullable=False),
    Column("meta", Json, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("bullet_helpful", Integer, nullable=False, server_default="0"),
    Column("bullet_harmful", Integer, nullable=False, server_default="0"),
    Column("is_deprecated", Boolean, nullable=False, server_default="0"),
    Column("deprecated_by", Ident),
    Column("superseded_by", String(36)),
    Column("deprecation_reason", Text),
    Column("deprecated_at", Float),
    Column("error_pattern", Ident),
    Column("derived_from_agents", Json, nullable=False),
    Column("coordination_metadata", Json, nullable=False),
    Column("embedding", Embedding),
    Column("embedding_model", Ident),
    # Bumped by every write; the vector index catches up on rows whose change_seq is newer.
    Column("change_seq", BigInteger, nullable=False),
    UniqueConstraint("id", info=sqlite_only()),
    # AUTOINCREMENT: a deleted row's id is never handed out again (the index keys on it).
    sqlite_autoincrement=True,
)
Index("ux_memories_dedup", memories.c.project_id, memories.c.dedup_key, unique=True)
Index("ix_memories_owner", memories.c.project_id, memories.c.namespace, memories.c.agent_id)
# A stream (what one agent wrote into one namespace) in order, for hybrid search's neighbours;
# SQLite's owner index above already ends with the rowid.
Index("ix_memories_stream", memories.c.project_id, memories.c.namespace, memories.c.agent_id,
      memories.c.row_id, info=postgres_only())
Index("ix_memories_change_seq", memories.c.change_seq)
Index("ix_memories_expires_at", memories.c.expires_at)
# The parent key of votes' foreign key (SQLite needs a unique index; PostgreSQL's primary key
# is these columns).
Index("ux_memories_tenant_row", memories.c.project_id, memories.c.row_id, unique=True,
      info=sqlite_only())
Index("ux_memories_tenant_id", memories.c.project_id, memories.c.id, unique=True,
      info=postgres_only())
Index("ix_memories_id", memories.c.id, info=postgres_only())
Index(
    "ix_memories_embedding_hnsw", memories.c.embedding,
    postgresql_using="hnsw",
    postgresql_with={"m": 16, "ef_construction": 128},
    postgresql_ops={"embedding": "vector_cosine_ops"},
    info=postgres_only(),
)
#: Expression indexes made by the migrations that the models cannot state in a way Alembic
#: compares (the full-text GIN index on the generated ``content_tsv`` column).
#: The planner's covering partial index (INCLUDE columns, WHERE clause) is left out too:
#: Alembic does not compare those parts.
#: So is the GIN index on the share list (its operator class), and the partial index for
#: searches filtered by user.
#: So is the partial index of streams per user (migration 0007).
EXPRESSION_INDEXES = frozenset(
    {"ix_memories_content_fts", "ix_memories_search_filter", "ix_memories_shared_with",
     "ix_memories_user_filter", "ix_memories_user_stream"}
)

#: PostgreSQL's generated columns, which the code never selects or writes, so the models
#: leave them out: the stored full-text document ``memories.content_tsv`` (migration 0006)
#: and ``memories.shared_with_short``, the share list when short enough for the planner's
#: covering index (migration 0008).
GENERATED_COLUMNS = frozenset({"content_tsv", "shared_with_short"})

#: SQLite's full-text indexes over ``memories.content``: one FTS5 virtual table per project,
#: ``memories_fts_<slot>``, kept in step by triggers (``store/sqlite/fulltext.py``, migration
#: 0006; before it, one ``memories_fts`` for all). Not models: Alembic cannot describe virtual
#: tables.
FULLTEXT_TABLE = "memories_fts"

#: Which project's full-text index is ``memories_fts_<slot>`` (SQLite).
fulltext_projects = Table(
    "fulltext_projects",
    metadata,
    Column("slot", Integer, primary_key=True, autoincrement=True),
    Column("project_id", Ident, nullable=False, unique=True),
    sqlite_autoincrement=True,
    info=sqlite_only(),
)

#: A row here, only ever inside a bulk import's own write transaction, tells the full-text
#: triggers to leave the import's rows to one statement at its end (SQLite).
fulltext_bulk = Table(
    "fulltext_bulk",
    metadata,
    Column("active", Integer, nullable=False),
    info=sqlite_only(),
)

votes = Table(
    "votes",
    metadata,
    Column("project_id", Ident, primary_key=True),
    Column("memory_row_id", RowId, primary_key=True),
    Column("voter_agent_id", Ident, primary_key=True),
    # '' when the vote names no task: part of the key, so it cannot be NULL.
    Column("task_id", Ident, primary_key=True),
    Column("vote", String(8), nullable=False),
    Column("context", Text),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    ForeignKeyConstraint(
        ["project_id", "memory_row_id"], ["memories.project_id", "memories.row_id"],
        name="fk_votes_memory", ondelete="CASCADE",
    ),
)

events = Table(
    "events",
    metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False),
    Column("project_id", Ident, nullable=False),
    Column("namespace", Ident),
    Column("event_type", String(32), nullable=False),
    Column("agent_id", Ident),
    Column("memory_ids", Json, nullable=False),
    Column("task_id", Ident),
    Column("retrieval_event_id", String(36)),
    Column("payload", Json, nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("id", info=sqlite_only()),
)
Index("ux_events_tenant_id", events.c.project_id, events.c.id, unique=True,
      info=postgres_only())
Index("ix_events_project_time", events.c.project_id, events.c.created_at)
Index("ix_events_project_type", events.c.project_id, events.c.event_type)

sessions = Table(
    "sessions",
    metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("project_id", Ident, nullable=False),
    Column("namespace", Ident, nullable=False),
    Column("session_id", Ident, nullable=False),
    Column("agent_id", Ident),
    Column("user_id", Ident),
    Column("status", String(16), nullable=False),
    Column("completed", Json, nullable=False),
    Column("in_progress", Text),
    Column("next_items", Json, nullable=False),
    Column("blocked", Json, nullable=False),
    Column("summary", Text),
    Column("total_items", Integer),
    Column("meta", Json, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index(
    "ux_sessions_key", sessions.c.project_id, sessions.c.namespace, sessions.c.session_id,
    unique=True,
)

features = Table(
    "features",
    metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("project_id", Ident, nullable=False),
    Column("namespace", Ident, nullable=False),
    Column("feature_id", Ident, nullable=False),
    Column("description", Text),
    Column("session_id", Ident),
    Column("category", Ident),
    Column("status", String(16), nullable=False),
    Column("passes", Boolean, nullable=False, server_default="0"),
    Column("test_steps", Json, nullable=False),
    Column("implemented_by", Ident),
    Column("verified_by", Ident),
    Column("failure_reason", Text),
    Column("completed_at", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)
Index(
    "ux_features_key", features.c.project_id, features.c.namespace, features.c.feature_id,
    unique=True,
)

counters = Table(
    "counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

tombstones = Table(
    "memory_tombstones",
    metadata,
    Column("seq", BigInteger, nullable=False, index=True),
    Column("row_id", RowId, primary_key=True),
)

store_meta = Table(
    "store_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
