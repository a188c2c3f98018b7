"""Plain data that crosses the store boundary, and which embeddings a search can rank."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(slots=True)
class MemoryRecord:
    row_id: int
    id: str
    project_id: str
    namespace: str
    agent_id: str | None
    user_id: str | None
    content: str
    content_hash: str
    scope: str
    shared_with_agents: list[str]
    memory_type: str
    metadata: dict[str, Any]
    created_at: float
    updated_at: float
    expires_at: float | None = None
    bullet_helpful: int = 0
    bullet_harmful: int = 0
    is_deprecated: bool = False
    deprecated_by: str | None = None
    superseded_by: str | None = None
    deprecation_reason: str | None = None
    deprecated_at: float | None = None
    error_pattern: str | None = None
    derived_from_agents: list[str] = field(default_factory=list)
    coordination_metadata: dict[str, Any] = field(default_factory=dict)
    embedding_model: str | None = None
    embedding: bytes | None = None
    change_seq: int = 0


@dataclass(slots=True)
class TextSearch:
    """What the full-text leg of a search found (``Store.search_text``).

    * ``top``: the row ids of the best ``k`` matches, best first.
    * ``scores``: the text relevance (0-1, relative to the best match, see
      ``store/sqlite/fulltext.py``) of every row the filter allows that matches any word,
      up to the best ``TEXT_SCORE_ROWS``; a row absent from it scores 0 on the text leg.
    * ``links``: when neighbours were asked for, each anchor's previous and next row in its
      stream (``store/neighbours.py``); ``None`` at an end.
    * ``vectors``: the float32 vectors of the ``top`` rows and of the neighbours, so the
      service can score them by meaning.
    """

    top: list[int]
    scores: dict[int, float]
    links: dict[int, tuple[int | None, int | None]]
    vectors: dict[int, bytes]


#: How many of the best text matches carry their score back to the service (see TextSearch).
#: Rows ranked lower by the text leg count 0 on it; a thousand keeps a common word in a large
#: namespace from moving hundreds of thousands of rows while losing only scores near zero.
TEXT_SCORE_ROWS = 1000


@dataclass(slots=True)
class NewMemory:
    """A memory about to be inserted; ``dedup_key`` decides whether it already exists."""

    id: str
    project_id: str
    namespace: str
    agent_id: str | None
    user_id: str | None
    content: str
    content_hash: str
    dedup_key: str
    scope: str
    shared_with_agents: list[str]
    memory_type: str
    metadata: dict[str, Any]
    created_at: float
    expires_at: float | None
    error_pattern: str | None
    derived_from_agents: list[str]
    coordination_metadata: dict[str, Any]
    embedding: bytes | None
    embedding_model: str | None
    updated_at: float | None = None
    bullet_helpful: int = 0
    bullet_harmful: int = 0
    is_deprecated: bool = False
    deprecated_by: str | None = None
    superseded_by: str | None = None
    deprecation_reason: str | None = None
    deprecated_at: float | None = None


@dataclass(slots=True)
class InsertOutcome:
    id: str
    row_id: int
    inserted: bool
    record: MemoryRecord | None = None


@dataclass(slots=True)
class ImportOutcome:
    """What one import transaction inserted: public ids and row ids (same order), and the
    transaction's change number (``seq``), so the in-process index can take the rows as they
    are instead of reading them back."""

    ids: list[str] = field(default_factory=list)
    row_ids: list[int] = field(default_factory=list)
    seq: int = 0


@dataclass(slots=True)
class EventRecord:
    id: str
    project_id: str
    namespace: str | None
    event_type: str
    agent_id: str | None
    memory_ids: list[str]
    created_at: float
    task_id: str | None = None
    retrieval_event_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class VoteRecord:
    memory_row_id: int
    voter_agent_id: str
    task_id: str
    vote: str
    created_at: float
    updated_at: float
    context: str | None = None


@dataclass(slots=True)
class ApiKeyRecord:
    id: str
    project_id: str
    agent_id: str | None
    name: str | None
    key_hash: str
    prefix: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None


@dataclass(slots=True)
class SessionRecord:
    project_id: str
    namespace: str
    session_id: str
    status: str
    completed: list[str]
    next_items: list[str]
    blocked: list[dict[str, Any]]
    created_at: float
    updated_at: float
    agent_id: str | None = None
    user_id: str | None = None
    in_progress: str | None = None
    summary: str | None = None
    total_items: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ChangeBatch:
    """What changed since a sequence number: the vector index replays it to catch up."""

    upserts: list[MemoryRecord]
    deleted_row_ids: list[int]
    max_seq: int


@dataclass(slots=True)
class DeltaWrite:
    """One planned change of a delta update: insert a new memory, or change columns of one."""

    event: EventRecord | None
    new: NewMemory | None = None
    memory_id: str | None = None
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class FeatureRecord:
    project_id: str
    namespace: str
    feature_id: str
    status: str
    created_at: float
    updated_at: float
    description: str | None = None
    session_id: str | None = None
    category: str | None = None
    passes: bool = False
    test_steps: list[str] = field(default_factory=list)
    implemented_by: str | None = None
    verified_by: str | None = None
    failure_reason: str | None = None
    completed_at: float | None = None


def searchable(embedding: bytes | None) -> bytes | None:
    """The embedding if a search can rank it, else None (stored as NULL).

    A zero or non-finite vector has no direction: pgvector's cosine distance to it is NaN, and
    the in-process index skips it. Storing NULL makes "never a hit" the rule on every backend.
    """
    if embedding is None:
        return None
    vector = np.frombuffer(embedding, dtype=np.float32)
    if vector.size == 0 or not np.isfinite(vector).all() or not vector.any():
        return None
    return embedding


@dataclass(slots=True, frozen=True)
class PoolStatus:
    """One connection pool's state, for the metrics: its configured size, connections lent
    out right now, and connections open but waiting in the pool."""

    size: int
    in_use: int
    idle: int


def pool_status(pool: Any) -> PoolStatus:
    """Read a SQLAlchemy ``QueuePool`` (sync or async-adapted) without locking it."""
    return PoolStatus(size=pool.size(), in_use=pool.checkedout(), idle=pool.checkedin())
