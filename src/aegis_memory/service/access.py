"""The access rule, in one place.

Every read path decides visibility here (``can_see`` for single rows, ``search_filter`` for the
index, which implements the same predicate vectorised). Scope choice on write lives here too, so
the rules a user reads in SPEC §2 have exactly one implementation each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aegis_memory.index import SearchFilter
from aegis_memory.service.errors import Forbidden, InvalidInput
from aegis_memory.store.records import MemoryRecord

GLOBAL = "global"
SHARED = "agent-shared"
PRIVATE = "agent-private"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: a project, and for agent keys the one agent the key is bound to."""

    project_id: str
    key_id: str | None = None
    bound_agent_id: str | None = None

    @property
    def is_project_key(self) -> bool:
        return self.bound_agent_id is None


def acting_agent(identity: Identity, requested: str | None, field: str = "agent_id") -> str | None:
    """The agent a request acts as. Agent keys may only act as their own agent (else 403)."""
    if identity.bound_agent_id is None:
        return requested
    if requested is not None and requested != identity.bound_agent_id:
        raise Forbidden(
            f"This API key is bound to agent '{identity.bound_agent_id}' and cannot act as "
            f"'{requested}' ({field}).",
            code="agent_mismatch",
        )
    return identity.bound_agent_id


def is_live(memory: MemoryRecord, now: float) -> bool:
    return memory.expires_at is None or memory.expires_at > now


def can_see(memory: MemoryRecord, agent_id: str | None) -> bool:
    """SPEC §2: global, or owned by the agent, or shared with it. No agent = the whole project."""
    if agent_id is None:
        return True
    if memory.scope == GLOBAL or memory.agent_id == agent_id:
        return True
    return memory.scope == SHARED and agent_id in memory.shared_with_agents


def can_modify(memory: MemoryRecord, agent_id: str | None) -> bool:
    """Owners change and delete their memories; a project key acting as no agent may too."""
    return agent_id is None or memory.agent_id == agent_id


def choose_scope(
    scope: str | None, agent_id: str | None, shared_with: list[str] | None
) -> str:
    """Explicit wins; else a share list means shared; else an owner means private; else global.

    No keyword guessing from the content: private text must never become global by accident.
    """
    if scope is None:
        if shared_with:
            scope = SHARED
        elif agent_id is not None:
            scope = PRIVATE
        else:
            scope = GLOBAL
    if scope in (PRIVATE, SHARED) and agent_id is None:
        raise InvalidInput(
            f"A memory with scope '{scope}' needs an owner: pass agent_id.",
            code="owner_required",
        )
    if shared_with and scope == PRIVATE:
        raise InvalidInput(
            "shared_with_agents only applies to scope 'agent-shared' (or omit scope).",
            code="scope_conflict",
        )
    return scope


def search_filter(
    identity: Identity,
    *,
    agent_id: str | None,
    namespace: str | None,
    now: float,
    user_id: str | None = None,
    owner_agent_ids: Iterable[str] | None = None,
    scopes: Iterable[str] | None = None,
    memory_types: Iterable[str] | None = None,
    min_effectiveness: float | None = None,
) -> SearchFilter:
    """The index filter for what ``agent_id`` (None: the whole project) may find."""
    return SearchFilter(
        project_id=identity.project_id,
        namespace=namespace,
        now=now,
        visible_to_agent=agent_id,
        apply_visibility=agent_id is not None,
        owner_agent_ids=frozenset(owner_agent_ids) if owner_agent_ids else None,
        user_id=user_id,
        scopes=frozenset(scopes) if scopes else None,
        memory_types=frozenset(memory_types) if memory_types else None,
        min_effectiveness=min_effectiveness,
    )
