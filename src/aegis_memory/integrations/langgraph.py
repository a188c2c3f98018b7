"""LangGraph long-term memory backed by Aegis: `AegisStore`, a `langgraph.store.base.BaseStore`.

Use it wherever LangGraph takes a store::

    from aegis_memory.integrations.langgraph import AegisStore

    graph = builder.compile(store=AegisStore(namespace="my-app"))

How LangGraph items map onto Aegis memories (and why):

* **One Aegis namespace per store.** Every item of an ``AegisStore`` lives in the Aegis namespace
  given to the constructor (default ``"langgraph"``). LangGraph namespaces are *hierarchical*
  (prefix search, ``list_namespaces``), which Aegis' flat namespaces cannot express, so the
  item's namespace tuple is kept in the memory's metadata and matched here.
* **The item's identity is its ``user_id``.** Each item gets ``user_id = "langgraph:" +
  sha256(namespace tuple, key)``. That makes (namespace, key) unique and findable: Aegis can
  filter an export by ``user_id``, and Aegis' content dedup (scoped by user) can never merge
  two different keys that happen to hold the same text. Memory ids stay server-chosen: ids are
  global across projects on a shared server, so ids derived from the key could collide with (or
  be squatted by) another tenant. The memory id of each key is cached in this process, so a
  ``get`` is usually one lookup by id, verified against the item's identity; on a miss (first
  use, or another process replaced the item) it falls back to the ``user_id`` export filter.
* **Content is the text to embed** (the fields named by ``index``, or the JSON of the whole
  value, as in LangGraph's own stores); the value itself, the namespace tuple, the key, the
  LangGraph timestamps and the TTL are kept under ``metadata["langgraph"]``. Values must
  therefore be JSON-serialisable, as `BaseStore` documents.
* **Put replaces**: an existing item is patched in place (same memory id; re-embedded only when
  its text changed). Removing a TTL cannot be expressed as a patch, so that case deletes the old
  memory and adds a new one. ``created_at`` survives replacement.
* **Search** with ``query`` is an Aegis semantic search over the store's namespace; prefix and
  ``filter`` are applied to the candidates here, asking Aegis for more candidates (up to its
  ``top_k`` limit of 1000) until ``offset + limit`` matches are found. Search without a query and
  ``list_namespaces`` read the store's namespace once per batch (an Aegis export), newest
  ``updated_at`` first; their cost grows with the size of the store, so give separate stores
  (apps, tenants) separate Aegis namespaces.
* **TTL** (minutes, LangGraph's unit) becomes Aegis ``ttl_seconds``; Aegis hides expired items
  from every read at once. Reads refresh the TTL (``refresh_ttl``) by re-setting ``ttl_seconds``.

Within one ``batch``, reads see the store as it was before the batch and writes are applied
after them (the last write to a key wins), like LangGraph's in-memory store.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import threading
import warnings
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

try:
    from langgraph.store.base import (
        BaseStore,
        GetOp,
        Item,
        ListNamespacesOp,
        MatchCondition,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
        TTLConfig,
    )
    from langgraph.store.base.embed import get_text_at_path, tokenize_path
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "aegis_memory.integrations.langgraph needs LangGraph: "
        "pip install 'aegis-memory[langgraph]'"
    ) from exc

from aegis_memory.client import (
    AegisClient,
    AegisNotFoundError,
    AsyncAegisClient,
)
from aegis_memory.schemas import MAX_CONTENT_CHARS, MAX_QUERY_CHARS, MAX_TOP_K, Memory

__all__ = ["AegisStore"]

#: Metadata key under which the LangGraph item lives in its Aegis memory.
META_KEY = "langgraph"
#: Prefix of the ``user_id`` that identifies an item (see the module docstring).
UID_PREFIX = "langgraph:"
#: How many item ids this process remembers (a bounded cache: a miss costs one export lookup).
ID_CACHE_SIZE = 10_000
#: With more unresolved keys than this in one batch, one export of the store beats N lookups.
SNAPSHOT_AFTER = 8
#: Body budget of one add_batch request (the server refuses bodies over 2 MB by default).
BATCH_BODY_BYTES = 1_500_000
#: Requests an async batch sends at once.
ASYNC_CONCURRENCY = 8
#: The longest TTL Aegis accepts (ten years).
MAX_TTL_SECONDS = 10 * 365 * 86400

MemoryScope = Literal["agent-private", "agent-shared", "global"]


# ----------------------------------------------------------------------------- requests
#
# The store's logic is written once, as generators ("plans") that yield the Aegis requests they
# need (`_Call`, or a list of them to be sent side by side) and receive the answers. `batch`
# runs a plan with the blocking client, `abatch` with the async one, so both behave the same.


@dataclass(frozen=True, slots=True)
class _Call:
    """One Aegis request: a client method name and its arguments."""

    method: Literal["get", "export", "query", "update", "delete", "add_batch"]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


Step = _Call | list[_Call]
Plan = Generator[Step, Any, Any]

#: Methods whose 404 means "already gone / not there" rather than an error.
_MISSING_OK = frozenset({"get", "update", "delete"})


def _run_sync(client: AegisClient, plan: Plan) -> Any:
    def send(call: _Call) -> Any:
        method = getattr(client, call.method)
        try:
            if call.method == "export":
                return list(method(*call.args, **call.kwargs))
            return method(*call.args, **call.kwargs)
        except AegisNotFoundError:
            if call.method in _MISSING_OK:
                return None
            raise

    answer: Any = None
    while True:
        try:
            step = plan.send(answer)
        except StopIteration as stop:
            return stop.value
        answer = [send(c) for c in step] if isinstance(step, list) else send(step)


async def _run_async(client: AsyncAegisClient, plan: Plan) -> Any:
    limit = asyncio.Semaphore(ASYNC_CONCURRENCY)

    async def send(call: _Call) -> Any:
        method = getattr(client, call.method)
        async with limit:
            try:
                if call.method == "export":
                    return [m async for m in method(*call.args, **call.kwargs)]
                return await method(*call.args, **call.kwargs)
            except AegisNotFoundError:
                if call.method in _MISSING_OK:
                    return None
                raise

    answer: Any = None
    while True:
        try:
            step = plan.send(answer)
        except StopIteration as stop:
            return stop.value
        if isinstance(step, list):
            answer = list(await asyncio.gather(*(send(c) for c in step)))
        else:
            answer = await send(step)


# ----------------------------------------------------------------------------- items


@dataclass(slots=True)
class _Stored:
    """A LangGraph item as read back from its Aegis memory."""

    memory_id: str
    uid: str
    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    ttl: float | None
    indexed: bool
    score: float | None = None

    def item(self) -> Item:
        return Item(value=self.value, key=self.key, namespace=self.namespace,
                    created_at=self.created_at, updated_at=self.updated_at)

    def search_item(self, score: float | None = None) -> SearchItem:
        return SearchItem(namespace=self.namespace, key=self.key, value=self.value,
                          created_at=self.created_at, updated_at=self.updated_at, score=score)


def _uid(namespace: tuple[str, ...], key: str) -> str:
    """The item's identity (its Aegis ``user_id``): unambiguous for any labels and key."""
    raw = json.dumps([list(namespace), key], ensure_ascii=False, separators=(",", ":"))
    return UID_PREFIX + hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(raw: Any, fallback: datetime | None) -> datetime:
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except ValueError:
            pass
    return fallback or _now()


def _ttl_seconds(minutes: float) -> int:
    """LangGraph TTLs are minutes (fractions allowed); Aegis takes whole seconds, at least 1."""
    return max(1, min(MAX_TTL_SECONDS, math.ceil(minutes * 60)))


def _namespace_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """A prefix/suffix condition, where ``"*"`` stands for any one label."""
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        compared = zip(namespace, path, strict=False)
    elif condition.match_type == "suffix":
        compared = zip(reversed(namespace), reversed(path), strict=False)
    else:
        raise ValueError(f"Unsupported namespace match type: {condition.match_type!r}")
    return all(want == "*" or have == want for have, want in compared)


_MISSING = object()


def _compare(op: str, have: Any, want: Any) -> bool:
    if have is _MISSING and op in ("$eq", "$ne"):
        have = None  # an absent field reads as null, as in a JSON document store
    if op == "$eq":
        return have == want
    if op == "$ne":
        return have != want
    if op not in ("$gt", "$gte", "$lt", "$lte"):
        raise ValueError(f"Unsupported filter operator: {op!r}")
    if have is _MISSING or have is None or isinstance(have, (dict, list)):
        return False  # nothing to order: the item simply does not match
    try:
        a, b = float(have), float(want)
    except (TypeError, ValueError):
        try:
            a, b = have, want
            a < b  # noqa: B015 - probe that the two are comparable at all
        except TypeError:
            return False
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


def _value_matches(have: Any, want: Any) -> bool:
    """JSON-document matching as LangGraph's stores do it: operators (``$gt``...), nested
    objects matched field by field, lists element by element, anything else by equality."""
    if isinstance(want, Mapping):
        if any(str(k).startswith("$") for k in want):
            return all(_compare(op, have, operand) for op, operand in want.items())
        if not isinstance(have, Mapping):
            return False
        return all(_value_matches(have.get(k, _MISSING), v) for k, v in want.items())
    if isinstance(want, (list, tuple)):
        return (
            isinstance(have, (list, tuple))
            and len(have) == len(want)
            and all(_value_matches(h, w) for h, w in zip(have, want, strict=True))
        )
    if have is _MISSING:
        return want is None
    return bool(have == want)


def _filter_matches(value: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    if not filter:
        return True
    return all(_value_matches(value.get(k, _MISSING), v) for k, v in filter.items())


def _newest(items: Iterable[_Stored]) -> _Stored | None:
    return max(items, key=lambda s: s.updated_at, default=None)


# ----------------------------------------------------------------------------- the store


class AegisStore(BaseStore):
    """A LangGraph store (long-term memory across threads) kept in Aegis Memory.

    Args:
        client: An `AegisClient`, or an `AsyncAegisClient` (then it serves ``abatch``).
        async_client: An `AsyncAegisClient` for the async methods, next to a sync ``client``.
            Without any async client, async calls run the sync client in a worker thread so
            the event loop never blocks.
        api_key, base_url: Used to build the client(s) when none is given (they fall back
            to ``AEGIS_API_KEY`` / ``AEGIS_BASE_URL`` and the CLI config, like `AegisClient`).
        namespace: The Aegis namespace holding all of this store's items.
        agent_id: The agent the store acts as (owner of new items; visibility of reads).
        scope: Scope of new items; default: agent-private with ``agent_id``, else global.
        index: LangGraph's index config; only ``fields`` is used (which parts of a value are
            embedded, default the whole value). Embedding happens on the Aegis server, so
            ``dims`` and ``embed`` do not apply.
        ttl: LangGraph's ``TTLConfig`` (``default_ttl`` in minutes, ``refresh_on_read``).
    """

    supports_ttl: bool = True

    def __init__(
        self,
        client: AegisClient | AsyncAegisClient | None = None,
        *,
        async_client: AsyncAegisClient | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        namespace: str = "langgraph",
        agent_id: str | None = None,
        scope: MemoryScope | None = None,
        index: Mapping[str, Any] | None = None,
        ttl: TTLConfig | None = None,
    ) -> None:
        if isinstance(client, AsyncAegisClient):
            if async_client is not None:
                raise TypeError("Give the async client once: as `client` or as `async_client`.")
            client, async_client = None, client
        if client is not None and not isinstance(client, AegisClient):
            raise TypeError(f"client must be an AegisClient or AsyncAegisClient, not {client!r}")
        self._api_key = api_key
        self._base_url = base_url
        self._owns_sync = client is None and async_client is None
        self._client: AegisClient | None = client
        if self._owns_sync:
            self._client = AegisClient(api_key=api_key, base_url=base_url)
        self._async_client: AsyncAegisClient | None = async_client
        self._async_loop: asyncio.AbstractEventLoop | None = None
        self._owns_async = False
        self.namespace = namespace
        self.agent_id = agent_id
        self.scope: MemoryScope | None = scope
        self.ttl_config = ttl
        fields = list((index or {}).get("fields") or ["$"])
        if index and ({"embed", "dims"} & set(index)):
            warnings.warn(
                "AegisStore embeds on the Aegis server: index 'embed'/'dims' are ignored, "
                "only 'fields' is used.",
                stacklevel=2,
            )
        self._fields: list[tuple[str, str | list[str]]] = [
            (path, path if path == "$" else tokenize_path(path)) for path in fields
        ]
        self._ids: dict[str, str] = {}  # uid -> memory id, see the module docstring
        self._ids_lock = threading.Lock()  # batch() may run in several threads at once

    # ------------------------------------------------------------------ clients

    @property
    def client(self) -> AegisClient:
        """The blocking client (built from the async client's key and URL if only that was
        given, unless it talks to an in-process server, which a second client cannot reach)."""
        if self._client is None:
            assert self._async_client is not None
            if self._async_client._transport is not None:
                raise TypeError(
                    "This AegisStore was given only an AsyncAegisClient with its own transport "
                    "(local mode?): use the async methods (aget, asearch, ...), or pass an "
                    "AegisClient as well."
                )
            config = self._async_client.config
            self._client = AegisClient(api_key=config.api_key, base_url=config.base_url)
            self._owns_sync = True
        return self._client

    def _async_for_loop(self) -> AsyncAegisClient | None:
        """The async client for the running loop, or None to use the sync one in a thread.

        A client we built ourselves is rebuilt when the event loop changes, since an httpx
        async connection pool belongs to the loop that opened it.
        """
        if self._async_client is not None and not self._owns_async:
            return self._async_client
        if self._client is not None and not self._owns_sync:
            return None  # the caller gave a sync client only: it decides where we connect
        if self._client is not None and self._client._transport is not None:
            return None  # local mode: only the given client reaches that server
        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_loop is not loop:
            if self._client is not None:
                config = self._client.config
                self._async_client = AsyncAegisClient(config.api_key, config.base_url)
            else:
                self._async_client = AsyncAegisClient(self._api_key, self._base_url)
            self._async_loop = loop
            self._owns_async = True
        return self._async_client

    def close(self) -> None:
        """Release the connections of the clients this store created (not the ones given)."""
        if self._owns_sync and self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """`close`, plus the async client this store created for the current loop."""
        self.close()
        if self._owns_async and self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    def __enter__(self) -> AegisStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> AegisStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ BaseStore

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations in order of reads first, then writes (see the module docs)."""
        return _run_sync(self.client, self._batch_plan(list(ops)))

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """`batch` without blocking the event loop: the async client, or else a worker thread."""
        ops = list(ops)
        client = self._async_for_loop()
        if client is None:
            return await asyncio.to_thread(self.batch, ops)
        return await _run_async(client, self._batch_plan(ops))

    # ------------------------------------------------------------------ plans

    def _batch_plan(self, ops: list[Op]) -> Plan:
        results: list[Result] = [None] * len(ops)
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, PutOp):
                puts.pop((tuple(op.namespace), op.key), None)  # last write wins, in order
                puts[(tuple(op.namespace), op.key)] = op
            elif not isinstance(op, (GetOp, SearchOp, ListNamespacesOp)):
                raise ValueError(f"Unknown operation type: {type(op)}")

        gets = [(i, op) for i, op in enumerate(ops) if isinstance(op, GetOp)]
        queries = [(i, op) for i, op in enumerate(ops)
                   if isinstance(op, SearchOp) and self._is_semantic(op)]
        listings = [(i, op) for i, op in enumerate(ops)
                    if isinstance(op, (ListNamespacesOp, SearchOp)) and not (
                        isinstance(op, SearchOp) and self._is_semantic(op))]

        # One read of the whole store serves every listing, and replaces per-key lookups
        # when there are many keys this process does not know yet.
        keys = {(tuple(op.namespace), op.key) for _, op in gets} | set(puts)
        unknown = sum(1 for ns, key in keys if _uid(ns, key) not in self._ids)
        snapshot: dict[str, list[_Stored]] | None = None
        if listings or unknown > SNAPSHOT_AFTER:
            snapshot = yield from self._read_all()

        found = yield from self._resolve(keys, snapshot)
        to_refresh: dict[str, _Stored] = {}

        for i, op in gets:
            stored = _newest(found[_uid(tuple(op.namespace), op.key)])
            results[i] = stored.item() if stored else None
            if stored and op.refresh_ttl and stored.ttl is not None:
                to_refresh[stored.memory_id] = stored

        for i, op in queries:
            hits = yield from self._semantic_search(op, snapshot)
            results[i] = [s.search_item(s.score) for s in hits]
            if op.refresh_ttl:
                to_refresh.update((s.memory_id, s) for s in hits if s.ttl is not None)

        for i, op in listings:
            assert snapshot is not None
            if isinstance(op, ListNamespacesOp):
                results[i] = self._list_namespaces(op, snapshot)
            else:
                page = self._list_items(op, snapshot)
                results[i] = [s.search_item() for s in page]
                if op.refresh_ttl:
                    to_refresh.update((s.memory_id, s) for s in page if s.ttl is not None)

        if to_refresh:
            yield [
                _Call("update", (s.memory_id,), {"agent_id": self.agent_id,
                                                 "ttl_seconds": _ttl_seconds(s.ttl or 0)})
                for s in to_refresh.values()
            ]

        if puts:
            yield from self._apply_puts(puts, found)
        return results

    def _is_semantic(self, op: SearchOp) -> bool:
        return bool(op.query and op.query.strip())

    def _parse(self, memory: Memory) -> _Stored | None:
        """The item a memory holds, or None for memories that are not this store's items."""
        record = memory.metadata.get(META_KEY)
        if memory.namespace != self.namespace or not isinstance(record, dict):
            return None
        ns, key, value = record.get("namespace"), record.get("key"), record.get("value")
        if not isinstance(ns, list) or not isinstance(key, str) or not isinstance(value, dict):
            return None
        namespace = tuple(str(label) for label in ns)
        uid = _uid(namespace, key)
        if memory.user_id != uid:
            return None  # copied metadata, not the item's own memory
        created = _parse_time(record.get("created_at"), memory.created_at)
        ttl = record.get("ttl")
        return _Stored(
            memory_id=memory.id, uid=uid, namespace=namespace, key=key, value=value,
            created_at=created, updated_at=_parse_time(record.get("updated_at"), created),
            ttl=float(ttl) if isinstance(ttl, (int, float)) else None,
            indexed=bool(record.get("indexed", True)), score=memory.score,
        )

    def _remember(self, stored: Iterable[tuple[str, str]]) -> None:
        """Cache (uid, memory id) pairs, most recent last; the oldest fall out first."""
        with self._ids_lock:
            for uid, memory_id in stored:
                self._ids.pop(uid, None)
                self._ids[uid] = memory_id
            while len(self._ids) > ID_CACHE_SIZE:
                self._ids.pop(next(iter(self._ids)))

    def _forget(self, uid: str) -> None:
        with self._ids_lock:
            self._ids.pop(uid, None)

    def _export(self, user_id: str | None = None) -> _Call:
        return _Call("export", (), {"namespace": self.namespace, "agent_id": self.agent_id,
                                    "user_id": user_id, "include_deprecated": False})

    def _read_all(self) -> Generator[Step, Any, dict[str, list[_Stored]]]:
        """Every item of the store, grouped by identity (normally one memory per item)."""
        memories = yield self._export()
        items: dict[str, list[_Stored]] = {}
        for memory in memories:
            stored = self._parse(memory)
            if stored is not None:
                items.setdefault(stored.uid, []).append(stored)
        self._remember((uid, _newest(group).memory_id)  # type: ignore[union-attr]
                       for uid, group in items.items())
        return items

    def _resolve(
        self, keys: Iterable[tuple[tuple[str, ...], str]],
        snapshot: dict[str, list[_Stored]] | None,
    ) -> Generator[Step, Any, dict[str, list[_Stored]]]:
        """The memories currently holding each key: from the snapshot, else by the cached
        memory id (checked against the key), else by the ``user_id`` export filter."""
        uids = list(dict.fromkeys(_uid(ns, key) for ns, key in keys))
        found: dict[str, list[_Stored]] = {}
        if snapshot is not None:
            return {uid: snapshot.get(uid, []) for uid in uids}
        with self._ids_lock:
            cached = {uid: self._ids[uid] for uid in uids if uid in self._ids}
        if cached:
            memories = yield [_Call("get", (mid,), {"agent_id": self.agent_id})
                              for mid in cached.values()]
            for uid, memory in zip(cached, memories, strict=True):
                stored = self._parse(memory) if memory is not None else None
                if stored is not None and stored.uid == uid:
                    found[uid] = [stored]
                else:
                    self._forget(uid)
        missing = [uid for uid in uids if uid not in found]
        if missing:
            exports = yield [self._export(uid) for uid in missing]
            for uid, memories in zip(missing, exports, strict=True):
                group = [s for s in map(self._parse, memories) if s is not None and s.uid == uid]
                found[uid] = group
                if group:
                    self._remember([(uid, _newest(group).memory_id)])  # type: ignore[union-attr]
        return found

    def _semantic_search(
        self, op: SearchOp, snapshot: dict[str, list[_Stored]] | None
    ) -> Generator[Step, Any, list[_Stored]]:
        """Aegis ranks; prefix and filter are applied here, widening the candidate pool until
        ``offset + limit`` matches are found or the namespace is exhausted."""
        want = max(0, op.offset) + max(0, op.limit)
        top_k = min(MAX_TOP_K, max(50, want * 3))
        prefix = tuple(op.namespace_prefix)
        while True:
            memories = yield _Call("query", (op.query[:MAX_QUERY_CHARS],), {
                "namespace": self.namespace, "agent_id": self.agent_id, "top_k": top_k})
            exhausted = len(memories) < top_k
            matching: list[_Stored] = []
            seen: set[str] = set()
            for memory in memories:
                stored = self._parse(memory)
                if (stored is None or stored.uid in seen
                        or stored.namespace[: len(prefix)] != prefix
                        or not _filter_matches(stored.value, op.filter)):
                    continue
                seen.add(stored.uid)
                matching.append(stored)
            scored = [s for s in matching if s.indexed]
            if len(scored) >= want or exhausted or top_k >= MAX_TOP_K:
                break
            top_k = min(MAX_TOP_K, top_k * 4)
        hits = scored[op.offset: op.offset + op.limit]
        if len(hits) < op.limit:
            # Items stored with index=False have no place in a ranking: like LangGraph's own
            # stores, they fill the page after the ranked ones, without a score.
            if exhausted:
                unranked = [s for s in matching if not s.indexed]
            else:
                if snapshot is None:
                    snapshot = yield from self._read_all()
                unranked = [s for s in self._select(snapshot, prefix, op.filter)
                            if not s.indexed]
            for s in unranked[: op.limit - len(hits)]:
                s.score = None
                hits.append(s)
        return hits

    def _select(
        self, snapshot: dict[str, list[_Stored]], prefix: tuple[str, ...],
        filter: Mapping[str, Any] | None,
    ) -> list[_Stored]:
        """Items under ``prefix`` matching ``filter``, most recently updated first."""
        items = [s for s in (_newest(g) for g in snapshot.values()) if s is not None]
        chosen = [s for s in items
                  if s.namespace[: len(prefix)] == prefix and _filter_matches(s.value, filter)]
        chosen.sort(key=lambda s: (s.updated_at, s.namespace, s.key), reverse=True)
        return chosen

    def _list_items(self, op: SearchOp, snapshot: dict[str, list[_Stored]]) -> list[_Stored]:
        chosen = self._select(snapshot, tuple(op.namespace_prefix), op.filter)
        return chosen[op.offset: op.offset + op.limit]

    def _list_namespaces(
        self, op: ListNamespacesOp, snapshot: dict[str, list[_Stored]]
    ) -> list[tuple[str, ...]]:
        namespaces = {s.namespace for group in snapshot.values() for s in group}
        conditions = op.match_conditions or ()
        selected = {ns for ns in namespaces
                    if all(_namespace_matches(c, ns) for c in conditions)}
        if op.max_depth is not None:
            selected = {ns[: op.max_depth] for ns in selected}
        return sorted(selected)[op.offset: op.offset + op.limit]

    # ------------------------------------------------------------------ writes

    def _content(self, value: Mapping[str, Any], index: Literal[False] | list[str] | None
                 ) -> tuple[str, bool]:
        """The text Aegis embeds, and whether the item takes part in semantic ranking."""
        if index is False:
            paths: Sequence[tuple[str, str | list[str]]] = []
        elif index is None:
            paths = self._fields
        else:
            paths = [(p, p if p == "$" else tokenize_path(p)) for p in index]
        texts = [t for _, path in paths for t in get_text_at_path(value, path) if t.strip()]
        if texts:
            return "\n".join(texts)[:MAX_CONTENT_CHARS], True
        # Aegis needs some text; the JSON stays out of rankings (indexed=False).
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)[:MAX_CONTENT_CHARS]
        return text, False

    def _apply_puts(
        self, puts: dict[tuple[tuple[str, ...], str], PutOp], found: dict[str, list[_Stored]]
    ) -> Generator[Step, Any, None]:
        now = _now()
        deletes: list[str] = []
        patches: list[tuple[str, str, dict[str, Any]]] = []  # (uid, memory id, update kwargs)
        adds: list[dict[str, Any]] = []
        for (namespace, key), op in puts.items():
            uid = _uid(namespace, key)
            existing = sorted(found.get(uid, []), key=lambda s: s.updated_at, reverse=True)
            if op.value is None:
                deletes.extend(s.memory_id for s in existing)
                self._forget(uid)
                continue
            value = json.loads(json.dumps(dict(op.value)))  # JSON-safe now, not mid-request
            content, indexed = self._content(value, op.index)
            if op.ttl is not None and op.ttl <= 0:
                raise ValueError(f"ttl must be a positive number of minutes, got {op.ttl!r}")
            record = {
                "namespace": list(namespace), "key": key, "value": value,
                "created_at": (existing[0].created_at if existing else now).isoformat(),
                "updated_at": now.isoformat(), "ttl": op.ttl, "indexed": indexed,
            }
            ttl_seconds = _ttl_seconds(op.ttl) if op.ttl is not None else None
            keep = existing[0] if existing and (op.ttl is not None or existing[0].ttl is None) \
                else None
            deletes.extend(s.memory_id for s in existing if s is not keep)
            if keep is not None:
                patches.append((uid, keep.memory_id, {
                    "agent_id": self.agent_id, "content": content,
                    "metadata": {META_KEY: record}, "ttl_seconds": ttl_seconds}))
            else:
                adds.append(self._new_memory(uid, content, record, ttl_seconds))
        if deletes:
            yield [_Call("delete", (mid,), {"agent_id": self.agent_id}) for mid in deletes]
        if patches:
            updated = yield [_Call("update", (mid,), kw) for _, mid, kw in patches]
            for (uid, _, kw), memory in zip(patches, updated, strict=True):
                if memory is None:  # deleted meanwhile: create it again
                    record = kw["metadata"][META_KEY]
                    adds.append(self._new_memory(uid, kw["content"], record, kw["ttl_seconds"]))
        yield from self._add(adds)

    def _new_memory(self, uid: str, content: str, record: dict[str, Any],
                    ttl_seconds: int | None) -> dict[str, Any]:
        item: dict[str, Any] = {"content": content, "user_id": uid, "namespace": self.namespace,
                                "metadata": {META_KEY: record}}
        if self.agent_id is not None:
            item["agent_id"] = self.agent_id
        if self.scope is not None:
            item["scope"] = self.scope
        if ttl_seconds is not None:
            item["ttl_seconds"] = ttl_seconds
        return item

    def _add(self, adds: list[dict[str, Any]]) -> Generator[Step, Any, None]:
        """Add new memories in as few requests as the body limit allows."""
        chunks: list[list[dict[str, Any]]] = []
        size = 0
        for item in adds:
            item_size = len(json.dumps(item, ensure_ascii=False).encode("utf-8"))
            if not chunks or len(chunks[-1]) >= 100 or size + item_size > BATCH_BODY_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(item)
            size += item_size
        if not chunks:
            return
        answers = yield [_Call("add_batch", (chunk,)) for chunk in chunks]
        fixes: list[_Call] = []
        for chunk, results in zip(chunks, answers, strict=True):
            for item, result in zip(chunk, results, strict=True):
                self._remember([(item["user_id"], result.id)])
                if result.deduped:
                    # A concurrent writer stored the same text for this key first: make its
                    # memory carry our value, so the last write still wins.
                    fixes.append(_Call("update", (result.id,), {
                        "agent_id": self.agent_id, "metadata": item["metadata"],
                        "ttl_seconds": item.get("ttl_seconds")}))
        if fixes:
            yield fixes

