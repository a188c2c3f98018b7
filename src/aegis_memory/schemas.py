"""The wire contract: request and response models shared by the server and the SDK.

Requests forbid unknown fields so that a typo (``agentid=``) is a clear 422 instead of a silently
ignored argument. Responses ignore unknown fields so that an older SDK keeps working against a
newer server.
"""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

MemoryScope = Literal["agent-private", "agent-shared", "global"]
MemoryType = Literal["standard", "strategy", "reflection", "progress", "feature"]
VoteKind = Literal["helpful", "harmful"]
EmbeddingEncoding = Literal["float", "base64"]

MAX_CONTENT_CHARS = 50_000
MAX_QUERY_CHARS = 10_000
MAX_TOP_K = 1_000
MAX_BATCH = 100
MAX_IMPORT_BATCH = 1_000
MAX_IDENT_CHARS = 256
MAX_SHARED_WITH = 1_000
MAX_INT32 = 2**31 - 1


def _ident(value: str) -> str:
    """Names of agents, users, namespaces: non-empty, bounded, no NUL."""
    if not value.strip():
        raise ValueError("must not be empty")
    if len(value) > MAX_IDENT_CHARS:
        raise ValueError(f"is longer than {MAX_IDENT_CHARS} characters")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _text(value: str) -> str:
    """Memory content and queries: some text, not only whitespace, no NUL."""
    if not value.strip():
        raise ValueError("must contain some text, not only whitespace")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


#: How deep a metadata object may nest. Why a limit: pydantic stops serialising at 255 levels,
#: so a deeper object was stored and then made every read that returned it a 500 (one memory
#: could break a whole namespace's queries). Real metadata nests two or three levels.
MAX_JSON_DEPTH = 32


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    """Metadata objects: nested at most MAX_JSON_DEPTH levels (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels of objects and lists")
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return value


def addressable_id(value: str) -> str | None:
    """Why ``value`` cannot be an id that later calls address in a URL path, or None.

    ``/`` never reaches a ``{memory_id}``-style route, and ``.``/``..`` are resolved as path
    segments by HTTP clients (``GET /memories/..`` becomes ``GET /``): such an id would be
    stored and then unreachable.
    """
    if not value.strip():
        return "must not be empty"
    if len(value) > MAX_IDENT_CHARS:
        return f"is longer than {MAX_IDENT_CHARS} characters"
    if "/" in value or value in (".", ".."):
        return "cannot be addressed in a URL ('/', '.' and '..' are path syntax)"
    return None


def _path_ident(value: str) -> str:
    problem = addressable_id(value)
    if problem is not None:
        raise ValueError(problem)
    return _ident(value)


#: The validated string types every request model uses (the error's location names the field).
Ident = Annotated[str, AfterValidator(_ident)]
#: A name that later calls put in a URL path (session and feature ids).
PathIdent = Annotated[str, AfterValidator(_path_ident)]
Text = Annotated[str, AfterValidator(_text)]
#: A free-form JSON object of a request (metadata), bounded in depth.
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ----------------------------------------------------------------------------- memories


class MemoryFields(_Request):
    """Fields a caller may set when creating a memory (add, batch items, delta adds)."""

    content: Text = Field(min_length=1, max_length=MAX_CONTENT_CHARS)
    user_id: Ident | None = None
    agent_id: Ident | None = None
    namespace: Ident = "default"
    metadata: JsonObject | None = None
    ttl_seconds: int | None = Field(default=None, gt=0, le=10 * 365 * 86400)
    scope: MemoryScope | None = None
    shared_with_agents: list[Ident] | None = Field(default=None, max_length=MAX_SHARED_WITH)
    memory_type: MemoryType = "standard"
    derived_from_agents: list[Ident] | None = None
    coordination_metadata: JsonObject | None = None
    error_pattern: str | None = Field(default=None, max_length=MAX_IDENT_CHARS)

    @field_validator("shared_with_agents", "derived_from_agents")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else list(dict.fromkeys(value))


class AddMemoryRequest(MemoryFields):
    pass


class AddBatchRequest(_Request):
    items: list[MemoryFields] = Field(min_length=1, max_length=MAX_BATCH)


class AddResult(_Response):
    id: str
    scope: MemoryScope
    namespace: str = "default"
    memory_type: str = "standard"
    deduped_from: str | None = None
    created_at: datetime | None = None

    @property
    def deduped(self) -> bool:
        return self.deduped_from is not None


class AddBatchResponse(_Response):
    results: list[AddResult]
    count: int


class Memory(_Response):
    id: str
    content: str
    user_id: str | None = None
    agent_id: str | None = None
    namespace: str = "default"
    scope: MemoryScope = "global"
    shared_with_agents: list[str] = Field(default_factory=list)
    memory_type: str = "standard"
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    expires_at: datetime | None = None
    bullet_helpful: int = 0
    bullet_harmful: int = 0
    effectiveness_score: float = 0.0
    is_deprecated: bool = False
    deprecated_by: str | None = None
    superseded_by: str | None = None
    deprecation_reason: str | None = None
    error_pattern: str | None = None
    derived_from_agents: list[str] = Field(default_factory=list)
    coordination_metadata: dict[str, Any] = Field(default_factory=dict)
    score: float | None = None


#: How a query ranks memories (see ``aegis_memory.index.fusion``).
SearchMode = Literal["hybrid", "vector", "text"]


class _SearchFields(_Request):
    """What every semantic search takes (query and cross-agent query)."""

    query: Text = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    namespace: Ident = "default"
    user_id: Ident | None = None
    top_k: int = Field(default=10, ge=1, le=MAX_TOP_K)
    min_score: float | None = Field(default=None, ge=-1.0, le=1.0)
    memory_types: list[MemoryType] | None = None
    target_agent_ids: list[Ident] | None = Field(
        default=None, description="Only memories owned by these agents."
    )
    mode: SearchMode = Field(
        default="hybrid",
        description=(
            "How memories are ranked: 'hybrid' (meaning and shared words, the default), "
            "'vector' (meaning only: score is the cosine similarity) or 'text' (shared "
            "words only: full-text relevance)."
        ),
    )
    neighbour_weight: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description=(
            "Hybrid mode: how much a memory's score is raised by its best-scoring neighbour "
            "(the memory its agent wrote just before or after it in the namespace, such as "
            "the next turn of a conversation). 0 turns it off; unset means the server's "
            "default (0.25)."
        ),
    )


class QueryRequest(_SearchFields):
    agent_id: Ident | None = Field(default=None, description="The agent the query acts as.")
    scope: MemoryScope | None = None


class CrossAgentQueryRequest(_SearchFields):
    requesting_agent_id: Ident | None = Field(
        default=None, description="The agent the query acts as."
    )


class QueryResponse(_Response):
    memories: list[Memory]
    retrieval_event_id: str | None = None
    query_time_ms: float = 0.0


class UpdateMemoryRequest(_Request):
    """PATCH body: only the fields given change. ``metadata`` is merged into the existing object."""

    agent_id: Ident | None = Field(default=None, description="The agent the update acts as.")
    content: Text | None = Field(default=None, min_length=1, max_length=MAX_CONTENT_CHARS)
    metadata: JsonObject | None = None
    scope: MemoryScope | None = None
    shared_with_agents: list[Ident] | None = Field(default=None, max_length=MAX_SHARED_WITH)
    memory_type: MemoryType | None = None
    ttl_seconds: int | None = Field(default=None, gt=0, le=10 * 365 * 86400)

    @model_validator(mode="after")
    def _something_to_change(self) -> UpdateMemoryRequest:
        changed = self.model_fields_set - {"agent_id"}
        if not changed:
            raise ValueError("nothing to update: give at least one field to change")
        return self


class DeleteResponse(_Response):
    id: str
    deleted: bool = True


# ----------------------------------------------------------------------------- votes


class VoteRequest(_Request):
    vote: VoteKind
    voter_agent_id: str | None = None
    task_id: str | None = Field(default=None, max_length=MAX_IDENT_CHARS)
    context: str | None = Field(default=None, max_length=MAX_CONTENT_CHARS)


class VoteResult(_Response):
    memory_id: str
    vote: VoteKind | None = None
    bullet_helpful: int
    bullet_harmful: int
    effectiveness_score: float


# ----------------------------------------------------------------------------- ACE: playbook,
# reflections, delta updates

MAX_DELTA_OPS = 100


class PlaybookRequest(_Request):
    query: Text = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    agent_id: Ident | None = Field(default=None, description="The agent the playbook is for.")
    namespace: Ident = "default"
    user_id: Ident | None = None
    top_k: int = Field(default=20, ge=1, le=MAX_TOP_K)
    min_effectiveness: float = Field(default=0.0, ge=-1.0, le=1.0)
    include_types: list[MemoryType] = Field(default_factory=lambda: ["strategy", "reflection"])
    error_pattern: str | None = Field(default=None, max_length=MAX_IDENT_CHARS)


class PlaybookEntry(_Response):
    id: str
    content: str
    memory_type: str
    agent_id: str | None = None
    scope: MemoryScope = "global"
    effectiveness_score: float = 0.0
    bullet_helpful: int = 0
    bullet_harmful: int = 0
    relevance: float = 0.0
    score: float = Field(0.0, description="Relevance blended with effectiveness (the ranking).")
    error_pattern: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None


class PlaybookResponse(_Response):
    entries: list[PlaybookEntry]
    retrieval_event_id: str | None = None
    query_time_ms: float = 0.0


class ReflectionRequest(_Request):
    """A lesson learned, stored as a ``reflection`` memory (global unless told otherwise)."""

    content: Text = Field(min_length=1, max_length=MAX_CONTENT_CHARS)
    agent_id: Ident | None = None
    namespace: Ident = "default"
    user_id: Ident | None = None
    error_pattern: str | None = Field(default=None, max_length=MAX_IDENT_CHARS)
    correct_approach: str | None = Field(default=None, max_length=MAX_CONTENT_CHARS)
    applicable_contexts: list[str] | None = None
    source_trajectory_id: str | None = Field(default=None, max_length=MAX_IDENT_CHARS)
    scope: MemoryScope = "global"
    shared_with_agents: list[Ident] | None = Field(default=None, max_length=MAX_SHARED_WITH)
    metadata: JsonObject | None = None


class DeltaOperation(_Request):
    """One change: ``add`` a memory, ``update`` one, or ``deprecate`` one (soft delete)."""

    type: Literal["add", "update", "deprecate"]
    # add (and update: content, metadata, memory_type)
    content: Text | None = Field(default=None, min_length=1, max_length=MAX_CONTENT_CHARS)
    memory_type: MemoryType | None = None
    scope: MemoryScope | None = None
    shared_with_agents: list[Ident] | None = Field(default=None, max_length=MAX_SHARED_WITH)
    metadata: JsonObject | None = None
    user_id: Ident | None = None
    ttl_seconds: int | None = Field(default=None, gt=0, le=10 * 365 * 86400)
    error_pattern: str | None = Field(default=None, max_length=MAX_IDENT_CHARS)
    # update / deprecate
    memory_id: str | None = None
    superseded_by: str | None = None
    reason: str | None = Field(default=None, max_length=MAX_CONTENT_CHARS)

    @model_validator(mode="after")
    def _fields_fit_type(self) -> DeltaOperation:
        if self.type == "add" and not self.content:
            raise ValueError("an 'add' operation needs content")
        if self.type in ("update", "deprecate") and not self.memory_id:
            raise ValueError(f"an '{self.type}' operation needs memory_id")
        if self.type == "update" and not (
            self.model_fields_set & {"content", "metadata", "memory_type", "ttl_seconds"}
        ):
            raise ValueError("an 'update' operation needs something to change")
        return self


class DeltaRequest(_Request):
    operations: list[DeltaOperation] = Field(min_length=1, max_length=MAX_DELTA_OPS)
    agent_id: Ident | None = Field(default=None, description="The agent the changes act as.")
    namespace: Ident = "default"
    atomic: bool = Field(default=True, description="All or nothing (default), or per item.")


class DeltaItemResult(_Response):
    index: int
    type: str
    ok: bool
    memory_id: str | None = None
    deduped_from: str | None = None
    detail: str | None = None
    code: str | None = None


class DeltaResult(_Response):
    results: list[DeltaItemResult]
    applied: int
    failed: int


# ----------------------------------------------------------------------------- evaluation

EvalWindow = Literal["24h", "7d", "30d", "global"]


class EvalTotals(_Response):
    queries: int = 0
    votes: int = 0
    helpful_votes: int = 0
    harmful_votes: int = 0
    features_evaluated: int = 0
    features_passed: int = 0
    features_failed: int = 0
    memories: int = 0


class EvalMetrics(_Response):
    window: EvalWindow
    namespace: str | None = None
    success_rate: float | None = Field(
        None, description="Passed / evaluated features (latest outcome in the window).")
    retrieval_precision: float | None = Field(
        None, description="Helpful / all votes cast in the window on retrieved memories.")
    pollution_rate: float | None = Field(
        None, description="Share of live memories voted more harmful than helpful.")
    mttr_seconds: float | None = Field(
        None, description="Mean time from a feature's first failure to its pass.")
    totals: EvalTotals


class EvalCorrelation(_Response):
    window: EvalWindow
    namespace: str | None = None
    correlation_score: float = Field(
        0.0, description="Phi coefficient between a vote being helpful and its feature passing.")
    prob_pass_given_helpful: float | None = None
    prob_pass_given_harmful: float | None = None
    sample_size: int = 0
    helpful_count: int = 0
    harmful_count: int = 0


# ----------------------------------------------------------------------------- dashboard

MAX_PAGE = 500


class AgentCount(_Response):
    agent_id: str | None = None
    memories: int


class DashboardStats(_Response):
    namespace: str | None = None
    memories_total: int
    deprecated: int
    by_type: dict[str, int]
    by_scope: dict[str, int]
    top_agents: list[AgentCount]
    helpful_votes: int
    harmful_votes: int
    voters: int
    sessions_by_status: dict[str, int] = Field(default_factory=dict)
    features_by_status: dict[str, int] = Field(default_factory=dict)


class ActivityBucket(_Response):
    date: str
    total: int
    counts: dict[str, int]


class DashboardActivity(_Response):
    namespace: str | None = None
    days: int
    buckets: list[ActivityBucket]


class TimelineEvent(_Response):
    id: str
    event_type: str
    namespace: str | None = None
    agent_id: str | None = None
    memory_ids: list[str] = Field(default_factory=list)
    task_id: str | None = None
    retrieval_event_id: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    cursor: int


class Timeline(_Response):
    events: list[TimelineEvent]
    next_cursor: int | None = Field(None, description="Pass as `before` for the next page.")


# ----------------------------------------------------------------------------- handoff


class HandoffRequest(_Request):
    source_agent_id: Ident
    target_agent_id: Ident
    namespace: Ident = "default"
    user_id: Ident | None = None
    task_context: str | None = Field(default=None, max_length=MAX_QUERY_CHARS)
    max_memories: int = Field(default=20, ge=1, le=200)
    share: bool = False


class HandoffBaton(_Response):
    handoff_id: str
    source_agent_id: str
    target_agent_id: str
    namespace: str = "default"
    task_context: str | None = None
    summary: str = ""
    key_facts: list[Memory] = Field(default_factory=list)
    active_tasks: list[str] = Field(default_factory=list)
    blocked_on: list[dict[str, Any]] = Field(default_factory=list)
    next_items: list[str] = Field(default_factory=list)
    recent_decisions: list[str] = Field(default_factory=list)
    memory_ids: list[str] = Field(default_factory=list)
    shared: bool = False
    created_at: datetime | None = None


# ----------------------------------------------------------------------------- export / import


class ExportRequest(_Request):
    namespace: str | None = Field(default=None, description="None exports every namespace.")
    agent_id: Ident | None = Field(default=None, description="The agent the export acts as.")
    user_id: Ident | None = None
    format: Literal["jsonl", "json"] = "jsonl"
    include_embeddings: bool = False
    embedding_encoding: EmbeddingEncoding = Field(
        default="float",
        description="How exported embeddings are written: `float`, a JSON list of numbers, or "
                    "`base64`, the little-endian float32 bytes in base64 (about a quarter of "
                    "the size, and much cheaper to import). Every version that reads `base64` "
                    "imports both.",
    )
    include_deprecated: bool = True


class ExportedVote(BaseModel):
    model_config = ConfigDict(extra="ignore")

    voter_agent_id: str
    task_id: str | None = None
    vote: VoteKind
    created_at: datetime | None = None


def decode_embedding(value: str) -> bytes:
    """The float32 bytes of a ``base64`` embedding; ValueError says what is wrong with it."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            "is not valid base64 (expected the base64 of little-endian float32 bytes, "
            "or a list of numbers)"
        ) from None
    if not raw or len(raw) % 4:
        raise ValueError(
            f"decodes to {len(raw)} bytes, which is not a whole number of float32 values "
            "(4 bytes each)"
        )
    return raw


def _embedding(value: list[float] | str | None) -> list[float] | str | None:
    if isinstance(value, str):
        decode_embedding(value)
    return value


class ExportedMemory(Memory):
    """A memory with everything needed to restore it elsewhere.

    ``embedding`` is either a list of numbers or, in the compact ``base64`` encoding, the
    base64 of the vector's little-endian float32 bytes (``embedding_vector()`` reads both).
    """

    votes: list[ExportedVote] = Field(default_factory=list)
    embedding: Annotated[list[float] | str | None, AfterValidator(_embedding)] = Field(
        default=None,
        description="The vector: a list of numbers, or base64 of little-endian float32 bytes.",
    )
    embedding_model: str | None = None

    def embedding_vector(self) -> list[float] | None:
        """The embedding as a list of numbers, whichever encoding it came in."""
        if self.embedding is None or isinstance(self.embedding, list):
            return self.embedding
        packed = array("f")
        packed.frombytes(decode_embedding(self.embedding))
        if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
            packed.byteswap()
        return packed.tolist()


class ImportedMemory(ExportedMemory):
    """An exported memory as an import carries it: held to the rules of an add (export reads
    what is stored, so ``ExportedMemory`` itself stays lenient). Without them an import could
    store what no other route accepts: counters beyond the 32-bit columns (a 500 on
    PostgreSQL), metadata too deep to serialise again, names no route can address."""

    content: Text = Field(min_length=1, max_length=MAX_CONTENT_CHARS)
    namespace: Ident = "default"
    agent_id: Ident | None = None
    user_id: Ident | None = None
    shared_with_agents: list[Ident] = Field(default_factory=list, max_length=MAX_SHARED_WITH)
    metadata: JsonObject = Field(default_factory=dict)
    coordination_metadata: JsonObject = Field(default_factory=dict)
    bullet_helpful: int = Field(default=0, ge=0, le=MAX_INT32)
    bullet_harmful: int = Field(default=0, ge=0, le=MAX_INT32)


class ImportRequest(_Request):
    memories: list[ImportedMemory] = Field(min_length=1, max_length=MAX_IMPORT_BATCH)
    agent_id: Ident | None = Field(default=None, description="The agent the import acts as.")

    @field_validator("memories")
    @classmethod
    def _addressable_ids(cls, memories: list[ImportedMemory]) -> list[ImportedMemory]:
        for n, memory in enumerate(memories):
            problem = addressable_id(memory.id)
            if problem is not None:
                raise ValueError(f"memories[{n}].id {memory.id[:80]!r} {problem}")
        return memories


class ImportResponse(_Response):
    imported: int
    skipped: int
    reembedded: int
    ids: list[str] = Field(default_factory=list)


# ----------------------------------------------------------------------------- keys


class CreateKeyRequest(_Request):
    agent_id: Ident | None = None
    name: str | None = Field(default=None, max_length=MAX_IDENT_CHARS)
    expires_at: datetime | None = None


class ApiKeyInfo(_Response):
    id: str
    project_id: str
    agent_id: str | None = None
    name: str | None = None
    prefix: str
    created_at: datetime | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class CreatedApiKey(ApiKeyInfo):
    key: str = Field(description="The secret. Shown once; only its hash is stored.")


class KeyList(_Response):
    keys: list[ApiKeyInfo]


# ----------------------------------------------------------------------------- ops


class HealthResponse(_Response):
    status: str
    version: str | None = None
