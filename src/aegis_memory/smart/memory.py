"""`SmartMemory` and `AsyncSmartMemory`: decide what a conversation turn is worth remembering.

A turn goes through three stages:

1. the rule filter (:mod:`~aegis_memory.smart.filter`) drops greetings, thanks and filler
   without calling any model;
2. an extractor turns what is left into atomic third-person facts - an LLM (OpenAI, Anthropic,
   any OpenAI-compatible server, or your own callable) or, with no key, the offline rules;
3. facts under the confidence threshold are dropped, facts the user already has are not
   stored twice, and a fact with the same ``key`` as an older one (``location``) supersedes
   it: the new memory is added and the old one deprecated, pointing at its replacement.

Like the clients, both classes share one implementation (`SmartOps`): each method is a *plan*
that yields steps - requests to the Aegis server and `LLMCall`s - and the sync or async driver
executes them. The LLM step is just one more kind of step.
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
from pydantic import BaseModel, Field

from aegis_memory.client._api import ClientOps
from aegis_memory.client._core import (
    DEFAULT_TIMEOUT,
    AsyncDriver,
    Call,
    Plan,
    Step,
    SyncDriver,
    operation,
)
from aegis_memory.client.async_client import AsyncAegisClient
from aegis_memory.client.errors import AegisValidationError
from aegis_memory.client.sync_client import AegisClient
from aegis_memory.schemas import Memory, MemoryScope, MemoryType
from aegis_memory.smart.facts import Category, ExtractedFact
from aegis_memory.smart.filter import Sensitivity, assess
from aegis_memory.smart.llm import (
    LLMCallable,
    LLMProvider,
    LLMRequest,
    ProviderName,
    describe,
    resolve_provider,
)
from aegis_memory.smart.prompts import (
    MalformedOutput,
    UseCase,
    parse_facts,
    retry_prompt,
    system_prompt,
    user_prompt,
)

__all__ = ["AsyncSmartMemory", "ContextResult", "SmartMemory", "SmartStats", "TurnResult"]

#: Written into every memory SmartMemory stores, so it can find its own keyed facts again.
SOURCE = "smart_memory"
#: How many of the user's nearest memories are compared with a new fact.
DEDUP_CANDIDATES = 10


# ============================================================================ results


class TurnResult(BaseModel):
    """What happened to one turn. Nothing is dropped silently: each fact is in one list.

    ``skipped_reason`` is set when nothing was stored: ``empty``, ``noise``, ``too_short``,
    ``no_signal`` (the filter), ``nothing_extracted``, ``below_threshold``, ``duplicate``, or
    ``malformed_llm_output`` (the model's answer was unreadable twice; ``error`` says why and
    ``raw_output`` holds it, so the turn can be retried or stored by hand).
    """

    extracted: list[ExtractedFact] = Field(default_factory=list)
    stored_ids: list[str] = Field(default_factory=list)
    duplicate_ids: list[str] = Field(
        default_factory=list, description="Existing memories that already held a fact."
    )
    superseded_ids: list[str] = Field(
        default_factory=list, description="Older memories deprecated by a newer fact."
    )
    below_threshold: list[ExtractedFact] = Field(default_factory=list)
    skipped_reason: str | None = None
    signals: list[str] = Field(default_factory=list)
    extractor: str = "rules"
    llm_calls: int = 0
    error: str | None = None
    raw_output: str | None = None

    @property
    def stored(self) -> bool:
        return bool(self.stored_ids)


class ContextResult(BaseModel):
    """Memories relevant to a query, ready to paste into a prompt."""

    context_string: str
    memories: list[Memory] = Field(default_factory=list)
    token_count: int = 0
    retrieval_event_id: str | None = None

    def __str__(self) -> str:
        return self.context_string


class SmartStats(BaseModel):
    """Counters since this SmartMemory was created (``get_stats``)."""

    extractor: str
    sensitivity: str
    turns: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)
    extractions: int = 0
    llm_calls: int = 0
    facts_extracted: int = 0
    facts_stored: int = 0
    duplicates: int = 0
    superseded: int = 0
    below_threshold: int = 0
    malformed_outputs: int = 0

    @property
    def llm_calls_saved(self) -> int:
        """Turns the filter answered without a model call."""
        return sum(self.skipped.get(reason, 0) for reason in ("empty", "noise", "too_short",
                                                                "no_signal"))


@dataclass(frozen=True, slots=True)
class LLMCall:
    """A plan step: ask the model. The driver answers with its text (sync or async)."""

    request: LLMRequest


def estimate_tokens(text: str) -> int:
    """About four characters per token for English, rounded up: cheap and model-independent.

    It over-counts slightly for common words, so a context built within ``max_tokens`` by this
    estimate fits the real budget of GPT and Claude tokenizers.
    """
    return math.ceil(len(text) / 4)


_NORMAL = re.compile(r"[^a-z0-9]+")


def _same_text(a: str, b: str) -> bool:
    return _NORMAL.sub(" ", a.lower()).strip() == _NORMAL.sub(" ", b.lower()).strip()


def _unique(facts: list[ExtractedFact]) -> list[ExtractedFact]:
    """Facts without repeats; of two with the same key the later one wins (it is the update)."""
    by_key: dict[str, int] = {}
    kept: list[ExtractedFact | None] = []
    for fact in facts:
        if any(other is not None and _same_text(other.content, fact.content) for other in kept):
            continue
        if fact.key is not None and fact.key in by_key:
            kept[by_key[fact.key]] = None
        if fact.key is not None:
            by_key[fact.key] = len(kept)
        kept.append(fact)
    return [fact for fact in kept if fact is not None]


def _text_argument(value: Any, name: str, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise AegisValidationError(f"Invalid arguments: {name} must be a string",
                                   code="invalid_arguments")
    return value


# ============================================================================ the shared core


class SmartOps:
    """The constructor and methods of `SmartMemory` and `AsyncSmartMemory`, written once.

    The drivers only say which Aegis client they create and how a step is executed.
    """

    _client: AegisClient | AsyncAegisClient
    #: The Aegis client a driver creates when none is passed in.
    _client_class: type[AegisClient] | type[AsyncAegisClient]

    def __init__(
        self,
        aegis_api_key: str | None = None,
        aegis_base_url: str | None = None,
        namespace: str = "default",
        llm_api_key: str | None = None,
        llm_provider: ProviderName | None = None,
        llm_model: str | None = None,
        llm_base_url: str | None = None,
        sensitivity: Sensitivity = "balanced",
        use_case: UseCase = "general",
        *,
        llm: LLMCallable | None = None,
        min_confidence: float = 0.6,
        agent_id: str | None = None,
        scope: MemoryScope | None = None,
        llm_timeout: float = 30.0,
        llm_max_retries: int = 2,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        client: Any = None,
    ) -> None:
        if sensitivity not in ("low", "balanced", "high"):
            raise ValueError(
                f"sensitivity must be 'low', 'balanced' or 'high', not {sensitivity!r}"
            )
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError("min_confidence must be between 0 and 1")
        self.namespace = namespace
        self.sensitivity: Sensitivity = sensitivity
        self.use_case: UseCase = use_case
        self.min_confidence = min_confidence
        self.agent_id = agent_id
        self.scope: MemoryScope | None = scope
        self._provider: LLMProvider | None = resolve_provider(
            llm_provider, api_key=llm_api_key, model=llm_model, base_url=llm_base_url, llm=llm,
            timeout=llm_timeout, max_retries=llm_max_retries,
        )
        self._system_prompt = system_prompt(use_case)
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        if client is not None and not isinstance(client, self._client_class):
            raise TypeError(f"client must be an {self._client_class.__name__}")
        self._owns_client = client is None
        self._client = client if client is not None else self._client_class(
            api_key=aegis_api_key, base_url=aegis_base_url, timeout=timeout)

    @property
    def extractor(self) -> str:
        """Which extractor runs: ``openai:gpt-4o-mini``, ``anthropic:...``, ``rules``..."""
        return describe(self._provider)

    @property
    def client(self) -> AegisClient | AsyncAegisClient:
        """The Aegis client underneath, for everything SmartMemory does not wrap."""
        return self._client

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(base_url={self._client.base_url!r}, "
                f"extractor={self.extractor!r}, sensitivity={self.sensitivity!r})")

    # ------------------------------------------------------------------ counters

    def _count(self, **amounts: int) -> None:
        with self._counts_lock:
            self._counts.update({name: n for name, n in amounts.items() if n})

    def get_stats(self) -> SmartStats:
        """What this instance has done: turns, skips by reason, model calls, facts stored."""
        with self._counts_lock:
            counts = dict(self._counts)
        skipped = {name.removeprefix("skipped_"): n for name, n in counts.items()
                   if name.startswith("skipped_")}
        plain = {name: n for name, n in counts.items() if not name.startswith("skipped_")}
        return SmartStats(extractor=self.extractor, sensitivity=self.sensitivity,
                          skipped=skipped, **plain)

    def _finish(self, result: TurnResult) -> TurnResult:
        self._count(
            turns=1,
            llm_calls=result.llm_calls,
            facts_extracted=len(result.extracted),
            facts_stored=len(result.stored_ids),
            duplicates=len(result.duplicate_ids),
            superseded=len(result.superseded_ids),
            below_threshold=len(result.below_threshold),
            malformed_outputs=int(result.skipped_reason == "malformed_llm_output"),
            **({f"skipped_{result.skipped_reason}": 1} if result.skipped_reason else {}),
        )
        return result

    # ------------------------------------------------------------------ plans

    def _extract(self, user_input: str, ai_response: str, result: TurnResult) -> Plan[
        list[ExtractedFact] | None
    ]:
        """Facts from the extractor; None (with ``result.error``) if the model's answer was
        unreadable twice. The second attempt shows the model its answer and what was wrong."""
        self._count(extractions=1)
        if self._provider is None:
            from aegis_memory.smart.rules import extract_facts  # compiled only when used

            return extract_facts(user_input, ai_response)
        messages: list[tuple[str, str]] = [("user", user_prompt(user_input, ai_response))]
        for _attempt in range(2):
            result.llm_calls += 1
            text = yield LLMCall(LLMRequest(self._system_prompt, tuple(messages)))
            try:
                return parse_facts(text)
            except MalformedOutput as exc:
                result.error = f"The model's answer was unusable after one retry: {exc.reason}"
                result.raw_output = exc.raw
                messages += [
                    ("assistant", exc.raw or "(empty)"),
                    ("user", retry_prompt(exc.reason)),
                ]
        return None

    def _store(
        self,
        facts: list[ExtractedFact],
        result: TurnResult,
        *,
        user_id: str | None,
        agent_id: str | None,
        namespace: str,
        metadata: Mapping[str, Any] | None,
    ) -> Plan[None]:
        """Store each fact unless the user already has it; deprecate what a keyed fact replaces.

        One search per fact (to compare with the user's nearest memories), then one batch add
        and at most one delta request, whatever the number of facts.
        """
        client = self._client
        new: list[tuple[ExtractedFact, list[Memory]]] = []
        for fact in facts:
            nearest: list[Memory] = yield ClientOps.query.build(
                client, fact.content, user_id=user_id, agent_id=agent_id, namespace=namespace,
                top_k=DEDUP_CANDIDATES,
            )
            mine = [m for m in nearest if m.user_id == user_id]
            known = next((m for m in mine if _same_text(m.content, fact.content)), None)
            if known is not None:
                result.duplicate_ids.append(known.id)
                continue
            replaced = [
                m for m in mine
                if fact.key is not None and m.metadata.get("source") == SOURCE
                and m.metadata.get("key") == fact.key
            ]
            new.append((fact, replaced))
        if not new:
            return
        items = []
        for fact, _ in new:
            tags: dict[str, Any] = {**(metadata or {}), "source": SOURCE,
                                    "category": fact.category, "confidence": fact.confidence}
            if fact.key is not None:
                tags["key"] = fact.key
            items.append({"content": fact.content, "user_id": user_id, "agent_id": agent_id,
                          "namespace": namespace, "metadata": tags,
                          "memory_type": fact.memory_type, "scope": self.scope})
        added = yield from ClientOps.add_batch.build(
            client, [{k: v for k, v in item.items() if v is not None} for item in items]
        )
        deprecations: dict[str, dict[str, Any]] = {}
        for (fact, replaced), outcome in zip(new, added, strict=True):
            if outcome.deduped:
                result.duplicate_ids.append(outcome.id)
                continue
            result.stored_ids.append(outcome.id)
            for old in replaced:
                deprecations.setdefault(old.id, {
                    "type": "deprecate", "memory_id": old.id, "superseded_by": outcome.id,
                    "reason": f"superseded by a newer {fact.key}",
                })
        if deprecations:
            yield ClientOps.apply_delta.build(client, list(deprecations.values()),
                                              agent_id=agent_id, namespace=namespace)
            result.superseded_ids.extend(deprecations)

    @operation
    def process_turn(
        self,
        user_input: str,
        ai_response: str = "",
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        force_extract: bool = False,
        namespace: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Plan[TurnResult]:
        """Remember what is worth remembering in one exchange; returns a `TurnResult`.

        Greetings and filler stop at the rule filter (no model call); ``force_extract=True``
        skips the filter. ``agent_id`` defaults to the one given to the constructor; memories
        get the scope the server picks for it (agent-private with an agent, else global)
        unless the constructor was given ``scope``.
        """
        user_input = _text_argument(user_input, "user_input", required=True)
        ai_response = _text_argument(ai_response, "ai_response", required=False)
        agent_id = agent_id or self.agent_id
        namespace = namespace or self.namespace
        result = TurnResult(extractor=self.extractor)
        decision = assess(user_input, ai_response, sensitivity=self.sensitivity)
        result.signals = list(decision.signals)
        if not force_extract and not decision.worth_extracting:
            result.skipped_reason = decision.skipped_reason
            return self._finish(result)
        if not user_input.strip() and not ai_response.strip():
            result.skipped_reason = "empty"
            return self._finish(result)
        facts = yield from self._extract(user_input, ai_response, result)
        if facts is None:
            result.skipped_reason = "malformed_llm_output"
            return self._finish(result)
        result.error = result.raw_output = None
        facts = _unique(facts)
        result.extracted = facts
        result.below_threshold = [f for f in facts if f.confidence < self.min_confidence]
        kept = [f for f in facts if f.confidence >= self.min_confidence]
        if kept:
            yield from self._store(kept, result, user_id=user_id, agent_id=agent_id,
                                   namespace=namespace, metadata=metadata)
        if not result.stored_ids:
            result.skipped_reason = (
                "nothing_extracted" if not facts
                else "below_threshold" if not kept
                else "duplicate"
            )
        return self._finish(result)

    @operation
    def store_explicit(
        self,
        content: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        category: Category = "personal_fact",
        key: str | None = None,
        namespace: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Plan[TurnResult]:
        """Store a fact you already know is worth keeping: no filter, no extraction.

        It still goes through dedup, and with ``key`` it supersedes the older fact of that key.
        ``category`` decides the memory type (``strategy``, ``mistake`` → ``reflection``).
        """
        content = _text_argument(content, "content", required=True)
        try:
            fact = ExtractedFact(content=content, category=category, confidence=1.0, key=key)
        except ValueError as exc:
            raise AegisValidationError(f"Invalid arguments: {exc}", code="invalid_arguments") \
                from None
        result = TurnResult(extractor="explicit", extracted=[fact])
        yield from self._store([fact], result, user_id=user_id,
                               agent_id=agent_id or self.agent_id,
                               namespace=namespace or self.namespace, metadata=metadata)
        if not result.stored_ids:
            result.skipped_reason = "duplicate"
        self._count(facts_stored=len(result.stored_ids), duplicates=len(result.duplicate_ids),
                    superseded=len(result.superseded_ids))
        return result

    @operation
    def get_context(
        self,
        query: str,
        *,
        user_id: str | None = None,
        agent_id: str | None = None,
        top_k: int = 5,
        max_tokens: int = 1000,
        namespace: str | None = None,
        memory_types: list[MemoryType] | None = None,
        relevance: float = 0.5,
    ) -> Plan[ContextResult]:
        """The memories that answer ``query`` as "- fact" lines within ``max_tokens``.

        Only memories scoring at least ``relevance`` times the best match are kept, so a
        question about themes gets the theme preference, not every fact about the user
        (``relevance=0`` keeps all ``top_k``). Lines that would overflow the budget are left
        out, most relevant first.
        """
        if max_tokens < 1:
            raise AegisValidationError("Invalid arguments: max_tokens must be at least 1",
                                       code="invalid_arguments")
        if not 0.0 <= relevance <= 1.0:
            raise AegisValidationError("Invalid arguments: relevance must be between 0 and 1",
                                       code="invalid_arguments")
        found = yield ClientOps.query.build(
            self._client, query, user_id=user_id, agent_id=agent_id or self.agent_id,
            namespace=namespace or self.namespace, top_k=top_k, memory_types=memory_types,
        )
        best = max((m.score or 0.0 for m in found), default=0.0)
        lines: list[str] = []
        kept: list[Memory] = []
        used = 0
        for memory in found:
            if best > 0 and (memory.score or 0.0) < best * relevance:
                continue
            line = f"- {' '.join(memory.content.split())}"
            cost = estimate_tokens(line) + (1 if lines else 0)  # the newline
            if used + cost > max_tokens:
                continue
            lines.append(line)
            kept.append(memory)
            used += cost
        return ContextResult(context_string="\n".join(lines), memories=kept, token_count=used,
                             retrieval_event_id=getattr(found, "retrieval_event_id", None))


# ============================================================================ the two drivers


class SmartMemory(SmartOps, SyncDriver):
    """Remembers what matters in conversations, on top of an Aegis server.

    ``SmartMemory(aegis_api_key="dev-key")`` talks to the server at ``aegis_base_url`` (or
    ``AEGIS_BASE_URL``, then http://localhost:8000). ``llm_api_key`` (or ``OPENAI_API_KEY`` /
    ``ANTHROPIC_API_KEY``) enables the LLM extractor of ``llm_provider``; without one the
    offline rules extract facts. ``llm=`` takes your own function instead. ``client=`` reuses
    an existing `AegisClient` (local mode, say), which SmartMemory then does not close.
    """

    _client: AegisClient
    _client_class = AegisClient

    def _send(self, call: Call[Any]) -> Any:
        return self._client._send(call)

    def _stream(self, call: Call[Any]) -> Any:
        return self._client._stream(call)

    def _run_step(self, step: Step | LLMCall) -> Any:
        if isinstance(step, LLMCall):
            assert self._provider is not None
            return self._provider.complete(step.request)
        return super()._run_step(step)

    def close(self) -> None:
        """Close the LLM client and, if SmartMemory created it, the Aegis client."""
        if self._provider is not None:
            self._provider.close()
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> SmartMemory:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class AsyncSmartMemory(SmartOps, AsyncDriver):
    """`SmartMemory` for async code: the same arguments, and its methods are coroutines.

    ``llm=`` may be a coroutine function here. Use ``async with`` or ``await memory.aclose()``.
    """

    _client: AsyncAegisClient
    _client_class = AsyncAegisClient

    async def _send(self, call: Call[Any]) -> Any:
        return await self._client._send(call)

    def _stream(self, call: Call[Any]) -> Any:
        return self._client._stream(call)

    async def _run_step(self, step: Step | LLMCall) -> Any:
        if isinstance(step, LLMCall):
            assert self._provider is not None
            return await self._provider.acomplete(step.request)
        return await super()._run_step(step)

    async def aclose(self) -> None:
        """Close the LLM client and, if AsyncSmartMemory created it, the Aegis client."""
        if self._provider is not None:
            await self._provider.aclose()
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> AsyncSmartMemory:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()

