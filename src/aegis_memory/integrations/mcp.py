"""Aegis Memory as an MCP server: memory tools and resources for Claude Desktop, Cursor, ...

Three ways to run it, one server definition:

* ``aegis mcp`` - stdio, for desktop clients that launch the server themselves;
* ``aegis mcp --transport http --port 8765`` - streamable HTTP on loopback;
* mounted at ``/mcp`` inside the Aegis server (`mount_mcp`).

Every tool goes through the SDK's `AsyncAegisClient`, so the MCP server obeys exactly the
rules Python code does (key and URL from ``--api-key``/``--base-url``, ``AEGIS_API_KEY`` /
``AEGIS_BASE_URL`` or the active ``aegis config`` profile; access control and validation by
the server). Mounted in the Aegis server, each MCP request acts with the caller's own bearer
key, sent to the app in-process: the MCP endpoint grants nothing the REST API would not.

Failures reach the model as MCP tool errors carrying the server's sentence (``Memory ... not
found``), never as a crashed session: an LLM can read and correct them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import heapq
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
    from mcp.server.transport_security import TransportSecuritySettings
    from mcp_types import ToolAnnotations
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "The Aegis MCP server needs the MCP SDK (mcp>=2). "
        "Install it with: pip install 'aegis-memory[mcp]'"
    ) from exc

import httpx
from pydantic import BaseModel, ConfigDict, Field

from aegis_memory.client.async_client import AsyncAegisClient
from aegis_memory.client.errors import AegisError, AegisNotFoundError, AegisPermissionError

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import Receive, Scope, Send

__all__ = [
    "DEFAULT_HTTP_PORT",
    "Blocker",
    "check_connection_options",
    "create_server",
    "main",
    "mount_mcp",
    "run",
]

T = TypeVar("T")

#: ``aegis mcp --transport http`` listens here unless told otherwise (8000 is the Aegis API).
DEFAULT_HTTP_PORT = 8765
#: How many memories ``aegis://memories/recent`` shows.
RECENT_LIMIT = 20
#: The host the in-process client addresses when mounted (requests never leave the process).
_IN_PROCESS_URL = "http://aegis.mcp.internal"

INSTRUCTIONS = (
    "Aegis Memory is a long-term memory shared by agents. Search it (search_memories) before "
    "answering questions that may depend on earlier work or user preferences; store durable "
    "facts, decisions and preferences with add_memory (one atomic fact per memory); vote on "
    "memories that helped or misled you; record lessons with reflection and read them back "
    "with playbook; keep long tasks resumable with update_session_progress / "
    "get_session_progress and verified features with update_feature; pass work to another "
    "agent with handoff. Omitted agent_id/namespace use the server's defaults."
)

MemoryScope = Literal["agent-private", "agent-shared", "global"]
MemoryType = Literal["standard", "strategy", "reflection", "progress", "feature"]
SearchMode = Literal["hybrid", "vector", "text"]
SessionStatus = Literal["active", "paused", "completed", "failed"]
FeatureStatus = Literal["not_started", "in_progress", "blocked", "testing", "complete", "failed"]


class Blocker(BaseModel):
    """Something a session cannot proceed with, and why (``update_session_progress``)."""

    model_config = ConfigDict(extra="forbid")

    item: str = Field(description="What is blocked.")
    reason: str | None = Field(default=None, description="Why it is blocked.")


# ----------------------------------------------------------------------------- parameters
# Annotated types, so that every tool's JSON schema (what the model reads) explains itself.

AgentId = Annotated[str | None, Field(
    description="The agent acting (owner of new memories, whose view is searched). "
                "Omit to use the server's default agent, if any.")]
Namespace = Annotated[str | None, Field(
    description="Partition of the project (per app or task family). Omit for the default.")]
UserId = Annotated[str | None, Field(description="The user the memories are about.")]
MemoryId = Annotated[str, Field(description="The memory's id (from add_memory or a search).")]
SessionId = Annotated[str, Field(description="Identifier of the long-running task/session.")]
FeatureId = Annotated[str, Field(description="Identifier of the feature being tracked.")]

_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
_IDEMPOTENT_WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                    idempotent_hint=True, open_world_hint=False)
_DELETE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                          open_world_hint=False)


# ----------------------------------------------------------------------------- backends


class _Backend:
    """Where tools get their `AsyncAegisClient`: one shared client (stdio, standalone HTTP),
    or one per request with the caller's key (mounted). ``lifespan`` runs once per server."""

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        yield

    def client(self) -> contextlib.AbstractAsyncContextManager[AsyncAegisClient]:
        raise NotImplementedError


class _SharedClient(_Backend):
    """One client for the server's lifetime, made from the configured key and URL."""

    def __init__(self, make: Callable[[], AsyncAegisClient]) -> None:
        self._make = make
        self._client: AsyncAegisClient | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        # Made here, not in __init__: the client's connection pool belongs to this event loop.
        self._client = self._make()
        try:
            yield
        finally:
            client, self._client = self._client, None
            await client.aclose()

    @contextlib.asynccontextmanager
    async def _borrow(self) -> AsyncIterator[AsyncAegisClient]:
        if self._client is None:  # called outside the lifespan (e.g. server.call_tool in code)
            async with self._make() as client:
                yield client
            return
        yield self._client

    def client(self) -> contextlib.AbstractAsyncContextManager[AsyncAegisClient]:
        return self._borrow()


#: The HTTP headers of the MCP message being handled (mounted mode only), set by
#: `_remember_headers` so that tools and static resources alike can forward the caller's key.
_request_headers: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "aegis_mcp_request_headers", default=None)
#: The MCP caller's address, forwarded as the in-process request's client so that limits per
#: address (failed sign-ins) count the caller, not the loopback.
_request_client: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "aegis_mcp_request_client", default=None)


async def _remember_headers(ctx: Any, call_next: Callable[[Any], Awaitable[T]]) -> T:
    """MCP server middleware: expose the current HTTP request's headers to the handler."""
    request = getattr(ctx, "request", None)
    peer = getattr(request, "client", None)
    token = _request_headers.set(getattr(request, "headers", None))
    client_token = _request_client.set((peer.host, peer.port) if peer else None)
    try:
        return await call_next(ctx)
    finally:
        _request_client.reset(client_token)
        _request_headers.reset(token)


def _bearer(headers: Mapping[str, str] | None) -> str | None:
    value = (headers or {}).get("authorization", "")
    scheme, _, key = value.partition(" ")
    return key.strip() or None if scheme.lower() == "bearer" else None


class _ForwardedKey(_Backend):
    """Mounted mode: a client per call, authenticated with the caller's bearer key and sent
    straight into the Aegis app (auth, rate limits and access rules apply as over HTTP)."""

    def __init__(self, app: Any, timeout: float) -> None:
        self._app = app
        self._timeout = timeout

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[AsyncAegisClient]:
        key = _bearer(_request_headers.get())
        if key is None:
            raise ToolError("Authentication failed: send your Aegis API key as "
                            "'Authorization: Bearer <key>' to the MCP endpoint.")
        transport = httpx.ASGITransport(app=self._app, raise_app_exceptions=False,
                                        client=_request_client.get() or ("127.0.0.1", 123))
        async with AsyncAegisClient(api_key=key, base_url=_IN_PROCESS_URL,
                                    timeout=self._timeout, transport=transport) as client:
            yield client

    def client(self) -> contextlib.AbstractAsyncContextManager[AsyncAegisClient]:
        return self._open()


# ----------------------------------------------------------------------------- helpers


def _compact(value: Any) -> Any:
    """JSON for the model: pydantic objects dumped, empty and null fields left out (they cost
    tokens and say nothing)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _compact(v) for k, v in value.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def _tool_error(exc: AegisError) -> ToolError:
    """The server's sentence as a tool error (the model sees it; the session survives)."""
    return ToolError(str(exc))


# ----------------------------------------------------------------------------- the server


def create_server(
    client: Callable[[], AsyncAegisClient] | None = None,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    agent_id: str | None = None,
    namespace: str | None = None,
    timeout: float = 30.0,
    _backend: _Backend | None = None,
) -> MCPServer:
    """Build the MCP server (not started: run it with `run`, or `Client(server)` in tests).

    ``client`` makes the `AsyncAegisClient` to use (say ``lambda: AsyncAegisClient.local()``);
    by default one is made from ``api_key``/``base_url``, which fall back like the SDK's.
    ``agent_id`` and ``namespace`` are the defaults of tools called without them.
    """
    from aegis_memory import __version__

    default_namespace = namespace or "default"
    if _backend is None:
        def make() -> AsyncAegisClient:
            return AsyncAegisClient(api_key=api_key, base_url=base_url, timeout=timeout)
        _backend = _SharedClient(client or make)
    backend = _backend

    @contextlib.asynccontextmanager
    async def lifespan(_server: MCPServer) -> AsyncIterator[dict[str, Any]]:
        async with backend.lifespan():
            yield {}

    server: MCPServer = MCPServer(
        "aegis-memory",
        title="Aegis Memory",
        description="Long-term memory for AI agents: store, search, vote, hand off.",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        log_level="WARNING",
        middleware=[_remember_headers],
    )

    def agent(value: str | None) -> str | None:
        return value or agent_id

    def space(value: str | None) -> str:
        return value or default_namespace

    async def call(operation: Callable[[AsyncAegisClient], Awaitable[T]]) -> T:
        """Run one SDK call; Aegis errors become tool errors with the server's message."""
        try:
            async with backend.client() as aegis:
                return await operation(aegis)
        except AegisError as exc:
            raise _tool_error(exc) from exc

    # ------------------------------------------------------------------ memories

    @server.tool(annotations=_WRITE)
    async def add_memory(
        content: Annotated[str, Field(description=(
            "The memory: one self-contained fact, preference, decision or instruction."))],
        agent_id: AgentId = None,
        user_id: UserId = None,
        namespace: Namespace = None,
        scope: Annotated[MemoryScope | None, Field(description=(
            "Who may see it: 'agent-private' (the owning agent), 'agent-shared' (owner + "
            "shared_with_agents), 'global' (every agent). Omitted: agent-shared if "
            "shared_with_agents is given, else agent-private if an agent acts, else global."
        ))] = None,
        shared_with_agents: Annotated[list[str] | None, Field(
            description="Agents that may also see it (for scope 'agent-shared').")] = None,
        memory_type: Annotated[MemoryType, Field(description=(
            "'standard' facts; 'strategy' for approaches that work; 'reflection' for lessons "
            "from mistakes (or use the reflection tool)."))] = "standard",
        metadata: Annotated[dict[str, Any] | None, Field(
            description="Any JSON object to keep with the memory (source, tags, ...).")] = None,
        ttl_seconds: Annotated[int | None, Field(
            ge=1, description="Forget the memory after this many seconds.")] = None,
    ) -> dict[str, Any]:
        """Store a memory in Aegis. Storing the same content again for the same agent, user and
        namespace returns the existing memory's id (deduplicated: true)."""
        result = await call(lambda c: c.add(
            content, agent_id=agent(agent_id), user_id=user_id, namespace=space(namespace),
            scope=scope, shared_with_agents=shared_with_agents, memory_type=memory_type,
            metadata=metadata, ttl_seconds=ttl_seconds))
        return {**_compact(result), "deduplicated": result.deduped}

    @server.tool(annotations=_READ_ONLY)
    async def search_memories(
        query: Annotated[str, Field(description="What to look for, in natural language.")],
        agent_id: AgentId = None,
        user_id: UserId = None,
        namespace: Namespace = None,
        top_k: Annotated[int, Field(ge=1, le=100, description="How many results.")] = 10,
        min_score: Annotated[float | None, Field(
            ge=-1.0, le=1.0,
            description="Only results scoring at least this (0 to 1).")] = None,
        memory_types: Annotated[list[MemoryType] | None, Field(
            description="Only memories of these types.")] = None,
        scope: Annotated[MemoryScope | None, Field(
            description="Only memories with this scope.")] = None,
        target_agent_ids: Annotated[list[str] | None, Field(
            description="Only memories owned by these agents.")] = None,
        mode: Annotated[SearchMode | None, Field(
            description="hybrid (default: meaning and shared words), vector (meaning only) "
                        "or text (shared words only).")] = None,
    ) -> dict[str, Any]:
        """Search the memories the agent may see, best match first. Each result has a score;
        the retrieval_event_id can be passed to update_feature to link what was retrieved to
        the task's outcome."""
        result = await call(lambda c: c.query(
            query, agent_id=agent(agent_id), user_id=user_id, namespace=space(namespace),
            top_k=top_k, min_score=min_score, memory_types=memory_types, scope=scope,
            target_agent_ids=target_agent_ids, mode=mode))
        return {"memories": _compact(list(result)), "count": len(result),
                "retrieval_event_id": result.retrieval_event_id}

    @server.tool(annotations=_READ_ONLY)
    async def get_memory(memory_id: MemoryId, agent_id: AgentId = None) -> dict[str, Any]:
        """Read one memory by id, with its votes and effectiveness. Unknown ids and memories
        the agent may not see are both reported as not found."""
        memory = await call(lambda c: c.get(memory_id, agent_id=agent(agent_id)))
        return _compact(memory)

    @server.tool(annotations=_DELETE)
    async def delete_memory(memory_id: MemoryId, agent_id: AgentId = None) -> dict[str, Any]:
        """Delete a memory for good (only what the agent may see; a wrong id is an error)."""
        deleted = await call(lambda c: c.delete(memory_id, agent_id=agent(agent_id)))
        return {"id": memory_id, "deleted": deleted}

    @server.tool(annotations=_IDEMPOTENT_WRITE)
    async def vote(
        memory_id: MemoryId,
        vote: Annotated[Literal["helpful", "harmful"], Field(
            description="Whether the memory helped or misled the task.")],
        voter_agent_id: Annotated[str | None, Field(
            description="The agent voting; omit for the default agent.")] = None,
        task_id: Annotated[str | None, Field(description=(
            "The task (or feature id) the vote is about; voting again for the same task "
            "replaces the vote."))] = None,
        context: Annotated[str | None, Field(description="Why, in a sentence.")] = None,
    ) -> dict[str, Any]:
        """Record whether a memory was helpful or harmful. Votes rank the playbook: the
        result has the new counters and effectiveness score (-1 to 1)."""
        result = await call(lambda c: c.vote(
            memory_id, vote, voter_agent_id=agent(voter_agent_id), task_id=task_id,
            context=context))
        return _compact(result)

    # ------------------------------------------------------------------ ACE patterns

    @server.tool(annotations=_READ_ONLY)
    async def playbook(
        query: Annotated[str, Field(description="The task at hand, in natural language.")],
        agent_id: AgentId = None,
        namespace: Namespace = None,
        user_id: UserId = None,
        top_k: Annotated[int, Field(ge=1, le=100, description="How many entries.")] = 20,
        min_effectiveness: Annotated[float, Field(ge=-1.0, le=1.0, description=(
            "Only entries whose votes give at least this effectiveness (-1 to 1)."))] = 0.0,
        include_types: Annotated[list[MemoryType] | None, Field(
            description="Memory types to include (default: strategy and reflection).")] = None,
        error_pattern: Annotated[str | None, Field(
            description="Only reflections about this kind of error.")] = None,
    ) -> dict[str, Any]:
        """Strategies and lessons that worked for similar tasks, ranked by relevance boosted by
        votes. Read it before starting a task; vote on entries afterwards."""
        result = await call(lambda c: c.query_playbook(
            query, agent_id=agent(agent_id), namespace=space(namespace), user_id=user_id,
            top_k=top_k, min_effectiveness=min_effectiveness, include_types=include_types,
            error_pattern=error_pattern))
        return {"entries": _compact(result.entries), "count": len(result.entries),
                "retrieval_event_id": result.retrieval_event_id}

    @server.tool(annotations=_WRITE)
    async def reflection(
        content: Annotated[str, Field(description="The lesson learned, stated as advice.")],
        error_pattern: Annotated[str | None, Field(
            description="A short name for the kind of mistake (e.g. 'timezone_bug').")] = None,
        correct_approach: Annotated[str | None, Field(
            description="What to do instead.")] = None,
        applicable_contexts: Annotated[list[str] | None, Field(
            description="Situations where the lesson applies.")] = None,
        source_trajectory_id: Annotated[str | None, Field(
            description="The task or run the lesson comes from.")] = None,
        agent_id: AgentId = None,
        namespace: Namespace = None,
        user_id: UserId = None,
        scope: Annotated[MemoryScope, Field(
            description="Who may see it; lessons are global by default.")] = "global",
    ) -> dict[str, Any]:
        """Record a lesson learned from a mistake or success (a 'reflection' memory), so that
        other agents find it in their playbook."""
        result = await call(lambda c: c.add_reflection(
            content, agent_id=agent(agent_id), error_pattern=error_pattern,
            correct_approach=correct_approach, applicable_contexts=applicable_contexts,
            source_trajectory_id=source_trajectory_id, namespace=space(namespace),
            user_id=user_id, scope=scope))
        return {**_compact(result), "deduplicated": result.deduped}

    # ------------------------------------------------------------------ session progress

    @server.tool(annotations=_READ_ONLY)
    async def get_session_progress(
        session_id: SessionId, namespace: Namespace = None
    ) -> dict[str, Any]:
        """Where a long-running task stands: completed items, the item in progress, next
        items, blockers, summary and status. Read it to resume after a context reset."""
        session = await call(lambda c: c.progress.get(session_id, namespace=space(namespace)))
        return _compact(session)

    @server.tool(annotations=_WRITE)
    async def update_session_progress(
        session_id: SessionId,
        completed: Annotated[list[str] | None, Field(description=(
            "Items just finished; appended to those already completed."))] = None,
        in_progress: Annotated[str | None, Field(
            description="The item being worked on now.")] = None,
        next: Annotated[list[str] | None, Field(description=(
            "The items to do next (replaces the previous list)."))] = None,
        blocked: Annotated[list[Blocker] | None, Field(description=(
            "What cannot proceed and why (replaces the previous list)."))] = None,
        summary: Annotated[str | None, Field(
            description="A short summary of the state of the task.")] = None,
        status: Annotated[SessionStatus | None, Field(
            description="The session's status.")] = None,
        total_items: Annotated[int | None, Field(
            ge=0, description="Total number of items, for progress_percent.")] = None,
        namespace: Namespace = None,
        agent_id: AgentId = None,
    ) -> dict[str, Any]:
        """Record progress on a long-running task (the session is created on first use), so
        that this or another agent can resume it later."""
        blockers = None if blocked is None else [b.model_dump(exclude_none=True)
                                                 for b in blocked]
        session = await call(lambda c: c.progress.update(
            session_id, completed=completed, in_progress=in_progress, next=next,
            blocked=blockers, summary=summary, status=status, total_items=total_items,
            namespace=space(namespace), agent_id=agent(agent_id)))
        return _compact(session)

    # ------------------------------------------------------------------ features

    @server.tool(annotations=_READ_ONLY)
    async def get_feature(feature_id: FeatureId, namespace: Namespace = None) -> dict[str, Any]:
        """One tracked feature: status, whether it passes its tests, failure reason."""
        feature = await call(lambda c: c.features.get(feature_id, namespace=space(namespace)))
        return _compact(feature)

    @server.tool(annotations=_READ_ONLY)
    async def list_features(
        namespace: Namespace = None,
        status: Annotated[FeatureStatus | None, Field(
            description="Only features with this status.")] = None,
        session_id: Annotated[str | None, Field(
            description="Only features of this session.")] = None,
    ) -> dict[str, Any]:
        """Tracked features with counts (total, passing, failing, in progress)."""
        features = await call(lambda c: c.features.list(
            namespace=space(namespace), status=status, session_id=session_id))
        return _compact(features)

    @server.tool(annotations=_WRITE)
    async def update_feature(
        feature_id: FeatureId,
        status: Annotated[FeatureStatus | None, Field(description=(
            "New status. 'complete' requires passes=true: a feature is done only once "
            "verified."))] = None,
        passes: Annotated[bool | None, Field(
            description="Whether the feature passed its verification.")] = None,
        failure_reason: Annotated[str | None, Field(
            description="Why verification failed.")] = None,
        description: Annotated[str | None, Field(
            description="What the feature is (used when it is not tracked yet).")] = None,
        test_steps: Annotated[list[str] | None, Field(
            description="How to verify it (used when it is not tracked yet).")] = None,
        session_id: Annotated[str | None, Field(
            description="The session it belongs to (used when it is not tracked yet).")] = None,
        retrieval_event_id: Annotated[str | None, Field(description=(
            "The retrieval_event_id of the search or playbook that informed this work, to "
            "link those memories to the outcome."))] = None,
        verified_by: Annotated[str | None, Field(
            description="Who verified it.")] = None,
        namespace: Namespace = None,
        agent_id: AgentId = None,
    ) -> dict[str, Any]:
        """Track a feature and record its verification outcome; a feature that is not tracked
        yet is created first."""
        ns = space(namespace)

        async def update(c: AsyncAegisClient) -> Any:
            try:
                return await c.features.update(
                    feature_id, status=status, passes=passes, failure_reason=failure_reason,
                    retrieval_event_id=retrieval_event_id, verified_by=verified_by,
                    agent_id=agent(agent_id), namespace=ns)
            except AegisNotFoundError:
                created = await c.features.create(
                    feature_id, description=description, namespace=ns, session_id=session_id,
                    test_steps=test_steps, agent_id=agent(agent_id))
                if status is None and passes is None and failure_reason is None:
                    return created
                return await c.features.update(
                    feature_id, status=status, passes=passes, failure_reason=failure_reason,
                    retrieval_event_id=retrieval_event_id, verified_by=verified_by,
                    agent_id=agent(agent_id), namespace=ns)

        return _compact(await call(update))

    # ------------------------------------------------------------------ handoff

    @server.tool(annotations=_WRITE)
    async def handoff(
        target_agent_id: Annotated[str, Field(description="The agent taking over.")],
        source_agent_id: Annotated[str | None, Field(
            description="The agent handing over; omit for the default agent.")] = None,
        task_context: Annotated[str | None, Field(description=(
            "The task being handed over; ranks which memories are key facts."))] = None,
        namespace: Namespace = None,
        user_id: UserId = None,
        max_memories: Annotated[int, Field(
            ge=1, le=200, description="At most this many key facts.")] = 20,
        share: Annotated[bool, Field(description=(
            "Also make the listed memories visible to the target agent."))] = False,
    ) -> dict[str, Any]:
        """Hand work over to another agent: a baton with the source's key facts for the task,
        its active tasks, blockers and next items, and a summary."""
        source = agent(source_agent_id)
        if not source:
            raise ToolError("source_agent_id is required (no default agent is configured).")
        baton = await call(lambda c: c.handoff(
            source, target_agent_id, namespace=space(namespace), user_id=user_id,
            task_context=task_context, max_memories=max_memories, share=share))
        return _compact(baton)

    # ------------------------------------------------------------------ resources

    async def read(operation: Callable[[AsyncAegisClient], Awaitable[T]]) -> T:
        """Like `call`, for resources: unknown ids are 'resource not found'."""
        try:
            async with backend.client() as aegis:
                return await operation(aegis)
        except AegisNotFoundError as exc:
            raise ResourceNotFoundError(str(exc)) from exc
        except (AegisError, ToolError) as exc:
            raise ResourceError(str(exc)) from exc

    @server.resource(
        "aegis://memories/recent", name="recent_memories", title="Recent memories",
        mime_type="application/json",
        description=f"The {RECENT_LIMIT} newest memories of the default namespace that the "
                    "default agent may see.")
    async def recent_memories() -> str:
        memories = await read(lambda c: _recent(c, space(None), agent(None), RECENT_LIMIT))
        return _json({"namespace": space(None), "memories": _compact(memories)})

    @server.resource(
        "aegis://memories/{memory_id}", name="memory", title="A memory",
        mime_type="application/json", description="One memory by id.")
    async def memory_resource(memory_id: str) -> str:
        return _json(_compact(await read(lambda c: c.get(memory_id, agent_id=agent(None)))))

    @server.resource(
        "aegis://sessions/{session_id}", name="session", title="Session progress",
        mime_type="application/json",
        description="Progress of a long-running task in the default namespace.")
    async def session_resource(session_id: str) -> str:
        session = await read(lambda c: c.progress.get(session_id, namespace=space(None)))
        return _json(_compact(session))

    return server


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


async def _recent(
    client: AsyncAegisClient, namespace: str, agent_id: str | None, limit: int
) -> list[Any]:
    """The newest memories the agent may see, cheaply.

    With a project key: one page of the event timeline (newest ``memory_created`` events),
    then the memories themselves, skipping those deleted, expired or invisible to the agent.
    An agent key may not read the timeline; it gets the newest of its export instead (a scan,
    but of only what that agent can see).
    """
    try:
        page = await client.timeline(namespace=namespace, event_type="memory_created",
                                     limit=limit * 3)
    except AegisPermissionError:
        newest: list[tuple[str, int, Any]] = []
        count = 0
        async for memory in client.export(namespace=namespace, agent_id=agent_id):
            count += 1
            item = (memory.created_at.isoformat() if memory.created_at else "", count, memory)
            if len(newest) < limit:
                heapq.heappush(newest, item)
            else:
                heapq.heappushpop(newest, item)
        return [item[2] for item in sorted(newest, reverse=True)]
    ids = list(dict.fromkeys(mid for event in page.events for mid in event.memory_ids))

    async def fetch(memory_id: str) -> Any:
        try:
            return await client.get(memory_id, agent_id=agent_id)
        except AegisNotFoundError:
            return None

    found: list[Any] = []
    for start in range(0, len(ids), limit):
        batch = await asyncio.gather(*(fetch(i) for i in ids[start:start + limit]))
        found.extend(m for m in batch if m is not None)
        if len(found) >= limit:
            break
    return found[:limit]


# ----------------------------------------------------------------------------- mounting


class _MountedEndpoint:
    """The ``/mcp`` ASGI endpoint: checks that a key is sent, then hands the request to the
    session manager started by the app's lifespan (see `mount_mcp`)."""

    def __init__(self, server: MCPServer) -> None:
        self.server = server
        self.running = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.responses import JSONResponse

        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                       for k, v in scope.get("headers", [])}
            if _bearer(headers) is None:
                response = JSONResponse(
                    {"detail": "Authentication failed: send your Aegis API key as "
                               "'Authorization: Bearer <key>'.", "code": "missing_api_key"},
                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        if not self.running:
            response = JSONResponse(
                {"detail": "The MCP endpoint is not running (the app's lifespan has not "
                           "started).", "code": "mcp_not_running"}, status_code=503)
            await response(scope, receive, send)
            return
        await self.server.session_manager.handle_request(scope, receive, send)


def mount_mcp(
    app: FastAPI,
    path: str = "/mcp",
    *,
    agent_id: str | None = None,
    namespace: str | None = None,
    timeout: float = 30.0,
) -> MCPServer:
    """Serve the MCP server over streamable HTTP at ``path`` of the Aegis app.

    Each MCP request must carry ``Authorization: Bearer <Aegis key>``; the tools act with that
    key, through the app itself (in-process, no socket), so its auth, rate limits and access
    rules apply unchanged. Stateless mode with JSON responses: any worker or replica can
    answer any request. The session manager is started and stopped by the app's own
    lifespan (wrapped here), so call this before the app starts.
    """
    from starlette.routing import Route

    server = create_server(agent_id=agent_id, namespace=namespace,
                           _backend=_ForwardedKey(app, timeout))
    endpoint = _MountedEndpoint(server)
    # Mounting again at the same path (e.g. with other defaults) replaces the earlier endpoint.
    app.router.routes[:] = [
        route for route in app.router.routes
        if not (isinstance(route, Route) and route.path == path
                and isinstance(route.app, _MountedEndpoint))
    ]
    app.router.routes.append(Route(path, endpoint=endpoint, include_in_schema=False))
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(target: Any) -> AsyncIterator[Any]:
        async with inner(target) as state:
            # A session manager runs once: each start of the app gets a fresh one. DNS-rebinding
            # protection is off because every request needs a bearer key (not a cookie).
            server.streamable_http_app(
                streamable_http_path=path, stateless_http=True, json_response=True,
                transport_security=TransportSecuritySettings(
                    enable_dns_rebinding_protection=False))
            async with server.session_manager.run():
                endpoint.running = True
                try:
                    yield state
                finally:
                    endpoint.running = False

    app.router.lifespan_context = lifespan
    return server


# ----------------------------------------------------------------------------- running


def check_connection_options(api_key: str | None, base_url: str | None) -> None:
    """Resolve the key and URL like the SDK; raises ValueError for a malformed URL."""
    from aegis_memory.client._core import resolve_config

    resolve_config(api_key, base_url)


def run(
    transport: Literal["stdio", "http"] = "stdio",
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    agent_id: str | None = None,
    namespace: str | None = None,
    timeout: float = 30.0,
    host: str = "127.0.0.1",
    port: int = DEFAULT_HTTP_PORT,
    path: str = "/mcp",
) -> None:
    """Run the server until the client disconnects (stdio) or the process is stopped (http).

    The connection options are checked first (a malformed URL fails here, not on the first
    tool call).
    """
    check_connection_options(api_key, base_url)
    server = create_server(api_key=api_key, base_url=base_url, agent_id=agent_id,
                           namespace=namespace, timeout=timeout)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port, streamable_http_path=path)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m aegis_memory.integrations.mcp",
        description="Aegis Memory MCP server (same as `aegis mcp`).")
    parser.add_argument("--api-key", help="API key (else AEGIS_API_KEY, else the config).")
    parser.add_argument("--base-url", help="Server URL (else AEGIS_BASE_URL, else the config).")
    parser.add_argument("--agent-id", help="Default agent for tools called without one.")
    parser.add_argument("--namespace", help="Default namespace (else 'default').")
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP interface (loopback).")
    parser.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT, help="HTTP port.")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="Seconds to wait for Aegis.")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m aegis_memory.integrations.mcp``: `run` with command-line options."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        check_connection_options(args.api_key, args.base_url)
    except ValueError as exc:
        parser.error(str(exc))
    run(args.transport, api_key=args.api_key, base_url=args.base_url, agent_id=args.agent_id,
        namespace=args.namespace, timeout=args.timeout, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
