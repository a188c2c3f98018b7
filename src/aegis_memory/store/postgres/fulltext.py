"""The full-text leg of hybrid search on PostgreSQL: ``tsvector`` matching and ``ts_rank``.

Revision 0006 stores each memory's document in ``memories.content_tsv`` (a generated column:
the content with punctuation turned into spaces, parsed with the ``aegis_english``
configuration, which stems words, drops stop words and folds diacritics as SQLite's
tokenizer does) under a GIN index. Ranking reads the stored vectors, so a match costs no
parsing. The statement carries the same filter clauses as the vector search
(:mod:`aegis_memory.store.sql_filters`). Like SQLite's leg (``store/sqlite/fulltext.py``) it
returns the scores of the best ``TEXT_SCORE_ROWS`` matches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Float, bindparam, func, literal_column, select
from sqlalchemy.engine import Connection

from aegis_memory.index import SearchFilter
from aegis_memory.store import tables as t
from aegis_memory.store.sql_filters import (
    FilterShape,
    StatementCache,
    bound_filter_clauses,
    filter_params,
)

#: Least ``ts_rank`` a search's best match is scaled by, as ``BM25_FLOOR`` on SQLite: with the
#: default weights an unlabelled word adds about 0.06-0.1 per occurrence, so two or three
#: matching words reach it.
RANK_FLOOR = 0.1

_M = t.memories.c
# The stored document (migration 0006; not in the models, which Alembic could not compare).
_DOCUMENT = literal_column("memories.content_tsv")
# The configuration is a literal, as in the column's definition.
_QUERY = func.to_tsquery(literal_column("'aegis_english'"), bindparam("expr"))
_RANK = func.ts_rank(_DOCUMENT, _QUERY, type_=Float)


def tsquery_expression(terms: Sequence[str]) -> str:
    """``to_tsquery`` input: any of the words (they are letters and digits only)."""
    return " | ".join(terms)


def text_scores(ranked: list[tuple[int, float]]) -> dict[int, float]:
    """``ts_rank`` values (best first) as relevances in [0, 1], relative to the best match
    (at least ``RANK_FLOOR``), for the reasons given in SQLite's ``text_scores``."""
    if not ranked:
        return {}
    scale = max(float(ranked[0][1]), RANK_FLOOR)
    return {int(row): max(0.0, float(rank)) / scale for row, rank in ranked}


def _build_ranked(shape: FilterShape, dialect: str) -> Any:
    rank = _RANK.label("rank")
    return (
        select(_M.row_id, rank)
        .where(_DOCUMENT.op("@@")(_QUERY), *bound_filter_clauses(shape, dialect))
        .order_by(rank.desc(), _M.row_id)
        .limit(bindparam("limit"))
    )


_RANKED = StatementCache(_build_ranked)


def ranked_matches(
    conn: Connection, flt: SearchFilter, terms: Sequence[str], limit: int
) -> dict[int, float]:
    """Text scores of the best ``limit`` rows ``flt`` allows that match any word, best first."""
    result = conn.execute(_RANKED(flt, "postgresql"), {
        **filter_params(flt), "expr": tsquery_expression(terms), "limit": limit})
    return text_scores([(r.row_id, r.rank) for r in result])
