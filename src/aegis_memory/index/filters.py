"""The row attributes the index filters on, the filter itself, and the reference predicate.

The index is a derived cache beside the database, so it only keeps the handful of
attributes a search has to filter on *inside* the vector search (filtering afterwards
would silently return fewer than ``k`` results). :func:`row_matches` is the plain-Python
statement of the rules; the vectorised masks in :mod:`aegis_memory.index.attributes` must
agree with it, and the tests check that they do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCOPE_PRIVATE = "agent-private"
SCOPE_SHARED = "agent-shared"
SCOPE_GLOBAL = "global"
KNOWN_SCOPES: tuple[str, ...] = (SCOPE_PRIVATE, SCOPE_SHARED, SCOPE_GLOBAL)

MEMORY_TYPES: tuple[str, ...] = ("standard", "strategy", "reflection", "progress", "feature")

#: Largest label we accept: labels are database row ids stored as int64.
MAX_LABEL = 2**63 - 1


@dataclass(frozen=True, slots=True)
class IndexedRow:
    """The attributes of one memory that searches filter on.

    ``label`` is the database row id (positive int64). ``expires_at`` is epoch seconds or
    ``None`` for "never". Other memory types and scopes than the well-known ones are
    accepted: the index only compares them for equality.
    """

    label: int
    project_id: str
    namespace: str
    agent_id: str | None
    user_id: str | None
    scope: str
    memory_type: str
    shared_with: tuple[str, ...] = ()
    expires_at: float | None = None
    deprecated: bool = False
    effectiveness: float = 0.0

    def __post_init__(self) -> None:
        # Validate at the boundary: a bad label would otherwise corrupt the slot map and a
        # NaN would make every comparison false without anybody noticing.
        if isinstance(self.label, bool) or not isinstance(self.label, int):
            raise TypeError(f"label must be an int, got {type(self.label).__name__}")
        if not 0 < self.label <= MAX_LABEL:
            raise ValueError(f"label must be a positive int64, got {self.label}")
        if isinstance(self.shared_with, str):
            # A bare string would be iterated character by character.
            raise TypeError("shared_with must be a tuple of agent ids, not a string")
        for name in ("project_id", "namespace", "scope", "memory_type"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a str")
        for name in ("agent_id", "user_id"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str or None")
        if not all(isinstance(a, str) for a in self.shared_with):
            raise TypeError("shared_with must contain agent id strings")
        if self.expires_at is not None and math.isnan(self.expires_at):
            raise ValueError("expires_at must not be NaN")
        if math.isnan(self.effectiveness):
            raise ValueError("effectiveness must not be NaN")


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """What a search or count may return; every field narrows the result.

    * ``project_id`` always matches exactly: nothing ever crosses projects.
    * ``namespace`` ``None`` means every namespace of the project.
    * rows with ``expires_at <= now`` are excluded.
    * visibility applies only when ``apply_visibility`` is true *and* ``visible_to_agent``
      is set; then a row is visible when it is global, owned by the agent, or
      agent-shared with the agent listed in ``shared_with``.
    * ``None`` for any of the optional restrictions means "no restriction"; an empty
      frozenset means "nothing matches".
    """

    project_id: str
    namespace: str | None
    now: float
    visible_to_agent: str | None = None
    apply_visibility: bool = True
    owner_agent_ids: frozenset[str] | None = None
    user_id: str | None = None
    scopes: frozenset[str] | None = None
    memory_types: frozenset[str] | None = None
    min_effectiveness: float | None = None
    include_deprecated: bool = False

    @property
    def restricts_visibility(self) -> bool:
        """Whether the visibility rule is in force for this filter."""
        return self.apply_visibility and self.visible_to_agent is not None


def is_visible(row: IndexedRow, agent_id: str) -> bool:
    """The access rule defined by the service layer, stated once in plain Python."""
    return (
        row.scope == SCOPE_GLOBAL
        or row.agent_id == agent_id
        or (row.scope == SCOPE_SHARED and agent_id in row.shared_with)
    )


def row_matches(row: IndexedRow, flt: SearchFilter) -> bool:
    """Reference implementation of the filter for one row.

    Slow but obviously right; the index's vectorised masks are tested against it.
    """
    if row.project_id != flt.project_id:
        return False
    if flt.namespace is not None and row.namespace != flt.namespace:
        return False
    if row.expires_at is not None and row.expires_at <= flt.now:
        return False
    if row.deprecated and not flt.include_deprecated:
        return False
    if flt.owner_agent_ids is not None and row.agent_id not in flt.owner_agent_ids:
        return False
    if flt.user_id is not None and row.user_id != flt.user_id:
        return False
    if flt.scopes is not None and row.scope not in flt.scopes:
        return False
    if flt.memory_types is not None and row.memory_type not in flt.memory_types:
        return False
    if flt.min_effectiveness is not None and not row.effectiveness >= flt.min_effectiveness:
        return False
    return not (
        flt.restricts_visibility and not is_visible(row, flt.visible_to_agent)  # type: ignore[arg-type]
    )
