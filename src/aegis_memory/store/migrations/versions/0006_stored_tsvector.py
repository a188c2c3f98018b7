"""Full-text indexes: one per project on SQLite; a stored, accent-folding one on PostgreSQL.

**SQLite: one FTS5 table per project.** Revision 0005 made one ``memories_fts`` for every
project. FTS5's BM25 weighs a word by how many rows of the table contain it, so a tenant's
text scores, and the words its searches could afford, moved with what other tenants wrote.
Each project now has its own contentless table ``memories_fts_<slot>`` (slot from the new
``fulltext_projects``) with its own triggers (``store/sqlite/fulltext.py``, which this
revision calls to make them); new projects get theirs on their first write. Bulk imports
index their rows in one statement at the end instead (``fulltext_bulk`` tells the triggers).

**PostgreSQL: stored, not recomputed.** Until revision 0005 the GIN index was over an
expression, so the index found the matching rows but ``ts_rank`` parsed and stemmed every
match's text again: on LoCoMo that was 20-30 ms of a 52 ms hybrid query.
``memories.content_tsv`` is a generated column (``GENERATED ALWAYS ... STORED``): PostgreSQL
computes it on every insert and content update, whoever writes, and ranking reads it as it
is. Adding it rewrites the table once (about a minute per million memories).

**PostgreSQL: diacritics folded,** as SQLite's tokenizer does ("cafe" finds "café"): the text
search configuration ``aegis_english`` is ``english`` with the ``unaccent`` dictionary in
front of the stemmer for words that are not plain ASCII (the recipe of PostgreSQL's manual).
``unaccent`` is a trusted contrib extension (any database owner may create it; the
``pgvector/pgvector`` images and Debian's packages ship it). Where it is missing,
``aegis_english`` is a plain copy of ``english``: search works, without the folding.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.exc import DBAPIError

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

#: The text search configuration of the stored document and of the queries
#: (``store/postgres/fulltext.py``).
PG_CONFIG = "aegis_english"
#: The stored document: punctuation becomes spaces, as in revision 0005.
PG_DOCUMENT = (
    f"to_tsvector('{PG_CONFIG}'::regconfig, regexp_replace(content, '[[:punct:]]+', ' ', 'g'))"
)
PG_DOCUMENT_0005 = "to_tsvector('english', regexp_replace(content, '[[:punct:]]+', ' ', 'g'))"


def _unaccent_installed() -> bool:
    """Create the ``unaccent`` extension if this server has it and we may; say whether it
    is there (a failed attempt is rolled back to a savepoint, not the whole migration)."""
    bind = op.get_bind()
    available = bind.exec_driver_sql(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'unaccent'").scalar()
    if not available:
        return False
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS unaccent")
    except DBAPIError:
        return False
    return True


_SQLITE_0005_TRIGGERS = ("memories_fts_insert", "memories_fts_delete", "memories_fts_update")


def _upgrade_sqlite() -> None:
    from aegis_memory.store.sqlite.fulltext import create_project_index

    op.execute(
        "CREATE TABLE fulltext_projects (slot INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, "
        "project_id VARCHAR(256) NOT NULL, UNIQUE (project_id))")
    op.execute("CREATE TABLE fulltext_bulk (active INTEGER NOT NULL)")
    for trigger in _SQLITE_0005_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS memories_fts")
    bind = op.get_bind()
    projects = [row[0] for row in bind.exec_driver_sql(
        "SELECT DISTINCT project_id FROM memories ORDER BY project_id")]
    driver = bind.connection.driver_connection
    for project_id in projects:
        create_project_index(driver, project_id)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        _upgrade_sqlite()
        return
    op.execute(f"CREATE TEXT SEARCH CONFIGURATION {PG_CONFIG} (COPY = pg_catalog.english)")
    if _unaccent_installed():
        op.execute(
            f"ALTER TEXT SEARCH CONFIGURATION {PG_CONFIG} "
            "ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem")
    op.execute("DROP INDEX IF EXISTS ix_memories_content_fts")
    op.execute(
        f"ALTER TABLE memories ADD COLUMN content_tsv tsvector "
        f"GENERATED ALWAYS AS ({PG_DOCUMENT}) STORED")
    op.execute("CREATE INDEX ix_memories_content_fts ON memories USING gin (content_tsv)")


def _downgrade_sqlite() -> None:
    bind = op.get_bind()
    slots = [row[0] for row in bind.exec_driver_sql("SELECT slot FROM fulltext_projects")]
    for slot in slots:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS memories_fts_{slot}_{trigger}")
        op.execute(f"DROP TABLE IF EXISTS memories_fts_{slot}")
    op.execute("DROP TABLE fulltext_projects")
    op.execute("DROP TABLE fulltext_bulk")
    # Revision 0005's single table and triggers, rebuilt from the memories.
    from importlib import import_module

    for statement in import_module(
            "aegis_memory.store.migrations.versions.0005_fulltext")._STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        _downgrade_sqlite()
        return
    op.execute("DROP INDEX IF EXISTS ix_memories_content_fts")
    op.execute("ALTER TABLE memories DROP COLUMN IF EXISTS content_tsv")
    op.execute(f"DROP TEXT SEARCH CONFIGURATION IF EXISTS {PG_CONFIG}")
    op.execute(
        f"CREATE INDEX ix_memories_content_fts ON memories USING gin ({PG_DOCUMENT_0005})")
