"""An index of each agent's stream per user, for the stream neighbours of user-filtered searches.

Hybrid search looks up, for each candidate, the memory written just before and after it in
its stream (one agent, one namespace) *among the rows the search's filter allows*
(``store/neighbours.py``). For a search filtered by user, those are the same user's memories,
which are few and far apart in a busy stream: the lookup walked back through the stream's
index checking each row's user, thousands of rows in a large namespace, or the whole stream
when the user has no earlier memory there (p99 above 500 ms at 1M memories,
benchmarks/bench.py). With ``(project_id, namespace, agent_id, user_id, row_id)`` it is one
seek. Partial: memories without a user never need it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite's indexes end with the rowid (memories.row_id) by themselves.
    row_id = ", row_id" if op.get_bind().dialect.name == "postgresql" else ""
    op.execute(
        "CREATE INDEX ix_memories_user_stream ON memories "
        f"(project_id, namespace, agent_id, user_id{row_id}) WHERE user_id IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_memories_user_stream")
