"""ACE patterns on top of the memory engine: playbooks, reflections and delta updates.

Kept apart from ``engine.py`` so the core stays readable; ``MemoryService`` inherits these
methods, which use its store, index and access helpers like every other read or write path.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from aegis_memory import schemas as s
from aegis_memory.service.access import acting_agent, can_see, is_live
from aegis_memory.service.convert import _event, to_memory
from aegis_memory.service.errors import (
    DECIDE_ATTEMPTS,
    Conflict,
    NotFound,
    ServiceError,
    kept_changing,
)
from aegis_memory.service.scoring import effectiveness
from aegis_memory.service.telemetry import timed
from aegis_memory.store import DuplicateError, StaleRow
from aegis_memory.store.records import DeltaWrite

if TYPE_CHECKING:
    from aegis_memory.service.access import Identity
    from aegis_memory.service.engine import MemoryService

#: How much effectiveness moves a playbook entry relative to relevance. Relevance is a cosine
#: in [-1, 1] and effectiveness is in (-1, 1): a proven strategy outranks a slightly closer but
#: untested one, while an unrelated strategy cannot outrank a relevant one on votes alone.
EFFECTIVENESS_WEIGHT = 0.25
#: Candidates fetched per requested entry before re-ranking by the blended score.
RERANK_FACTOR = 3


def _entry(m: s.Memory) -> s.PlaybookEntry:
    """A playbook entry from a scored memory: relevance plus the effectiveness boost."""
    relevance = m.score or 0.0
    return s.PlaybookEntry(
        id=m.id, content=m.content, memory_type=m.memory_type, agent_id=m.agent_id,
        scope=m.scope, effectiveness_score=m.effectiveness_score,
        bullet_helpful=m.bullet_helpful, bullet_harmful=m.bullet_harmful,
        relevance=relevance,
        score=round(relevance + EFFECTIVENESS_WEIGHT * m.effectiveness_score, 6),
        error_pattern=m.error_pattern, metadata=m.metadata, created_at=m.created_at,
    )


class AceOperations:
    """Playbook, reflection and delta methods of :class:`MemoryService`."""

    @timed("playbook")
    async def playbook(self: MemoryService, identity: Identity,
                       req: s.PlaybookRequest) -> s.PlaybookResponse:
        """Strategies and reflections the agent may see, effective enough, ranked by relevance
        with effectiveness as a boost. The effectiveness and type filters run inside the search,
        so ``top_k`` is filled whenever that many qualifying entries exist."""
        started = time.perf_counter()
        agent = acting_agent(identity, req.agent_id)
        vector = (await self._embed([req.query]))[0]
        now = time.time()
        if req.error_pattern is not None:
            # Few rows carry one error pattern: rank them exactly from their stored vectors.
            rows = await self.store.memories_by_error_pattern(
                identity.project_id, req.namespace, req.error_pattern)
            scored = []
            for m in rows:
                if (not can_see(m, agent) or not is_live(m, now) or m.is_deprecated
                        or m.memory_type not in req.include_types
                        or (req.user_id is not None and m.user_id != req.user_id)
                        or effectiveness(m.bullet_helpful, m.bullet_harmful)
                        < req.min_effectiveness or m.embedding is None):
                    continue
                relevance = float(np.frombuffer(m.embedding, dtype=np.float32) @ vector)
                scored.append(_entry(to_memory(m, round(relevance, 6))))
        else:
            found = await self.search_vector(
                identity, vector, agent=agent, query=req.query, namespace=req.namespace,
                user_id=req.user_id, memory_types=req.include_types,
                top_k=min(s.MAX_TOP_K, req.top_k * RERANK_FACTOR),
                min_effectiveness=req.min_effectiveness, record_event=False,
            )
            scored = [_entry(m) for m in found.memories]
        scored.sort(key=lambda e: (-e.score, e.id))
        entries = scored[: req.top_k]
        event_id = uuid.uuid4().hex
        self.events.submit(_event(
            identity, "playbook", namespace=req.namespace, agent_id=agent,
            memory_ids=[e.id for e in entries], now=now, event_id=event_id,
            payload={"query": req.query[:500], "top_k": req.top_k,
                     "min_effectiveness": req.min_effectiveness},
        ))
        return s.PlaybookResponse(
            entries=entries, retrieval_event_id=event_id,
            query_time_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    @timed("reflection")
    async def reflection(self: MemoryService, identity: Identity,
                         req: s.ReflectionRequest) -> s.AddResult:
        """Store a lesson as a ``reflection`` memory; the extra fields ride in metadata."""
        metadata = dict(req.metadata or {})
        for key in ("correct_approach", "applicable_contexts", "source_trajectory_id"):
            value = getattr(req, key)
            if value is not None:
                metadata[key] = value
        result = await self.add(identity, s.MemoryFields(
            content=req.content, agent_id=req.agent_id, namespace=req.namespace,
            user_id=req.user_id, scope=req.scope, shared_with_agents=req.shared_with_agents,
            memory_type="reflection", error_pattern=req.error_pattern, metadata=metadata,
        ))
        if result.deduped_from is None:
            self.telemetry.reflected()
        return result

    async def _plan(self: MemoryService, identity: Identity, agent: str | None,
                    namespace: str, op: s.DeltaOperation, now: float) -> DeltaWrite:
        if op.type == "add":
            new = self._new_memory(identity, s.MemoryFields(
                content=op.content or "", agent_id=agent, namespace=namespace,
                user_id=op.user_id, scope=op.scope, shared_with_agents=op.shared_with_agents,
                memory_type=op.memory_type or "standard", metadata=op.metadata,
                ttl_seconds=op.ttl_seconds, error_pattern=op.error_pattern,
            ), now)
            vec = (await self._embed([new.content]))[0]
            new.embedding = np.asarray(vec, dtype=np.float32).tobytes()
            event = _event(identity, "memory_created", namespace=namespace, agent_id=agent,
                           memory_ids=[new.id], now=now, payload={"via": "delta"})
            return DeltaWrite(event=event, new=new)
        m = await self._modifiable(identity, op.memory_id or "", agent, op.type)
        if op.type == "update":
            req = s.UpdateMemoryRequest.model_validate(
                op.model_dump(include={"content", "metadata", "memory_type", "ttl_seconds"},
                              exclude_unset=True))
            changes = await self._update_changes(m, req, now)
            event = _event(identity, "memory_updated", namespace=m.namespace, agent_id=agent,
                           memory_ids=[m.id], now=now, payload={"via": "delta"})
            return DeltaWrite(event=event, memory_id=m.id, changes=changes)
        if op.superseded_by is not None:
            await self._visible(identity, op.superseded_by, agent)
        changes: dict[str, Any] = {
            "is_deprecated": True, "deprecated_by": agent, "superseded_by": op.superseded_by,
            "deprecation_reason": op.reason, "deprecated_at": now, "updated_at": now,
            "dedup_key": None,
        }
        event = _event(identity, "memory_deprecated", namespace=m.namespace, agent_id=agent,
                       memory_ids=[m.id], now=now,
                       payload={"superseded_by": op.superseded_by, "reason": op.reason})
        return DeltaWrite(event=event, memory_id=m.id, changes=changes)

    async def _write(self: MemoryService, identity: Identity, writes: list[DeltaWrite],
                     now: float) -> list[Any]:
        try:
            return await self.store.apply_delta(identity.project_id, writes, now)
        except DuplicateError as exc:
            raise Conflict("Another memory of this owner and user already has this content.",
                           code="duplicate_content") from exc
        except LookupError as exc:
            raise NotFound(f"Memory '{exc.args[0]}' not found.", code="memory_not_found") from exc

    async def _plan_and_write(
        self: MemoryService, identity: Identity, agent: str | None, namespace: str,
        ops: list[tuple[int, s.DeltaOperation]], now: float, *, atomic: bool,
    ) -> list[Any]:
        """Plan the operations and write them in one transaction. If a memory an update was
        decided from changed before the write (``StaleRow``), nothing was written: plan again
        from fresh reads, a few times."""
        stale = ""
        for _ in range(DECIDE_ATTEMPTS):
            writes = []
            for i, op in ops:
                try:
                    writes.append(await self._plan(identity, agent, namespace, op, now))
                except ServiceError as exc:
                    if atomic:
                        exc.detail = (f"Operation {i} ({op.type}) was refused, so nothing was "
                                      f"applied: {exc.detail}")
                    raise
            try:
                return await self._write(identity, writes, now)
            except StaleRow as exc:
                stale = exc.args[0]
        raise kept_changing(stale)

    @timed("delta")
    async def delta(self: MemoryService, identity: Identity, req: s.DeltaRequest) -> s.DeltaResult:
        """Apply add/update/deprecate operations: all or nothing by default; with
        ``atomic=False`` each operation stands alone and reports its own outcome."""
        agent = acting_agent(identity, req.agent_id)
        now = time.time()
        results: list[s.DeltaItemResult] = []
        if req.atomic:
            outcomes = await self._plan_and_write(
                identity, agent, req.namespace, list(enumerate(req.operations)), now,
                atomic=True)
            for i, (op, outcome) in enumerate(zip(req.operations, outcomes, strict=True)):
                results.append(s.DeltaItemResult(
                    index=i, type=op.type, ok=True, memory_id=outcome.id,
                    deduped_from=None if outcome.inserted else outcome.id))
        else:
            for i, op in enumerate(req.operations):
                try:
                    outcome = (await self._plan_and_write(
                        identity, agent, req.namespace, [(i, op)], now, atomic=False))[0]
                    results.append(s.DeltaItemResult(
                        index=i, type=op.type, ok=True, memory_id=outcome.id,
                        deduped_from=None if outcome.inserted else outcome.id))
                except ServiceError as exc:
                    results.append(s.DeltaItemResult(
                        index=i, type=op.type, ok=False, memory_id=op.memory_id,
                        detail=exc.detail, code=exc.code))
        await self.index.catch_up()
        added = sum(r.ok and r.type == "add" and r.deduped_from is None for r in results)
        if added:
            self.telemetry.memories_added(added)
        applied = sum(r.ok for r in results)
        return s.DeltaResult(results=results, applied=applied, failed=len(results) - applied)

    async def deprecate(self: MemoryService, identity: Identity, memory_id: str, *,
                        agent_id: str | None, superseded_by: str | None,
                        reason: str | None) -> s.Memory:
        await self.delta(identity, s.DeltaRequest(
            agent_id=agent_id, operations=[s.DeltaOperation(
                type="deprecate", memory_id=memory_id, superseded_by=superseded_by,
                reason=reason)]))
        m = await self.store.get_memory(identity.project_id, memory_id)
        if m is None:  # pragma: no cover - deleted between the two calls
            raise NotFound(f"Memory '{memory_id}' not found.", code="memory_not_found")
        return to_memory(m)

