"""Browsing memories as a person does in the web dashboard: a filtered, searchable table, a
summary of what the caller can see, and one memory with its votes and history.

Unlike the project-wide dashboard reads (``dashboard.py``), these work for agent keys too:
every one of them builds the same :func:`search_filter` a search would, for the agent the
caller acts as, so an agent key lists, counts and opens exactly the memories it could find
(SPEC §2), and nothing it could not.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from aegis_memory import schemas as s
from aegis_memory.service.access import Identity, acting_agent, can_modify, search_filter
from aegis_memory.service.convert import _ts, to_memory

if TYPE_CHECKING:
    from aegis_memory.service.engine import MemoryService

#: The largest page the table asks for.
MAX_BROWSE_PAGE = 200

BrowseOrder = Literal["newest", "effectiveness"]


@dataclass(frozen=True, slots=True)
class BrowsePage:
    """One page of a listing: the memories, how many match in all, and where the page is."""

    memories: list[s.Memory]
    total: int
    limit: int
    offset: int

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.memories) < self.total


@dataclass(frozen=True, slots=True)
class MemoryDetail:
    """A memory as its detail view shows it; ``can_modify`` says whether the caller (acting
    as its agent) may delete or deprecate it, so the page only offers what will work."""

    memory: s.Memory
    votes: list[s.ExportedVote]
    timeline: list[s.TimelineEvent]
    can_modify: bool


@dataclass(frozen=True, slots=True)
class Facets:
    """Choices for the dashboard's pickers. Agent names only for project keys: an agent key
    has no business enumerating the other agents of its project."""

    namespaces: list[str]
    agents: list[str]


class BrowseOperations:
    """Listing, summary and detail reads of :class:`MemoryService` for the web dashboard."""

    async def browse_memories(
        self: MemoryService,
        identity: Identity,
        *,
        namespace: str | None,
        agent_id: str | None = None,
        scope: str | None = None,
        memory_types: list[str] | None = None,
        owner: str | None = None,
        deprecated: bool | None = None,
        search: str | None = None,
        order: BrowseOrder = "newest",
        limit: int = 25,
        offset: int = 0,
    ) -> BrowsePage:
        """The memories the caller (acting as ``agent_id``) may see, filtered, newest or most
        effective first. ``deprecated``: ``None`` lists both, ``True`` only deprecated ones,
        ``False`` only live ones. ``search`` keeps memories whose content contains it (any
        case): a person narrowing a table expects the words they type, not neighbours in
        meaning."""
        agent = acting_agent(identity, agent_id)
        flt = search_filter(
            identity, agent_id=agent, namespace=namespace, now=time.time(),
            owner_agent_ids=[owner] if owner else None, scopes=[scope] if scope else None,
            memory_types=memory_types or None,
        )
        flt = dataclasses.replace(flt, include_deprecated=deprecated is not False)
        limit = max(1, min(limit, MAX_BROWSE_PAGE))
        offset = max(0, offset)
        rows, total = await self.store.browse_memories(
            flt, only_deprecated=deprecated is True, contains=(search or "").strip() or None,
            order=order, limit=limit, offset=offset)
        rows = await self._hide_unseen_successors(identity, agent, rows)
        return BrowsePage([to_memory(m) for m in rows], total, limit, offset)

    async def memory_summary(
        self: MemoryService, identity: Identity, namespace: str | None, agent_id: str | None
    ) -> s.DashboardStats:
        """The overview counts over what the caller (acting as ``agent_id``) may see: with a
        project key acting as no agent, the same numbers as ``dashboard_stats``."""
        agent = acting_agent(identity, agent_id)
        flt = search_filter(identity, agent_id=agent, namespace=namespace, now=time.time())
        data = await self.store.memory_summary(
            dataclasses.replace(flt, include_deprecated=True))
        return stats_from_counts(namespace, data)

    async def memory_detail(
        self: MemoryService, identity: Identity, memory_id: str, agent_id: str | None,
        *, events: int = 50,
    ) -> MemoryDetail:
        """One memory the caller may see (else 404, as everywhere), its votes and its newest
        ``events`` events."""
        agent = acting_agent(identity, agent_id)
        record = await self._visible(identity, memory_id, agent)
        [record] = await self._hide_unseen_successors(identity, agent, [record])
        votes = (await self.store.list_votes(identity.project_id, [record.row_id])).get(
            record.row_id, [])
        timeline = await self.dashboard_timeline(
            identity, namespace=None, event_type=None, agent_id=agent, memory_id=memory_id,
            before=None, limit=events)
        return MemoryDetail(
            memory=to_memory(record),
            votes=[
                s.ExportedVote(voter_agent_id=v.voter_agent_id, task_id=v.task_id or None,
                               vote=v.vote, created_at=_ts(v.created_at))  # type: ignore[arg-type]
                for v in sorted(votes, key=lambda v: v.created_at, reverse=True)
            ],
            timeline=timeline.events,
            can_modify=can_modify(record, agent),
        )

    async def dashboard_facets(self: MemoryService, identity: Identity) -> Facets:
        data = await self.store.memory_facets(identity.project_id)
        return Facets(namespaces=data["namespaces"],
                      agents=data["agents"] if identity.is_project_key else [])


def stats_from_counts(namespace: str | None, data: dict[str, Any],
                      **progress: dict[str, int]) -> s.DashboardStats:
    """The overview as the API shows it, from the store's counts (``dashboard_counts`` or
    ``memory_summary``); ``progress`` adds sessions and features by status."""
    by_type = dict(data["by_type"])
    return s.DashboardStats(
        namespace=namespace, memories_total=sum(by_type.values()),
        deprecated=data["deprecated"], by_type=by_type, by_scope=dict(data["by_scope"]),
        top_agents=[s.AgentCount(agent_id=a, memories=n) for a, n in data["top_agents"]],
        helpful_votes=data["helpful"], harmful_votes=data["harmful"],
        voters=data["voters"], **progress,
    )
