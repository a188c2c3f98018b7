"""A memory's neighbours: the memories written just before and after it in its stream.

A *stream* is what one agent writes into one namespace, in the order it was written (row ids
only grow). Consecutive memories of a stream tend to belong together: the turns of a
conversation, the steps of a task. Hybrid search raises a memory that sits next to a strong
match (``aegis_memory.index.fusion``), because the answer to a question is often in the
memory beside the one that shares its words (on LoCoMo, recall@10 rose 3 points).

A neighbour is the nearest row the *search filter* allows: a memory the searching agent may
not see (or that is expired, deprecated, ...) is skipped as if it did not exist, so neither
its score nor the gap it would leave can show in the scores of visible memories. Memories
with no agent have no stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.engine import Connection

from aegis_memory.index import SearchFilter
from aegis_memory.store import tables as t
from aegis_memory.store.sql_filters import (
    FilterShape,
    StatementCache,
    bound_filter_clauses,
    filter_params,
)

_M = t.memories.c

#: Row id -> (previous row id, next row id) in its stream; ``None`` at either end.
Links = dict[int, tuple[int | None, int | None]]


def _build_links(shape: FilterShape, dialect: str) -> Any:
    anchor = t.memories.alias("anchor")

    def nearest(before: bool) -> Any:
        side = _M.row_id < anchor.c.row_id if before else _M.row_id > anchor.c.row_id
        end = func.max(_M.row_id) if before else func.min(_M.row_id)
        return (
            select(end)
            .where(_M.project_id == anchor.c.project_id, _M.namespace == anchor.c.namespace,
                   _M.agent_id == anchor.c.agent_id, side,
                   *bound_filter_clauses(shape, dialect))
            .correlate(anchor).scalar_subquery()
        )

    # By row id alone: with a project term as well, SQLite's planner may take the owner index
    # and scan the whole project (as in sql_store). The project is checked in Python.
    return select(
        anchor.c.row_id, anchor.c.project_id,
        nearest(True).label("prev"), nearest(False).label("next"),
    ).where(anchor.c.row_id.in_(bindparam("rows", expanding=True)))


_LINKS = StatementCache(_build_links)
_EMBEDDINGS = select(_M.row_id, _M.project_id, _M.embedding).where(
    _M.row_id.in_(bindparam("rows", expanding=True)))


def stream_links(
    conn: Connection, flt: SearchFilter, anchors: Sequence[int], dialect: str
) -> tuple[Links, dict[int, bytes]]:
    """Each anchor's previous and next row in its stream among the rows ``flt`` allows, and
    the vectors of those neighbours that are not anchors.

    The filter is part of the lookup, so a memory the searching agent may not see is skipped
    as if it did not exist: the stream closes over it, and nothing about it shows in the
    scores of the memories around it.
    """
    if not anchors:
        return {}, {}
    known = set(anchors)
    result = conn.execute(_LINKS(flt, dialect), {**filter_params(flt), "rows": sorted(known)})
    links: Links = {
        int(r.row_id): (r.prev, r.next) for r in result if r.project_id == flt.project_id
    }
    new = {n for pair in links.values() for n in pair if n is not None and n not in known}
    return links, embeddings(conn, flt.project_id, sorted(new))


def embeddings(conn: Connection, project_id: str, rows: Sequence[int]) -> dict[int, bytes]:
    """The stored vectors of these rows (float32 bytes)."""
    if not rows:
        return {}
    result = conn.execute(_EMBEDDINGS, {"rows": sorted(set(rows))})
    return {
        int(r.row_id): r.embedding
        for r in result if r.project_id == project_id and r.embedding is not None
    }
