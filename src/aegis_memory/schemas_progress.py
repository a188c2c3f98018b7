"""Wire models of session progress and feature tracking (SPEC §3), shared by server and SDK.

Kept apart from ``schemas.py`` so the two areas can change independently; the conventions are
the same (requests forbid unknown fields, responses ignore them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aegis_memory.schemas import (
    MAX_CONTENT_CHARS,
    Ident,
    JsonObject,
    PathIdent,
    _Request,
    _Response,
)

SessionStatus = Literal["active", "paused", "completed", "failed"]
FeatureStatus = Literal["not_started", "in_progress", "blocked", "testing", "complete", "failed"]

MAX_ITEMS = 1_000
MAX_ITEM_CHARS = 2_000
MAX_SESSION_LIST = 500


def _check_items(value: list[str] | None, field: str) -> list[str] | None:
    if value is None:
        return None
    for item in value:
        if not item.strip():
            raise ValueError(f"{field} items must not be empty")
        if len(item) > MAX_ITEM_CHARS:
            raise ValueError(f"{field} items must be at most {MAX_ITEM_CHARS} characters")
    return list(dict.fromkeys(value))


class BlockedItem(BaseModel):
    """Something that cannot proceed, and why."""

    model_config = ConfigDict(extra="forbid")

    item: str = Field(min_length=1, max_length=MAX_ITEM_CHARS)
    reason: str | None = Field(default=None, max_length=MAX_ITEM_CHARS)


# ----------------------------------------------------------------------------- sessions


class _SessionFields(_Request):
    namespace: Ident = "default"
    agent_id: Ident | None = None
    user_id: Ident | None = None
    completed: list[str] | None = Field(default=None, max_length=MAX_ITEMS)
    in_progress: str | None = Field(default=None, max_length=MAX_ITEM_CHARS)
    next_items: list[str] | None = Field(default=None, max_length=MAX_ITEMS)
    blocked: list[BlockedItem] | None = Field(default=None, max_length=MAX_ITEMS)
    summary: str | None = Field(default=None, max_length=MAX_CONTENT_CHARS)
    total_items: int | None = Field(default=None, ge=0, le=1_000_000)
    metadata: JsonObject | None = None

    @field_validator("completed", "next_items")
    @classmethod
    def _items(cls, value: list[str] | None, info: Any) -> list[str] | None:
        return _check_items(value, info.field_name)


class CreateSessionRequest(_SessionFields):
    session_id: PathIdent
    status: SessionStatus = "active"

class UpdateSessionRequest(_SessionFields):
    """Only what is given changes; ``completed`` items are appended (without duplicates)."""

    status: SessionStatus | None = None


class SessionProgress(_Response):
    session_id: str
    namespace: str = "default"
    agent_id: str | None = None
    user_id: str | None = None
    status: SessionStatus = "active"
    completed: list[str] = Field(default_factory=list)
    in_progress: str | None = None
    next_items: list[str] = Field(default_factory=list)
    blocked: list[dict[str, Any]] = Field(default_factory=list)
    summary: str | None = None
    total_items: int | None = None
    progress_percent: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class SessionList(_Response):
    sessions: list[SessionProgress] = Field(default_factory=list)
    count: int = 0


# ----------------------------------------------------------------------------- features


class CreateFeatureRequest(_Request):
    feature_id: PathIdent
    description: str | None = Field(default=None, max_length=MAX_CONTENT_CHARS)
    namespace: Ident = "default"
    session_id: Ident | None = None
    category: Ident | None = None
    test_steps: list[str] | None = Field(default=None, max_length=MAX_ITEMS)
    status: FeatureStatus = "not_started"
    agent_id: Ident | None = None

    @field_validator("test_steps")
    @classmethod
    def _steps(cls, value: list[str] | None) -> list[str] | None:
        return _check_items(value, "test_steps")


class UpdateFeatureRequest(_Request):
    """``passes=true`` is the only way to ``complete``: status alone cannot claim it."""

    namespace: Ident = "default"
    status: FeatureStatus | None = None
    passes: bool | None = None
    failure_reason: str | None = Field(default=None, max_length=MAX_CONTENT_CHARS)
    description: str | None = Field(default=None, max_length=MAX_CONTENT_CHARS)
    test_steps: list[str] | None = Field(default=None, max_length=MAX_ITEMS)
    verified_by: Ident | None = None
    retrieval_event_id: str | None = Field(default=None, max_length=64)
    selected_memory_ids: list[str] | None = Field(
        default=None, max_length=MAX_ITEMS,
        description="The memories the agent actually used for this outcome.",
    )
    task_id: Ident | None = None
    agent_id: Ident | None = None

    @field_validator("test_steps")
    @classmethod
    def _steps(cls, value: list[str] | None) -> list[str] | None:
        return _check_items(value, "test_steps")


class Feature(_Response):
    feature_id: str
    namespace: str = "default"
    description: str | None = None
    session_id: str | None = None
    category: str | None = None
    status: FeatureStatus = "not_started"
    passes: bool = False
    test_steps: list[str] = Field(default_factory=list)
    implemented_by: str | None = None
    verified_by: str | None = None
    failure_reason: str | None = None
    completed_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class FeatureList(_Response):
    features: list[Feature] = Field(default_factory=list)
    total: int = 0
    passing: int = 0
    failing: int = 0
    in_progress: int = 0
