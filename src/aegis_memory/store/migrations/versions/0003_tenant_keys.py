"""Tenant keys: ``project_id`` in every key of every tenant table.

Votes get a ``project_id`` column, a primary key that starts with it, and a foreign key to
their memory through (project_id, row_id). On PostgreSQL the primary keys of memories, events,
sessions and features become (project_id, row_id), and the public ids are unique per project.

Why: every query is scoped by project already; with the project in every key, a distributed
PostgreSQL such as Citus can shard all tenant tables on ``project_id`` and keep each project's
rows, and its joins, on one node (docs/deployment/postgres.md, "Scaling out"). SQLite keeps
``row_id`` as its primary key: it has to be a lone ``INTEGER PRIMARY KEY`` to autoincrement.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Ident = sa.String(256)
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _votes_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("project_id", Ident, primary_key=True),
        sa.Column("memory_row_id", RowId, primary_key=True),
        sa.Column("voter_agent_id", Ident, primary_key=True),
        sa.Column("task_id", Ident, primary_key=True),
        sa.Column("vote", sa.String(8), nullable=False),
        sa.Column("context", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id", "memory_row_id"], ["memories.project_id", "memories.row_id"],
            name="fk_votes_memory", ondelete="CASCADE",
        ),
    )


def _upgrade_sqlite() -> None:
    # A foreign key's parent columns need a unique index in SQLite.
    op.create_index("ux_memories_tenant_row", "memories", ["project_id", "row_id"], unique=True)
    _votes_table("votes_new")
    op.execute(
        "INSERT INTO votes_new (project_id, memory_row_id, voter_agent_id, task_id, vote, "
        "context, created_at, updated_at) "
        "SELECT m.project_id, v.memory_row_id, v.voter_agent_id, v.task_id, v.vote, "
        "v.context, v.created_at, v.updated_at "
        "FROM votes v JOIN memories m ON m.row_id = v.memory_row_id"
    )
    op.drop_table("votes")
    op.rename_table("votes_new", "votes")


def _upgrade_postgresql() -> None:
    op.execute("ALTER TABLE votes ADD COLUMN project_id varchar(256)")
    op.execute(
        "UPDATE votes SET project_id = m.project_id FROM memories m "
        "WHERE m.row_id = votes.memory_row_id"
    )
    op.execute("ALTER TABLE votes ALTER COLUMN project_id SET NOT NULL")
    op.execute("ALTER TABLE votes DROP CONSTRAINT votes_memory_row_id_fkey")
    op.execute("ALTER TABLE votes DROP CONSTRAINT votes_pkey")
    op.execute(
        "ALTER TABLE votes ADD CONSTRAINT votes_pkey "
        "PRIMARY KEY (project_id, memory_row_id, voter_agent_id, task_id)"
    )
    for table in ("memories", "events", "sessions", "features"):
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {table}_pkey PRIMARY KEY (project_id, row_id)"
        )
    for table in ("memories", "events"):
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_id_key")
        op.execute(f"CREATE UNIQUE INDEX ux_{table}_tenant_id ON {table} (project_id, id)")
    # Import checks whether an id exists in any project: a plain index keeps that a lookup.
    op.execute("CREATE INDEX ix_memories_id ON memories (id)")
    op.execute(
        "ALTER TABLE votes ADD CONSTRAINT fk_votes_memory FOREIGN KEY (project_id, memory_row_id) "
        "REFERENCES memories (project_id, row_id) ON DELETE CASCADE"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    raise NotImplementedError("0003 is not reversible: restore from an export instead.")
