"""``client.progress`` and ``client.features``: session progress and feature tracking.

Written once like the rest of the SDK (`_core.operation`); `ProgressApis` gives both clients the
two properties, each returning the sync or async flavour of the sub-API.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from aegis_memory.client._core import (
    AsyncDriver,
    AsyncNamespace,
    Call,
    Namespace,
    SyncNamespace,
    as_list,
    operation,
    path_id,
    query_params,
    request_body,
)
from aegis_memory.schemas_progress import (
    CreateFeatureRequest,
    CreateSessionRequest,
    Feature,
    FeatureList,
    FeatureStatus,
    SessionList,
    SessionProgress,
    SessionStatus,
    UpdateFeatureRequest,
    UpdateSessionRequest,
)

__all__ = [
    "AsyncFeatures",
    "AsyncProgress",
    "Feature",
    "FeatureList",
    "Features",
    "FeaturesOps",
    "Progress",
    "ProgressApis",
    "ProgressOps",
    "SessionProgress",
]


def _sessions(data: Any) -> builtins.list[SessionProgress]:
    return SessionList.model_validate(data).sessions


def _blocked(
    blocked: Sequence[Mapping[str, Any]] | None,
) -> builtins.list[dict[str, Any]] | None:
    return None if blocked is None else [dict(b) for b in blocked]


class ProgressOps(Namespace):
    """``client.progress``: where a long-running task stands, across context resets."""

    @operation
    def create(
        self,
        session_id: str,
        *,
        namespace: str = "default",
        agent_id: str | None = None,
        user_id: str | None = None,
        status: SessionStatus = "active",
        total_items: int | None = None,
        summary: str | None = None,
    ) -> Call[SessionProgress]:
        """Start tracking a session. A second create of the same id raises `AegisConflictError`
        (`update` creates a missing session itself, so calling this is optional)."""
        body = request_body(
            CreateSessionRequest, session_id=session_id, namespace=namespace, agent_id=agent_id,
            user_id=user_id, status=status, total_items=total_items, summary=summary,
        )
        return Call("POST", "/memories/ace/session", SessionProgress.model_validate, json=body)

    @operation
    def get(self, session_id: str, *, namespace: str = "default") -> Call[SessionProgress]:
        """A session's progress; unknown ids raise `AegisNotFoundError`."""
        return Call(
            "GET", f"/memories/ace/session/{path_id(session_id, 'session_id')}",
            SessionProgress.model_validate, params=query_params(namespace=namespace),
        )

    @operation
    def update(
        self,
        session_id: str,
        *,
        completed: Sequence[str] | str | None = None,
        in_progress: str | None = None,
        next: Sequence[str] | str | None = None,  # the README's name
        blocked: Sequence[Mapping[str, Any]] | None = None,
        summary: str | None = None,
        status: SessionStatus | None = None,
        total_items: int | None = None,
        namespace: str = "default",
        agent_id: str | None = None,
    ) -> Call[SessionProgress]:
        """Record progress; the session is created if it does not exist yet.

        ``completed`` items are appended to those already done (no duplicates, order kept);
        ``next`` and ``blocked`` (``[{"item": ..., "reason": ...}]``) replace the previous lists.
        """
        body = request_body(
            UpdateSessionRequest, completed=as_list(completed), in_progress=in_progress,
            next_items=as_list(next), blocked=_blocked(blocked), summary=summary, status=status,
            total_items=total_items, namespace=namespace, agent_id=agent_id,
        )
        return Call(
            "PATCH", f"/memories/ace/session/{path_id(session_id, 'session_id')}",
            SessionProgress.model_validate, json=body,
        )

    @operation
    def list(
        self,
        *,
        namespace: str = "default",
        status: SessionStatus | None = None,
        limit: int = 100,
    ) -> Call[builtins.list[SessionProgress]]:
        """Sessions of a namespace, most recently updated first."""
        return Call(
            "GET", "/memories/ace/sessions", _sessions,
            params=query_params(namespace=namespace, status=status, limit=str(limit)),
        )


class FeaturesOps(Namespace):
    """``client.features``: features that count as done only once verified (``passes=True``)."""

    @operation
    def create(
        self,
        feature_id: str,
        *,
        description: str | None = None,
        namespace: str = "default",
        session_id: str | None = None,
        category: str | None = None,
        test_steps: Sequence[str] | str | None = None,
        agent_id: str | None = None,
    ) -> Call[Feature]:
        """Track a feature (status ``not_started``). Duplicates raise `AegisConflictError`."""
        body = request_body(
            CreateFeatureRequest, feature_id=feature_id, description=description,
            namespace=namespace, session_id=session_id, category=category,
            test_steps=as_list(test_steps), agent_id=agent_id,
        )
        return Call("POST", "/memories/ace/feature", Feature.model_validate, json=body)

    @operation
    def get(self, feature_id: str, *, namespace: str = "default") -> Call[Feature]:
        """One feature; unknown ids raise `AegisNotFoundError`."""
        return Call(
            "GET", f"/memories/ace/feature/{path_id(feature_id, 'feature_id')}",
            Feature.model_validate, params=query_params(namespace=namespace),
        )

    @operation
    def update(
        self,
        feature_id: str,
        *,
        status: FeatureStatus | None = None,
        passes: bool | None = None,
        failure_reason: str | None = None,
        retrieval_event_id: str | None = None,
        selected_memory_ids: Sequence[str] | None = None,
        task_id: str | None = None,
        verified_by: str | None = None,
        agent_id: str | None = None,
        namespace: str = "default",
    ) -> Call[Feature]:
        """Change a feature. ``status="complete"`` needs ``passes=True`` (else a validation
        error); pass the ``retrieval_event_id`` of the query that helped, to link memories to
        the outcome."""
        body = request_body(
            UpdateFeatureRequest, status=status, passes=passes, failure_reason=failure_reason,
            retrieval_event_id=retrieval_event_id, selected_memory_ids=selected_memory_ids,
            task_id=task_id, verified_by=verified_by,
            agent_id=agent_id, namespace=namespace,
        )
        return Call(
            "PATCH", f"/memories/ace/feature/{path_id(feature_id, 'feature_id')}",
            Feature.model_validate, json=body,
        )

    @operation
    def mark_complete(
        self,
        feature_id: str,
        *,
        verified_by: str | None = None,
        retrieval_event_id: str | None = None,
        selected_memory_ids: Sequence[str] | None = None,
        task_id: str | None = None,
        agent_id: str | None = None,
        namespace: str = "default",
    ) -> Call[Feature]:
        """The feature passed its tests: ``passes=True``, status ``complete``."""
        return FeaturesOps.update.build(
            self, feature_id, status="complete", passes=True, verified_by=verified_by,
            retrieval_event_id=retrieval_event_id, selected_memory_ids=selected_memory_ids,
            task_id=task_id, agent_id=agent_id,
            namespace=namespace,
        )

    @operation
    def mark_failed(
        self,
        feature_id: str,
        reason: str,
        *,
        retrieval_event_id: str | None = None,
        selected_memory_ids: Sequence[str] | None = None,
        task_id: str | None = None,
        agent_id: str | None = None,
        namespace: str = "default",
    ) -> Call[Feature]:
        """The feature failed verification: ``passes=False``, status ``failed``, with why."""
        return FeaturesOps.update.build(
            self, feature_id, status="failed", passes=False, failure_reason=reason,
            retrieval_event_id=retrieval_event_id, selected_memory_ids=selected_memory_ids,
            task_id=task_id, agent_id=agent_id,
            namespace=namespace,
        )

    @operation
    def list(
        self,
        *,
        namespace: str = "default",
        status: FeatureStatus | None = None,
        session_id: str | None = None,
    ) -> Call[FeatureList]:
        """Features of a namespace with counts (``total``, ``passing``, ``failing``,
        ``in_progress``)."""
        return Call(
            "GET", "/memories/ace/features", FeatureList.model_validate,
            params=query_params(namespace=namespace, status=status, session_id=session_id),
        )


class Progress(ProgressOps, SyncNamespace):
    """``client.progress`` of a sync client."""


class AsyncProgress(ProgressOps, AsyncNamespace):
    """``client.progress`` of an async client (coroutines)."""


class Features(FeaturesOps, SyncNamespace):
    """``client.features`` of a sync client."""


class AsyncFeatures(FeaturesOps, AsyncNamespace):
    """``client.features`` of an async client (coroutines)."""


class ProgressApis:
    """Mixed into the clients: ``client.progress`` and ``client.features`` (properties, so the
    client and its sub-APIs form no reference cycle)."""

    @property
    def progress(self) -> Any:
        """Session progress: ``create``, ``get``, ``update``, ``list``."""
        return AsyncProgress(self) if isinstance(self, AsyncDriver) else Progress(self)

    @property
    def features(self) -> Any:
        """Feature tracking: ``create``, ``get``, ``update``, ``mark_complete``,
        ``mark_failed``, ``list``."""
        return AsyncFeatures(self) if isinstance(self, AsyncDriver) else Features(self)
