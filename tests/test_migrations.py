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
        assert version == "0002"
        sql = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'memories'").fetchone()[0]
        assert "AUTOINCREMENT" in sql  # row ids are index labels: never reused
