"""PostgreSQL: pgvector embeddings with an HNSW (cosine) index, a full-text index, and a
sequence for change numbers.

On SQLite this revision changes nothing: there the embedding stays a float32 blob and vector
search runs in the process (``aegis_memory.index``).

Change numbers (``memories.change_seq``) come from a sequence on PostgreSQL: the ``counters``
row SQLite uses would be locked by every write transaction until it commits, serialising all
writers of all API replicas on one row.

The vector column needs its dimension when it is created. The server passes the configured
model's dimension; the ``alembic`` command line takes ``-x embedding_dim=N`` or the
``AEGIS_EMBEDDING_DIM`` environment variable, and defaults to 384 (the bundled local model).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import os

from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

DEFAULT_DIM = 384
#: HNSW build parameters: pgvector's default m (16) with twice its default ef_construction
#: (64): on the benchmark corpus recall@10 at ef_search 200 went from 0.95 to 0.97 for a 60 %
#: longer build (docs/guides/performance.md).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128


def _embedding_dim() -> int:
    value = (
        context.config.attributes.get("embedding_dim")
        or context.get_x_argument(as_dictionary=True).get("embedding_dim")
        or os.environ.get("AEGIS_EMBEDDING_DIM")
        or DEFAULT_DIM
    )
    dim = int(value)
    if not 1 <= dim <= 2000:
        raise ValueError(f"embedding_dim must be between 1 and 2000 (HNSW's limit), got {dim}")
    return dim


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    dim = _embedding_dim()
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    # 0001 made a portable bytea column; no PostgreSQL deployment predates this revision.
    op.execute("ALTER TABLE memories DROP COLUMN embedding")
    op.execute(f"ALTER TABLE memories ADD COLUMN embedding vector({dim})")
    op.execute(
        "CREATE INDEX ix_memories_embedding_hnsw ON memories "
        f"USING hnsw (embedding vector_cosine_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
    )
    op.execute(
        "CREATE INDEX ix_memories_content_fts ON memories "
        "USING gin (to_tsvector('english', content))"
    )
    # The search planner counts matching rows first; with every filtered column in the index
    # that count is an index-only scan instead of reading ~1.9 KB heap rows (vectors inline).
    op.execute(
        "CREATE INDEX ix_memories_search_filter ON memories (project_id, namespace, agent_id) "
        "INCLUDE (scope, expires_at, is_deprecated, user_id, memory_type, shared_with_agents) "
        "WHERE embedding IS NOT NULL"
    )
    # "Shared with agent X" (JSON containment) from an index, not a scan of every row.
    op.execute(
        "CREATE INDEX ix_memories_shared_with ON memories "
        "USING gin (shared_with_agents jsonb_path_ops)"
    )
    op.execute("CREATE SEQUENCE memory_change_seq AS bigint")
    op.execute(
        "SELECT setval('memory_change_seq', "
        "(SELECT value FROM counters WHERE name = 'memory_seq') + 1, false)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "UPDATE counters SET value = (SELECT last_value FROM memory_change_seq) "
        "WHERE name = 'memory_seq'"
    )
    op.execute("DROP SEQUENCE memory_change_seq")
    op.execute("DROP INDEX IF EXISTS ix_memories_shared_with")
    op.execute("DROP INDEX IF EXISTS ix_memories_search_filter")
    op.execute("DROP INDEX IF EXISTS ix_memories_content_fts")
    op.execute("DROP INDEX IF EXISTS ix_memories_embedding_hnsw")
    op.execute("ALTER TABLE memories DROP COLUMN embedding")
    op.execute("ALTER TABLE memories ADD COLUMN embedding bytea")
