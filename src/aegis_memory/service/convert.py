"""Conversions between store records and API models, and event records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aegis_memory import schemas as s
from aegis_memory.service.access import Identity
from aegis_memory.service.scoring import effectiveness
from aegis_memory.store.records import EventRecord, MemoryRecord


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def to_memory(m: MemoryRecord, score: float | None = None) -> s.Memory:
    # Rows come from our own database, already valid: construct without re-validating
    # (this runs for every search hit, and validation was a visible share of query time).
    return s.Memory.model_construct(
        id=m.id,
        content=m.content,
        user_id=m.user_id,
        agent_id=m.agent_id,
        namespace=m.namespace,
        scope=m.scope,  # type: ignore[arg-type]
        shared_with_agents=m.shared_with_agents,
        memory_type=m.memory_type,
        metadata=m.metadata,
        created_at=_ts(m.created_at),
        updated_at=_ts(m.updated_at),
        expires_at=_ts(m.expires_at),
        bullet_helpful=m.bullet_helpful,
        bullet_harmful=m.bullet_harmful,
        effectiveness_score=effectiveness(m.bullet_helpful, m.bullet_harmful),
        is_deprecated=m.is_deprecated,
        deprecated_by=m.deprecated_by,
        superseded_by=m.superseded_by,
        deprecation_reason=m.deprecation_reason,
        error_pattern=m.error_pattern,
        derived_from_agents=m.derived_from_agents,
        coordination_metadata=m.coordination_metadata,
        score=score,
    )


def _event(
    identity: Identity,
    event_type: str,
    *,
    namespace: str | None,
    agent_id: str | None,
    memory_ids: Sequence[str] = (),
    now: float,
    task_id: str | None = None,
    payload: dict[str, Any] | None = None,
    event_id: str | None = None,
    retrieval_event_id: str | None = None,
) -> EventRecord:
    return EventRecord(
        id=event_id or uuid.uuid4().hex,
        project_id=identity.project_id,
        namespace=namespace,
        event_type=event_type,
        agent_id=agent_id,
        memory_ids=list(memory_ids),
        created_at=now,
        task_id=task_id,
        retrieval_event_id=retrieval_event_id,
        payload=payload or {},
    )


