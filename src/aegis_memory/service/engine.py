"""The memory engine: every business rule of SPEC §2-3, with no HTTP and no SQL in it.

Faces (the FastAPI routes, local mode through them, the CLI) validate input with the shared
pydantic models, call one method here with the caller's :class:`Identity`, and render the
result. The store persists; the index finds; this module decides.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from aegis_memory import schemas as s
from aegis_memory.config import DEFAULT_PROJECT, Settings
from aegis_memory.embeddings import Embedder
from aegis_memory.index import IndexedRow, SearchFilter
from aegis_memory.index.fusion import (
    NEIGHBOUR_WEIGHT,
    candidate_depth,
    fuse,
    fused_scores,
    with_neighbours,
)
from aegis_memory.index.text import query_terms
from aegis_memory.service.access import (
    Identity,
    acting_agent,
    can_modify,
    can_see,
    choose_scope,
    is_live,
    search_filter,
)
from aegis_memory.service.ace import AceOperations
from aegis_memory.service.convert import _epoch, _event, _ts, to_memory
from aegis_memory.service.dashboard import DashboardOperations
from aegis_memory.service.errors import (
    DECIDE_ATTEMPTS,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    StartupError,
    Unauthorized,
    kept_changing,
)
from aegis_memory.service.evaluation import EvalOperations
from aegis_memory.service.events import EventWriter
from aegis_memory.service.hashing import content_hash, dedup_key, hash_key, same_secret
from aegis_memory.service.indexing import DatabaseSearch, IndexSync, Searcher, indexed_row
from aegis_memory.service.keys import issue_key, key_info
from aegis_memory.service.progress import ProgressService
from aegis_memory.service.scoring import effectiveness
from aegis_memory.service.telemetry import NoTelemetry, Telemetry, timed, timed_stream
from aegis_memory.store import DuplicateError, StaleRow, Store
from aegis_memory.store.records import (
    MemoryRecord,
    NewMemory,
    VoteRecord,
)

log = logging.getLogger("aegis_memory.service")

#: Expired memories one purge transaction deletes. A maintenance round repeats it until none
#: are left: a single batch a minute fell behind any workload adding more than ~17 expiring
#: memories a second, and the expired rows (hidden, but stored and indexed) piled up.
PURGE_BATCH = 1000

#: A query's vector, or the future of one being computed (see ``MemoryService._embed_soon``).
VectorSource = np.ndarray | Awaitable[np.ndarray] | None


async def verify_embedding_model(store: Store, embedder: Embedder) -> int:
    """Record the model on first start; refuse a different one later (vectors would not mix).

    Returns the embedding dimension.
    """
    dim = await asyncio.to_thread(lambda: embedder.dim)
    stored_model = await store.get_meta("embedding_model")
    stored_dim = await store.get_meta("embedding_dim")
    if stored_model is None:
        await store.set_meta("embedding_model", embedder.model_name)
        await store.set_meta("embedding_dim", str(dim))
    elif stored_model != embedder.model_name or int(stored_dim or 0) != dim:
        raise StartupError(
            f"This database was embedded with model '{stored_model}' ({stored_dim} dims), "
            f"but the server is configured with '{embedder.model_name}' ({dim} dims). "
            "Start with the original AEGIS_EMBEDDING_PROVIDER / AEGIS_EMBEDDING_MODEL, "
            "or run `aegis reindex` to re-embed every memory with the new model."
        )
    return dim


#: The shortest AEGIS_API_KEY accepted in production (``secrets.token_urlsafe(32)`` gives 43).
MIN_PRODUCTION_KEY_CHARS = 16


def check_production_settings(settings: Settings) -> None:
    """``AEGIS_ENV=production`` refuses what is fine on a laptop and unsafe on a network: the
    published development key, a short key, and serving without knowing which proxy
    terminates TLS (without it, client addresses, and with them the per-address limits on
    failed sign-ins, are the proxy's; see docs/deployment/production-checklist.md)."""
    if settings.aegis_env != "production":
        return
    if settings.aegis_api_key == "dev-key":
        raise StartupError(
            "Refusing to start with AEGIS_ENV=production while the default development "
            "key 'dev-key' is configured: set AEGIS_API_KEY to a long random secret."
        )
    if len(settings.aegis_api_key) < MIN_PRODUCTION_KEY_CHARS:
        raise StartupError(
            f"Refusing to start with AEGIS_ENV=production: AEGIS_API_KEY is shorter than "
            f"{MIN_PRODUCTION_KEY_CHARS} characters. Use a long random secret, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'."
        )
    if not (settings.forwarded_allow_ips or "").strip():
        raise StartupError(
            "Refusing to start with AEGIS_ENV=production without FORWARDED_ALLOW_IPS: serve "
            "behind a TLS-terminating proxy and set FORWARDED_ALLOW_IPS to its address(es) "
            "('*' when only the proxy can reach the server). See "
            "docs/deployment/production-checklist.md."
        )


async def preflight(settings: Settings) -> None:
    """What ``aegis serve`` checks before starting workers, so a misconfiguration is one clear
    sentence instead of a traceback per worker."""
    from aegis_memory.embeddings import build_embedder
    from aegis_memory.store import open_store

    check_production_settings(settings)
    embedder = build_embedder(settings)
    store = open_store(settings)
    try:
        await store.migrate(embedding_dim=await asyncio.to_thread(lambda: embedder.dim))
        await verify_embedding_model(store, embedder)
    finally:
        await store.close()


class MemoryService(AceOperations, EvalOperations, DashboardOperations):
    """One instance per process; safe to share between concurrent requests."""

    def __init__(
        self, settings: Settings, store: Store, embedder: Embedder, index: Searcher,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.index = index
        self.telemetry: Telemetry = telemetry or NoTelemetry()
        self.events = EventWriter(store)
        self.progress = ProgressService(store, self.telemetry)
        self._bootstrap_key = settings.aegis_api_key
        # Text queries between their start and their answer: more than one means requests
        # are waiting, and a search should leave the event loop to them (see IndexSync.search).
        self._queries_in_flight = 0

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    async def open(
        cls, settings: Settings, store: Store, embedder: Embedder,
        telemetry: Telemetry | None = None,
    ) -> MemoryService:
        """Migrate, check the embedding model against the data, load and catch up the index."""
        check_production_settings(settings)
        await store.migrate(embedding_dim=await asyncio.to_thread(lambda: embedder.dim))
        dim = await verify_embedding_model(store, embedder)
        store_id = await store.get_meta("store_id")
        if store_id is None:
            store_id = uuid.uuid4().hex
            await store.set_meta("store_id", store_id)
        await store.ensure_project(DEFAULT_PROJECT, time.time())
        index: Searcher
        if hasattr(store, "search_vectors"):
            index = DatabaseSearch(store)
        else:
            index = await IndexSync.open(
                store, dim=dim, model_name=embedder.model_name, directory=settings.index_dir,
                store_id=store_id,
            )
        return cls(settings, store, embedder, index, telemetry)

    async def close(self) -> None:
        try:
            await self.events.close()
            self.index.close()
            await self.index.save(force=True)
        finally:
            await self.store.close()

    async def maintenance(self) -> None:
        """Periodic work: purge expired memories, persist the index when it changed."""
        purged, total = PURGE_BATCH, 0
        while purged == PURGE_BATCH:  # short write transactions, until none are left
            purged = await self.store.purge_expired(time.time(), PURGE_BATCH)
            total += purged
        if total:
            await self.index.catch_up()
        await self.index.save()

    async def ready(self) -> bool:
        await self.store.current_seq()
        return True

    # ------------------------------------------------------------------ identity and keys

    async def authenticate(self, secret: str | None) -> Identity:
        if not secret:
            raise Unauthorized(
                "Authentication failed: Invalid API key (send it as: Authorization: Bearer <key>)"
            )
        if self._bootstrap_key and same_secret(secret, self._bootstrap_key):
            return Identity(project_id=DEFAULT_PROJECT)
        record = await self.store.find_key(hash_key(secret))
        now = time.time()
        if (
            record is None
            or not same_secret(record.key_hash, hash_key(secret))
            or record.revoked_at is not None
            or (record.expires_at is not None and record.expires_at <= now)
        ):
            raise Unauthorized("Authentication failed: Invalid API key")
        return Identity(project_id=record.project_id, key_id=record.id,
                        bound_agent_id=record.agent_id)

    async def create_key(self, identity: Identity, req: s.CreateKeyRequest) -> s.CreatedApiKey:
        if not identity.is_project_key:
            raise Forbidden("Only a project key can create API keys.", code="project_key_required")
        return await issue_key(
            self.store, identity.project_id, agent_id=req.agent_id, name=req.name,
            expires_at=req.expires_at,
        )

    async def list_keys(self, identity: Identity) -> list[s.ApiKeyInfo]:
        if not identity.is_project_key:
            raise Forbidden("Only a project key can list API keys.", code="project_key_required")
        return [key_info(r) for r in await self.store.list_keys(identity.project_id)]

    async def revoke_key(self, identity: Identity, key_id: str) -> None:
        if not identity.is_project_key:
            raise Forbidden("Only a project key can revoke API keys.", code="project_key_required")
        if not await self.store.revoke_key(identity.project_id, key_id, time.time()):
            raise NotFound(f"No active API key with id '{key_id}' in this project.")

    # ------------------------------------------------------------------ embedding

    async def _embed(self, texts: Sequence[str]) -> np.ndarray:
        started = time.perf_counter()
        vectors = await asyncio.to_thread(self.embedder.embed, list(texts))
        self.telemetry.embedded(len(texts), time.perf_counter() - started)
        return vectors

    def _embed_soon(self, text: str) -> asyncio.Future[np.ndarray]:
        """Start embedding ``text`` in a worker thread right away (a coroutine would only
        start when first awaited); the future gives its vector."""
        def embed_one() -> np.ndarray:
            started = time.perf_counter()
            vector = self.embedder.embed([text])[0]
            self.telemetry.embedded(1, time.perf_counter() - started)
            return vector

        future = asyncio.get_running_loop().run_in_executor(None, embed_one)
        # A search that fails before awaiting it must not leave an unread error behind.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())
        return future

    # ------------------------------------------------------------------ add

    def _new_memory(
        self, identity: Identity, item: s.MemoryFields, now: float
    ) -> NewMemory:
        agent = acting_agent(identity, item.agent_id)
        scope = choose_scope(item.scope, agent, item.shared_with_agents)
        chash = content_hash(item.content)
        return NewMemory(
            id=uuid.uuid4().hex,
            project_id=identity.project_id,
            namespace=item.namespace,
            agent_id=agent,
            user_id=item.user_id,
            content=item.content,
            content_hash=chash,
            dedup_key=dedup_key(item.namespace, agent, item.user_id, chash),
            scope=scope,
            shared_with_agents=list(item.shared_with_agents or []),
            memory_type=item.memory_type,
            metadata=dict(item.metadata or {}),
            created_at=now,
            expires_at=now + item.ttl_seconds if item.ttl_seconds else None,
            error_pattern=item.error_pattern,
            derived_from_agents=list(item.derived_from_agents or []),
            coordination_metadata=dict(item.coordination_metadata or {}),
            embedding=None,
            embedding_model=self.embedder.model_name,
        )

    async def add(self, identity: Identity, req: s.MemoryFields) -> s.AddResult:
        return (await self.add_batch(identity, [req]))[0]

    @timed("add")
    async def add_batch(
        self, identity: Identity, items: Sequence[s.MemoryFields]
    ) -> list[s.AddResult]:
        """Add memories in one transaction. Duplicates (stored or within the batch) are not
        embedded again: they return the existing id with ``deduped_from``."""
        now = time.time()
        news = [self._new_memory(identity, item, now) for item in items]
        existing = await self.store.find_by_dedup_keys(
            identity.project_id, [n.dedup_key for n in news], now
        )
        first_of: dict[str, NewMemory] = {}
        to_insert: list[NewMemory] = []
        for n in news:
            if n.dedup_key in existing or n.dedup_key in first_of:
                continue
            first_of[n.dedup_key] = n
            to_insert.append(n)
        if to_insert:
            vectors = await self._embed([n.content for n in to_insert])
            for n, vec in zip(to_insert, vectors, strict=True):
                n.embedding = np.asarray(vec, dtype=np.float32).tobytes()
            events = [
                _event(identity, "memory_created", namespace=n.namespace, agent_id=n.agent_id,
                       memory_ids=[n.id], now=now,
                       payload={"scope": n.scope, "memory_type": n.memory_type})
                for n in to_insert
            ]
            outcomes = await self.store.insert_memories(to_insert, events, now)
            for n, outcome in zip(to_insert, outcomes, strict=True):
                if not outcome.inserted and outcome.record is not None:
                    existing[n.dedup_key] = outcome.record  # lost a race: someone else's row
            await self.index.catch_up()
        self.telemetry.memories_added(len(to_insert))
        results: list[s.AddResult] = []
        for n in news:
            found = existing.get(n.dedup_key)
            if found is not None:
                results.append(s.AddResult(
                    id=found.id, scope=found.scope, namespace=found.namespace,  # type: ignore[arg-type]
                    memory_type=found.memory_type, deduped_from=found.id,
                    created_at=_ts(found.created_at),
                ))
                continue
            first = first_of[n.dedup_key]
            results.append(s.AddResult(
                id=first.id, scope=first.scope, namespace=first.namespace,  # type: ignore[arg-type]
                memory_type=first.memory_type,
                deduped_from=None if first is n else first.id,
                created_at=_ts(first.created_at),
            ))
        deduplicated = sum(r.deduped_from is not None for r in results)
        if deduplicated:
            self.telemetry.deduplicated(deduplicated)
        return results

    # ------------------------------------------------------------------ query

    @timed("query")
    async def query(self, identity: Identity, req: s.QueryRequest) -> s.QueryResponse:
        agent = acting_agent(identity, req.agent_id)
        return await self._search(
            identity, agent=agent, query=req.query, namespace=req.namespace,
            user_id=req.user_id, owners=req.target_agent_ids, scope=req.scope,
            memory_types=req.memory_types, top_k=req.top_k, min_score=req.min_score,
            event_type="query", mode=req.mode, neighbour_weight=req.neighbour_weight,
        )

    @timed("query_cross_agent")
    async def query_cross_agent(
        self, identity: Identity, req: s.CrossAgentQueryRequest
    ) -> s.QueryResponse:
        agent = acting_agent(identity, req.requesting_agent_id, "requesting_agent_id")
        return await self._search(
            identity, agent=agent, query=req.query, namespace=req.namespace,
            user_id=req.user_id, owners=req.target_agent_ids, scope=None,
            memory_types=req.memory_types, top_k=req.top_k, min_score=req.min_score,
            event_type="query_cross_agent", mode=req.mode,
            neighbour_weight=req.neighbour_weight,
        )

    async def _search(
        self,
        identity: Identity,
        *,
        agent: str | None,
        query: str,
        namespace: str | None,
        user_id: str | None,
        owners: Sequence[str] | None,
        scope: str | None,
        memory_types: Sequence[str] | None,
        top_k: int,
        min_score: float | None,
        event_type: str,
        min_effectiveness: float | None = None,
        record_event: bool = True,
        mode: s.SearchMode = "hybrid",
        neighbour_weight: float | None = None,
    ) -> s.QueryResponse:
        started = time.perf_counter()
        self._queries_in_flight += 1
        try:
            # A text-only search needs no vector: it skips the embedding altogether. Otherwise
            # the embedding starts in a worker thread now, and a hybrid search runs its text
            # leg (which needs only the words) while it is computed: on two cores the two
            # overlap, which saves about the cost of the shorter one.
            vector = None if mode == "text" else self._embed_soon(query)
            return await self.search_vector(
                identity, vector, agent=agent, query=query, namespace=namespace,
                user_id=user_id, owners=owners, scope=scope, memory_types=memory_types,
                top_k=top_k, min_score=min_score, event_type=event_type,
                min_effectiveness=min_effectiveness, record_event=record_event,
                started=started, mode=mode, neighbour_weight=neighbour_weight,
            )
        finally:
            self._queries_in_flight -= 1

    async def search_vector(
        self,
        identity: Identity,
        vector: VectorSource,
        *,
        agent: str | None,
        query: str,
        namespace: str | None,
        user_id: str | None = None,
        owners: Sequence[str] | None = None,
        scope: str | None = None,
        memory_types: Sequence[str] | None = None,
        top_k: int = 10,
        min_score: float | None = None,
        event_type: str = "query",
        min_effectiveness: float | None = None,
        record_event: bool = True,
        started: float | None = None,
        mode: s.SearchMode = "vector",
        neighbour_weight: float | None = None,
    ) -> s.QueryResponse:
        """The search once the query is a vector: filter, rank, hydrate, re-check, record.

        Everything a query does except embedding its text (benchmarks time exactly this).
        ``vector`` may be a future of it (an embedding under way), and ``None`` only in
        ``text`` mode.
        """
        started = started if started is not None else time.perf_counter()
        now = time.time()
        if owners is not None and len(owners) == 0:
            owners = None
        flt = search_filter(
            identity, agent_id=agent, namespace=namespace, now=now, user_id=user_id,
            owner_agent_ids=owners, scopes=[scope] if scope else None,
            memory_types=memory_types, min_effectiveness=min_effectiveness,
        )
        weight = NEIGHBOUR_WEIGHT if neighbour_weight is None else neighbour_weight
        hits = await self._ranked(vector, query, top_k, flt, mode, weight)
        memories: list[s.Memory] = []
        for m, score in hits:
            if min_score is not None and score < min_score:
                continue
            # Belt and braces: the search filtered already; the row is the final word.
            if not can_see(m, agent) or not is_live(m, now) or m.is_deprecated:
                continue
            memories.append(to_memory(m, round(float(score), 6)))
        event_id = uuid.uuid4().hex
        if record_event:
            self.events.submit(_event(
                identity, event_type, namespace=namespace, agent_id=agent,
                memory_ids=[m.id for m in memories], now=now, event_id=event_id,
                payload={"query": query[:500], "top_k": top_k, "returned": len(memories)},
            ))
        return s.QueryResponse(
            memories=memories,
            retrieval_event_id=event_id if record_event else None,
            query_time_ms=round((time.perf_counter() - started) * 1000, 3),
        )

    async def _ranked(
        self,
        vector: VectorSource,
        query: str,
        k: int,
        flt: SearchFilter,
        mode: s.SearchMode,
        neighbour_weight: float,
    ) -> list[tuple[MemoryRecord, float]]:
        """The best ``k`` rows ``flt`` allows, with their scores, by ``mode``:

        * ``vector``: cosine similarity from the vector index (or pgvector);
        * ``text``: full-text relevance of the query's words (BM25 / ``ts_rank``, 0-1,
          relative to the best match);
        * ``hybrid``: both legs' candidates, each scored on both, fused
          (:mod:`aegis_memory.index.fusion`), then raised by their stream neighbours'
          scores (``neighbour_weight``; 0 turns that off).
        """
        busy = self._queries_in_flight > 1
        if mode == "vector":
            assert vector is not None
            return await self.index.search_records(await _resolved(vector), k, flt, busy=busy)
        terms = query_terms(query)
        if mode == "text":
            text = await self.store.search_text(
                flt, terms, k, inline=not busy, with_vectors=False)
            ranked = [(row, text.scores[row]) for row in text.top]
        else:
            assert vector is not None
            ranked = await self._hybrid(vector, terms, k, flt, busy, neighbour_weight)
        rows = await self.store.get_memories_by_row_ids(flt.project_id, [r for r, _ in ranked])
        return [(rows[r], score) for r, score in ranked if r in rows]

    async def _hybrid(
        self,
        vector: VectorSource,
        terms: list[str],
        k: int,
        flt: SearchFilter,
        busy: bool,
        neighbour_weight: float,
    ) -> list[tuple[int, float]]:
        depth = candidate_depth(k)

        async def vector_leg() -> tuple[np.ndarray, dict[int, float]]:
            query_vector = await _resolved(vector)
            return query_vector, dict(await self.index.search(query_vector, depth, flt, busy=busy))

        # The legs side by side: the text leg needs no vector, so it runs while the query is
        # embedded (on SQLite, inline, before the vector leg starts); on PostgreSQL the two
        # searches also run at once, on two connections.
        text, (query_vector, similarities) = await asyncio.gather(
            self.store.search_text(flt, terms, depth, inline=not busy), vector_leg())
        vectors = dict(text.vectors)
        boost = neighbour_weight > 0
        links: dict[int, tuple[int | None, int | None]] = {}
        if boost:
            # Then the stream neighbours of both legs' rows, and the vectors of the new ones.
            linked = await self.store.search_text(
                flt, [], 0, neighbours_of=[*similarities, *text.top], inline=not busy)
            links = linked.links
            vectors.update(linked.vectors)
        for row, embedding in vectors.items():
            if row not in similarities:
                similarities[row] = float(
                    np.frombuffer(embedding, dtype=np.float32) @ query_vector)
        if not boost:
            return fuse(similarities, text.scores, k)
        scores = fused_scores(similarities, text.scores)
        return with_neighbours(scores, links, k, weight=neighbour_weight)

    # ------------------------------------------------------------------ single memory

    async def _find_visible(
        self, identity: Identity, memory_id: str, agent: str | None
    ) -> MemoryRecord | None:
        """The memory, if it exists, is live and the agent may see it; else None."""
        m = await self.store.get_memory(identity.project_id, memory_id)
        if m is None or not can_see(m, agent) or not is_live(m, time.time()):
            return None
        return m

    async def _visible(
        self, identity: Identity, memory_id: str, agent: str | None
    ) -> MemoryRecord:
        m = await self._find_visible(identity, memory_id, agent)
        if m is None:
            raise NotFound(f"Memory '{memory_id}' not found.", code="memory_not_found")
        return m

    async def _hide_unseen_successors(
        self, identity: Identity, agent: str | None, records: Sequence[MemoryRecord]
    ) -> list[MemoryRecord]:
        """``records`` with ``superseded_by`` cleared where the agent may not see the successor.

        Whoever deprecates a memory names a successor *they* can see, and readers of the old
        memory may not: the id would then tell them that a memory exists which they cannot
        read (SPEC §2: no existence oracle). A project key acting as no agent sees everything.
        """
        named = {m.superseded_by for m in records if m.superseded_by} if agent else set()
        hidden = {successor_id for successor_id in named
                  if await self._find_visible(identity, successor_id, agent) is None}
        return [dataclasses.replace(m, superseded_by=None) if m.superseded_by in hidden else m
                for m in records]

    @timed("get")
    async def get(self, identity: Identity, memory_id: str, agent_id: str | None) -> s.Memory:
        agent = acting_agent(identity, agent_id)
        record = await self._visible(identity, memory_id, agent)
        return to_memory((await self._hide_unseen_successors(identity, agent, [record]))[0])

    async def _modifiable(
        self, identity: Identity, memory_id: str, agent: str | None, verb: str = "update"
    ) -> MemoryRecord:
        """A memory the caller can see and may change (owner or project key), else 404/403."""
        m = await self._visible(identity, memory_id, agent)
        if not can_modify(m, agent):
            raise Forbidden(
                f"Only the owner agent ('{m.agent_id}') or a project key may {verb} this memory.",
                code="not_owner",
            )
        return m

    async def _update_changes(
        self, m: MemoryRecord, req: s.UpdateMemoryRequest, now: float
    ) -> dict[str, Any]:
        """The column changes an update asks for (re-embedding changed content), with
        ``expected``: the values of ``m`` they were derived from, which the store checks
        again inside its write transaction (``SqlStore._settle_against_row``)."""
        changes: dict[str, Any] = {"updated_at": now}
        expected: dict[str, Any] = {}
        fields = req.model_fields_set
        if "content" in fields and req.content is not None and req.content != m.content:
            chash = content_hash(req.content)
            vec = (await self._embed([req.content]))[0]
            changes.update(
                content=req.content, content_hash=chash,
                dedup_key=None if m.is_deprecated else dedup_key(
                    m.namespace, m.agent_id, m.user_id, chash),
                embedding=np.asarray(vec, dtype=np.float32).tobytes(),
                embedding_model=self.embedder.model_name,
            )
            expected["is_deprecated"] = m.is_deprecated  # decides the dedup key
        if "metadata" in fields and req.metadata is not None:
            # Merged by the store inside its write transaction (SqlStore._settle_against_row).
            changes["metadata_patch"] = dict(req.metadata)
        if "memory_type" in fields and req.memory_type is not None:
            changes["memory_type"] = req.memory_type
        if "ttl_seconds" in fields:
            changes["expires_at"] = now + req.ttl_seconds if req.ttl_seconds else None
        if "scope" in fields or "shared_with_agents" in fields:
            shared = (
                list(dict.fromkeys(req.shared_with_agents))
                if req.shared_with_agents is not None
                else m.shared_with_agents
            )
            scope = req.scope if req.scope is not None else (
                "agent-shared" if req.shared_with_agents and m.scope != "global" else m.scope
            )
            if scope == "agent-private" and "shared_with_agents" not in fields:
                shared = []
            changes["scope"] = choose_scope(scope, m.agent_id, shared)
            changes["shared_with_agents"] = shared
            expected.update(scope=m.scope, shared_with_agents=m.shared_with_agents)
        if expected:
            changes["expected"] = expected
        return changes

    @timed("update")
    async def update(
        self, identity: Identity, memory_id: str, req: s.UpdateMemoryRequest
    ) -> s.Memory:
        agent = acting_agent(identity, req.agent_id)
        fields = req.model_fields_set
        for _ in range(DECIDE_ATTEMPTS):
            m = await self._modifiable(identity, memory_id, agent)
            now = time.time()
            changes = await self._update_changes(m, req, now)
            event = _event(identity, "memory_updated", namespace=m.namespace, agent_id=agent,
                           memory_ids=[m.id], now=now,
                           payload={"fields": sorted(fields - {"agent_id"})})
            try:
                updated = await self.store.update_memory(identity.project_id, m.id, changes,
                                                         event)
                break
            except StaleRow:
                continue  # changed meanwhile: read it again and decide again
            except DuplicateError as exc:
                raise Conflict(
                    "Another memory of this owner and user already has this content.",
                    code="duplicate_content",
                ) from exc
        else:
            raise kept_changing(memory_id)
        if updated is None:
            raise NotFound(f"Memory '{memory_id}' not found.", code="memory_not_found")
        await self.index.catch_up()
        return to_memory(updated)

    @timed("delete")
    async def delete(self, identity: Identity, memory_id: str, agent_id: str | None) -> None:
        agent = acting_agent(identity, agent_id)
        m = await self._modifiable(identity, memory_id, agent, "delete")
        event = _event(identity, "memory_deleted", namespace=m.namespace, agent_id=agent,
                       memory_ids=[m.id], now=time.time())
        if not await self.store.delete_memory(identity.project_id, m.id, event):
            raise NotFound(f"Memory '{memory_id}' not found.", code="memory_not_found")
        await self.index.catch_up()

    # ------------------------------------------------------------------ votes

    @timed("vote")
    async def vote(self, identity: Identity, memory_id: str, req: s.VoteRequest) -> s.VoteResult:
        voter = acting_agent(identity, req.voter_agent_id, "voter_agent_id")
        if voter is None:
            raise InvalidInput(
                "voter_agent_id is required: votes are counted once per voting agent.",
                code="voter_required",
            )
        m = await self._visible(identity, memory_id, voter)
        now = time.time()
        task = req.task_id or ""
        event = _event(identity, "vote", namespace=m.namespace, agent_id=voter,
                       memory_ids=[m.id], now=now, task_id=req.task_id,
                       payload={"vote": req.vote})
        helpful, harmful = await self.store.upsert_vote(
            identity.project_id,
            VoteRecord(memory_row_id=m.row_id, voter_agent_id=voter, task_id=task,
                       vote=req.vote, created_at=now, updated_at=now, context=req.context),
            event,
        )
        await self.index.catch_up()
        self.telemetry.voted(req.vote)
        return s.VoteResult(
            memory_id=m.id, vote=req.vote, bullet_helpful=helpful, bullet_harmful=harmful,
            effectiveness_score=effectiveness(helpful, harmful),
        )

    # ------------------------------------------------------------------ handoff

    @timed("handoff")
    async def handoff(self, identity: Identity, req: s.HandoffRequest) -> s.HandoffBaton:
        """Package what the source agent knows and is doing, for the target agent."""
        source = acting_agent(identity, req.source_agent_id, "source_agent_id")
        assert source is not None
        now = time.time()
        if req.task_context:
            found = await self._search(
                identity, agent=source, query=req.task_context, namespace=req.namespace,
                user_id=req.user_id, owners=[source], scope=None, memory_types=None,
                top_k=req.max_memories, min_score=None, event_type="handoff_query",
                record_event=False,
            )
            facts = found.memories
        else:
            recent = await self.store.recent_memories(
                identity.project_id, req.namespace, source, req.max_memories, now
            )
            facts = [to_memory(m) for m in recent if req.user_id in (None, m.user_id)]
        sessions = [
            sess for sess in await self.store.list_sessions(
                identity.project_id, req.namespace, agent_id=source)
            if sess.status in ("active", "paused")
        ]
        active = [sess.in_progress for sess in sessions if sess.in_progress]
        blocked = [b for sess in sessions for b in sess.blocked]
        next_items = [n for sess in sessions for n in sess.next_items]
        newest = sorted(facts, key=lambda f: f.created_at or datetime.min.replace(tzinfo=UTC),
                        reverse=True)
        decisions = [f.content for f in newest if f.memory_type in ("strategy", "standard")][:5]
        ids = [f.id for f in facts]
        if req.share and ids:
            await self.store.set_shared_with(identity.project_id, ids, req.target_agent_id, now)
            await self.index.catch_up()
        parts = [f"{source} hands off to {req.target_agent_id}: {len(facts)} key facts"]
        if active:
            parts.append(f"in progress: {', '.join(active)}")
        if blocked:
            parts.append(f"{len(blocked)} blocked item(s)")
        if next_items:
            parts.append(f"next: {', '.join(next_items[:5])}")
        summaries = [sess.summary for sess in sessions if sess.summary]
        summary = "; ".join(parts) + "." + (f" {summaries[0]}" if summaries else "")
        handoff_id = uuid.uuid4().hex
        await self.store.add_event(_event(
            identity, "handoff", namespace=req.namespace, agent_id=source, memory_ids=ids,
            now=now, event_id=handoff_id,
            payload={"target_agent_id": req.target_agent_id, "shared": req.share,
                     "task_context": (req.task_context or "")[:500]},
        ))
        return s.HandoffBaton(
            handoff_id=handoff_id, source_agent_id=source, target_agent_id=req.target_agent_id,
            namespace=req.namespace, task_context=req.task_context, summary=summary,
            key_facts=facts, active_tasks=active, blocked_on=blocked, next_items=next_items,
            recent_decisions=decisions, memory_ids=ids, shared=req.share, created_at=_ts(now),
        )

    # ------------------------------------------------------------------ export / import

    @timed_stream("export")
    async def export(
        self, identity: Identity, req: s.ExportRequest
    ) -> AsyncIterator[s.ExportedMemory]:
        """Everything the caller may see, with votes (and embeddings when asked)."""
        agent = acting_agent(identity, req.agent_id)
        now = time.time()
        async for batch in self.store.iter_memories(
            identity.project_id, namespace=req.namespace, user_id=req.user_id,
            with_embeddings=req.include_embeddings,
        ):
            visible = [
                m for m in batch
                if can_see(m, agent) and is_live(m, now)
                and (req.include_deprecated or not m.is_deprecated)
            ]
            visible = await self._hide_unseen_successors(identity, agent, visible)
            votes = await self.store.list_votes(
                identity.project_id, [m.row_id for m in visible])
            for m in visible:
                exported = s.ExportedMemory(
                    **to_memory(m).model_dump(exclude={"score"}),
                    votes=[
                        s.ExportedVote(voter_agent_id=v.voter_agent_id, task_id=v.task_id or None,
                                       vote=v.vote, created_at=_ts(v.created_at))  # type: ignore[arg-type]
                        for v in votes.get(m.row_id, [])
                    ],
                )
                if req.include_embeddings and m.embedding is not None:
                    # Stored as little-endian float32 bytes: the base64 form is those bytes.
                    exported.embedding = (
                        base64.b64encode(m.embedding).decode("ascii")
                        if req.embedding_encoding == "base64"
                        else np.frombuffer(m.embedding, dtype="<f4").tolist()
                    )
                    exported.embedding_model = m.embedding_model
                yield exported

    @timed("import")
    async def import_(self, identity: Identity, req: s.ImportRequest) -> s.ImportResponse:
        """Restore exported memories into the caller's project. Idempotent: known ids and
        live duplicates are skipped; embeddings are reused when they come from our model."""
        acting = acting_agent(identity, req.agent_id)
        if identity.bound_agent_id is not None:
            for item in req.memories:
                if item.agent_id != identity.bound_agent_id:
                    raise Forbidden(
                        f"This API key is bound to agent '{identity.bound_agent_id}' and cannot "
                        f"import memories owned by '{item.agent_id}'.",
                        code="agent_mismatch",
                    )
        now = time.time()
        ids = [m.id for m in req.memories]
        if len(set(ids)) != len(ids):
            raise InvalidInput("The import contains the same memory id twice.",
                               code="duplicate_ids")
        known = await self.store.existing_ids(ids)
        todo = [m for m in req.memories if m.id not in known]
        vectors, reembedded = await self._import_vectors(todo)
        news: list[NewMemory] = []
        votes: dict[str, list[VoteRecord]] = {}
        for m, vec in zip(todo, vectors, strict=True):
            try:
                scope = choose_scope(m.scope, m.agent_id, m.shared_with_agents or None)
            except InvalidInput as exc:
                raise InvalidInput(f"Memory '{m.id}': {exc.detail}", code=exc.code) from exc
            chash = content_hash(m.content)
            created = _epoch(m.created_at) or now
            news.append(NewMemory(
                id=m.id, project_id=identity.project_id, namespace=m.namespace,
                agent_id=m.agent_id, user_id=m.user_id, content=m.content, content_hash=chash,
                dedup_key=dedup_key(m.namespace, m.agent_id, m.user_id, chash), scope=scope,
                shared_with_agents=list(m.shared_with_agents), memory_type=m.memory_type,
                metadata=dict(m.metadata), created_at=created,
                updated_at=_epoch(m.updated_at) or created, expires_at=_epoch(m.expires_at),
                error_pattern=m.error_pattern, derived_from_agents=list(m.derived_from_agents),
                coordination_metadata=dict(m.coordination_metadata),
                embedding=vec.tobytes(),
                embedding_model=self.embedder.model_name,
                bullet_helpful=m.bullet_helpful, bullet_harmful=m.bullet_harmful,
                is_deprecated=m.is_deprecated, deprecated_by=m.deprecated_by,
                superseded_by=m.superseded_by, deprecation_reason=m.deprecation_reason,
                deprecated_at=_epoch(m.updated_at) if m.is_deprecated else None,
            ))
            # One vote per (voter, task): a repeated one replaces the earlier, as on the API
            # (two in one file would otherwise break the unique index: a 500).
            latest = {(v.voter_agent_id, v.task_id or ""): v for v in m.votes}
            votes[m.id] = [
                VoteRecord(memory_row_id=0, voter_agent_id=v.voter_agent_id,
                           task_id=v.task_id or "", vote=v.vote,
                           created_at=_epoch(v.created_at) or now,
                           updated_at=_epoch(v.created_at) or now)
                for v in latest.values()
            ]
        # The import event is written in the same transaction, naming what was inserted.
        event = _event(identity, "import", namespace=None, agent_id=acting, memory_ids=[],
                       now=now, payload={"count": 0})
        outcome = await self.store.import_memories(news, votes, now, event) if news else None
        inserted = outcome.ids if outcome is not None else []
        self.telemetry.memories_added(len(inserted))
        if outcome is not None and inserted:
            # The index takes the new rows as built here (their stored values and vectors).
            # Every vector is a unit vector or, when the model gave nothing usable, zero (stored
            # as NULL, never searchable).
            position = {m.id: i for i, m in enumerate(news)}
            rankable = vectors.any(axis=1)
            rows: list[IndexedRow] = []
            keep: list[int] = []
            for memory_id, row_id in zip(outcome.ids, outcome.row_ids, strict=True):
                i = position[memory_id]
                if rankable[i]:
                    rows.append(indexed_row(news[i], row_id))
                    keep.append(i)
            await self.index.add_written(outcome.seq, rows, vectors[keep])
        return s.ImportResponse(
            imported=len(inserted), skipped=len(req.memories) - len(inserted),
            reembedded=reembedded, ids=inserted,
        )

    async def _import_vectors(
        self, todo: Sequence[s.ExportedMemory]
    ) -> tuple[np.ndarray, int]:
        """Unit vectors for imported memories, one row each (float32), and how many of
        them were embedded here.

        An exported vector is reused when it comes from this model and has its size (a list
        of numbers, or base64 of float32 bytes, which costs far less to read); one that is
        zero has no direction and is re-embedded from the text, as is one of another model
        or size. A vector that would be used but holds NaN or infinity is refused (422): it
        is corrupt, and nothing of the request is written. Done on whole arrays: per-memory
        numpy calls were a third of a bulk import's time.
        """
        dim = self.embedder.dim
        model = self.embedder.model_name
        width = 4 * dim
        out = np.zeros((len(todo), dim), dtype=np.float32)
        listed: list[int] = []
        packed: list[int] = []
        raw: list[bytes] = []
        for i, m in enumerate(todo):
            e = m.embedding
            if e is None or m.embedding_model != model:
                continue
            if type(e) is str:
                data = base64.b64decode(e)  # checked by the schema
                if len(data) == width:
                    packed.append(i)
                    raw.append(data)
            elif len(e) == dim:
                listed.append(i)
        ok = np.zeros(len(todo), dtype=np.bool_)
        with np.errstate(over="ignore"):  # beyond float32's range: infinity, refused below
            floats = (np.asarray([todo[i].embedding for i in listed], dtype=np.float32)
                      if listed else None)
        for offered, given in (
            (listed, floats),
            (packed, np.frombuffer(b"".join(raw), dtype="<f4").reshape(len(raw), dim)
             if packed else None),
        ):
            if given is None:
                continue
            finite = np.isfinite(given).all(axis=1)
            if not finite.all():
                bad = todo[offered[int(np.flatnonzero(~finite)[0])]]
                raise InvalidInput(
                    f"Memory '{bad.id}': its embedding contains NaN or infinity. Remove the "
                    "embedding to have the text embedded again, or export it anew.",
                    code="invalid_embedding",
                )
            with np.errstate(over="ignore", invalid="ignore"):
                norms = np.linalg.norm(given, axis=1)
            usable = np.isfinite(norms) & (norms > 0)
            rows = np.asarray(offered)[usable]
            out[rows] = given[usable] / norms[usable, None]
            ok[rows] = True
        need = np.flatnonzero(~ok)
        if len(need):
            embedded = await self._embed([todo[i].content for i in need])
            norms = np.linalg.norm(embedded, axis=1)
            out[need] = embedded / np.where(norms > 0, norms, 1.0)[:, None]
        return out, len(need)


async def _resolved(vector: VectorSource) -> np.ndarray:
    """The vector itself, once computed."""
    assert vector is not None
    return vector if isinstance(vector, np.ndarray) else await vector
