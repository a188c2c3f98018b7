"""Result and argument types that belong to the SDK rather than to the wire contract.

The wire models live in `aegis_memory.schemas` and are reused as they are; what is here only
reshapes them for callers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypedDict

from aegis_memory.schemas import EmbeddingEncoding, Memory

__all__ = ["ExportFilters", "QueryResult"]


class QueryResult(list[Memory]):
    """The memories a query found, best first, plus the query's bookkeeping.

    A ``list`` so that ``memories[0].content``, ``len(memories)`` and ``for m in memories`` work
    as every example expects, while ``retrieval_event_id`` (to pass to a later feature update, so
    the server can link these memories to the task's outcome) and ``query_time_ms`` stay at hand.
    """

    retrieval_event_id: str | None
    query_time_ms: float

    def __init__(
        self,
        memories: Iterable[Memory] = (),
        *,
        retrieval_event_id: str | None = None,
        query_time_ms: float = 0.0,
    ) -> None:
        super().__init__(memories)
        self.retrieval_event_id = retrieval_event_id
        self.query_time_ms = query_time_ms

    @property
    def ids(self) -> list[str]:
        """The ids in rank order: what a vote or a handoff usually needs next."""
        return [memory.id for memory in self]

    def __repr__(self) -> str:
        return (
            f"QueryResult({list.__repr__(self)}, retrieval_event_id={self.retrieval_event_id!r}, "
            f"query_time_ms={self.query_time_ms!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the bookkeeping across pickle/copy (a plain list subclass would drop it).
        return (
            _rebuild_query_result,
            (list(self), self.retrieval_event_id, self.query_time_ms),
        )


def _rebuild_query_result(
    memories: list[Memory], retrieval_event_id: str | None, query_time_ms: float
) -> QueryResult:
    return QueryResult(memories, retrieval_event_id=retrieval_event_id, query_time_ms=query_time_ms)


class ExportFilters(TypedDict, total=False):
    """What to export; shared by ``export`` and ``export_to`` so the two cannot drift apart."""

    namespace: str | None
    agent_id: str | None
    user_id: str | None
    include_embeddings: bool
    include_deprecated: bool
    embedding_encoding: EmbeddingEncoding | None
