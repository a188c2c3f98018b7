"""Listing memories page by page, for people rather than agents (the web dashboard).

A search ranks the best ``k`` rows; a listing shows every row a filter allows, in a stable
order, a page at a time, with the total beside it. The filter is the same
:class:`SearchFilter` searches use, turned into SQL by :mod:`aegis_memory.store.sql_filters`,
so what a caller may list is exactly what it may find: the store applies the filter it is
given and decides nothing about scopes itself. Rows without a vector are listed too (a
search cannot rank them, but they exist).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from sqlalchemy import Float, cast, func, select, union
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from aegis_memory.index import SearchFilter
from aegis_memory.store import tables as t
from aegis_memory.store.records import MemoryRecord
from aegis_memory.store.sql_filters import filter_clauses

_M = t.memories.c

BrowseOrder = Literal["newest", "effectiveness"]

#: Most distinct namespaces or agents a facet list returns (it feeds a picker, not a report).
MAX_FACETS = 500


def escape_like(text: str) -> str:
    """``text`` as a LIKE pattern that matches it literally (``\\`` is the escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(flt: SearchFilter, dialect: str, only_deprecated: bool,
           contains: str | None) -> list[ColumnElement[Any]]:
    where = filter_clauses(flt, dialect, searchable_only=False)
    if only_deprecated:
        where.append(_M.is_deprecated.is_(True))
    if contains:
        where.append(_M.content.ilike(f"%{escape_like(contains)}%", escape="\\"))
    return where


def browse_page(
    conn: Connection,
    dialect: str,
    columns: list[Any],
    to_record: Callable[[Any], MemoryRecord],
    flt: SearchFilter,
    *,
    only_deprecated: bool,
    contains: str | None,
    order: BrowseOrder,
    limit: int,
    offset: int,
) -> tuple[list[MemoryRecord], int]:
    """One page of the rows ``flt`` allows (newest first, or most effective first) whose
    content contains ``contains`` (any case), and how many such rows there are in all.

    Newest means the highest row id: it follows insertion, and it is the primary key, so a
    page of a large project is read from the index instead of sorting every row."""
    where = _where(flt, dialect, only_deprecated, contains)
    total = conn.execute(select(func.count()).select_from(t.memories).where(*where)).scalar_one()
    query = select(*columns).where(*where)
    if order == "effectiveness":
        score = cast(_M.bullet_helpful - _M.bullet_harmful, Float) / (
            _M.bullet_helpful + _M.bullet_harmful + 1)
        query = query.order_by(score.desc(), _M.bullet_helpful.desc(), _M.row_id.desc())
    else:
        query = query.order_by(_M.row_id.desc())
    rows = conn.execute(query.limit(limit).offset(offset)).all()
    return [to_record(r) for r in rows], int(total)


def summary(conn: Connection, dialect: str, flt: SearchFilter) -> dict[str, Any]:
    """The overview counts of ``dashboard_counts`` over the rows ``flt`` allows: live
    memories by type, scope and owner, how many are deprecated, and their votes.

    ``flt`` should include deprecated rows (their votes still count; the groupings leave them
    out), as the project-wide overview does."""
    where = filter_clauses(flt, dialect, searchable_only=False)
    v = t.votes.c

    def grouped(column: Any, limit: int | None = None) -> list[tuple[Any, int]]:
        query = (select(column, func.count()).where(*where, _M.is_deprecated.is_(False))
                 .group_by(column).order_by(func.count().desc(), column))
        if limit:
            query = query.limit(limit)
        return [(k, int(n)) for k, n in conn.execute(query).all()]

    helpful, harmful = conn.execute(
        select(func.coalesce(func.sum(_M.bullet_helpful), 0),
               func.coalesce(func.sum(_M.bullet_harmful), 0)).where(*where)
    ).one()
    deprecated = conn.execute(
        select(func.count()).select_from(t.memories)
        .where(*where, _M.is_deprecated.is_(True))).scalar_one()
    voters = conn.execute(
        select(func.count(func.distinct(v.voter_agent_id)))
        .select_from(t.votes.join(t.memories, (v.project_id == _M.project_id)
                                  & (v.memory_row_id == _M.row_id)))
        .where(*where)
    ).scalar_one()
    return {
        "by_type": grouped(_M.memory_type), "by_scope": grouped(_M.scope),
        "top_agents": grouped(_M.agent_id, 10), "helpful": int(helpful),
        "harmful": int(harmful), "deprecated": int(deprecated), "voters": int(voters),
    }


def facets(conn: Connection, project_id: str) -> dict[str, list[str]]:
    """The namespaces in use in a project (memories, sessions, features) and the agents that
    own memories, sorted, at most ``MAX_FACETS`` each: the choices of the dashboard's pickers."""
    s, f = t.sessions.c, t.features.c
    names = union(
        select(_M.namespace.label("name")).where(_M.project_id == project_id).distinct(),
        select(s.namespace.label("name")).where(s.project_id == project_id).distinct(),
        select(f.namespace.label("name")).where(f.project_id == project_id).distinct(),
    ).subquery()
    namespaces = conn.execute(
        select(names.c.name).order_by(names.c.name).limit(MAX_FACETS)).scalars().all()
    agents = conn.execute(
        select(_M.agent_id).where(_M.project_id == project_id, _M.agent_id.is_not(None))
        .distinct().order_by(_M.agent_id).limit(MAX_FACETS)).scalars().all()
    return {"namespaces": list(namespaces), "agents": list(agents)}
