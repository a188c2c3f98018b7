"""The full-text leg of hybrid search on SQLite: FTS5's BM25 over ``memories_fts``.

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
    StatementCache,
    bound_filter_clauses,
    filter_params,
)

#: Least BM25 a search's best match is scaled by (see ``text_scores``). FTS5's BM25 adds
#: about 2-7 per matching query word (rarer words more, and more in a larger database), so a
#: match of two or three good words reaches it. Tuned on LoCoMo
#: (docs/guides/retrieval-quality.md).
BM25_FLOOR = 10.0

_FTS = table(t.FULLTEXT_TABLE, column("rowid"))
_FTS_REF = literal_column(t.FULLTEXT_TABLE)
_BM25 = func.bm25(_FTS_REF)
_M = t.memories.c


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


def _build_ranked(shape: FilterShape, dialect: str) -> Any:
    rank = _BM25.label("bm25")
    return (
        select(_FTS.c.rowid, rank)
        .select_from(_FTS.join(t.memories, _M.row_id == _FTS.c.rowid))
        .where(_FTS_REF.op("MATCH")(bindparam("expr")), *bound_filter_clauses(shape, dialect))
        .order_by(rank)
        .limit(bindparam("limit"))
    )


_RANKED = StatementCache(_build_ranked)


#: Most index entries (rows per word, summed over the words searched) one search reads. FTS5
#: scores every row that matches any word, at about 1.5-2.5 µs a row with the filter's join,
#: so a common word in a large database (100k rows) would cost hundreds of milliseconds.
#: Words are taken rarest first while they fit: the common ones left out weigh least in BM25
#: anyway, and the vector leg still ranks by meaning. On LoCoMo 5,000 / 2,000 / 1,000 gave
#: recall@10 0.705 / 0.704 / 0.699 and hybrid p50 16.9 / 14.9 / 13.7 ms.
POSTINGS_BUDGET = 2000

# Query words as the index stores them (case-folded, Porter-stemmed) come from FTS5 itself: a
# one-row table with the same tokenizer in the connection's temp schema, read back through
# fts5vocab; the main index's own fts5vocab gives each word's row count.
_TOKENIZER_TABLES = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.aegis_query USING fts5(words, "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.aegis_query_words "
    "USING fts5vocab(temp, aegis_query, instance)",
    f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.aegis_index_words "
    f"USING fts5vocab(main, {t.FULLTEXT_TABLE}, row)",
)


#: How long a word's row count is reused. ``fts5vocab`` counts a word's rows by reading its
#: whole list of rows (10-20 ms for a word in 100k memories), and the count only decides
#: which words a search can afford, so a minute-old count serves as well as a fresh one.
DOC_COUNT_TTL = 60.0
_DOC_COUNT_ENTRIES = 100_000


class DocCounts:
    """Rows per index term of one database, cached for ``DOC_COUNT_TTL`` seconds.

    Words not in the index are not cached: looking them up costs nothing, and the next
    memory may add them. Thread safe (the reader threads share one instance).
    """

    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def lookup(self, driver: Any, stems: Sequence[str]) -> dict[str, int]:
        now = time.monotonic()
        counts: dict[str, int] = {}
        with self._lock:
            for stem in stems:
                cached = self._counts.get(stem)
                if cached is not None and now - cached[1] < DOC_COUNT_TTL:
                    counts[stem] = cached[0]
        missing = [stem for stem in stems if stem not in counts]
        if missing:
            marks = ", ".join("?" * len(missing))
            fresh = {stem: int(docs) for stem, docs in driver.execute(
                f"SELECT term, doc FROM temp.aegis_index_words WHERE term IN ({marks})",
                missing)}
            counts.update(fresh)
            with self._lock:
                if len(self._counts) > _DOC_COUNT_ENTRIES:
                    self._counts.clear()
                self._counts.update((stem, (docs, now)) for stem, docs in fresh.items())
        return counts


def affordable_terms(
    driver: Any, terms: Sequence[str], budget: int = POSTINGS_BUDGET,
    doc_counts: DocCounts | None = None,
) -> list[str]:
    """Those of ``terms`` that one search can afford, rarest first (see ``POSTINGS_BUDGET``);
    words the index has never seen are dropped (they match nothing).

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
    counts = (doc_counts or DocCounts()).lookup(driver, list(word_of))
    chosen: list[str] = []
    spent = 0
    for docs, stem in sorted((docs, stem) for stem, docs in counts.items()):
        if spent + docs > budget:
            break
        chosen.append(word_of[stem])
        spent += docs
    return chosen


def ranked_matches(
    conn: Connection, flt: SearchFilter, terms: Sequence[str], limit: int,
    budget: int = POSTINGS_BUDGET, doc_counts: DocCounts | None = None,
) -> dict[int, float]:
    """Text scores of the best ``limit`` rows ``flt`` allows that match any word, best first
    (only the words the postings ``budget`` affords)."""
    driver = conn.connection.driver_connection
    chosen = affordable_terms(driver, terms, budget, doc_counts)
    if not chosen:
        return {}
    result = conn.execute(_RANKED(flt, "sqlite"), {
        **filter_params(flt), "expr": match_expression(chosen), "limit": limit})
    # Hundreds of (rowid, bm25) pairs: read as plain tuples from the driver's cursor;
    # building SQLAlchemy rows for them cost more than the search itself.
    scores = text_scores(result.cursor.fetchall())
    result.close()
    return scores
