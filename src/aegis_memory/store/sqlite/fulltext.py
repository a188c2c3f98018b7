"""The full-text leg of hybrid search on SQLite: FTS5's BM25, one index per project.

**One FTS5 table per project** (``memories_fts_<slot>``, the slot from ``fulltext_projects``):
BM25 weighs a word by how many rows of *its table* contain it, so with one table for every
project a tenant's text scores (and which words its searches can afford, below) would move
with what other tenants write - a side channel, and one tenant's data changing another's
results. Each table is contentless (it keeps only the inverted index; the text stays in
``memories``) and three triggers, created with it and limited to its project, keep it in step
with every insert, content update and delete in the same transaction, whoever writes. A
project gets its table in the transaction that first writes one of its memories
(``ensure_project_index``, called by the store before inserts); migration 0006 gave every
project of an older database its own. The tokenizer folds case and diacritics and applies the
Porter stemmer, so "painting" finds "paints" and "cafe" finds "café".

The filter is part of the statement (a join to ``memories`` with the same clauses pgvector's
search uses), so a narrow filter never trims a short list after ranking. FTS5 computes BM25
for every row that matches any query word; the query words come from
:func:`aegis_memory.index.text.query_terms` (no stop words), which keeps that set small.

One statement returns the best ``TEXT_SCORE_ROWS`` matches with their scores: the service
needs the text scores of the vector leg's rows too, and asking FTS5 for chosen rowids
afterwards re-runs the match once per rowid (~0.15 ms each).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, column, func, literal_column, select, table
from sqlalchemy.engine import Connection

from aegis_memory.index import SearchFilter
from aegis_memory.store import tables as t
from aegis_memory.store.sql_filters import (
    FilterShape,
    bound_filter_clauses,
    filter_params,
    filter_shape,
)

#: Least BM25 a search's best match is scaled by (see ``text_scores``). FTS5's BM25 adds
#: about 2-7 per matching query word (rarer words more, and more in a larger database), so a
#: match of two or three good words reaches it. Tuned on LoCoMo
#: (docs/guides/retrieval-quality.md).
BM25_FLOOR = 10.0

_M = t.memories.c
_REGISTRY = t.fulltext_projects.name
_BULK = t.fulltext_bulk.name
_TOKENIZE = "porter unicode61 remove_diacritics 2"


def project_table(slot: int) -> str:
    """The name of the full-text table in ``slot``."""
    return f"{t.FULLTEXT_TABLE}_{int(slot)}"


def _text_literal(value: str) -> str:
    """``value`` as an SQL text literal that no character can break out of: its UTF-8 bytes
    as a blob literal, cast to text."""
    return f"CAST(X'{value.encode('utf-8').hex()}' AS TEXT)"


def create_project_index(driver: Any, project_id: str) -> int:
    """Give ``project_id`` its own full-text table and the triggers that keep it in step, and
    index the project's memories already stored. Runs in the caller's write transaction
    (``driver``: its sqlite3 connection); returns the slot."""
    slot = int(driver.execute(
        f"INSERT INTO {_REGISTRY} (project_id) VALUES (?)", (project_id,)).lastrowid)
    fts = project_table(slot)
    mine = _text_literal(project_id)
    delete_old = (f"INSERT INTO {fts}({fts}, rowid, content) "
                  "VALUES ('delete', old.row_id, old.content);")
    insert_new = f"INSERT INTO {fts}(rowid, content) VALUES (new.row_id, new.content);"
    for statement in (
        f"CREATE VIRTUAL TABLE {fts} USING fts5(content, content='', tokenize='{_TOKENIZE}')",
        f"CREATE TRIGGER {fts}_insert AFTER INSERT ON memories "
        f"WHEN new.project_id = {mine} AND NOT EXISTS (SELECT 1 FROM {_BULK}) "
        f"BEGIN {insert_new} END",
        f"CREATE TRIGGER {fts}_delete AFTER DELETE ON memories "
        f"WHEN old.project_id = {mine} BEGIN {delete_old} END",
        f"CREATE TRIGGER {fts}_update AFTER UPDATE OF content ON memories "
        f"WHEN old.project_id = {mine} BEGIN {delete_old} {insert_new} END",
    ):
        driver.execute(statement)
    driver.execute(f"INSERT INTO {fts}(rowid, content) "
                   "SELECT row_id, content FROM memories WHERE project_id = ?", (project_id,))
    return slot


def ensure_project_index(driver: Any, project_id: str) -> int:
    """The slot of ``project_id``'s full-text table, created if it has none yet (see
    ``create_project_index``). Checked in the writing transaction itself, never from a
    cache: a table created by a transaction that then rolled back must not count."""
    row = driver.execute(
        f"SELECT slot FROM {_REGISTRY} WHERE project_id = ?", (project_id,)).fetchone()
    return int(row[0]) if row else create_project_index(driver, project_id)


def begin_bulk_insert(driver: Any) -> None:
    """Until ``end_bulk_insert`` in this write transaction, inserted memories are not indexed
    row by row by the triggers: every statement a trigger runs on an FTS5 table makes FTS5
    write out what it holds in memory (a savepoint), about 20 µs a row against 4 µs for one
    statement over all the rows. The flag row is never committed (``end_bulk_insert`` deletes
    it; a failure rolls it back with the rest), so no other writer ever sees it."""
    driver.execute(f"INSERT INTO {_BULK} (active) VALUES (1)")


def end_bulk_insert(driver: Any, project_id: str, rows: Sequence[tuple[int, str]]) -> None:
    """Index the ``(row id, content)`` of the memories inserted since ``begin_bulk_insert``
    (all of ``project_id``, whose table exists: ``ensure_project_index`` ran first)."""
    if rows:
        fts = project_table(ensure_project_index(driver, project_id))
        driver.executemany(f"INSERT INTO {fts}(rowid, content) VALUES (?, ?)", rows)
    driver.execute(f"DELETE FROM {_BULK}")


class ProjectSlots:
    """Project -> slot of its full-text table, for searches. Only found slots are kept: a
    slot never changes once committed, while a project without one may get one any time."""

    def __init__(self) -> None:
        self._slots: dict[str, int] = {}

    def lookup(self, driver: Any, project_id: str) -> int | None:
        slot = self._slots.get(project_id)
        if slot is None:
            row = driver.execute(
                f"SELECT slot FROM {_REGISTRY} WHERE project_id = ?", (project_id,)).fetchone()
            if row is None:
                return None
            slot = self._slots[project_id] = int(row[0])
        return slot


def match_expression(terms: Sequence[str]) -> str:
    """FTS5 query: any of the words (each quoted, so no word is read as an operator)."""
    return " OR ".join(f'"{term}"' for term in terms)


def text_scores(ranked: list[tuple[int, float]]) -> dict[int, float]:
    """FTS5's ``bm25()`` values (negative, best first) as relevances in [0, 1]: each one
    divided by the best match's, or by ``BM25_FLOOR`` when the best is weaker than that.

    Relative to the best match because BM25's scale grows with the database (rarer words
    in more rows): an absolute squash tuned on one corpus over- or under-weights the text
    leg on another. The floor keeps a search whose best match is poor from scoring it 1.
    """
    if not ranked:
        return {}
    scale = max(-ranked[0][1], BM25_FLOOR)
    return {int(row): max(0.0, -bm25) / scale for row, bm25 in ranked}


def _build_ranked(shape: FilterShape, slot: int) -> Any:
    name = project_table(slot)
    fts = table(name, column("rowid"))
    rank = func.bm25(literal_column(name)).label("bm25")
    return (
        select(fts.c.rowid, rank)
        .select_from(fts.join(t.memories, _M.row_id == fts.c.rowid))
        .where(literal_column(name).op("MATCH")(bindparam("expr")),
               *bound_filter_clauses(shape, "sqlite"))
        .order_by(rank)
        .limit(bindparam("limit"))
    )


_RANKED: dict[tuple[FilterShape, int], Any] = {}


def _ranked_statement(flt: SearchFilter, slot: int) -> Any:
    """The ranking statement for filters of this shape on this project's table, built once."""
    key = (filter_shape(flt), slot)
    statement = _RANKED.get(key)
    if statement is None:
        statement = _RANKED[key] = _build_ranked(*key)
    return statement


#: Most index entries (rows per word, summed over the words searched) one search reads. FTS5
#: scores every row that matches any word, at about 1.5-2.5 µs a row with the filter's join,
#: so a common word in a large database (100k rows) would cost hundreds of milliseconds.
#: Words are taken rarest first while they fit: the common ones left out weigh least in BM25
#: anyway, and the vector leg still ranks by meaning. On LoCoMo 5,000 / 2,000 / 1,000 gave
#: recall@10 0.705 / 0.704 / 0.699 and hybrid p50 16.9 / 14.9 / 13.7 ms.
POSTINGS_BUDGET = 2000

# Query words as the index stores them (case-folded, Porter-stemmed) come from FTS5 itself: a
# one-row table with the same tokenizer in the connection's temp schema, read back through
# fts5vocab. That folds words with one stem ("paint", "painting") into one.
_TOKENIZER_TABLES = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.aegis_query USING fts5(words, "
    f"tokenize='{_TOKENIZE}')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.aegis_query_words "
    "USING fts5vocab(temp, aegis_query, instance)",
)


#: How long a word's row count is reused. The count only decides which words a search can
#: afford, so a minute-old one serves as well as a fresh one.
DOC_COUNT_TTL = 60.0
_DOC_COUNT_ENTRIES = 100_000


def capped_count(driver: Any, slot: int, word: str, cap: int) -> int:
    """How many of the project's memories contain ``word``, counting no further than
    ``cap``: FTS5 reads the word's list of rows only that far. (``fts5vocab`` would read the
    whole list: 100-200 ms for a common word in a million memories, the cause of a slow
    first query that names one.)"""
    fts = project_table(slot)
    row = driver.execute(
        f"SELECT count(*) FROM (SELECT rowid FROM {fts} WHERE {fts} MATCH ? LIMIT ?)",
        (match_expression([word]), cap)).fetchone()
    return int(row[0])


class DocCounts:
    """Rows per word of each project's index, up to a cap, cached for ``DOC_COUNT_TTL``
    seconds. Words in no row are not cached: the next memory may add them, and a search
    must find it at once. Thread safe (the reader threads share one instance)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[int, str, int], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def lookup(
        self, driver: Any, slot: int, words: dict[str, str], cap: int
    ) -> dict[str, int]:
        """``words`` maps each stem to a query word with that stem; returns each stem's
        row count, at most ``cap``."""
        now = time.monotonic()
        counts: dict[str, int] = {}
        with self._lock:
            for stem in words:
                cached = self._counts.get((slot, stem, cap))
                if cached is not None and now - cached[1] < DOC_COUNT_TTL:
                    counts[stem] = cached[0]
        fresh = {stem: capped_count(driver, slot, word, cap)
                 for stem, word in words.items() if stem not in counts}
        if fresh:
            counts.update(fresh)
            with self._lock:
                if len(self._counts) > _DOC_COUNT_ENTRIES:
                    self._counts.clear()
                self._counts.update(
                    ((slot, stem, cap), (docs, now)) for stem, docs in fresh.items() if docs)
        return counts


def affordable_terms(
    driver: Any, slot: int, terms: Sequence[str], budget: int = POSTINGS_BUDGET,
    doc_counts: DocCounts | None = None,
) -> list[str]:
    """Those of ``terms`` that one search of the project in ``slot`` can afford, rarest in
    the project first (see ``POSTINGS_BUDGET``); words the index has never seen are dropped
    (they match nothing).

    The words themselves are returned, not their stems: FTS5 stems the match expression
    again, and stemming a stem does not always give it back.
    """
    for statement in _TOKENIZER_TABLES:
        driver.execute(statement)
    driver.execute("DELETE FROM temp.aegis_query")
    driver.execute("INSERT INTO temp.aegis_query(rowid, words) VALUES (1, ?)", (" ".join(terms),))
    word_of: dict[str, str] = {}
    for stem, offset in driver.execute("SELECT term, offset FROM temp.aegis_query_words"):
        if 0 <= offset < len(terms):
            word_of.setdefault(stem, terms[offset])
    if not word_of:
        return []
    # A word in more rows than the whole budget can never be afforded: count no further.
    counts = (doc_counts or DocCounts()).lookup(driver, slot, word_of, budget + 1)
    chosen: list[str] = []
    spent = 0
    for docs, stem in sorted((docs, stem) for stem, docs in counts.items()):
        if docs == 0:
            continue  # not in this project's index: it matches nothing
        if spent + docs > budget:
            break
        chosen.append(word_of[stem])
        spent += docs
    return chosen


def ranked_matches(
    conn: Connection, flt: SearchFilter, terms: Sequence[str], limit: int,
    budget: int = POSTINGS_BUDGET, doc_counts: DocCounts | None = None,
    slots: ProjectSlots | None = None,
) -> dict[int, float]:
    """Text scores of the best ``limit`` rows ``flt`` allows that match any word, best first
    (only the words the postings ``budget`` affords), from the project's own index."""
    driver = conn.connection.driver_connection
    slot = (slots or ProjectSlots()).lookup(driver, flt.project_id)
    if slot is None:
        return {}  # the project has never stored a memory
    chosen = affordable_terms(driver, slot, terms, budget, doc_counts)
    if not chosen:
        return {}
    result = conn.execute(_ranked_statement(flt, slot), {
        **filter_params(flt), "expr": match_expression(chosen), "limit": limit})
    # Hundreds of (rowid, bm25) pairs: read as plain tuples from the driver's cursor;
    # building SQLAlchemy rows for them cost more than the search itself.
    scores = text_scores(result.cursor.fetchall())
    result.close()
    return scores
