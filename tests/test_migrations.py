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
        assert version == "0008"
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


def test_fulltext_index_covers_rows_written_before_it_and_follows_every_change(tmp_path):
    """Revisions 0005 and 0006 index the memories a database already has, in one table per
    project, and its triggers keep it in step with inserts, content updates and deletes."""
    from alembic import command
    from alembic.config import Config

    from aegis_memory.store.sql_store import MIGRATIONS_DIR

    path = tmp_path / "old.db"
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{path}")
    command.upgrade(cfg, "0004")
    insert = (
        "INSERT INTO memories (id, project_id, namespace, content, content_hash, dedup_key, "
        "scope, shared_with_agents, memory_type, meta, created_at, updated_at, "
        "derived_from_agents, coordination_metadata, change_seq) VALUES (?, 'p1', 'default', "
        "?, ?, ?, 'global', '[]', 'standard', '{}', 0, 0, '[]', '{}', 1)")
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO projects VALUES ('p1', 0)")
        conn.execute(insert, ("m1", "The deploy pipeline paints dashboards", "h1", "d1"))
    _migrate(str(path))

    def matching(conn: sqlite3.Connection, word: str) -> list[str]:
        (slot,) = conn.execute(
            "SELECT slot FROM fulltext_projects WHERE project_id = 'p1'").fetchone()
        fts = f"memories_fts_{slot}"
        return [r[0] for r in conn.execute(
            f"SELECT m.id FROM {fts} JOIN memories m ON m.row_id = {fts}.rowid "
            f"WHERE {fts} MATCH ? ORDER BY m.id", (word,))]

    with sqlite3.connect(path) as conn:
        assert matching(conn, "painting") == ["m1"]  # the old row, stemmed
        conn.execute(insert, ("m2", "Painted fences", "h2", "d2"))
        assert matching(conn, "paint") == ["m1", "m2"]
        conn.execute("UPDATE memories SET content = 'Deploys run nightly' WHERE id = 'm1'")
        assert matching(conn, "paint") == ["m2"]
        assert matching(conn, "nightly") == ["m1"]
        conn.execute("DELETE FROM memories WHERE id = 'm2'")
        assert matching(conn, "paint") == []
        # FTS5's own check raises when the index and the table disagree.
        conn.execute(
            "INSERT INTO memories_fts_1(memories_fts_1, rank) VALUES ('integrity-check', 1)")


def test_each_project_gets_its_own_fulltext_table_whatever_its_id(tmp_path):
    """A project's full-text table and triggers are made on its first write; its id is
    written into the triggers as a literal no character can break out of, and the triggers
    of one project never index another's memories."""
    from aegis_memory.store.sqlite.fulltext import ensure_project_index

    path = str(tmp_path / "p.db")
    _migrate(path)
    odd = "it's ✓ 'x'); DROP TABLE memories; --"
    insert = (
        "INSERT INTO memories (id, project_id, namespace, content, content_hash, dedup_key, "
        "scope, shared_with_agents, memory_type, meta, created_at, updated_at, "
        "derived_from_agents, coordination_metadata, change_seq) VALUES (?, ?, 'default', "
        "?, ?, ?, 'global', '[]', 'standard', '{}', 0, 0, '[]', '{}', 1)")
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("BEGIN IMMEDIATE")
        slots = {p: ensure_project_index(conn, p) for p in (odd, "plain")}
        assert ensure_project_index(conn, odd) == slots[odd]  # made once
        conn.execute(insert, ("m1", odd, "Quarterly budget review", "h1", "d1"))
        conn.execute(insert, ("m2", "plain", "Budget meeting moved", "h2", "d2"))
        conn.execute("COMMIT")

        def ids(project: str, word: str) -> list[str]:
            fts = f"memories_fts_{slots[project]}"
            return [r[0] for r in conn.execute(
                f"SELECT m.id FROM {fts} JOIN memories m ON m.row_id = {fts}.rowid "
                f"WHERE {fts} MATCH ?", (word,))]

        assert ids(odd, "budget") == ["m1"]
        assert ids("plain", "budget") == ["m2"]
        assert conn.execute("SELECT count(*) FROM memories").fetchone()[0] == 2


def test_user_filtered_stream_neighbours_seek_the_user_stream_index(tmp_path):
    """Hybrid search's neighbour lookup, filtered by user, seeks the user's rows of the
    stream (revision 0007) instead of walking the whole stream's index (seconds at 1M)."""
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from aegis_memory.index import SearchFilter
    from aegis_memory.store.neighbours import _LINKS
    from aegis_memory.store.sql_filters import filter_params

    path = str(tmp_path / "plan.db")
    _migrate(path)
    flt = SearchFilter(project_id="p1", namespace="default", now=0.0,
                       visible_to_agent="a1", user_id="u1")
    compiled = _LINKS(flt, "sqlite").compile(dialect=sqlite_dialect.dialect())
    state = compiled.construct_expanded_state({**filter_params(flt), "rows": [1, 2, 3]})
    params = [state.parameters[name] for name in state.positiontup]
    with sqlite3.connect(path) as conn:
        plan = " | ".join(row[3] for row in conn.execute(
            "EXPLAIN QUERY PLAN " + state.statement, params))
    assert plan.count("ix_memories_user_stream") == 2, plan  # before and after
