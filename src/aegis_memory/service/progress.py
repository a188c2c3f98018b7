"""Session progress and feature tracking (SPEC §3): work that survives context resets.

Both live in their own tables, scoped to (project, namespace). Who may act follows SPEC §2
(`acting_agent`): an agent key creates and updates sessions and features only as its own agent,
and a session that records an agent can be changed by that agent (or a project key) only.
Read-modify-write happens inside one store transaction, so concurrent appends are not lost.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from aegis_memory import schemas_progress as sp
from aegis_memory.service.access import Identity, acting_agent
from aegis_memory.service.convert import _event, _ts
from aegis_memory.service.errors import Conflict, Forbidden, InvalidInput, NotFound
from aegis_memory.service.telemetry import NoTelemetry, Telemetry
from aegis_memory.store import DuplicateError, Store
from aegis_memory.store.records import FeatureRecord, SessionRecord


def to_session(r: SessionRecord) -> sp.SessionProgress:
    percent = None
    if r.total_items:
        percent = round(min(len(r.completed) / r.total_items * 100, 100.0), 2)
    elif r.total_items == 0:
        percent = 100.0
    return sp.SessionProgress(
        session_id=r.session_id, namespace=r.namespace, agent_id=r.agent_id, user_id=r.user_id,
        status=r.status,  # type: ignore[arg-type]
        completed=r.completed, in_progress=r.in_progress, next_items=r.next_items,
        blocked=r.blocked, summary=r.summary, total_items=r.total_items,
        progress_percent=percent, metadata=r.metadata,
        created_at=_ts(r.created_at), updated_at=_ts(r.updated_at),
    )


def to_feature(r: FeatureRecord) -> sp.Feature:
    return sp.Feature(
        feature_id=r.feature_id, namespace=r.namespace, description=r.description,
        session_id=r.session_id, category=r.category,
        status=r.status,  # type: ignore[arg-type]
        passes=r.passes, test_steps=r.test_steps, implemented_by=r.implemented_by,
        verified_by=r.verified_by, failure_reason=r.failure_reason,
        completed_at=_ts(r.completed_at), created_at=_ts(r.created_at),
        updated_at=_ts(r.updated_at),
    )


def _blocked(items: list[sp.BlockedItem] | None) -> list[dict[str, Any]]:
    return [b.model_dump(exclude_none=True) for b in items or []]


def _check_owner(identity: Identity, session: SessionRecord) -> None:
    """An agent key may not change a session another agent records as its own."""
    bound = identity.bound_agent_id
    if bound is not None and session.agent_id is not None and session.agent_id != bound:
        raise Forbidden(
            f"Session '{session.session_id}' belongs to agent '{session.agent_id}'; this API key "
            f"is bound to agent '{bound}'.",
            code="agent_mismatch",
        )


class ProgressService:
    """Session and feature operations; the `MemoryService` holds one as ``service.progress``."""

    def __init__(self, store: Store, telemetry: Telemetry | None = None) -> None:
        self.store = store
        self.telemetry: Telemetry = telemetry or NoTelemetry()

    # ------------------------------------------------------------------ sessions

    async def create_session(
        self, identity: Identity, req: sp.CreateSessionRequest
    ) -> sp.SessionProgress:
        agent = acting_agent(identity, req.agent_id)
        now = time.time()
        record = SessionRecord(
            project_id=identity.project_id, namespace=req.namespace, session_id=req.session_id,
            status=req.status, completed=list(req.completed or []),
            next_items=list(req.next_items or []), blocked=_blocked(req.blocked),
            created_at=now, updated_at=now, agent_id=agent, user_id=req.user_id,
            in_progress=req.in_progress, summary=req.summary, total_items=req.total_items,
            metadata=dict(req.metadata or {}),
        )
        event = _event(identity, "session_created", namespace=req.namespace, agent_id=agent,
                       now=now, payload={"session_id": req.session_id, "status": req.status})
        try:
            await self.store.insert_session(record, event)
        except DuplicateError:
            raise Conflict(
                f"Session '{req.session_id}' already exists in namespace '{req.namespace}'; "
                "update it instead.",
                code="session_exists",
            ) from None
        self.telemetry.session_changed(record.status)
        return to_session(record)

    async def get_session(
        self, identity: Identity, session_id: str, namespace: str
    ) -> sp.SessionProgress:
        record = await self.store.get_session(identity.project_id, namespace, session_id)
        if record is None:
            raise NotFound(
                f"No session '{session_id}' in namespace '{namespace}'.", code="session_not_found"
            )
        return to_session(record)

    async def update_session(
        self, identity: Identity, session_id: str, req: sp.UpdateSessionRequest
    ) -> sp.SessionProgress:
        agent = acting_agent(identity, req.agent_id)
        now = time.time()

        def change(current: SessionRecord | None) -> SessionRecord:
            if current is None:
                current = SessionRecord(
                    project_id=identity.project_id, namespace=req.namespace,
                    session_id=session_id, status="active", completed=[], next_items=[],
                    blocked=[], created_at=now, updated_at=now, agent_id=agent,
                    user_id=req.user_id,
                )
            else:
                _check_owner(identity, current)
                current = dataclasses.replace(current, updated_at=now)
                if current.agent_id is None and agent is not None:
                    current.agent_id = agent
                if req.user_id is not None:
                    current.user_id = req.user_id
            if req.completed:
                done = list(current.completed)
                done.extend(item for item in req.completed if item not in done)
                current.completed = done
                if current.in_progress in req.completed and req.in_progress is None:
                    current.in_progress = None
            if "in_progress" in req.model_fields_set:
                current.in_progress = req.in_progress
            if req.next_items is not None:
                current.next_items = list(req.next_items)
            if req.blocked is not None:
                current.blocked = _blocked(req.blocked)
            if req.summary is not None:
                current.summary = req.summary
            if req.status is not None:
                current.status = req.status
            if req.total_items is not None:
                current.total_items = req.total_items
            if req.metadata:
                current.metadata = {**current.metadata, **req.metadata}
            return current

        event = _event(identity, "session_updated", namespace=req.namespace, agent_id=agent,
                       now=now, payload={"session_id": session_id, "status": req.status,
                                         "completed": list(req.completed or [])})
        record = await self.store.modify_session(
            identity.project_id, req.namespace, session_id, change, event
        )
        self.telemetry.session_changed(record.status)
        return to_session(record)

    async def list_sessions(
        self, identity: Identity, namespace: str, status: str | None, limit: int
    ) -> sp.SessionList:
        rows = await self.store.find_sessions(
            identity.project_id, namespace, status=status, limit=limit
        )
        sessions = [to_session(r) for r in rows]
        return sp.SessionList(sessions=sessions, count=len(sessions))

    # ------------------------------------------------------------------ features

    async def create_feature(
        self, identity: Identity, req: sp.CreateFeatureRequest
    ) -> sp.Feature:
        agent = acting_agent(identity, req.agent_id)
        if req.status == "complete":
            raise InvalidInput(
                "A feature cannot be created as 'complete': create it, then update it with "
                "passes=true once its tests pass (this prevents premature completion).",
                code="premature_completion",
            )
        now = time.time()
        record = FeatureRecord(
            project_id=identity.project_id, namespace=req.namespace, feature_id=req.feature_id,
            status=req.status, created_at=now, updated_at=now, description=req.description,
            session_id=req.session_id, category=req.category,
            test_steps=list(req.test_steps or []), implemented_by=agent,
        )
        event = _event(identity, "feature_created", namespace=req.namespace, agent_id=agent,
                       now=now, task_id=req.feature_id,
                       payload={"feature_id": req.feature_id, "status": req.status})
        try:
            await self.store.insert_feature(record, event)
        except DuplicateError:
            raise Conflict(
                f"Feature '{req.feature_id}' already exists in namespace '{req.namespace}'; "
                "update it instead.",
                code="feature_exists",
            ) from None
        return to_feature(record)

    async def get_feature(self, identity: Identity, feature_id: str, namespace: str) -> sp.Feature:
        record = await self.store.get_feature(identity.project_id, namespace, feature_id)
        if record is None:
            raise NotFound(
                f"No feature '{feature_id}' in namespace '{namespace}'.", code="feature_not_found"
            )
        return to_feature(record)

    async def update_feature(
        self, identity: Identity, feature_id: str, req: sp.UpdateFeatureRequest
    ) -> sp.Feature:
        agent = acting_agent(identity, req.agent_id)
        verifier = (
            acting_agent(identity, req.verified_by, "verified_by")
            if req.verified_by is not None else agent
        )
        if req.status == "complete" and req.passes is not True:
            raise InvalidInput(
                "A feature can only be marked 'complete' together with passes=true, once its "
                "tests pass (this prevents premature completion).",
                code="premature_completion",
            )
        if req.passes is True and req.status not in (None, "complete"):
            raise InvalidInput(
                f"passes=true means the feature is complete; it cannot have status "
                f"'{req.status}'.",
                code="status_conflict",
            )
        now = time.time()

        def change(current: FeatureRecord) -> FeatureRecord:
            new = dataclasses.replace(current, updated_at=now)
            if req.description is not None:
                new.description = req.description
            if req.test_steps is not None:
                new.test_steps = list(req.test_steps)
            if req.status is not None:
                new.status = req.status
            if req.passes is True:
                new.passes, new.status = True, "complete"
                new.completed_at, new.verified_by, new.failure_reason = now, verifier, None
            elif req.passes is False:
                new.passes, new.completed_at = False, None
                if req.status is None:
                    new.status = "failed"
            elif req.status is not None and req.status != "complete" and current.passes:
                # Moving a completed feature back into work withdraws its pass.
                new.passes, new.completed_at = False, None
            if req.failure_reason is not None:
                new.failure_reason = req.failure_reason
                if req.passes is None and req.status is None:
                    new.status = "failed"
            if new.implemented_by is None and agent is not None and not req.passes:
                new.implemented_by = agent
            return new

        status_after = "complete" if req.passes else (
            req.status or ("failed" if req.passes is False else None)
        )
        event = _event(
            identity, "feature_updated", namespace=req.namespace, agent_id=agent, now=now,
            memory_ids=req.selected_memory_ids or (),
            task_id=req.task_id or feature_id, retrieval_event_id=req.retrieval_event_id,
            payload={"feature_id": feature_id, "passes": req.passes, "status": status_after,
                     "task_id": req.task_id, "failure_reason": req.failure_reason},
        )
        record = await self.store.modify_feature(
            identity.project_id, req.namespace, feature_id, change, event
        )
        if record is None:
            raise NotFound(
                f"No feature '{feature_id}' in namespace '{req.namespace}'.",
                code="feature_not_found",
            )
        failed_now = record.status == "failed" and (
            req.passes is False or req.status == "failed" or req.failure_reason is not None)
        self.telemetry.feature_changed(
            "passed" if req.passes is True else "failed" if failed_now else "updated")
        return to_feature(record)

    async def list_features(
        self, identity: Identity, namespace: str, status: str | None, session_id: str | None
    ) -> sp.FeatureList:
        rows = await self.store.list_features(
            identity.project_id, namespace, status=status, session_id=session_id
        )
        return sp.FeatureList(
            features=[to_feature(r) for r in rows],
            total=len(rows),
            passing=sum(1 for r in rows if r.passes),
            failing=sum(1 for r in rows if r.status == "failed"),
            in_progress=sum(1 for r in rows if r.status == "in_progress"),
        )
