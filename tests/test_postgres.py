"""PostgreSQL-only behaviour: schema and migrations, several workers over one database, the read
replica, and the command line. The shared contract (every endpoint, every access rule) runs
against PostgreSQL through the parametrised ``server`` fixture; this file covers what only a
server database has.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from aegis_memory.store.postgres.embedded import EmbeddedPostgres, free_port
from aegis_memory.store.postgres.store import PostgresStore
from aegis_memory.store.tables import metadata, schema_filter
from tests.conftest import ServerProcess, clean_env, database_rows, fresh_database

REPO = Path(__file__).resolve().parent.parent
AUTH = {"Authorization": "Bearer dev-key"}


def _schema_facts(url: str) -> dict[str, object]:
    return {
        "version": database_rows(url, "SELECT version_num FROM alembic_version")[0][0],
        "column": database_rows(
            url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
                 "attrelid = 'memories'::regclass AND attname = 'embedding'")[0][0],
        "indexes": {name: sql for name, sql in database_rows(
            url, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'memories'")},
    }


def test_upgrade_from_empty_matches_models(postgres):
    url = fresh_database(postgres)

    async def run() -> list:
        store = PostgresStore(url)
        try:
            await store.migrate(embedding_dim=384)
            await store.migrate(embedding_dim=384)  # a second upgrade is a no-op
            async with store._primary.connect() as conn:
                return await conn.run_sync(lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={
                        "compare_type": True,
                        "include_object": schema_filter("postgresql"),
                    }),
                    metadata,
                ))
        finally:
            await store.close()

    diffs = asyncio.run(run())
    assert diffs == []
    facts = _schema_facts(url)
    assert facts["version"] == "0008"
    assert facts["column"] == "vector(384)"
    hnsw = facts["indexes"]["ix_memories_embedding_hnsw"]
    assert "USING hnsw (embedding vector_cosine_ops)" in hnsw
    assert "USING gin (content_tsv)" in facts["indexes"]["ix_memories_content_fts"]
    generated = database_rows(
        url, "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = "
             "'memories'::regclass AND adnum = (SELECT attnum FROM pg_attribute WHERE "
             "attrelid = 'memories'::regclass AND attname = 'content_tsv')")[0][0]
    assert "aegis_english" in generated
    mapping = database_rows(
        url, "SELECT dictionaries::text FROM ts_debug('aegis_english', 'café') LIMIT 1")[0][0]
    assert "unaccent" in mapping
    assert "UNIQUE" in facts["indexes"]["ux_memories_dedup"]
    version = database_rows(
        url, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")[0][0]
    assert tuple(int(p) for p in version.split(".")[:2]) >= (0, 8)


def test_alembic_command_line_upgrades_a_database(postgres):
    url = fresh_database(postgres)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "alembic"), "-c", str(REPO / "alembic.ini"),
         "-x", "embedding_dim=64", "upgrade", "head"],
        cwd=REPO, env=clean_env(DATABASE_URL=url), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert _schema_facts(url)["column"] == "vector(64)"


def execute(url: str, statement: str) -> None:
    """Run one statement and commit it."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://", 1))
        try:
            async with engine.begin() as conn:
                await conn.execute(text(statement))
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_stored_document_covers_rows_written_before_it_and_follows_changes(postgres):
    """Revision 0006 computes ``content_tsv`` for the memories a database already has, and
    PostgreSQL keeps it in step with inserts and content updates; it folds diacritics."""
    url = fresh_database(postgres)

    def alembic(target: str) -> None:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "alembic"), "-c", str(REPO / "alembic.ini"),
             "-x", "embedding_dim=64", "upgrade", target],
            cwd=REPO, env=clean_env(DATABASE_URL=url), capture_output=True, text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr

    insert = (
        "INSERT INTO memories (id, project_id, namespace, content, content_hash, dedup_key, "
        "scope, shared_with_agents, memory_type, meta, created_at, updated_at, "
        "derived_from_agents, coordination_metadata, change_seq) VALUES ('{id}', 'p1', "
        "'default', '{content}', '{id}', '{id}', 'global', '[]', 'standard', '{{}}', 0, 0, "
        "'[]', '{{}}', 1)")
    alembic("0005")
    execute(url, "INSERT INTO projects VALUES ('p1', 0)")
    execute(url, insert.format(id="m1", content="Lunch at the café paints a picture"))
    alembic("head")

    def matching(word: str) -> list[str]:
        return [r[0] for r in database_rows(
            url, "SELECT id FROM memories WHERE content_tsv @@ "
                 f"to_tsquery('aegis_english', '{word}') ORDER BY id")]

    assert matching("cafe") == ["m1"]  # the old row, its accent folded
    assert matching("café") == ["m1"]  # in the query too
    assert matching("painting") == ["m1"]  # stemmed
    execute(url, insert.format(id="m2", content="Painted fences"))
    assert matching("paint") == ["m1", "m2"]
    execute(url, "UPDATE memories SET content = 'Deploys run nightly' WHERE id = 'm1'")
    assert matching("paint") == ["m2"]
    assert matching("nightly") == ["m1"]


def test_aegis_migrate_then_serve(postgres, tmp_path):
    url = fresh_database(postgres)
    done = subprocess.run(
        [sys.executable, "-m", "aegis_memory.cli.main", "migrate"],
        env=clean_env(DATABASE_URL=url), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "schema is up to date (postgresql" in done.stdout
    assert _schema_facts(url)["column"] == "vector(384)"  # sized for the configured model


def test_unreachable_database_is_one_clear_sentence(tmp_path):
    port = free_port()
    url = f"postgresql://aegis:hunter2secret@127.0.0.1:{port}/aegis"
    done = subprocess.run(
        [sys.executable, "-m", "aegis_memory.cli.main", "serve", "--port", str(free_port()),
         "--data-dir", str(tmp_path)],
        env=clean_env(DATABASE_URL=url), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1
    assert "Aegis cannot start" in done.stderr
    assert f"Cannot use the PostgreSQL database at postgresql://aegis:***@127.0.0.1:{port}" in (
        done.stderr.replace("\n", ""))
    assert "hunter2secret" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_several_workers_on_one_database_lose_and_duplicate_nothing(postgres, tmp_path):
    """Three worker processes, eight concurrent clients: every distinct write lands once, and
    racing identical writes (through different workers) all get the same id."""
    url = fresh_database(postgres)
    server = ServerProcess(tmp_path / "data", env={"DATABASE_URL": url},
                           args=["--workers", "3"]).start()
    ns = "mw-" + uuid.uuid4().hex[:8]
    try:
        def client_run(n: int) -> tuple[list[str], list[str]]:
            own, shared = [], []
            for i in range(25):
                # A fresh connection each time, so requests spread over the workers.
                with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=60) as c:
                    r = c.post("/memories/add", json={
                        "content": f"client {n} learned fact number {i}", "namespace": ns})
                    assert r.status_code == 200, r.text
                    own.append(r.json()["id"])
                    r = c.post("/memories/add", json={
                        "content": f"shared lesson {i % 5}", "namespace": ns})
                    assert r.status_code == 200, r.text
                    shared.append(r.json()["id"])
                    # Read-your-writes whichever worker answers.
                    got = c.get(f"/memories/{own[-1]}")
                    assert got.status_code == 200, got.text
            return own, shared

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(client_run, range(8)))
        own_ids = [mid for own, _ in results for mid in own]
        assert len(own_ids) == len(set(own_ids)) == 200
        by_lesson: dict[int, set[str]] = {}
        for _, shared in results:
            for i, mid in enumerate(shared):
                by_lesson.setdefault(i % 5, set()).add(mid)
        assert all(len(ids) == 1 for ids in by_lesson.values()), by_lesson
        with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=60) as c:
            exported = c.post("/memories/export", json={"namespace": ns}).text.splitlines()
            assert len(exported) == 205
            found = c.post("/memories/query", json={
                "query": "client 3 learned fact number 7", "namespace": ns, "top_k": 3}).json()
            assert found["memories"][0]["content"] == "client 3 learned fact number 7"
        stored = database_rows(url, f"SELECT count(*), count(DISTINCT content) FROM memories "
                            f"WHERE namespace = '{ns}'")[0]
        assert stored == (205, 205)
    finally:
        server.stop()


def test_read_replica_serves_dashboards_and_is_optional(tmp_path):
    """Dashboards read from the replica; writes, reads by id and searches stay on the primary
    (read-your-writes); a replica that goes away costs nothing but primary load."""
    # Durable: a standby replaying WAL written with full_page_writes=off crashed once under
    # load (startup process aborted while redoing a commit); production primaries keep it on.
    primary = EmbeddedPostgres(tmp_path / "primary", durable=True).start()
    server = None
    try:
        url = primary.create_database("aegis")
        replica = primary.start_replica(tmp_path / "replica")
        server = ServerProcess(tmp_path / "data", env={
            "DATABASE_URL": url, "DATABASE_READ_REPLICA_URL": replica.url("aegis"),
        }).start()
        with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=60) as c:
            ids = [c.post("/memories/add", json={"content": f"replicated fact {i}",
                                                 "agent_id": "a"}).json()["id"]
                   for i in range(5)]
            found = c.post("/memories/query", json={"query": "replicated fact",
                                                    "agent_id": "a"}).json()["memories"]
            assert {m["id"] for m in found} == set(ids)  # immediately: searched on the primary
            deadline = time.monotonic() + 30
            while True:
                stats = c.get("/memories/ace/dashboard/stats")
                assert stats.status_code == 200, stats.text
                if stats.json()["memories_total"] == 5 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert stats.json()["memories_total"] == 5

            def clients(cluster: EmbeddedPostgres) -> set[str]:
                out = cluster.psql("SELECT DISTINCT application_name FROM pg_stat_activity "
                                   "WHERE datname = 'aegis'")
                return {line.strip() for line in out.splitlines() if line.strip()}

            assert "aegis-memory-replica" in clients(replica)
            assert "aegis-memory-replica" not in clients(primary)
            assert "aegis-memory-primary" not in clients(replica)

            replica.stop()
            stats = c.get("/memories/ace/dashboard/stats")
            assert stats.status_code == 200 and stats.json()["memories_total"] == 5
            assert c.post("/memories/add", json={"content": "after the replica left"}
                          ).status_code == 200
    finally:
        if server is not None:
            server.stop()
        primary.stop()


def test_serve_postgres_embedded_keeps_data_across_restarts(tmp_path):
    data = tmp_path / "data"
    first = ServerProcess(data, args=["--postgres-embedded"]).start()
    try:
        with httpx.Client(base_url=first.base_url, headers=AUTH, timeout=60) as c:
            r = c.post("/memories/add", json={"content": "kept in embedded postgres"})
            mid = r.json()["id"]
    finally:
        first.stop()
    assert (data / "postgres" / "PG_VERSION").exists()
    assert not (data / "postgres" / "postmaster.pid").exists()  # stopped with the server
    assert not (data / "aegis.db").exists()
    second = ServerProcess(data, args=["--postgres-embedded"]).start()
    try:
        with httpx.Client(base_url=second.base_url, headers=AUTH, timeout=60) as c:
            assert c.get(f"/memories/{mid}").json()["content"] == "kept in embedded postgres"
    finally:
        second.stop()


TENANT_TABLES = ("memories", "votes", "events", "sessions", "features")


def test_every_key_of_every_tenant_table_starts_with_the_project(postgres):
    """The rules a Citus cluster sharded on project_id imposes: every primary key, unique key
    and foreign key between tenant tables includes the distribution column."""
    url = fresh_database(postgres)

    async def migrate() -> None:
        store = PostgresStore(url)
        try:
            await store.migrate(embedding_dim=8)
        finally:
            await store.close()

    asyncio.run(migrate())
    def names(relation: str, attnums: str) -> str:
        return (f"array(SELECT a.attname FROM unnest({attnums}) WITH ORDINALITY k(num, ord) "
                f"JOIN pg_attribute a ON a.attrelid = {relation} AND a.attnum = k.num "
                f"ORDER BY k.ord)::text[]")

    keys = database_rows(url, f"""
        SELECT c.conrelid::regclass::text, c.conname, c.contype,
               {names("c.conrelid", "c.conkey")},
               coalesce({names("c.confrelid", "c.confkey")}, '{{}}')
        FROM pg_constraint c WHERE c.contype IN ('p', 'u', 'f')
          AND c.connamespace = 'public'::regnamespace""")
    unique_indexes = database_rows(url, f"""
        SELECT t.relname, i.relname, {names("t.oid", "x.indkey::int2[]")}
        FROM pg_index x JOIN pg_class t ON t.oid = x.indrelid
        JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indisunique AND t.relnamespace = 'public'::regnamespace""")
    seen = 0
    for table, name, kind, columns, referenced in keys:
        if table not in TENANT_TABLES:
            continue
        seen += 1
        assert columns[0] == "project_id", (table, name, columns)
        if kind == "f":
            assert referenced[0] == "project_id", (table, name, referenced)
    for table, name, columns in unique_indexes:
        if table in TENANT_TABLES:
            assert columns[0] == "project_id", (table, name, columns)
    assert seen >= len(TENANT_TABLES) + 1  # five primary keys and the votes foreign key


def test_upgrade_keeps_votes_made_before_tenant_keys(postgres):
    """A database at revision 0002 with votes upgrades to the tenant keys without losing any."""
    from alembic import command
    from alembic.config import Config

    from aegis_memory.store.sql_store import MIGRATIONS_DIR

    url = fresh_database(postgres)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["embedding_dim"] = 8
    command.upgrade(cfg, "0002")
    postgres.psql(
        "INSERT INTO projects VALUES ('p1', 0);"
        "INSERT INTO memories (id, project_id, namespace, content, content_hash, scope, "
        "shared_with_agents, memory_type, meta, created_at, updated_at, derived_from_agents, "
        "coordination_metadata, change_seq) VALUES ('m1', 'p1', 'default', 'x', 'h', "
        "'global', '[]', 'standard', '{}', 0, 0, '[]', '{}', 1);"
        "INSERT INTO votes (memory_row_id, voter_agent_id, task_id, vote, created_at, "
        "updated_at) SELECT row_id, 'a', '', 'helpful', 0, 0 FROM memories",
        url.rsplit("/", 1)[1],
    )
    command.upgrade(cfg, "head")
    assert database_rows(url, "SELECT project_id, voter_agent_id, vote FROM votes") == [
        ("p1", "a", "helpful")]


def test_replicas_purging_expired_memories_at_once_share_the_work(postgres):
    """Every API replica runs the TTL purge; concurrent purges take disjoint rows (SKIP LOCKED)
    instead of colliding, and together remove each expired memory once."""
    from aegis_memory.store.records import NewMemory

    url = fresh_database(postgres)

    def memory(i: int, expires_at: float | None) -> NewMemory:
        return NewMemory(
            id=uuid.uuid4().hex, project_id=f"p{i % 3}", namespace="default", agent_id=None,
            user_id=None, content=f"fact {i}", content_hash=f"{i:064x}",
            dedup_key=uuid.uuid4().hex, scope="global", shared_with_agents=[],
            memory_type="standard", metadata={}, created_at=0.0, expires_at=expires_at,
            error_pattern=None, derived_from_agents=[], coordination_metadata={},
            embedding=np.ones(8, np.float32).tobytes(), embedding_model="m",
        )

    async def run() -> tuple[list[int], int]:
        stores = [PostgresStore(url) for _ in range(3)]
        try:
            await stores[0].migrate(embedding_dim=8)
            for p in ("p0", "p1", "p2"):
                await stores[0].ensure_project(p, 0.0)
            now = time.time()
            rows = [memory(i, now - 10 if i < 300 else None) for i in range(330)]
            for p in ("p0", "p1", "p2"):
                mine = [m for m in rows if m.project_id == p]
                await stores[0].insert_memories(mine, [None] * len(mine), now)
            purged = await asyncio.gather(*(s.purge_expired(now, limit=40) for s in stores * 4))
            async with stores[0]._primary.connect() as conn:
                left = (await conn.execute(text("SELECT count(*) FROM memories"))).scalar_one()
            return list(purged), left
        finally:
            for s in stores:
                await s.close()

    purged, left = asyncio.run(run())
    assert sum(purged) == 300 and left == 30
