"""PostgreSQL: an index for searches filtered by user.

A query for one user's memories (``user_id``) used to read the whole namespace through the
planner's covering index and drop the other users' rows one by one: at 1M memories, a
namespace of 300k rows took 150-500 ms to count a user's 6 memories (benchmarks/bench.py
--backend postgres). With ``(project_id, user_id, namespace)`` the same count is a few index
entries. Partial like the covering index: only rows a vector search can return.

On SQLite this revision changes nothing: filters run in the in-process vector index there.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE INDEX ix_memories_user_filter ON memories (project_id, user_id, namespace) "
        "WHERE embedding IS NOT NULL AND user_id IS NOT NULL"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_memories_user_filter")
