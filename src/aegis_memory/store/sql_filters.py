"""The SQL form of a :class:`SearchFilter`, for searches the database runs itself.

:func:`aegis_memory.index.row_matches` is the reference statement of what a search may return;
the in-process index evaluates it vectorised, and these clauses are its SQL form for the
searches that run in the database: pgvector's vector search, and the full-text leg of hybrid
search on both backends. One builder for both dialects; only the share-list test differs
(``jsonb @>`` on PostgreSQL, so its GIN index is used; ``json_each`` on SQLite).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Float, String, bindparam, cast, exists, func, literal_column, or_, select
from sqlalchemy.sql.elements import ColumnElement

from aegis_memory.index import SearchFilter
from aegis_memory.index.filters import SCOPE_GLOBAL, SCOPE_SHARED
from aegis_memory.store import tables as t

_M = t.memories.c


def filter_clauses(
    flt: SearchFilter, dialect: str = "postgresql", *, searchable_only: bool = True
) -> list[ColumnElement[Any]]:
    """WHERE clauses over ``memories`` that keep exactly the rows ``flt`` allows, its values
    bound in (:func:`bound_filter_clauses` with :func:`filter_params`).

    ``searchable_only=False`` keeps rows without a vector too: a search cannot rank them, but
    a listing (the dashboard's memories table) must still show them."""
    return bound_filter_clauses(filter_shape(flt), dialect, filter_params(flt),
                                searchable_only=searchable_only)


# ---------------------------------------------------------------------------- cached statements
#
# Building a statement from these clauses costs 0.3-1.5 ms of Python per search (SQLAlchemy
# constructs and coerces every clause, and a correlated subquery twice), more than SQLite
# takes to run it. The clauses' *structure* depends only on which parts of the filter are
# set; the values can be bound parameters. So statements are built once per shape, kept,
# and run with ``filter_params(flt)``.

#: Which parts of a filter are set (and which visibility branches apply): all a statement's
#: structure depends on.
FilterShape = tuple[Any, ...]


def filter_shape(flt: SearchFilter) -> FilterShape:
    scopes = None if flt.scopes is None else (
        SCOPE_GLOBAL in flt.scopes, SCOPE_SHARED in flt.scopes)
    return (
        flt.namespace is not None, flt.include_deprecated, flt.owner_agent_ids is not None,
        flt.user_id is not None, scopes, flt.memory_types is not None,
        flt.min_effectiveness is not None, flt.restricts_visibility,
    )


def filter_params(flt: SearchFilter) -> dict[str, Any]:
    """The values for the bound parameters of ``bound_filter_clauses``."""
    return {
        "f_project_id": flt.project_id, "f_now": flt.now, "f_namespace": flt.namespace,
        "f_owners": sorted(flt.owner_agent_ids or ()), "f_user_id": flt.user_id,
        "f_scopes": sorted(flt.scopes or ()), "f_types": sorted(flt.memory_types or ()),
        "f_min_effectiveness": flt.min_effectiveness, "f_agent": flt.visible_to_agent,
    }


def bound_filter_clauses(
    shape: FilterShape, dialect: str, values: dict[str, Any] | None = None, *,
    searchable_only: bool = True, for_count: bool = False,
) -> list[ColumnElement[Any]]:
    """:func:`filter_clauses` for every filter of this shape: the values are parameters,
    bound later by ``filter_params(flt)``, or here when ``values`` is given.

    ``for_count=True`` (PostgreSQL): the clauses of the search planner's capped row count,
    which may keep a few rows too many (it only steers the plan). When the visibility rule
    has its ``global`` branch, counting walks the (project, namespace, agent) range of the
    covering index ``ix_memories_search_filter``, and reading the table for every row made
    the count four times slower (measured: docs/guides/reliability.md); sharing is then
    tested on ``shared_with_short``, the copy of short share lists that index holds
    (migration 0008), and a long list counts as shared with everyone. Without that branch
    the share test is the selective part, and the GIN index on the full list finds those
    rows directly."""
    (namespace, include_deprecated, owners, user, scopes, types, min_effectiveness,
     visibility) = shape

    def param(name: str, **kw: Any) -> Any:
        if values is None:
            return bindparam(name, **kw)
        return bindparam(name, value=values[name], **kw)

    where: list[ColumnElement[Any]] = [
        _M.project_id == param("f_project_id"),
        *([_M.embedding.is_not(None)] if searchable_only else []),
        or_(_M.expires_at.is_(None), _M.expires_at > param("f_now")),
    ]
    if namespace:
        where.append(_M.namespace == param("f_namespace"))
    if not include_deprecated:
        where.append(_M.is_deprecated.is_(False))
    if owners:
        where.append(_M.agent_id.in_(param("f_owners", expanding=True)))
    if user:
        where.append(_M.user_id == param("f_user_id"))
    if scopes is not None:
        where.append(_M.scope.in_(param("f_scopes", expanding=True)))
    if types:
        where.append(_M.memory_type.in_(param("f_types", expanding=True)))
    if min_effectiveness:
        score = cast(_M.bullet_helpful - _M.bullet_harmful, Float) / (
            _M.bullet_helpful + _M.bullet_harmful + 1
        )
        where.append(score >= param("f_min_effectiveness"))
    if visibility:
        agent = param("f_agent", type_=String)
        branches: list[ColumnElement[Any]] = [_M.agent_id == agent]
        with_global = scopes is None or scopes[0]
        if with_global:
            branches.append(_M.scope == SCOPE_GLOBAL)
        if scopes is None or scopes[1]:
            indexed = for_count and with_global
            branches.append((_M.scope == SCOPE_SHARED) & _shared_with(agent, dialect, indexed))
        where.append(or_(*branches))
    return where


#: Migration 0008's generated column (see ``tables.GENERATED_COLUMNS``): the share list when
#: its text fits in 1,024 bytes, else NULL.
_SHARED_WITH_SHORT = literal_column("memories.shared_with_short")


def _shared_with(agent: Any, dialect: str, indexed: bool = False) -> ColumnElement[Any]:
    if dialect == "postgresql":
        if indexed:
            return or_(_SHARED_WITH_SHORT.op("@>")(func.jsonb_build_array(agent)),
                       _SHARED_WITH_SHORT.is_(None))
        return _M.shared_with_agents.op("@>")(func.jsonb_build_array(agent))
    share = func.json_each(_M.shared_with_agents).table_valued("value")
    return exists(select(literal_column("1")).select_from(share).where(share.c.value == agent))


class StatementCache:
    """Statements built by ``build(shape, dialect)``, one per filter shape and dialect."""

    def __init__(self, build: Callable[[FilterShape, str], Any]) -> None:
        self._build = build
        self._statements: dict[tuple[FilterShape, str], Any] = {}

    def __call__(self, flt: SearchFilter, dialect: str) -> Any:
        key = (filter_shape(flt), dialect)
        statement = self._statements.get(key)
        if statement is None:
            statement = self._statements[key] = self._build(key[0], dialect)
        return statement
