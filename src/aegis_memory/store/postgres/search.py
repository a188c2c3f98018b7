"""Filtered vector search in PostgreSQL with pgvector, planned so it never under-returns.

An HNSW index scan with a WHERE clause filters *after* the graph walk: with a selective filter
(one agent's memories among many) a plain scan returns a handful of rows or none. Two ways out,
picked per query:

* **exact** when at most ``exact_threshold`` rows match: the matching rows come from a btree
  (project, namespace, agent) in a ``MATERIALIZED`` CTE — so the planner cannot push the
  ORDER BY into the HNSW index — and are ranked exactly. Recall 1.0, and cheap because they
  are few.
* **HNSW** otherwise, with pgvector's iterative index scan (``hnsw.iterative_scan =
  relaxed_order``, pgvector >= 0.8): the walk continues until ``k`` rows pass the filter. The
  slightly relaxed order is fixed by sorting the ``k`` rows here. Should the scan stop early
  (``hnsw.max_scan_tuples``), the query is answered exactly instead.

Deciding needs the number of matching rows, capped: ``count(*)`` over ``LIMIT threshold + 1``
stops as soon as the answer is "many". It is answered from the covering index
``ix_memories_search_filter`` alone, which holds share lists only when short (migration
0008). Settings are made with ``set_config(.., true)``, local to the transaction, and
``plan_cache_mode = force_custom_plan`` because asyncpg prepares statements and a generic plan
may not use the indexes a custom one does (seen while building this: the plan tests of
tests/test_search_contract.py check them through the same driver).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, bindparam, func, literal_column, select, text
from sqlalchemy.engine import Connection

from aegis_memory.index import SearchFilter
from aegis_memory.store import tables as t
from aegis_memory.store.records import MemoryRecord
from aegis_memory.store.sql_filters import (
    FilterShape,
    StatementCache,
    bound_filter_clauses,
    filter_params,
)
from aegis_memory.store.sql_store import MEMORY_COLUMNS, memory_from_row

_M = t.memories.c
EF_SEARCH_MAX = 1000


@dataclass
class VectorSearchPlan:
    """The knobs, in one place so the benchmark can report and vary them."""

    #: Up to this many matching rows are ranked exactly (see module docstring).
    exact_threshold: int = 2000
    #: Candidate list size of the HNSW walk; 2k is used when larger, up to pgvector's cap of
    #: 1000 (iterative scans keep walking past it, so large k still fills). At 100k rows 200
    #: measured recall@10 0.97 on the benchmark corpus (100 gave 0.95, pgvector's default 40
    #: 0.88); at 1M rows 200 gave 0.940 and 400 gave 0.959, for 13 ms p50 engine-only
    #: (benchmarks/bench.py --backend postgres).
    ef_search: int = 400
    #: Upper bound on tuples an iterative scan visits before it gives up (pgvector's default).
    max_scan_tuples: int = 20000


def _distance(column: Any) -> Any:
    return column.op("<=>", return_type=Float)(bindparam("query", type_=t.Embedding()))


# Statements are built once per filter shape and run with the filter's values as parameters
# (see ``sql_filters.StatementCache``): building them cost more than running them.


def _build_count(shape: FilterShape, dialect: str) -> Any:
    """How many rows the filter allows, counting no further than ``cap``; a long share list
    may count as shared with everyone (``bound_filter_clauses(for_count=True)``; an overcount
    only steers the plan, see ``count_capped``)."""
    inner = (
        select(literal_column("1")).select_from(t.memories)
        .where(*bound_filter_clauses(shape, dialect, for_count=True))
        .limit(bindparam("cap")).subquery()
    )
    return select(func.count()).select_from(inner)


def _exact_top(shape: FilterShape, dialect: str) -> Any:
    """The matching rows ranked exactly (``MATERIALIZED``: the planner may not push the
    ORDER BY into the HNSW index), best ``k``."""
    candidates = (
        select(_M.project_id, _M.row_id, _M.embedding)
        .where(*bound_filter_clauses(shape, dialect)).cte("candidates")
        .prefix_with("MATERIALIZED")
    )
    distance = _distance(candidates.c.embedding)
    return (
        select(candidates.c.project_id, candidates.c.row_id, distance.label("distance"))
        .order_by(distance).limit(bindparam("k"))
    )


def _build_exact(shape: FilterShape, dialect: str) -> Any:
    """Rank the matching rows exactly, then read the full rows of the top ``k`` only."""
    top = _exact_top(shape, dialect).cte("top")
    return select(*MEMORY_COLUMNS, top.c.distance).select_from(
        top.join(t.memories, (_M.project_id == top.c.project_id) & (_M.row_id == top.c.row_id))
    )


def _build_hnsw(shape: FilterShape, dialect: str) -> Any:
    """The memories' rows come with the walk: the index scan visits them anyway."""
    distance = _distance(_M.embedding)
    return (
        select(*MEMORY_COLUMNS, distance.label("distance"))
        .where(*bound_filter_clauses(shape, dialect)).order_by(distance).limit(bindparam("k"))
    )


def _build_hnsw_ids(shape: FilterShape, dialect: str) -> Any:
    distance = _distance(_M.embedding)
    return (
        select(_M.row_id, distance.label("distance"))
        .where(*bound_filter_clauses(shape, dialect)).order_by(distance).limit(bindparam("k"))
    )


_COUNT = StatementCache(_build_count)
_EXACT = StatementCache(_build_exact)
_HNSW = StatementCache(_build_hnsw)
_EXACT_IDS = StatementCache(_exact_top)
_HNSW_IDS = StatementCache(_build_hnsw_ids)


_SETTINGS = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
    "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
    "set_config('hnsw.ef_search', :ef_search, true), "
    "set_config('hnsw.max_scan_tuples', :max_scan_tuples, true)"
)


def apply_settings(conn: Connection, k: int, plan: VectorSearchPlan) -> None:
    conn.execute(_SETTINGS, {
        "ef_search": str(min(EF_SEARCH_MAX, max(plan.ef_search, 2 * k))),
        "max_scan_tuples": str(plan.max_scan_tuples),
    })


def count_capped(conn: Connection, flt: SearchFilter, cap: int) -> int:
    """How many rows ``flt`` allows, counting no further than ``cap``, or a few more: memories
    shared with a list too long for the index (migration 0008) count for every agent. Safe
    for planning: too many only means an HNSW walk, and one that comes back short is
    answered exactly (``_ranked_rows``)."""
    return int(conn.execute(_COUNT(flt, "postgresql"), {**filter_params(flt), "cap": cap})
               .scalar_one())


def hnsw_statement(flt: SearchFilter, *, ids_only: bool = False) -> Any:
    """The HNSW walk for filters of this shape (parameters: ``filter_params``, query, k)."""
    return (_HNSW_IDS if ids_only else _HNSW)(flt, "postgresql")


def exact_statement(flt: SearchFilter, *, ids_only: bool = False) -> Any:
    """The exact ranking for filters of this shape (parameters as ``hnsw_statement``)."""
    return (_EXACT_IDS if ids_only else _EXACT)(flt, "postgresql")


def _ranked_rows(
    conn: Connection, query: bytes, k: int, flt: SearchFilter, plan: VectorSearchPlan,
    ids_only: bool,
) -> list[Any]:
    """The best ``k`` rows, best first; see the module docstring."""
    apply_settings(conn, k, plan)
    # Exact up to k as well, so "the HNSW answer came back short" is always recognised.
    matching = count_capped(conn, flt, max(plan.exact_threshold, k) + 1)
    if matching == 0:
        return []
    params = {**filter_params(flt), "query": query, "k": k}
    rows: list[Any] = []
    if matching > plan.exact_threshold:
        rows = conn.execute(hnsw_statement(flt, ids_only=ids_only), params).all()
    if len(rows) < min(k, matching):
        rows = conn.execute(exact_statement(flt, ids_only=ids_only), params).all()
    return sorted(rows, key=lambda r: (r.distance, r.row_id))[:k]


def search_vectors(
    conn: Connection, query: bytes, k: int, flt: SearchFilter, plan: VectorSearchPlan
) -> list[tuple[MemoryRecord, float]]:
    """Top-``k`` (memory, cosine similarity), best first."""
    rows = _ranked_rows(conn, query, k, flt, plan, ids_only=False)
    return [(memory_from_row(r), 1.0 - float(r.distance)) for r in rows]


def search_vector_ids(
    conn: Connection, query: bytes, k: int, flt: SearchFilter, plan: VectorSearchPlan
) -> list[tuple[int, float]]:
    """Top-``k`` (row id, cosine similarity), best first: what hybrid search ranks with,
    without reading rows it may not return."""
    rows = _ranked_rows(conn, query, k, flt, plan, ids_only=True)
    return [(int(r.row_id), 1.0 - float(r.distance)) for r in rows]
