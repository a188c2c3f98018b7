"""The SQL form of a :class:`SearchFilter`, for searches the database runs itself.

:func:`aegis_memory.index.row_matches` is the reference statement of what a search may return;
the in-process index evaluates it vectorised, and these clauses are its SQL form for the
searches that run in the database: pgvector's vector search, and the full-text leg of hybrid
search on both backends. One builder for both dialects; only the share-list test differs
(``jsonb @>`` on PostgreSQL, so its GIN index is used; ``json_each`` on SQLite).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, String, cast, exists, func, literal_column, or_, select
from sqlalchemy.sql.elements import ColumnElement

from aegis_memory.index import SearchFilter
from aegis_memory.index.filters import SCOPE_GLOBAL, SCOPE_SHARED
from aegis_memory.store import tables as t

_M = t.memories.c


def filter_clauses(flt: SearchFilter, dialect: str = "postgresql") -> list[ColumnElement[Any]]:
    """WHERE clauses over ``memories`` that keep exactly the rows ``flt`` allows."""
    where: list[ColumnElement[Any]] = [
        _M.project_id == flt.project_id,
        _M.embedding.is_not(None),
        or_(_M.expires_at.is_(None), _M.expires_at > flt.now),
    ]
    if flt.namespace is not None:
        where.append(_M.namespace == flt.namespace)
    if not flt.include_deprecated:
        where.append(_M.is_deprecated.is_(False))
    if flt.owner_agent_ids is not None:
        where.append(_M.agent_id.in_(sorted(flt.owner_agent_ids)))
    if flt.user_id is not None:
        where.append(_M.user_id == flt.user_id)
    if flt.scopes is not None:
        where.append(_M.scope.in_(sorted(flt.scopes)))
    if flt.memory_types is not None:
        where.append(_M.memory_type.in_(sorted(flt.memory_types)))
    if flt.min_effectiveness is not None:
        score = cast(_M.bullet_helpful - _M.bullet_harmful, Float) / (
            _M.bullet_helpful + _M.bullet_harmful + 1
        )
        where.append(score >= flt.min_effectiveness)
    if flt.restricts_visibility:
        where.append(
            _visible_to(flt.visible_to_agent, flt.scopes, dialect)  # type: ignore[arg-type]
        )
    return where


def _visible_to(agent: str, scopes: frozenset[str] | None, dialect: str) -> ColumnElement[Any]:
    """Global, or the agent's own, or shared with it: only the branches the scope filter
    allows, so that each one left can use its index (the owner btree, the share list's GIN)
    and PostgreSQL can OR their bitmaps instead of reading every row."""
    branches: list[ColumnElement[Any]] = [_M.agent_id == agent]
    if scopes is None or SCOPE_GLOBAL in scopes:
        branches.append(_M.scope == SCOPE_GLOBAL)
    if scopes is None or SCOPE_SHARED in scopes:
        branches.append((_M.scope == SCOPE_SHARED) & _shared_with(agent, dialect))
    return or_(*branches)


def _shared_with(agent: str, dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return _M.shared_with_agents.op("@>")(func.jsonb_build_array(cast(agent, String)))
    share = func.json_each(_M.shared_with_agents).table_valued("value")
    return exists(select(literal_column("1")).select_from(share).where(share.c.value == agent))
