"""Hybrid search: SQLite's full-text index (FTS5), and an index of agents' streams.

Queries rank memories by meaning (vectors) *and* by the words they share with the query
(BM25): on long conversations plain BM25 finds more of the right memories than a small
sentence-embedding model, and the two together find more than either
(docs/guides/retrieval-quality.md). PostgreSQL has had its full-text index (a GIN over
``to_tsvector('english', content)``) since revision 0002.

The FTS5 table is *external content*: it keeps only the inverted index and reads the text
from ``memories`` (no second copy of every memory). Triggers keep it in step with every
insert, content update and delete in the same transaction, whoever writes. The tokenizer
folds case and diacritics and applies the Porter stemmer (PostgreSQL's ``english``
configuration stems too, but keeps diacritics), so "painting" finds "paints".

PostgreSQL gets ``ix_memories_stream`` (project, namespace, agent, row id): hybrid search
looks up the memory written just before and after each candidate by the same agent in the
same namespace (``store/neighbours.py``). SQLite's owner index already ends with the rowid.

PostgreSQL's full-text index is rebuilt over the content with punctuation turned into
spaces: its parser keeps e-mail addresses, host names, paths, versions and decimals as
single tokens ("jdoe@example.com", "3.14"), so a query for "example" or "14" found nothing
that SQLite's tokenizer finds.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_STATEMENTS = (
    "CREATE VIRTUAL TABLE memories_fts USING fts5(content, content='memories', "
    "content_rowid='row_id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN "
    "INSERT INTO memories_fts(rowid, content) VALUES (new.row_id, new.content); END",
    "CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN "
    "INSERT INTO memories_fts(memories_fts, rowid, content) "
    "VALUES ('delete', old.row_id, old.content); END",
    "CREATE TRIGGER memories_fts_update AFTER UPDATE OF content ON memories BEGIN "
    "INSERT INTO memories_fts(memories_fts, rowid, content) "
    "VALUES ('delete', old.row_id, old.content); "
    "INSERT INTO memories_fts(rowid, content) VALUES (new.row_id, new.content); END",
    # Index what is already there (databases made before this revision).
    "INSERT INTO memories_fts(memories_fts) VALUES ('rebuild')",
)


#: The document PostgreSQL indexes and searches (``store/postgres/fulltext.py`` repeats it
#: exactly, so the planner uses the index).
PG_DOCUMENT = "to_tsvector('english', regexp_replace(content, '[[:punct:]]+', ' ', 'g'))"
PG_DOCUMENT_0002 = "to_tsvector('english', content)"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # SQLite's owner index (project, namespace, agent) ends with the rowid already.
        op.execute(
            "CREATE INDEX ix_memories_stream ON memories (project_id, namespace, agent_id, row_id)"
        )
        op.execute("DROP INDEX IF EXISTS ix_memories_content_fts")
        op.execute(f"CREATE INDEX ix_memories_content_fts ON memories USING gin ({PG_DOCUMENT})")
        return
    for statement in _STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_memories_stream")
        op.execute("DROP INDEX IF EXISTS ix_memories_content_fts")
        op.execute(
            f"CREATE INDEX ix_memories_content_fts ON memories USING gin ({PG_DOCUMENT_0002})")
        return
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS memories_fts_{trigger}")
    op.execute("DROP TABLE IF EXISTS memories_fts")
