"""Initial schema: projects, keys, memories, votes, events, sessions, features, index bookkeeping.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")
Ident = sa.String(256)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", Ident, primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project_id", Ident, nullable=False),
        sa.Column("agent_id", Ident),
        sa.Column("name", Ident),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("revoked_at", sa.Float),
    )
    op.create_index("ix_api_keys_project_id", "api_keys", ["project_id"])
    op.create_table(
        "memories",
        sa.Column("row_id", RowId, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("project_id", Ident, nullable=False),
        sa.Column("namespace", Ident, nullable=False),
        sa.Column("agent_id", Ident),
        sa.Column("user_id", Ident),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("dedup_key", sa.String(64)),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("shared_with_agents", Json, nullable=False),
        sa.Column("memory_type", sa.String(32), nullable=False),
        sa.Column("meta", Json, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("bullet_helpful", sa.Integer, nullable=False, server_default="0"),
        sa.Column("bullet_harmful", sa.Integer, nullable=False, server_default="0"),
        sa.Column("is_deprecated", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("deprecated_by", Ident),
        sa.Column("superseded_by", sa.String(36)),
        sa.Column("deprecation_reason", sa.Text),
        sa.Column("deprecated_at", sa.Float),
        sa.Column("error_pattern", Ident),
        sa.Column("derived_from_agents", Json, nullable=False),
        sa.Column("coordination_metadata", Json, nullable=False),
        sa.Column("embedding", sa.LargeBinary),
        sa.Column("embedding_model", Ident),
        sa.Column("change_seq", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ux_memories_dedup", "memories", ["project_id", "dedup_key"], unique=True
    )
    op.create_index("ix_memories_owner", "memories", ["project_id", "namespace", "agent_id"])
    op.create_index("ix_memories_change_seq", "memories", ["change_seq"])
    op.create_index("ix_memories_expires_at", "memories", ["expires_at"])
    op.create_table(
        "votes",
        sa.Column(
            "memory_row_id",
            RowId,
            sa.ForeignKey("memories.row_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("voter_agent_id", Ident, primary_key=True),
        sa.Column("task_id", Ident, primary_key=True),
        sa.Column("vote", sa.String(8), nullable=False),
        sa.Column("context", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("row_id", RowId, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("project_id", Ident, nullable=False),
        sa.Column("namespace", Ident),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("agent_id", Ident),
        sa.Column("memory_ids", Json, nullable=False),
        sa.Column("task_id", Ident),
        sa.Column("retrieval_event_id", sa.String(36)),
        sa.Column("payload", Json, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_events_project_time", "events", ["project_id", "created_at"])
    op.create_index("ix_events_project_type", "events", ["project_id", "event_type"])
    op.create_table(
        "sessions",
        sa.Column("row_id", RowId, primary_key=True, autoincrement=True),
        sa.Column("project_id", Ident, nullable=False),
        sa.Column("namespace", Ident, nullable=False),
        sa.Column("session_id", Ident, nullable=False),
        sa.Column("agent_id", Ident),
        sa.Column("user_id", Ident),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("completed", Json, nullable=False),
        sa.Column("in_progress", sa.Text),
        sa.Column("next_items", Json, nullable=False),
        sa.Column("blocked", Json, nullable=False),
        sa.Column("summary", sa.Text),
        sa.Column("total_items", sa.Integer),
        sa.Column("meta", Json, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index(
        "ux_sessions_key", "sessions", ["project_id", "namespace", "session_id"], unique=True
    )
    op.create_table(
        "features",
        sa.Column("row_id", RowId, primary_key=True, autoincrement=True),
        sa.Column("project_id", Ident, nullable=False),
        sa.Column("namespace", Ident, nullable=False),
        sa.Column("feature_id", Ident, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("session_id", Ident),
        sa.Column("category", Ident),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("passes", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("test_steps", Json, nullable=False),
        sa.Column("implemented_by", Ident),
        sa.Column("verified_by", Ident),
        sa.Column("failure_reason", sa.Text),
        sa.Column("completed_at", sa.Float),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index(
        "ux_features_key", "features", ["project_id", "namespace", "feature_id"], unique=True
    )
    op.create_table(
        "counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "memory_tombstones",
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("row_id", RowId, primary_key=True),
    )
    op.create_index("ix_memory_tombstones_seq", "memory_tombstones", ["seq"])
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.execute("INSERT INTO counters (name, value) VALUES ('memory_seq', 0)")


def downgrade() -> None:
    for name in (
        "store_meta", "memory_tombstones", "counters", "features", "sessions", "events",
        "votes", "memories", "api_keys", "projects",
    ):
        op.drop_table(name)
