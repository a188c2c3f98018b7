"""LangChain (langchain-core 1.x) adapters for Aegis Memory.

Three building blocks, each a standard LangChain interface so that it composes with runnable
chains, ``create_agent`` and LangGraph without glue code:

* `AegisRetriever` — a ``BaseRetriever`` over what one agent may see (scope rules are enforced by
  the server, never re-implemented here); each memory becomes a ``Document``.
* `AegisAddMemoryTool` / `AegisSearchMemoryTool` (and `aegis_memory_tools`) — tools a model can
  call to remember and recall. Who the agent is, which user and namespace, and how widely a memory
  is shared are fixed by the developer when the tool is built; the model only chooses *what* to
  store or search, so it can never make private text global or act as another agent.
* `AegisMemory` — the name the old README used with ``ConversationChain(memory=...)``. That
  ``BaseMemory`` interface is gone in LangChain 1.x; this class now bundles the retriever and the
  tools with ``load_memory_variables`` / ``save_context`` helpers that fit a modern chain or agent.

Requires ``pip install 'aegis-memory[langchain]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Literal

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        AsyncCallbackManagerForToolRun,
        CallbackManagerForRetrieverRun,
        CallbackManagerForToolRun,
    )
    from langchain_core.documents import Document
    from langchain_core.messages import BaseMessage
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables.config import run_in_executor
    from langchain_core.tools import BaseTool, ToolException
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "aegis_memory.integrations.langchain needs LangChain: "
        "pip install 'aegis-memory[langchain]'"
    ) from exc

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from aegis_memory.client import AegisClient, AsyncAegisClient
from aegis_memory.client.errors import AegisValidationError
from aegis_memory.schemas import (
    MAX_CONTENT_CHARS,
    MAX_QUERY_CHARS,
    MAX_TOP_K,
    Memory,
    MemoryScope,
    MemoryType,
)

__all__ = [
    "AddMemoryInput",
    "AegisAddMemoryTool",
    "AegisMemory",
    "AegisRetriever",
    "AegisSearchMemoryTool",
    "SearchMemoryInput",
    "aegis_memory_tools",
    "format_documents",
    "memory_to_document",
]

# Memory types a model may choose when it saves or searches. ``progress`` and ``feature`` are
# written by the session-progress APIs, not as free text, so they are not offered to a model.
ModelMemoryType = Literal["standard", "strategy", "reflection"]


# ----------------------------------------------------------------------------- conversions


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def memory_to_document(memory: Memory) -> Document:
    """One Aegis memory as a LangChain ``Document``.

    The memory's own metadata comes first and the Aegis fields are written over it, so that
    ``id``, ``score`` or ``scope`` in a document always mean what Aegis says, even if a user put a
    key of the same name into the memory's metadata.
    """
    metadata: dict[str, Any] = dict(memory.metadata or {})
    metadata.update(
        id=memory.id,
        score=memory.score,
        agent_id=memory.agent_id,
        user_id=memory.user_id,
        namespace=memory.namespace,
        scope=memory.scope,
        memory_type=memory.memory_type,
        created_at=_iso(memory.created_at),
    )
    return Document(id=memory.id, page_content=memory.content, metadata=metadata)


def format_documents(documents: Sequence[Document]) -> str:
    """Documents as ``- text`` lines: the shape a prompt's ``{context}`` slot usually wants.

    Use it after the retriever in a chain: ``retriever | format_documents``.
    """
    return "\n".join(f"- {doc.page_content}" for doc in documents)


# ----------------------------------------------------------------------------- retriever


class AegisRetriever(BaseRetriever):
    """Semantic search over the memories one agent may see, as LangChain ``Document`` objects.

    Visibility is the server's: a retriever for agent B never returns agent A's private memories,
    whatever the query. ``k`` (alias ``top_k``) sets how many documents come back; ``k``,
    ``top_k``, ``min_score``, ``memory_types`` and ``user_id`` can also be given per call, e.g.
    ``retriever.invoke("query", k=3)``.

    ``async_client`` is optional: without it, ``ainvoke`` runs the blocking client in a worker
    thread so that the event loop is never blocked.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    client: AegisClient = Field(default_factory=AegisClient, exclude=True, repr=False)
    """Blocking client; by default one configured from ``AEGIS_API_KEY`` / ``AEGIS_BASE_URL``."""
    async_client: AsyncAegisClient | None = Field(default=None, exclude=True, repr=False)
    """Used by ``ainvoke`` when given (use it from one event loop, as any httpx async client)."""
    agent_id: str | None = None
    """The agent the search acts as; its visibility rules decide what is returned."""
    user_id: str | None = None
    """Only memories about this user."""
    namespace: str = "default"
    k: int = Field(default=4, ge=1, le=MAX_TOP_K, validation_alias=AliasChoices("k", "top_k"))
    """How many documents to return (at most; fewer only when fewer match)."""
    min_score: float | None = Field(default=None, ge=-1.0, le=1.0)
    memory_types: list[MemoryType] | None = None
    scope: MemoryScope | None = None
    """Only memories of this scope (e.g. ``"global"`` for shared knowledge only)."""
    target_agent_ids: list[str] | None = None
    """Only memories owned by these agents (still within what ``agent_id`` may see)."""

    def _query_arguments(self, query: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``client.query``: the fields, with per-call overrides applied.

        Only the overrides this retriever understands are read; LangChain itself passes others
        (``verbose``, for one) through ``invoke`` and they must not reach the client.
        """
        top_k = overrides.get("k", overrides.get("top_k"))
        return {
            "query": query,
            "agent_id": self.agent_id,
            "user_id": overrides.get("user_id", self.user_id),
            "namespace": self.namespace,
            "top_k": self.k if top_k is None else top_k,
            "min_score": overrides.get("min_score", self.min_score),
            "memory_types": overrides.get("memory_types", self.memory_types),
            "scope": self.scope,
            "target_agent_ids": self.target_agent_ids,
        }

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if not query.strip():
            return []  # nothing to search for; the server would reject an empty query
        memories = self.client.query(**self._query_arguments(query, kwargs))
        return [memory_to_document(memory) for memory in memories]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.async_client is None:
            return await run_in_executor(
                None,
                self._get_relevant_documents,
                query,
                run_manager=run_manager.get_sync(),
                **kwargs,
            )
        if not query.strip():
            return []
        memories = await self.async_client.query(**self._query_arguments(query, kwargs))
        return [memory_to_document(memory) for memory in memories]


# ----------------------------------------------------------------------------- tools


class AddMemoryInput(BaseModel):
    """What a model passes to the save-memory tool."""

    content: str = Field(
        min_length=1,
        max_length=MAX_CONTENT_CHARS,
        description=(
            "One self-contained fact, preference, decision or lesson, written so that it makes "
            "sense on its own later, e.g. 'The user prefers answers in French.'"
        ),
    )
    memory_type: ModelMemoryType = Field(
        default="standard",
        description=(
            "'standard' for facts and preferences, 'strategy' for an approach that worked, "
            "'reflection' for a lesson learned from a mistake."
        ),
    )


class SearchMemoryInput(BaseModel):
    """What a model passes to the search-memory tool."""

    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="What to look for, in natural language, e.g. 'user's preferred language'.",
    )
    top_k: int | None = Field(
        default=None,
        ge=1,
        le=50,
        description="How many memories to return at most (default chosen by the application).",
    )
    memory_types: list[ModelMemoryType] | None = Field(
        default=None,
        description="Only these kinds of memory; omit to search all of them.",
    )


class _AegisTool(BaseTool):
    """What both memory tools share: the client and the identity the tool acts with.

    These are fields of the tool, not arguments of a call, so a model cannot change them.
    Input the server rejects is turned into a ``ToolException`` and, with the default
    ``handle_tool_error=True``, shown to the model as the tool's answer so it can correct
    itself; connection and authentication failures are not the model's to fix and are raised.
    """

    client: AegisClient = Field(default_factory=AegisClient, exclude=True, repr=False)
    async_client: AsyncAegisClient | None = Field(default=None, exclude=True, repr=False)
    agent_id: str | None = None
    user_id: str | None = None
    namespace: str = "default"
    handle_tool_error: bool | str | Callable[[ToolException], Any] | None = True


class AegisAddMemoryTool(_AegisTool):
    """Lets a model store a memory for its agent (and user) in Aegis.

    ``scope`` and ``shared_with_agents`` are the developer's decision; when both are unset the
    server applies its rule (an ``agent_id`` makes the memory agent-private). ``metadata`` is
    ``memory_metadata`` is attached to every memory this tool stores (e.g. ``{"source": "chat"}``;
    ``metadata`` is LangChain's callback metadata of the tool).
    """

    name: str = "save_memory"
    description: str = (
        "Save a piece of information to long-term memory so it can be recalled in later "
        "conversations. Use it for durable facts about the user, their preferences, decisions "
        "made, and lessons learned. Save one self-contained fact per call; do not save "
        "greetings, small talk or information that is only relevant right now."
    )
    args_schema: type[BaseModel] = AddMemoryInput

    scope: MemoryScope | None = None
    shared_with_agents: list[str] | None = None
    ttl_seconds: int | None = Field(default=None, ge=1)
    memory_metadata: dict[str, Any] = Field(default_factory=dict)

    def _add_arguments(self, content: str, memory_type: str) -> dict[str, Any]:
        return {
            "content": content,
            "agent_id": self.agent_id,
            "user_id": self.user_id,
            "namespace": self.namespace,
            "metadata": self.memory_metadata or None,
            "ttl_seconds": self.ttl_seconds,
            "scope": self.scope,
            "shared_with_agents": self.shared_with_agents,
            "memory_type": memory_type,
        }

    @staticmethod
    def _describe(result: Any) -> str:
        if result.deduped:
            return f"Already in memory as {result.id}; nothing new was stored."
        return f"Saved memory {result.id} (scope: {result.scope})."

    def _run(
        self,
        content: str,
        memory_type: ModelMemoryType = "standard",
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> str:
        try:
            result = self.client.add(**self._add_arguments(content, memory_type))
        except AegisValidationError as exc:
            raise ToolException(f"Memory not saved: {exc}") from exc
        return self._describe(result)

    async def _arun(
        self,
        content: str,
        memory_type: ModelMemoryType = "standard",
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> str:
        if self.async_client is None:
            return await run_in_executor(None, self._run, content, memory_type)
        try:
            result = await self.async_client.add(**self._add_arguments(content, memory_type))
        except AegisValidationError as exc:
            raise ToolException(f"Memory not saved: {exc}") from exc
        return self._describe(result)


class AegisSearchMemoryTool(_AegisTool):
    """Lets a model search what its agent may see in Aegis.

    The answer to the model is a numbered list of memories; the matching ``Document`` objects
    (as `AegisRetriever` builds them) are the ``ToolMessage`` artifact, for code that wants ids
    and scores without parsing text.
    """

    name: str = "search_memory"
    description: str = (
        "Search long-term memory for information saved in earlier conversations or by other "
        "agents: facts about the user, preferences, past decisions, strategies that worked and "
        "lessons learned. Use it before answering questions that may depend on such context."
    )
    args_schema: type[BaseModel] = SearchMemoryInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"

    k: int = Field(default=5, ge=1, le=MAX_TOP_K)
    """Results when the model does not say how many."""
    min_score: float | None = Field(default=None, ge=-1.0, le=1.0)

    def _query_arguments(
        self, query: str, top_k: int | None, memory_types: list[str] | None
    ) -> dict[str, Any]:
        return {
            "query": query,
            "agent_id": self.agent_id,
            "user_id": self.user_id,
            "namespace": self.namespace,
            "top_k": top_k or self.k,
            "min_score": self.min_score,
            "memory_types": memory_types or None,
        }

    @staticmethod
    def _answer(memories: Sequence[Memory]) -> tuple[str, list[Document]]:
        documents = [memory_to_document(memory) for memory in memories]
        if not documents:
            return "No relevant memories found.", documents
        lines = [
            f"{index}. {memory.content} [type: {memory.memory_type}, score: "
            f"{0.0 if memory.score is None else memory.score:.2f}, id: {memory.id}]"
            for index, memory in enumerate(memories, start=1)
        ]
        return "\n".join(lines), documents

    def _run(
        self,
        query: str,
        top_k: int | None = None,
        memory_types: list[ModelMemoryType] | None = None,
        run_manager: CallbackManagerForToolRun | None = None,
    ) -> tuple[str, list[Document]]:
        try:
            memories = self.client.query(**self._query_arguments(query, top_k, memory_types))
        except AegisValidationError as exc:
            raise ToolException(f"Search failed: {exc}") from exc
        return self._answer(memories)

    async def _arun(
        self,
        query: str,
        top_k: int | None = None,
        memory_types: list[ModelMemoryType] | None = None,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
    ) -> tuple[str, list[Document]]:
        if self.async_client is None:
            return await run_in_executor(None, self._run, query, top_k, memory_types)
        try:
            memories = await self.async_client.query(
                **self._query_arguments(query, top_k, memory_types)
            )
        except AegisValidationError as exc:
            raise ToolException(f"Search failed: {exc}") from exc
        return self._answer(memories)


def aegis_memory_tools(
    client: AegisClient | None = None,
    *,
    agent_id: str | None = None,
    user_id: str | None = None,
    namespace: str = "default",
    async_client: AsyncAegisClient | None = None,
    k: int = 5,
    scope: MemoryScope | None = None,
    shared_with_agents: Sequence[str] | None = None,
) -> list[BaseTool]:
    """The save and search tools for one agent, ready for ``model.bind_tools`` or an agent.

    Both tools share the client and the identity, so what the model saves it can find again.
    """
    common: dict[str, Any] = {
        "client": client if client is not None else AegisClient(),
        "async_client": async_client,
        "agent_id": agent_id,
        "user_id": user_id,
        "namespace": namespace,
    }
    return [
        AegisAddMemoryTool(
            **common,
            scope=scope,
            shared_with_agents=None if shared_with_agents is None else list(shared_with_agents),
        ),
        AegisSearchMemoryTool(**common, k=k),
    ]


# ----------------------------------------------------------------------------- AegisMemory

_INPUT_KEYS = ("input", "question", "query", "human_input", "user_input", "message")
_OUTPUT_KEYS = ("output", "answer", "response", "text", "result", "content")


def _text(value: Any) -> str:
    """The text of a chain input or output: a string, a message, or a list of messages."""
    if isinstance(value, BaseMessage):
        return value.text
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], BaseMessage):
        return value[-1].text
    return str(value)


def _pick(
    values: Mapping[str, Any] | Any, key: str | None, preferred: Sequence[str], ignore: set[str]
) -> str:
    """The one value of a chain's input/output mapping that is the turn's text.

    An explicit key wins; otherwise the only key (besides the memory's own), otherwise the first
    of the usual names. Anything else is ambiguous, and storing the wrong text silently would be
    worse than an error.
    """
    if not isinstance(values, Mapping):
        return _text(values)
    if key is not None:
        return _text(values[key])
    candidates = [name for name in values if name not in ignore]
    if len(candidates) == 1:
        return _text(values[candidates[0]])
    for name in preferred:
        if name in values:
            return _text(values[name])
    raise ValueError(
        f"Cannot tell which of {sorted(values)} is the text to use; pass input_key/output_key."
    )


class AegisMemory:
    """Conversation memory for a LangChain 1.x chain or agent, backed by Aegis.

    The old README used ``ConversationChain(llm=llm, memory=AegisMemory(agent_id=...))``.
    ``ConversationChain`` and ``BaseMemory`` no longer exist in LangChain 1.x, so this class is
    not a ``BaseMemory``; it keeps the familiar pair of calls and hands out the modern pieces:

    * ``load_memory_variables(inputs)`` → ``{memory_key: "- fact\\n- fact"}`` for a prompt slot
      (what the old memory injected), found by semantic search on the turn's input;
    * ``save_context(inputs, outputs)`` stores the turn (user text + answer) as one memory;
    * ``retriever`` (an `AegisRetriever`) for runnable chains, ``tools`` (save/search) for
      ``create_agent`` or ``model.bind_tools``.

    Async twins ``aload_memory_variables`` / ``asave_context`` use ``async_client`` when given.
    Without ``client`` one is made from ``api_key`` / ``base_url`` (or the environment) and closed
    by `close` / ``with``.
    """

    def __init__(
        self,
        agent_id: str | None = None,
        *,
        client: AegisClient | None = None,
        async_client: AsyncAegisClient | None = None,
        user_id: str | None = None,
        namespace: str = "default",
        k: int = 5,
        min_score: float | None = None,
        memory_key: str = "history",
        input_key: str | None = None,
        output_key: str | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
    ) -> None:
        self._owns_client = client is None
        self.client = client if client is not None else AegisClient(api_key, base_url)
        self.async_client = async_client
        self.agent_id = agent_id
        self.user_id = user_id
        self.namespace = namespace
        self.memory_key = memory_key
        self.input_key = input_key
        self.output_key = output_key
        self.retriever = AegisRetriever(
            client=self.client,
            async_client=async_client,
            agent_id=agent_id,
            user_id=user_id,
            namespace=namespace,
            k=k,
            min_score=min_score,
        )
        self.tools: list[BaseTool] = aegis_memory_tools(
            self.client,
            agent_id=agent_id,
            user_id=user_id,
            namespace=namespace,
            async_client=async_client,
            k=k,
        )

    @property
    def memory_variables(self) -> list[str]:
        """The prompt variables `load_memory_variables` fills (the old ``BaseMemory`` API)."""
        return [self.memory_key]

    # ------------------------------------------------------------------ read

    def _input_text(self, inputs: Mapping[str, Any] | str) -> str:
        return _pick(inputs, self.input_key, _INPUT_KEYS, {self.memory_key})

    def load_memory_variables(self, inputs: Mapping[str, Any] | str) -> dict[str, str]:
        """``{memory_key: context}``: the memories most relevant to this turn's input."""
        documents = self.retriever.invoke(self._input_text(inputs))
        return {self.memory_key: format_documents(documents)}

    async def aload_memory_variables(self, inputs: Mapping[str, Any] | str) -> dict[str, str]:
        """Async `load_memory_variables`."""
        documents = await self.retriever.ainvoke(self._input_text(inputs))
        return {self.memory_key: format_documents(documents)}

    # ------------------------------------------------------------------ write

    def _turn(self, inputs: Mapping[str, Any] | str, outputs: Mapping[str, Any] | Any) -> str:
        user = self._input_text(inputs).strip()
        answer = _pick(outputs, self.output_key, _OUTPUT_KEYS, set()).strip()
        lines = []
        if user:
            lines.append(f"User: {user}")
        if answer:
            lines.append(f"Assistant: {answer}")
        return "\n".join(lines)

    def _add_arguments(self, content: str) -> dict[str, Any]:
        return {
            "content": content,
            "agent_id": self.agent_id,
            "user_id": self.user_id,
            "namespace": self.namespace,
            "metadata": {"source": "langchain", "kind": "conversation_turn"},
        }

    def save_context(
        self, inputs: Mapping[str, Any] | str, outputs: Mapping[str, Any] | Any
    ) -> str | None:
        """Store one turn (``User: ...`` / ``Assistant: ...``) and return the memory id.

        An empty turn stores nothing and returns ``None``. ``outputs`` may be a mapping, a
        string or the ``AIMessage`` a chat model returned.
        """
        content = self._turn(inputs, outputs)
        if not content:
            return None
        return self.client.add(**self._add_arguments(content)).id

    async def asave_context(
        self, inputs: Mapping[str, Any] | str, outputs: Mapping[str, Any] | Any
    ) -> str | None:
        """Async `save_context`."""
        content = self._turn(inputs, outputs)
        if not content:
            return None
        if self.async_client is None:
            result = await run_in_executor(None, self.client.add, **self._add_arguments(content))
        else:
            result = await self.async_client.add(**self._add_arguments(content))
        return result.id

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the client if this object made it (a client passed in stays the caller's)."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> AegisMemory:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"AegisMemory(agent_id={self.agent_id!r}, user_id={self.user_id!r}, "
            f"namespace={self.namespace!r})"
        )
