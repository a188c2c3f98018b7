"""Every public SDK method, written once.

Each method only *describes* its request(s) (see `_core`); `AegisClient` and `AsyncAegisClient`
inherit these descriptions and differ only in how they send them. Argument names and defaults
follow the wire models in `aegis_memory.schemas`, which are also what validates them.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import IO, Any, Unpack

import httpx

from aegis_memory.client._core import (
    DEFAULT_TIMEOUT,
    Call,
    Drain,
    Namespace,
    Plan,
    ResolvedConfig,
    as_list,
    operation,
    path_id,
    query_params,
    request_body,
    resolve_config,
    stream_operation,
    validate_model,
)
from aegis_memory.client._progress import ProgressApis
from aegis_memory.client.errors import AegisValidationError
from aegis_memory.client.types import ExportFilters, QueryResult
from aegis_memory.schemas import (
    MAX_BATCH,
    MAX_IMPORT_BATCH,
    AddBatchResponse,
    AddMemoryRequest,
    AddResult,
    ApiKeyInfo,
    CreatedApiKey,
    CreateKeyRequest,
    CrossAgentQueryRequest,
    DashboardActivity,
    DashboardStats,
    DeleteResponse,
    DeltaOperation,
    DeltaRequest,
    DeltaResult,
    EmbeddingEncoding,
    EvalCorrelation,
    EvalMetrics,
    EvalWindow,
    ExportedMemory,
    ExportRequest,
    HandoffBaton,
    HandoffRequest,
    HealthResponse,
    ImportResponse,
    KeyList,
    Memory,
    MemoryFields,
    MemoryScope,
    MemoryType,
    PlaybookEntry,
    PlaybookRequest,
    PlaybookResponse,
    QueryRequest,
    QueryResponse,
    ReflectionRequest,
    SearchMode,
    Timeline,
    UpdateMemoryRequest,
    VoteKind,
    VoteRequest,
    VoteResult,
)

__all__ = ["ClientOps", "KeysOps"]


# ----------------------------------------------------------------------------- parsers


def _query_result(data: Any) -> QueryResult:
    response = QueryResponse.model_validate(data)
    return QueryResult(
        response.memories,
        retrieval_event_id=response.retrieval_event_id,
        query_time_ms=response.query_time_ms,
    )


def _deleted(data: Any) -> bool:
    # A 2xx with no body still means the memory is gone.
    return True if data is None else DeleteResponse.model_validate(data).deleted


def _succeeded(_data: Any) -> bool:
    return True


def _key_list(data: Any) -> builtins.list[ApiKeyInfo]:
    return KeyList.model_validate(data).keys


# ----------------------------------------------------------------------------- helpers


def _chunks(items: Iterable[Any], size: int) -> Iterator[builtins.list[Any]]:
    iterator = iter(items)
    while chunk := builtins.list(islice(iterator, size)):
        yield chunk


def _export_call(
    namespace: str | None = None,
    agent_id: str | None = None,
    user_id: str | None = None,
    include_embeddings: bool = False,
    include_deprecated: bool = True,
    embedding_encoding: EmbeddingEncoding | None = None,
) -> Call[ExportedMemory]:
    """The export request, shared by ``export`` (iterate) and ``export_to`` (write a file)."""
    body = request_body(
        ExportRequest,
        namespace=namespace,
        agent_id=agent_id,
        user_id=user_id,
        format="jsonl",
        include_embeddings=include_embeddings,
        include_deprecated=include_deprecated,
        embedding_encoding=embedding_encoding,
    )
    return Call("POST", "/memories/export", ExportedMemory.model_validate, json=body)


class _JsonlFile:
    """Writes an export next to its destination and moves it into place only when complete.

    An interrupted export then never leaves a truncated file that looks like a good backup.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self._tmp: Path | None = None
        self._file: IO[str] | None = None

    def __enter__(self) -> _JsonlFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".part", dir=self.path.parent
        )
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        return self

    def write(self, memory: ExportedMemory) -> None:
        assert self._file is not None
        self._file.write(memory.model_dump_json())
        self._file.write("\n")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._file is not None and self._tmp is not None
        self._file.close()
        if exc_type is None:
            os.replace(self._tmp, self.path)
        else:
            with contextlib.suppress(OSError):
                self._tmp.unlink()


def read_export_file(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Memories from an export file: JSON lines (what ``export_to`` writes) or one JSON array.

    Lines are read lazily so that a large backup is never held in memory at once.
    """
    path = Path(path).expanduser()
    with path.open(encoding="utf-8") as handle:
        first = handle.read(1)
        while first and first.isspace():
            first = handle.read(1)
        if first == "[":
            data = json.loads(first + handle.read())
            if not isinstance(data, builtins.list):
                raise AegisValidationError(f"{path}: expected a JSON array of memories")
            yield from data
            return
        handle.seek(0)
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except ValueError as exc:
                raise AegisValidationError(
                    f"{path}, line {number}: not valid JSON ({exc})"
                ) from None


def _import_plan(
    memories: Iterable[ExportedMemory | Mapping[str, Any]],
    agent_id: str | None,
    batch_size: int,
) -> Plan[ImportResponse]:
    if not 1 <= batch_size <= MAX_IMPORT_BATCH:
        raise AegisValidationError(
            f"Invalid arguments: batch_size must be between 1 and {MAX_IMPORT_BATCH}",
            code="invalid_arguments",
        )
    imported = skipped = reembedded = 0
    ids: builtins.list[str] = []
    position = 0
    for chunk in _chunks(memories, batch_size):
        rows = []
        for memory in chunk:
            item = validate_model(ExportedMemory, memory, prefix=f"memories[{position}].")
            rows.append(item.model_dump(mode="json", exclude_unset=True))
            position += 1
        body = _import_body(rows, agent_id)
        response: ImportResponse = yield Call(
            "POST", "/memories/import", ImportResponse.model_validate, json=body
        )
        imported += response.imported
        skipped += response.skipped
        reembedded += response.reembedded
        ids.extend(response.ids)
    return ImportResponse(imported=imported, skipped=skipped, reembedded=reembedded, ids=ids)


def _import_body(rows: builtins.list[dict[str, Any]], agent_id: str | None) -> dict[str, Any]:
    """The import body. Rows are already validated one by one (for per-row error messages)."""
    body: dict[str, Any] = {"memories": rows}
    if agent_id is not None:
        body["agent_id"] = agent_id
    return body


# ----------------------------------------------------------------------------- the API


class ClientOps(ProgressApis):
    """The methods of `AegisClient` and `AsyncAegisClient`, and the configuration they share."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
    ) -> None:
        self._config: ResolvedConfig = resolve_config(api_key, base_url)
        self._timeout = timeout

    @property
    def base_url(self) -> str:
        """The server this client talks to (after env/config-file resolution)."""
        return self._config.base_url

    @property
    def config(self) -> ResolvedConfig:
        """Where the key and URL came from; the CLI shows this in ``aegis status``."""
        return self._config

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    # ------------------------------------------------------------------ memories

    @operation
    def add(
        self,
        content: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        namespace: str = "default",
        metadata: Mapping[str, Any] | None = None,
        ttl_seconds: int | None = None,
        scope: MemoryScope | None = None,
        shared_with_agents: Sequence[str] | str | None = None,
        memory_type: MemoryType = "standard",
        derived_from_agents: Sequence[str] | str | None = None,
        coordination_metadata: Mapping[str, Any] | None = None,
        error_pattern: str | None = None,
    ) -> Call[AddResult]:
        """Store one memory and return its id and the scope the server chose.

        Without ``scope`` the server picks one (SPEC §2): ``shared_with_agents`` given means
        agent-shared, ``agent_id`` given means agent-private, otherwise global. Adding the same
        content again for the same agent/user/namespace returns the existing id
        (``result.deduped``).
        """
        body = request_body(
            AddMemoryRequest,
            content=content,
            user_id=user_id,
            agent_id=agent_id,
            namespace=namespace,
            metadata=metadata,
            ttl_seconds=ttl_seconds,
            scope=scope,
            shared_with_agents=as_list(shared_with_agents),
            memory_type=memory_type,
            derived_from_agents=as_list(derived_from_agents),
            coordination_metadata=coordination_metadata,
            error_pattern=error_pattern,
        )
        return Call("POST", "/memories/add", AddResult.model_validate, json=body)

    @operation
    def add_batch(
        self, items: Iterable[Mapping[str, Any] | MemoryFields]
    ) -> Plan[builtins.list[AddResult]]:
        """Store many memories; results come back in the order of ``items``.

        Each item takes the keyword arguments of `add` (as a dict or a ``MemoryFields``). All
        items are validated before anything is sent. The server stores up to 100 items per
        request in one transaction; longer lists are sent as several requests, so if a later
        one fails the earlier ones are already stored (adding them again is deduplicated).
        """
        rows = [
            validate_model(MemoryFields, item, prefix=f"items[{index}].").model_dump(
                mode="json", exclude_unset=True
            )
            for index, item in enumerate(items)
        ]
        results: builtins.list[AddResult] = []
        for chunk in _chunks(rows, MAX_BATCH):
            response: AddBatchResponse = yield Call(
                "POST",
                "/memories/add_batch",
                AddBatchResponse.model_validate,
                json={"items": chunk},
            )
            results.extend(response.results)
        return results

    @operation
    def query(
        self,
        query: str,
        *,
        agent_id: str | None = None,
        user_id: str | None = None,
        namespace: str = "default",
        top_k: int = 10,
        min_score: float | None = None,
        memory_types: Sequence[MemoryType] | MemoryType | None = None,
        scope: MemoryScope | None = None,
        target_agent_ids: Sequence[str] | str | None = None,
        mode: SearchMode | None = None,
        neighbour_weight: float | None = None,
    ) -> Call[QueryResult]:
        """Search over what ``agent_id`` may see, best match first.

        Returns a list of `Memory` (each with ``score``) that also carries
        ``retrieval_event_id``: pass it to a later feature update so the server can link these
        memories to the task's outcome. ``target_agent_ids`` limits results to memories owned
        by those agents. ``mode`` is ``"hybrid"`` (the server's default: meaning and shared
        words), ``"vector"`` (meaning only; ``score`` is the cosine similarity) or ``"text"``
        (shared words only). ``neighbour_weight`` (hybrid only, 0-1) is how much a memory is
        raised by the memory its agent wrote just before or after it; 0 turns that off.
        """
        body = request_body(
            QueryRequest,
            query=query,
            agent_id=agent_id,
            user_id=user_id,
            namespace=namespace,
            top_k=top_k,
            min_score=min_score,
            memory_types=as_list(memory_types),
            scope=scope,
            target_agent_ids=as_list(target_agent_ids),
            mode=mode,
            neighbour_weight=neighbour_weight,
        )
        return Call("POST", "/memories/query", _query_result, json=body)

    @operation
    def query_cross_agent(
        self,
        query: str,
        *,
        requesting_agent_id: str | None = None,
        target_agent_ids: Sequence[str] | str | None = None,
        namespace: str = "default",
        user_id: str | None = None,
        top_k: int = 10,
        min_score: float | None = None,
        memory_types: Sequence[MemoryType] | MemoryType | None = None,
        mode: SearchMode | None = None,
        neighbour_weight: float | None = None,
    ) -> Call[QueryResult]:
        """Search other agents' memories as ``requesting_agent_id`` sees them.

        Only memories the requester may see are returned (global ones, and those shared with
        it); ``target_agent_ids`` narrows the search to memories those agents own. ``mode``
        and ``neighbour_weight`` as for `query`.
        """
        body = request_body(
            CrossAgentQueryRequest,
            query=query,
            requesting_agent_id=requesting_agent_id,
            target_agent_ids=as_list(target_agent_ids),
            namespace=namespace,
            user_id=user_id,
            top_k=top_k,
            min_score=min_score,
            memory_types=as_list(memory_types),
            mode=mode,
            neighbour_weight=neighbour_weight,
        )
        return Call("POST", "/memories/query_cross_agent", _query_result, json=body)

    @operation
    def get(self, memory_id: str, *, agent_id: str | None = None) -> Call[Memory]:
        """One memory by id, as ``agent_id`` sees it.

        Raises `AegisNotFoundError` both for unknown ids and for memories the agent may not see:
        the server does not reveal which.
        """
        return Call(
            "GET",
            f"/memories/{path_id(memory_id, 'memory_id')}",
            Memory.model_validate,
            params=query_params(agent_id=agent_id),
        )

    @operation
    def update(
        self,
        memory_id: str,
        *,
        agent_id: str | None = None,
        content: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        scope: MemoryScope | None = None,
        shared_with_agents: Sequence[str] | str | None = None,
        memory_type: MemoryType | None = None,
        ttl_seconds: int | None = None,
    ) -> Call[Memory]:
        """Change some fields of a memory and return it as it is now.

        Only the arguments given (not None) are sent, so everything else stays as it was.
        ``metadata`` is merged into the existing metadata; new ``content`` is re-embedded.
        Changing scope or sharing needs the owner (``agent_id``) or a project key.
        """
        body = request_body(
            UpdateMemoryRequest,
            agent_id=agent_id,
            content=content,
            metadata=metadata,
            scope=scope,
            shared_with_agents=as_list(shared_with_agents),
            memory_type=memory_type,
            ttl_seconds=ttl_seconds,
        )
        return Call(
            "PATCH",
            f"/memories/{path_id(memory_id, 'memory_id')}",
            Memory.model_validate,
            json=body,
        )

    @operation
    def delete(self, memory_id: str, *, agent_id: str | None = None) -> Call[bool]:
        """Delete a memory; True once it is gone.

        Unknown or invisible ids raise `AegisNotFoundError` (so a typo is never a silent no-op).
        """
        return Call(
            "DELETE",
            f"/memories/{path_id(memory_id, 'memory_id')}",
            _deleted,
            params=query_params(agent_id=agent_id),
        )

    @operation
    def handoff(
        self,
        source_agent_id: str,
        target_agent_id: str,
        *,
        namespace: str = "default",
        user_id: str | None = None,
        task_context: str | None = None,
        max_memories: int = 20,
        share: bool = False,
    ) -> Call[HandoffBaton]:
        """A structured baton for ``target_agent_id`` to pick up ``source_agent_id``'s work.

        ``key_facts`` are the source's memories ranked by ``task_context``; with ``share=True``
        those memories also become visible to the target.
        """
        body = request_body(
            HandoffRequest,
            source_agent_id=source_agent_id,
            target_agent_id=target_agent_id,
            namespace=namespace,
            user_id=user_id,
            task_context=task_context,
            max_memories=max_memories,
            share=share,
        )
        return Call("POST", "/memories/handoff", HandoffBaton.model_validate, json=body)

    @operation
    def vote(
        self,
        memory_id: str,
        vote: VoteKind,
        *,
        voter_agent_id: str | None = None,
        task_id: str | None = None,
        context: str | None = None,
    ) -> Call[VoteResult]:
        """Record whether a memory helped (``"helpful"``) or hurt (``"harmful"``) a task.

        One vote per memory, voter and ``task_id``: voting again replaces it. The result has
        the new counters and effectiveness score, which playbooks rank by.
        """
        body = request_body(
            VoteRequest, vote=vote, voter_agent_id=voter_agent_id, task_id=task_id, context=context
        )
        return Call(
            "POST",
            f"/memories/ace/vote/{path_id(memory_id, 'memory_id')}",
            VoteResult.model_validate,
            json=body,
        )

    # ------------------------------------------------------------------ ACE patterns

    @operation
    def query_playbook(
        self,
        query: str,
        *,
        agent_id: str | None = None,
        namespace: str = "default",
        user_id: str | None = None,
        top_k: int = 20,
        min_effectiveness: float = 0.0,
        include_types: Sequence[MemoryType] | None = None,
        error_pattern: str | None = None,
    ) -> Call[PlaybookResponse]:
        """The playbook with its ``retrieval_event_id`` (see `playbook` for the entries only)."""
        body = request_body(
            PlaybookRequest, query=query, agent_id=agent_id, namespace=namespace,
            user_id=user_id, top_k=top_k, min_effectiveness=min_effectiveness,
            include_types=as_list(include_types), error_pattern=error_pattern,
        )
        return Call("POST", "/memories/ace/playbook", PlaybookResponse.model_validate, json=body)

    @operation
    def playbook(
        self,
        query: str,
        *,
        agent_id: str | None = None,
        namespace: str = "default",
        user_id: str | None = None,
        top_k: int = 20,
        min_effectiveness: float = 0.0,
        include_types: Sequence[MemoryType] | None = None,
        error_pattern: str | None = None,
    ) -> Plan[builtins.list[PlaybookEntry]]:
        """Strategies and reflections that worked, for a task: visible to ``agent_id``, with
        effectiveness at least ``min_effectiveness``, ranked by relevance boosted by votes."""
        response: PlaybookResponse = yield type(self).query_playbook.build(
            self, query, agent_id=agent_id, namespace=namespace, user_id=user_id, top_k=top_k,
            min_effectiveness=min_effectiveness, include_types=include_types,
            error_pattern=error_pattern,
        )
        return response.entries

    @operation
    def add_reflection(
        self,
        content: str,
        *,
        agent_id: str | None = None,
        error_pattern: str | None = None,
        correct_approach: str | None = None,
        applicable_contexts: Sequence[str] | None = None,
        source_trajectory_id: str | None = None,
        namespace: str = "default",
        user_id: str | None = None,
        scope: MemoryScope = "global",
        shared_with_agents: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Call[AddResult]:
        """Store a lesson learned (a ``reflection`` memory, global by default)."""
        body = request_body(
            ReflectionRequest, content=content, agent_id=agent_id, error_pattern=error_pattern,
            correct_approach=correct_approach, applicable_contexts=as_list(applicable_contexts),
            source_trajectory_id=source_trajectory_id, namespace=namespace, user_id=user_id,
            scope=scope, shared_with_agents=as_list(shared_with_agents),
            metadata=dict(metadata) if metadata is not None else None,
        )
        return Call("POST", "/memories/ace/reflection", AddResult.model_validate, json=body)

    #: The short name used in the README; same arguments as `add_reflection`.
    reflection = add_reflection

    @operation
    def apply_delta(
        self,
        operations: Iterable[Mapping[str, Any] | DeltaOperation],
        *,
        agent_id: str | None = None,
        namespace: str = "default",
        atomic: bool = True,
    ) -> Call[DeltaResult]:
        """Apply ``add`` / ``update`` / ``deprecate`` operations; all or nothing by default,
        per item with ``atomic=False``."""
        ops = [
            validate_model(DeltaOperation, op, prefix=f"operations[{i}].").model_dump(
                mode="json", exclude_unset=True)
            for i, op in enumerate(operations)
        ]
        body = request_body(DeltaRequest, operations=ops, agent_id=agent_id,
                            namespace=namespace, atomic=atomic)
        return Call("POST", "/memories/ace/delta", DeltaResult.model_validate, json=body)

    #: Alias of `apply_delta`.
    delta = apply_delta

    @operation
    def deprecate(
        self,
        memory_id: str,
        *,
        agent_id: str | None = None,
        superseded_by: str | None = None,
        reason: str | None = None,
    ) -> Plan[Memory]:
        """Soft-delete a memory: it leaves search, keeps its history and points to its
        replacement. Returns the deprecated memory."""
        op: dict[str, Any] = {"type": "deprecate", "memory_id": memory_id}
        if superseded_by is not None:
            op["superseded_by"] = superseded_by
        if reason is not None:
            op["reason"] = reason
        yield type(self).apply_delta.build(self, [op], agent_id=agent_id)
        memory: Memory = yield type(self).get.build(self, memory_id, agent_id=agent_id)
        return memory

    @operation
    def eval_metrics(
        self, window: EvalWindow = "global", *, namespace: str | None = None
    ) -> Call[EvalMetrics]:
        """Success rate, retrieval precision, pollution rate and MTTR over a window."""
        return Call("GET", "/memories/ace/eval/metrics", EvalMetrics.model_validate,
                    params=query_params(window=window, namespace=namespace))

    @operation
    def eval_correlation(
        self, window: EvalWindow = "global", *, namespace: str | None = None
    ) -> Call[EvalCorrelation]:
        """How helpful and harmful votes go with the outcome of the features they name."""
        return Call("GET", "/memories/ace/eval/correlation", EvalCorrelation.model_validate,
                    params=query_params(window=window, namespace=namespace))

    @operation
    def dashboard_stats(self, *, namespace: str | None = None) -> Call[DashboardStats]:
        """Counts by type, scope and agent, votes, sessions and features (project key)."""
        return Call("GET", "/memories/ace/dashboard/stats", DashboardStats.model_validate,
                    params=query_params(namespace=namespace))

    @operation
    def dashboard_activity(
        self, *, namespace: str | None = None, days: int = 7
    ) -> Call[DashboardActivity]:
        """Events per UTC day over the last ``days`` days (project key)."""
        return Call("GET", "/memories/ace/dashboard/activity", DashboardActivity.model_validate,
                    params=query_params(namespace=namespace, days=str(days)))

    @operation
    def timeline(
        self,
        *,
        namespace: str | None = None,
        event_type: str | None = None,
        agent_id: str | None = None,
        memory_id: str | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> Call[Timeline]:
        """The event timeline, newest first; pass ``next_cursor`` as ``before`` for more.
        With ``memory_id``: that memory's history (any caller that can see it)."""
        return Call("GET", "/memories/ace/dashboard/timeline", Timeline.model_validate,
                    params=query_params(
                        namespace=namespace, event_type=event_type, agent_id=agent_id,
                        memory_id=memory_id, before=None if before is None else str(before),
                        limit=str(limit)))

    # ------------------------------------------------------------------ export / import

    @stream_operation
    def export(
        self,
        *,
        namespace: str | None = None,
        agent_id: str | None = None,
        user_id: str | None = None,
        include_embeddings: bool = False,
        include_deprecated: bool = True,
        embedding_encoding: EmbeddingEncoding | None = None,
    ) -> Call[ExportedMemory]:
        """Every memory the key (or ``agent_id``) may see, streamed one at a time.

        Streamed so that a large project never has to fit in memory; iterate it (``for`` /
        ``async for``). ``namespace=None`` exports every namespace. Each item has everything
        needed to restore it with `import_` (votes, ACL, timestamps, and optionally the
        embedding). ``embedding_encoding="base64"`` sends each embedding as base64 of its
        little-endian float32 bytes (a quarter of the size, and cheaper to import) instead of
        a list of numbers (the server's default); ``ExportedMemory.embedding_vector()``
        reads either form.
        """
        return _export_call(
            namespace=namespace,
            agent_id=agent_id,
            user_id=user_id,
            include_embeddings=include_embeddings,
            include_deprecated=include_deprecated,
            embedding_encoding=embedding_encoding,
        )

    @operation
    def export_to(
        self, path: str | os.PathLike[str], **filters: Unpack[ExportFilters]
    ) -> Plan[int]:
        """Export to a JSON-lines file (the arguments of `export` select what); returns the count.

        The file appears only once the export completed, so a failed export never leaves a
        partial backup behind. With ``include_embeddings=True`` the vectors are written in
        the compact ``base64`` encoding unless ``embedding_encoding="float"`` is given (for
        Aegis versions before the base64 form, or tools that want numbers).
        """
        encoding = filters.get("embedding_encoding")
        if filters.get("include_embeddings") and encoding is None:
            filters = {**filters, "embedding_encoding": "base64"}
        elif encoding == "float":
            # The server's default: not sent, so that servers before the base64 form accept it.
            filters = {**filters, "embedding_encoding": None}
        call = _export_call(**filters)
        with _JsonlFile(path) as out:
            count: int = yield Drain(call, out.write)
        return count

    @operation
    def import_(
        self,
        memories: Iterable[ExportedMemory | Mapping[str, Any]],
        *,
        agent_id: str | None = None,
        batch_size: int = 500,
    ) -> Plan[ImportResponse]:
        """Restore exported memories (from `export`, or dicts of the same shape).

        Sent in batches of ``batch_size`` (at most 1000), read lazily from ``memories``; the
        counts of all batches are summed. Import is idempotent on the server, so after a failure
        simply run it again.
        """
        return (yield from _import_plan(memories, agent_id, batch_size))

    @operation
    def import_from(
        self,
        path: str | os.PathLike[str],
        *,
        agent_id: str | None = None,
        batch_size: int = 500,
    ) -> Plan[ImportResponse]:
        """`import_` the memories of an export file (JSON lines, or a JSON array)."""
        return (yield from _import_plan(read_export_file(path), agent_id, batch_size))

    # ------------------------------------------------------------------ ops

    @operation
    def health(self) -> Call[HealthResponse]:
        """The server's liveness and version (needs no valid key)."""
        return Call("GET", "/health", HealthResponse.model_validate)


class KeysOps(Namespace):
    """``client.keys``: API keys of the project (needs a project key, not an agent key)."""

    @operation
    def create(
        self,
        agent_id: str | None = None,
        name: str | None = None,
        expires_at: datetime | None = None,
    ) -> Call[CreatedApiKey]:
        """A new key; ``agent_id`` binds it to that agent.

        The secret (``.key``) is in this answer only: the server stores just its hash.
        """
        body = request_body(CreateKeyRequest, agent_id=agent_id, name=name, expires_at=expires_at)
        return Call("POST", "/keys", CreatedApiKey.model_validate, json=body)

    @operation
    def list(self) -> Call[builtins.list[ApiKeyInfo]]:
        """The project's keys, without their secrets."""
        return Call("GET", "/keys", _key_list)

    @operation
    def revoke(self, key_id: str) -> Call[bool]:
        """Revoke a key at once; True when done. Unknown ids raise `AegisNotFoundError`."""
        return Call("DELETE", f"/keys/{path_id(key_id, 'key_id')}", _succeeded)
