"""The Alembic migrations build exactly the schema the code describes, from an empty database."""

from __future__ import annotations

import asyncio
import sqlite3

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from aegis_memory.store.sqlite import SQLiteStore
from aegis_memory.store.tables import metadata, schema_filter


def _migrate(path: str) -> None:
    async def run() -> None:
        store = SQLiteStore(f"sqlite:///{path}")
        await store.migrate()
        await store.migrate()  # a second upgrade is a no-op
        await store.close()

    asyncio.run(run())


def test_upgrade_from_empty_matches_models(tmp_path):
    path = str(tmp_path / "m.db")
    _migrate(path)
    engine = create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(
            conn, opts={"include_object": schema_filter("sqlite")}), metadata)
    assert diffs == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        assert version == "0004"
        sql = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'memories'").fetchone()[0]
        assert "AUTOINCREMENT" in sql  # row ids are index labels: never reused


def test_upgrade_keeps_votes_made_before_tenant_keys(tmp_path):
    """A database at revision 0002 with votes upgrades to the tenant keys without losing any,
    and keeps AUTOINCREMENT on memories."""
    from alembic import command
    from alembic.config import Config

    from aegis_memory.store.sql_store import MIGRATIONS_DIR

    path = tmp_path / "old.db"
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{path}")
    command.upgrade(cfg, "0002")
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO projects VALUES ('p1', 0)")
        conn.execute(
            "INSERT INTO memories (id, project_id, namespace, content, content_hash, scope, "
            "shared_with_agents, memory_type, meta, created_at, updated_at, "
            "derived_from_agents, coordination_metadata, change_seq) VALUES ('m1', 'p1', "
            "'default', 'x', 'h', 'global', '[]', 'standard', '{}', 0, 0, '[]', '{}', 1)")
        conn.execute(
            "INSERT INTO votes (memory_row_id, voter_agent_id, task_id, vote, created_at, "
            "updated_at) SELECT row_id, 'a', '', 'helpful', 0, 0 FROM memories")
    _migrate(str(path))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA foreign_keys=ON")
        assert conn.execute("SELECT project_id, voter_agent_id, vote FROM votes").fetchall() == [
            ("p1", "a", "helpful")]
        # The vote follows its memory out (ON DELETE CASCADE through the tenant key).
        conn.execute("DELETE FROM memories WHERE id = 'm1'")
        assert conn.execute("SELECT count(*) FROM votes").fetchone()[0] == 0
