"""CrewAI memory backed by Aegis: ``Crew(..., memory=AegisCrewMemory(client))``.

CrewAI 1.x has one memory class, ``crewai.memory.Memory``: a crew (or an agent) recalls from it
before each task, saves each task's result into it afterwards, and offers it to agents as the
"Search memory" / "Save to memory" tools. Its default implementation embeds text with OpenAI and
keeps vectors in a local LanceDB, and asks an LLM to analyse every save and every deep recall.

`AegisCrewMemory` is a subclass of that class (so ``Crew.memory`` and ``Agent.memory`` accept it
as they are) that works at the text level instead: Aegis embeds and ranks, so no OpenAI embedder,
no local vector store and, by default, no LLM call is needed for memory. What CrewAI knows and
Aegis has no column for (CrewAI's hierarchical scope path, categories, importance, source,
privacy flag) travels in the memory's metadata under the ``"crewai"`` key, and is filtered on
after the search; the rest of the metadata is the caller's, untouched.

Mapping to Aegis (see SPEC §1-§2):

* ``namespace``: the Aegis namespace every memory of this crew goes to.
* ``agent_ids``: CrewAI agent role -> Aegis agent id, the owner of what that agent saves. A role
  not in the mapping is owned by ``agent_id`` if set, else by its sanitized role
  (``"Senior Researcher"`` -> ``"senior-researcher"``).
* ``agent_id``: the agent this memory acts as when recalling (``None``: the key's own view, all of
  the namespace for a project key); bind one per agent with `for_agent`.
* ``scope``: the Aegis scope of saved memories, ``"global"`` by default because CrewAI's crew
  memory is shared by the whole crew; ``None`` lets the server decide (agent-private when the
  owner is known). A CrewAI save with ``private=True`` is always agent-private.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

try:
    from crewai.events.event_bus import crewai_event_bus
    from crewai.events.types.memory_events import (
        MemoryQueryCompletedEvent,
        MemoryQueryFailedEvent,
        MemoryQueryStartedEvent,
        MemorySaveCompletedEvent,
        MemorySaveFailedEvent,
        MemorySaveStartedEvent,
    )
    from crewai.memory.types import MemoryMatch, MemoryRecord, ScopeInfo
    from crewai.memory.unified_memory import Memory
    from crewai.memory.utils import join_scope_paths, normalize_scope_path, sanitize_scope_name
except ImportError as exc:  # pragma: no cover - exercised in the main venv without CrewAI
    raise ImportError(
        "aegis_memory.integrations.crewai needs CrewAI 1.x: "
        "pip install 'aegis-memory[crewai]' (CrewAI pins mcp<2, so install it in an "
        "environment without the [mcp] extra)."
    ) from exc

from pydantic import Field, PrivateAttr

from aegis_memory.client import AegisClient
from aegis_memory.client.errors import AegisNotFoundError
from aegis_memory.schemas import MAX_BATCH, MAX_TOP_K
from aegis_memory.schemas import Memory as AegisMemory

__all__ = ["AegisCrewMemory", "crewai_metadata"]

#: Metadata key holding what CrewAI knows about a memory (scope path, categories, ...).
CREWAI_KEY = "crewai"
#: Names of Aegis scopes, as accepted by the ``scope`` argument.
AegisScope = Literal["agent-private", "agent-shared", "global"]
_SOURCE_TYPE = "aegis_memory"


def _emit(source: Any, event: Any) -> None:
    """Emit a CrewAI memory event; listeners failing (or a closed bus) must not fail a save."""
    with contextlib.suppress(Exception):
        crewai_event_bus.emit(source, event)


def _naive_utc(value: datetime | None) -> datetime:
    """CrewAI's records use naive UTC datetimes (``datetime.utcnow``); Aegis returns aware ones."""
    if value is None:
        return datetime.now(UTC).replace(tzinfo=None)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _in_scope(path: str, prefix: str | None) -> bool:
    """Whether scope ``path`` lies under ``prefix`` (path-segment aware: /a is not under /ab)."""
    if prefix is None:
        return True
    prefix = normalize_scope_path(prefix)
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def _crewai_info(memory: AegisMemory) -> dict[str, Any]:
    info = memory.metadata.get(CREWAI_KEY)
    return info if isinstance(info, dict) else {}


def _to_record(memory: AegisMemory) -> MemoryRecord:
    """An Aegis memory as a CrewAI record (tolerating metadata other tools wrote)."""
    info = _crewai_info(memory)
    categories = info.get("categories")
    try:
        importance = min(1.0, max(0.0, float(info.get("importance", 0.5))))
    except (TypeError, ValueError):
        importance = 0.5
    source = info.get("source")
    created = _naive_utc(memory.created_at)
    return MemoryRecord(
        id=memory.id,
        content=memory.content,
        scope=normalize_scope_path(str(info.get("scope") or "/")),
        categories=[str(c) for c in categories] if isinstance(categories, list) else [],
        metadata={k: v for k, v in memory.metadata.items() if k != CREWAI_KEY},
        importance=importance,
        created_at=created,
        last_accessed=_naive_utc(memory.updated_at) if memory.updated_at else created,
        source=None if source is None else str(source),
        private=bool(info.get("private", False)),
    )


def _visible(record: MemoryRecord, source: str | None, include_private: bool) -> bool:
    """CrewAI's privacy rule: a private record is seen only by the source that saved it."""
    return include_private or not record.private or (source is not None and record.source == source)


class _AegisStorage:
    """CrewAI's ``StorageBackend`` for the parts of `Memory` that list, count and delete.

    `AegisCrewMemory` overrides saving and searching (which take embeddings in the protocol),
    so CrewAI's own ``forget``/``reset``/``list_records``/``info``/``tree``/``list_scopes``/
    ``list_categories`` keep their ``root_scope`` handling and reach Aegis through this class.
    Listing walks the namespace with ``export`` (streamed), which is fine at crew scale.
    """

    def __init__(self, owner: AegisCrewMemory) -> None:
        self._owner = owner

    # -------------------------------------------------------------- reading

    def _memories(self, scope_prefix: str | None = None) -> Iterator[AegisMemory]:
        """Memories this crew memory wrote (they carry CrewAI metadata) under ``scope_prefix``."""
        owner = self._owner
        for memory in owner.client.export(
            namespace=owner.namespace,
            agent_id=owner.agent_id,
            user_id=owner.user_id,
            include_deprecated=False,
        ):
            info = memory.metadata.get(CREWAI_KEY)
            if isinstance(info, dict) and _in_scope(str(info.get("scope") or "/"), scope_prefix):
                yield memory

    def _records(self, scope_prefix: str | None = None) -> list[MemoryRecord]:
        return [_to_record(m) for m in self._memories(scope_prefix)]

    def get_record(self, record_id: str) -> MemoryRecord | None:
        owner = self._owner
        try:
            memory = owner.client.get(record_id, agent_id=owner.agent_id)
        except AegisNotFoundError:
            return None
        return _to_record(memory)

    def list_records(
        self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[MemoryRecord]:
        records = sorted(self._records(scope_prefix), key=lambda r: r.created_at, reverse=True)
        return records[offset : offset + limit]

    def count(self, scope_prefix: str | None = None) -> int:
        return sum(1 for _ in self._memories(scope_prefix))

    def list_scopes(self, parent: str = "/") -> list[str]:
        return self._child_scopes(self._records(parent), parent)

    @staticmethod
    def _child_scopes(records: Iterable[MemoryRecord], parent: str) -> list[str]:
        base = normalize_scope_path(parent).rstrip("/")
        children: set[str] = set()
        for record in records:
            rest = record.scope[len(base) :].strip("/")
            if rest and _in_scope(record.scope, parent):
                children.add(f"{base}/{rest.split('/', 1)[0]}")
        return sorted(children)

    def get_scope_info(self, scope: str) -> ScopeInfo:
        records = self._records(scope)
        return ScopeInfo(
            path=normalize_scope_path(scope),
            record_count=len(records),
            categories=sorted({c for r in records for c in r.categories}),
            oldest_record=min((r.created_at for r in records), default=None),
            newest_record=max((r.created_at for r in records), default=None),
            child_scopes=self._child_scopes(records, scope),
        )

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self._records(scope_prefix):
            for category in record.categories:
                counts[category] = counts.get(category, 0) + 1
        return counts

    # -------------------------------------------------------------- writing

    def save(self, records: list[MemoryRecord]) -> None:
        """Store records as they are (their embeddings are ignored: Aegis embeds the text)."""
        owner = self._owner
        owner._add([(r.content, owner._crewai_metadata(r), None, r.private) for r in records])

    def update(self, record: MemoryRecord) -> None:
        owner = self._owner
        owner.client.update(
            record.id,
            agent_id=owner.agent_id,
            content=record.content,
            metadata=owner._crewai_metadata(record),
        )

    def delete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        """Delete what matches every given criterion; returns how many memories went."""
        if record_ids is not None and not any(
            (scope_prefix, categories, older_than, metadata_filter)
        ):
            return sum(self._delete_one(record_id) for record_id in record_ids)
        wanted_ids = set(record_ids) if record_ids is not None else None
        cutoff = None if older_than is None else _naive_utc(older_than)
        doomed = []
        for record in self._records(scope_prefix):
            if wanted_ids is not None and record.id not in wanted_ids:
                continue
            if categories and not set(categories) & set(record.categories):
                continue
            if cutoff is not None and record.created_at >= cutoff:
                continue
            if metadata_filter and any(
                record.metadata.get(k) != v for k, v in metadata_filter.items()
            ):
                continue
            doomed.append(record.id)
        return sum(self._delete_one(record_id) for record_id in doomed)

    def _delete_one(self, record_id: str) -> int:
        try:
            return int(self._owner.client.delete(record_id))
        except AegisNotFoundError:  # already gone (or never visible): nothing deleted
            return 0

    def reset(self, scope_prefix: str | None = None) -> None:
        self.delete(scope_prefix=scope_prefix or "/")

    def touch_records(self, record_ids: list[str]) -> None:
        """No-op: Aegis records access itself (every query is an event on its timeline)."""

    def search(self, *args: Any, **kwargs: Any) -> list[tuple[MemoryRecord, float]]:
        raise NotImplementedError(
            "AegisCrewMemory searches by text through Aegis; call recall() instead of "
            "searching the storage with an embedding."
        )

    async def asave(self, records: list[MemoryRecord]) -> None:
        self.save(records)

    async def asearch(self, *args: Any, **kwargs: Any) -> list[tuple[MemoryRecord, float]]:
        return self.search(*args, **kwargs)

    async def adelete(self, **kwargs: Any) -> int:
        return self.delete(**kwargs)

    def close(self) -> None:
        self._owner._close_client()


class AegisCrewMemory(Memory):
    """CrewAI ``Memory`` that stores and recalls through Aegis (see the module docstring).

    ``AegisCrewMemory(client, namespace="research", agent_ids={"Researcher": "researcher"})``;
    without a client, ``api_key``/``base_url`` (or ``AEGIS_API_KEY``/``AEGIS_BASE_URL`` and the
    CLI config) build one, which this memory then closes in `close`. A client passed in stays
    the caller's to close.

    Saving does not call an LLM: each CrewAI save is stored as the text CrewAI hands over (for a
    finished task: the task, the agent, the expected and the actual result). Set
    ``extract_with_llm=True`` (with ``llm=``) to let CrewAI's LLM split results into facts
    first, as its default memory does. Recall is always one Aegis search; ``depth`` is accepted
    for compatibility and ignored.
    """

    namespace: str = Field(default="default", description="Aegis namespace of this memory.")
    agent_id: str | None = Field(
        default=None,
        description="Aegis agent this memory acts as when recalling (None: the key's view).",
    )
    agent_ids: dict[str, str] = Field(
        default_factory=dict,
        description="CrewAI agent role -> Aegis agent id owning what that agent saves.",
    )
    aegis_scope: AegisScope | None = Field(
        default="global",
        description="Aegis scope of saved memories (constructor argument: scope=).",
    )
    user_id: str | None = Field(default=None, description="Aegis user the memories are about.")
    ttl_seconds: int | None = Field(default=None, description="Expiry of saved memories.")
    min_score: float | None = Field(default=None, description="Recall threshold (Aegis score).")
    extract_with_llm: bool = Field(
        default=False,
        description="Split saved task results into facts with CrewAI's LLM before storing.",
    )

    _client: AegisClient | None = PrivateAttr(default=None)
    _owns_client: bool = PrivateAttr(default=False)

    def __init__(
        self,
        client: AegisClient | None = None,
        /,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        scope: AegisScope | None = "global",
        **data: Any,
    ) -> None:
        # ``scope`` is a method of CrewAI's Memory (scoped views), so the field has another name;
        # the constructor still takes the natural one.
        data.setdefault("aegis_scope", scope)
        super().__init__(**data)
        if client is None:
            client = AegisClient(api_key=api_key, base_url=base_url)
            self._owns_client = True
        self._client = client

    def model_post_init(self, context: Any, /) -> None:
        """Let CrewAI set up its state around our storage instead of building a LanceDB store."""
        self.storage = _AegisStorage(self)
        super().model_post_init(context)
        # Keep the field serialisable (checkpoints dump the crew, memory included).
        self.storage = "aegis"

    # ------------------------------------------------------------------ plumbing

    @property
    def client(self) -> AegisClient:
        """The Aegis client (created from the environment when the model was built from data)."""
        if self._client is None:
            self._client = AegisClient()
            self._owns_client = True
        return self._client

    def for_agent(self, agent_id: str) -> AegisCrewMemory:
        """The same memory acting as ``agent_id``, for ``Agent(memory=...)``: it recalls what
        that agent may see and owns what it saves. Shares this memory's client."""
        return self._view(agent_id=agent_id)

    def _view(self, **update: Any) -> AegisCrewMemory:
        """A copy sharing this memory's client (which it does not close) and Aegis data."""
        view = self.model_copy(update={"agent_ids": dict(self.agent_ids), **update})
        view._owns_client = False
        view._storage = _AegisStorage(view)
        return view

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> AegisCrewMemory:
        """Copies (``Crew.copy()``, ``kickoff_for_each``) share the client: the data lives in
        Aegis, so there is nothing local to duplicate. (CrewAI's own ``Memory.__deepcopy__``
        also fails on Python 3.11, where ``threading.Lock`` is not a type.)"""
        return self._view()

    def _owner_for(self, agent_role: str | None) -> str | None:
        if agent_role and agent_role in self.agent_ids:
            return self.agent_ids[agent_role]
        if self.agent_id is not None:
            return self.agent_id
        return sanitize_scope_name(agent_role) if agent_role else None

    def _crewai_metadata(self, record: MemoryRecord) -> dict[str, Any]:
        info = {
            "scope": record.scope,
            "categories": list(record.categories),
            "importance": record.importance,
            "source": record.source,
            "private": record.private,
        }
        return {**record.metadata, CREWAI_KEY: info}

    def _add(
        self, items: list[tuple[str, dict[str, Any], str | None, bool]]
    ) -> list[str]:
        """Store ``(content, metadata, owner agent, private)`` items; returns their ids."""
        rows = []
        for content, metadata, owner, private in items:
            scope = "agent-private" if private and owner is not None else self.aegis_scope
            row: dict[str, Any] = {"content": content, "namespace": self.namespace,
                                   "metadata": metadata}
            for key, value in (("agent_id", owner), ("user_id", self.user_id), ("scope", scope),
                               ("ttl_seconds", self.ttl_seconds)):
                if value is not None:
                    row[key] = value
            rows.append(row)
        if len(rows) == 1:
            return [self.client.add(**rows[0]).id]
        ids: list[str] = []
        for start in range(0, len(rows), MAX_BATCH):
            ids.extend(r.id for r in self.client.add_batch(rows[start : start + MAX_BATCH]))
        return ids

    def _close_client(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    def _effective_scope(self, scope: str | None) -> str | None:
        if scope is None:
            return self.root_scope
        return join_scope_paths(self.root_scope, scope) if self.root_scope else scope

    # ------------------------------------------------------------------ saving

    def _save(
        self,
        contents: list[str],
        *,
        scope: str | None,
        categories: list[str] | None,
        metadata: dict[str, Any] | None,
        importance: float | None,
        source: str | None,
        private: bool,
        agent_role: str | None,
        root_scope: str | None,
    ) -> list[MemoryRecord]:
        """Build CrewAI records for ``contents`` and store them in one request."""
        path = join_scope_paths(root_scope if root_scope is not None else self.root_scope, scope)
        owner = self._owner_for(agent_role)
        records = [
            MemoryRecord(
                content=content,
                scope=path,
                categories=list(categories or []),
                metadata=dict(metadata or {}),
                importance=self.default_importance if importance is None else importance,
                source=source,
                private=private,
            )
            for content in contents
            if content and content.strip()
        ]
        if not records:
            return []
        label = records[0].content if len(records) == 1 else f"{len(records)} memories"
        _emit(self, MemorySaveStartedEvent(value=label, metadata=metadata,
                                           agent_role=agent_role, source_type=_SOURCE_TYPE))
        start = time.perf_counter()
        try:
            ids = self._add([(r.content, self._crewai_metadata(r), owner, r.private)
                             for r in records])
        except Exception as exc:
            _emit(self, MemorySaveFailedEvent(value=label, metadata=metadata, agent_role=agent_role,
                                              error=str(exc), source_type=_SOURCE_TYPE))
            raise
        for record, memory_id in zip(records, ids, strict=True):
            record.id = memory_id
        _emit(self, MemorySaveCompletedEvent(
            value=label, metadata=metadata or {}, agent_role=agent_role,
            save_time_ms=(time.perf_counter() - start) * 1000, source_type=_SOURCE_TYPE,
        ))
        return records

    def remember(
        self,
        content: str,
        scope: str | None = None,
        categories: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        importance: float | None = None,
        source: str | None = None,
        private: bool = False,
        agent_role: str | None = None,
        root_scope: str | None = None,
    ) -> MemoryRecord | None:
        """Store one memory now and return it as a CrewAI record (its id is the Aegis id).

        Nothing is inferred: without ``scope`` the record lands at the root scope, without
        ``importance`` it gets ``default_importance``. None when the memory is read-only.
        """
        if self.read_only:
            return None
        records = self._save([content], scope=scope, categories=categories, metadata=metadata,
                             importance=importance, source=source, private=private,
                             agent_role=agent_role, root_scope=root_scope)
        return records[0] if records else None

    def remember_many(
        self,
        contents: list[str],
        scope: str | None = None,
        categories: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        importance: float | None = None,
        source: str | None = None,
        private: bool = False,
        agent_role: str | None = None,
        root_scope: str | None = None,
    ) -> list[MemoryRecord]:
        """Store several memories in one batch request and return their records.

        CrewAI's own memory saves in the background (its LLM analysis is slow); one Aegis batch
        is quick, so this saves at once: a save error reaches the caller (CrewAI logs it) and a
        recall right after sees the memories.
        """
        if self.read_only:
            return []
        return self._save(list(contents), scope=scope, categories=categories, metadata=metadata,
                          importance=importance, source=source, private=private,
                          agent_role=agent_role, root_scope=root_scope)

    def extract_memories(self, content: str) -> list[str]:
        """What to store of a finished task: the text as given, or LLM-extracted facts when
        ``extract_with_llm`` is set (CrewAI calls this before `remember_many`)."""
        if self.extract_with_llm:
            return super().extract_memories(content)
        return [content] if content and content.strip() else []

    def update(
        self,
        record_id: str,
        content: str | None = None,
        scope: str | None = None,
        categories: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        importance: float | None = None,
    ) -> MemoryRecord:
        """Change a stored memory (Aegis re-embeds new content); raises ValueError if unknown."""
        existing = self._storage.get_record(record_id)
        if existing is None:
            raise ValueError(f"Record not found: {record_id}")
        if self.read_only:
            return existing
        changes: dict[str, Any] = {
            "content": content, "scope": scope, "categories": categories,
            "metadata": metadata, "importance": importance,
        }
        updated = existing.model_copy(
            update={k: v for k, v in changes.items() if v is not None}
            | {"last_accessed": _naive_utc(None)}
        )
        memory = self.client.update(
            record_id,
            agent_id=self.agent_id,
            content=content,
            metadata=self._crewai_metadata(updated),
        )
        return _to_record(memory)

    # ------------------------------------------------------------------ recalling

    def recall(
        self,
        query: str,
        scope: str | None = None,
        categories: list[str] | None = None,
        limit: int = 10,
        depth: Literal["shallow", "deep"] = "deep",
        source: str | None = None,
        include_private: bool = False,
    ) -> list[MemoryMatch]:
        """The best ``limit`` memories for ``query``, best first, as CrewAI matches.

        One Aegis search (semantic, hybrid where it helps) over what ``agent_id`` may see in the
        namespace. CrewAI's scope, category and privacy filters apply to its metadata after the
        search; the search asks for more results while filtering leaves fewer than ``limit``.
        """
        self.drain_writes()
        if not query or not query.strip() or limit <= 0:
            return []
        prefix = self._effective_scope(scope)
        _emit(self, MemoryQueryStartedEvent(query=query, limit=limit,
                                            score_threshold=self.min_score,
                                            source_type=_SOURCE_TYPE))
        start = time.perf_counter()
        try:
            results = self._search(query, prefix, categories, limit, source, include_private)
        except Exception as exc:
            _emit(self, MemoryQueryFailedEvent(query=query, limit=limit,
                                               score_threshold=self.min_score, error=str(exc),
                                               source_type=_SOURCE_TYPE))
            raise
        _emit(self, MemoryQueryCompletedEvent(
            query=query, results=results, limit=limit, score_threshold=self.min_score,
            query_time_ms=(time.perf_counter() - start) * 1000, source_type=_SOURCE_TYPE,
        ))
        return results

    def _search(
        self,
        query: str,
        prefix: str | None,
        categories: list[str] | None,
        limit: int,
        source: str | None,
        include_private: bool,
    ) -> list[MemoryMatch]:
        top_k = min(limit, MAX_TOP_K)
        while True:
            found = self.client.query(
                query,
                agent_id=self.agent_id,
                user_id=self.user_id,
                namespace=self.namespace,
                top_k=top_k,
                min_score=self.min_score,
            )
            matches = []
            for memory in found:
                record = _to_record(memory)
                if not _in_scope(record.scope, prefix):
                    continue
                if categories and not set(categories) & set(record.categories):
                    continue
                if not _visible(record, source, include_private):
                    continue
                matches.append(MemoryMatch(record=record, score=memory.score or 0.0,
                                           match_reasons=["semantic"]))
            if len(matches) >= limit or len(found) < top_k or top_k >= MAX_TOP_K:
                return matches[:limit]
            top_k = min(top_k * 4, MAX_TOP_K)


def crewai_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The CrewAI part of an Aegis memory's metadata (scope path, categories, importance, ...);
    handy when reading a crew's memories from outside CrewAI."""
    info = metadata.get(CREWAI_KEY)
    return dict(info) if isinstance(info, dict) else {}
