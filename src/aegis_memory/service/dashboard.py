"""Dashboard reads: overview counts, activity over time, sessions, and the event timeline.

They aggregate over a whole project, so they need a project key; the one exception is a single
memory's timeline, which any caller that can see the memory may read.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aegis_memory import schemas as s
from aegis_memory.service.access import Identity, acting_agent
from aegis_memory.service.browse import BrowseOperations, stats_from_counts
from aegis_memory.service.convert import _ts
from aegis_memory.service.errors import Forbidden

if TYPE_CHECKING:
    from aegis_memory.service.engine import MemoryService


def _require_project_key(identity: Identity) -> None:
    if not identity.is_project_key:
        raise Forbidden("The dashboard aggregates a whole project: use a project key.",
                        code="project_key_required")


#: What another agent's event may show of its payload in a memory's timeline: counts, flags
#: and names about the memory, and a deprecation's reason (the memory itself shows it as
#: ``deprecation_reason``). Free text the other agent wrote with its request (a query, a
#: handoff's task context) is its own and stays out; so does any key added later until it is
#: listed here.
SHAREABLE_PAYLOAD_KEYS = frozenset({
    "top_k", "returned", "min_effectiveness", "vote", "scope", "memory_type", "fields", "via",
    "reason", "target_agent_id", "shared", "count",
})


def _as_seen_by(event: s.TimelineEvent, memory_id: str, agent: str | None) -> s.TimelineEvent:
    """An event of one memory's history as an agent may read it: the other memories the event
    names are left out (the rest of a query's results may be invisible to it, and their ids
    would tell it that they exist: SPEC §2, no existence oracle), and so is what another agent
    wrote with its request."""
    update: dict[str, Any] = {"memory_ids": [memory_id]}
    if event.agent_id != agent:
        update["payload"] = {k: v for k, v in event.payload.items()
                             if k in SHAREABLE_PAYLOAD_KEYS}
    return event.model_copy(update=update)


def _timeline_event(row: dict[str, Any]) -> s.TimelineEvent:
    return s.TimelineEvent(
        id=row["id"], event_type=row["event_type"], namespace=row["namespace"],
        agent_id=row["agent_id"], memory_ids=list(row["memory_ids"] or []),
        task_id=row["task_id"], retrieval_event_id=row["retrieval_event_id"],
        payload=dict(row["payload"] or {}), created_at=_ts(row["created_at"]),
        cursor=row["row_id"],
    )


class DashboardOperations(BrowseOperations):
    """Project-wide reads here; the per-caller listing and detail reads of the web
    dashboard come from :class:`BrowseOperations` (``browse.py``)."""

    async def dashboard_stats(self: MemoryService, identity: Identity,
                              namespace: str | None) -> s.DashboardStats:
        _require_project_key(identity)
        data = await self.store.dashboard_counts(identity.project_id, namespace, time.time())
        sessions: dict[str, int] = {}
        features: dict[str, int] = {}
        if namespace is not None:
            sessions = dict(Counter(r.status for r in await self.store.find_sessions(
                identity.project_id, namespace, limit=100_000)))
            features = dict(Counter(r.status for r in await self.store.list_features(
                identity.project_id, namespace, limit=100_000)))
        return stats_from_counts(namespace, data, sessions_by_status=sessions,
                                 features_by_status=features)

    async def dashboard_activity(self: MemoryService, identity: Identity,
                                 namespace: str | None, days: int) -> s.DashboardActivity:
        """Events per UTC day for the last ``days`` days, oldest first, empty days included."""
        _require_project_key(identity)
        await self.events.flush()
        now = time.time()
        today = datetime.fromtimestamp(now, UTC).date()
        start = datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp() \
            - (days - 1) * 86_400
        buckets: dict[str, Counter[str]] = {}
        for i in range(days):
            day = datetime.fromtimestamp(start + i * 86_400, UTC).date().isoformat()
            buckets[day] = Counter()
        before: int | None = None
        while True:
            page = await self.store.events_page(identity.project_id, namespace=namespace,
                                                since=start, before_row=before, limit=5000)
            for row in page:
                day = datetime.fromtimestamp(row["created_at"], UTC).date().isoformat()
                if day in buckets:
                    buckets[day][row["event_type"]] += 1
            if len(page) < 5000:
                break
            before = page[-1]["row_id"]
        return s.DashboardActivity(namespace=namespace, days=days, buckets=[
            s.ActivityBucket(date=day, total=sum(c.values()), counts=dict(c))
            for day, c in buckets.items()
        ])

    async def dashboard_timeline(
        self: MemoryService, identity: Identity, *, namespace: str | None,
        event_type: str | None, agent_id: str | None, memory_id: str | None,
        before: int | None, limit: int,
    ) -> s.Timeline:
        """Events newest first, a page at a time. With ``memory_id``, that memory's history,
        for anyone who may see the memory (acting as ``agent_id``)."""
        acting = None
        if memory_id is not None:
            acting = acting_agent(identity, agent_id)
            await self._visible(identity, memory_id, acting)
            agent_filter = None
        else:
            _require_project_key(identity)
            agent_filter = agent_id
        await self.events.flush()
        rows = await self.store.events_page(
            identity.project_id, namespace=namespace, event_type=event_type,
            agent_id=agent_filter, memory_id=memory_id, before_row=before, limit=limit + 1)
        events = [_timeline_event(r) for r in rows[:limit]]
        if memory_id is not None and acting is not None:
            events = [_as_seen_by(e, memory_id, acting) for e in events]
        return s.Timeline(events=events,
                          next_cursor=events[-1].cursor if len(rows) > limit else None)
