"""Keep long share lists out of the search planner's covering index (PostgreSQL).

``ix_memories_search_filter`` (revision 0002) INCLUDEd ``shared_with_agents`` so that the
planner's capped row count is answered from the index alone, the visibility rule included.
But a btree row holds at most 2,704 bytes, and a share list may name 1,000 agents: a memory
shared with more than about 65 UUID-named agents could not be stored (a 422
``too_large_for_database``; a 500 before the reliability work).

Dropping the column from the index costs agent searches a heap read per counted row:
``benchmarks/engine_query_bench.py --backend postgres`` at 100,000 memories measured the
count for "visible to one agent" going from 1.6 to 6.8 ms, and the whole search from 9.7 to
16.0 ms (p50). So the index keeps a copy instead, ``shared_with_short``: the share list when its
text is at most 1,024 bytes (about 25 UUIDs), else NULL. It is a generated column, so
PostgreSQL keeps it in step on every write, whoever writes. The count treats NULL as "may be
shared with you": it may count a few rows too many, which only steers the planner (an exact
ranking or an HNSW walk that falls back to exact when short; see
``store/postgres/search.py``); the search itself tests the full list.

Adding a stored column rewrites the table once (about a minute per million memories, during
which writes wait), as revision 0006 did.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: Bytes of a share list's JSON text that still go into the index. The key and the other
#: included columns take at most about 1.1 KB (four names of up to 256 characters).
SHORT_SHARE_LIST_BYTES = 1024

_INCLUDED = "scope, expires_at, is_deprecated, user_id, memory_type"


def _index(share_column: str) -> None:
    op.execute("DROP INDEX IF EXISTS ix_memories_search_filter")
    op.execute(
        "CREATE INDEX ix_memories_search_filter ON memories (project_id, namespace, agent_id) "
        f"INCLUDE ({_INCLUDED}, {share_column}) WHERE embedding IS NOT NULL"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite filters searches in the process (aegis_memory.index): no such index
    op.execute(
        "ALTER TABLE memories ADD COLUMN shared_with_short jsonb GENERATED ALWAYS AS ("
        f"CASE WHEN octet_length(shared_with_agents::text) <= {SHORT_SHARE_LIST_BYTES} "
        "THEN shared_with_agents END) STORED"
    )
    _index("shared_with_short")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _index("shared_with_agents")
    op.execute("ALTER TABLE memories DROP COLUMN shared_with_short")
