"""`AegisStore` against LangGraph's store contract.

LangGraph 1.x ships no reusable store test-suite, so these are the cases of `BaseStore`'s
documented semantics (put/get/update/delete, prefix search, filters, ranked query search,
limit/offset, list_namespaces, batches, async twins, TTL, use from a compiled graph). Each
contract test runs twice with the *same* expectations: against LangGraph's own `InMemoryStore`
(the reference) and against `AegisStore` on a real Aegis server (no mocks). Where the two
embed differently (a bag-of-words function for the reference, MiniLM on the server) tests
assert the rank of an obviously relevant item, never exact scores.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langgraph.config import get_store
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from aegis_memory.client import AegisClient, AsyncAegisClient
from aegis_memory.integrations.langgraph import AegisStore
from tests.conftest import ServerProcess

DIMS = 128


def bag_of_words(texts: list[str]) -> list[list[float]]:
    """A tiny deterministic embedding for the reference store: hashed word counts, so texts
    sharing words are similar (the property the ranking tests rely on)."""
    vectors = []
    for text in texts:
        vec = [0.0] * DIMS
        for word in re.findall(r"[a-z]+", text.lower()):
            vec[int(hashlib.md5(word.encode()).hexdigest(), 16) % DIMS] += 1.0
        vectors.append(vec)
    return vectors


def reference_store() -> InMemoryStore:
    return InMemoryStore(index={"dims": DIMS, "embed": bag_of_words})


@pytest.fixture
def client(sqlite_server: ServerProcess) -> Iterator[AegisClient]:
    with AegisClient(api_key="dev-key", base_url=sqlite_server.base_url) as c:
        yield c


@pytest.fixture(params=["memory", "aegis"])
def store(request: pytest.FixtureRequest, ns: str) -> Iterator[BaseStore]:
    """The reference store and ours, one per run of each contract test."""
    if request.param == "memory":
        yield reference_store()
        return
    client: AegisClient = request.getfixturevalue("client")
    with AegisStore(client, namespace=ns) as aegis:
        yield aegis


DOCS = {
    "pasta": {"text": "Recipe for pasta carbonara with eggs and cheese", "kind": "food",
              "rating": 5},
    "python": {"text": "Python programming language tutorial for beginners", "kind": "code",
               "rating": 4},
    "weather": {"text": "Weather forecast says rain tomorrow in Paris", "kind": "news",
                "rating": 2},
    "soup": {"text": "Tomato soup recipe with basil", "kind": "food", "rating": 3},
}


def put_docs(store: BaseStore, namespace: tuple[str, ...] = ("docs",)) -> None:
    for key, value in DOCS.items():
        store.put(namespace, key, value)


def keys(items: list[SearchItem] | list[Item]) -> list[str]:
    return [item.key for item in items]


# ----------------------------------------------------------------------------- put / get


def test_put_get_update_delete(store: BaseStore) -> None:
    assert store.get(("users", "u1"), "prefs") is None
    store.put(("users", "u1"), "prefs", {"theme": "dark", "nested": {"a": [1, 2, {"b": None}]}})
    item = store.get(("users", "u1"), "prefs")
    assert isinstance(item, Item)
    assert item.namespace == ("users", "u1")
    assert item.key == "prefs"
    assert item.value == {"theme": "dark", "nested": {"a": [1, 2, {"b": None}]}}
    assert isinstance(item.created_at, datetime) and item.created_at.tzinfo is not None
    assert item.updated_at >= item.created_at

    time.sleep(0.01)
    store.put(("users", "u1"), "prefs", {"theme": "light"})
    updated = store.get(("users", "u1"), "prefs")
    assert updated is not None
    assert updated.value == {"theme": "light"}  # replaced, not merged
    assert updated.updated_at > item.updated_at
    assert len(store.search(("users", "u1"))) == 1  # still one item for the key

    store.delete(("users", "u1"), "prefs")
    assert store.get(("users", "u1"), "prefs") is None
    assert store.search(("users",)) == []
    store.delete(("users", "u1"), "prefs")  # deleting a missing item is not an error


def test_keys_are_unique_per_namespace_not_globally(store: BaseStore) -> None:
    store.put(("a",), "k", {"v": 1})
    store.put(("a", "b"), "k", {"v": 2})
    store.put(("b",), "k", {"v": 3})
    assert store.get(("a",), "k").value == {"v": 1}  # type: ignore[union-attr]
    assert store.get(("a", "b"), "k").value == {"v": 2}  # type: ignore[union-attr]
    assert store.get(("b",), "k").value == {"v": 3}  # type: ignore[union-attr]
    store.delete(("a",), "k")
    assert store.get(("a",), "k") is None
    assert store.get(("a", "b"), "k") is not None


def test_same_value_under_two_keys_stays_two_items(store: BaseStore) -> None:
    # Aegis deduplicates identical content; two keys with the same value must not merge.
    store.put(("dup",), "one", {"text": "same words"})
    store.put(("dup",), "two", {"text": "same words"})
    assert sorted(keys(store.search(("dup",)))) == ["one", "two"]
    store.put(("dup",), "one", {"text": "same words"})  # re-put unchanged
    assert store.get(("dup",), "one").value == {"text": "same words"}  # type: ignore[union-attr]
    store.delete(("dup",), "one")
    assert keys(store.search(("dup",))) == ["two"]


def test_invalid_namespaces_are_refused(store: BaseStore) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.put(("langgraph", "x"), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        store.put((), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        store.put(("a.b",), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        store.get(("",), "k")


# ----------------------------------------------------------------------------- search


def test_search_by_prefix(store: BaseStore) -> None:
    store.put(("docs", "a"), "1", {"n": 1})
    store.put(("docs", "a", "deep"), "2", {"n": 2})
    store.put(("docs", "b"), "3", {"n": 3})
    store.put(("other",), "4", {"n": 4})
    assert sorted(keys(store.search(("docs",)))) == ["1", "2", "3"]
    assert sorted(keys(store.search(("docs", "a")))) == ["1", "2"]
    assert keys(store.search(("docs", "b"))) == ["3"]
    assert sorted(keys(store.search(()))) == ["1", "2", "3", "4"]
    assert store.search(("doc",)) == []  # labels match whole, not as string prefixes
    results = store.search(("docs", "a"))
    assert all(isinstance(r, SearchItem) and r.score is None for r in results)
    assert {r.namespace for r in results} == {("docs", "a"), ("docs", "a", "deep")}


def test_search_filters(store: BaseStore) -> None:
    put_docs(store)
    store.put(("docs",), "nested", {"meta": {"lang": "en", "tags": ["x", "y"]}, "rating": 1})

    def found(**kw: Any) -> list[str]:
        return sorted(keys(store.search(("docs",), **kw)))

    assert found(filter={"kind": "food"}) == ["pasta", "soup"]
    assert found(filter={"kind": "food", "rating": 5}) == ["pasta"]
    assert found(filter={"rating": {"$gt": 3}}) == ["pasta", "python"]
    assert found(filter={"rating": {"$gte": 3, "$lt": 5}}) == ["python", "soup"]
    assert found(filter={"rating": {"$lte": 2}}) == ["nested", "weather"]
    assert found(filter={"kind": {"$ne": "food"}}) == ["nested", "python", "weather"]
    assert found(filter={"kind": {"$eq": "news"}}) == ["weather"]
    assert found(filter={"meta": {"lang": "en"}}) == ["nested"]
    assert found(filter={"meta": {"tags": ["x", "y"]}}) == ["nested"]
    assert found(filter={"meta": {"tags": ["y", "x"]}}) == []
    assert found(filter={"kind": "nothing"}) == []


def test_query_search_ranks_relevant_first(store: BaseStore) -> None:
    put_docs(store)
    store.put(("elsewhere",), "python2", {"text": "Python programming language tutorial"})

    results = store.search(("docs",), query="python programming tutorial")
    assert results[0].key == "python"
    assert "python2" not in keys(results)  # the prefix still applies
    scores = [r.score for r in results]
    assert all(isinstance(s, float) for s in scores)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]

    assert store.search(("docs",), query="pasta carbonara recipe")[0].key == "pasta"
    food = store.search(("docs",), query="recipe with tomato and basil",
                        filter={"kind": "food"})
    assert keys(food)[0] == "soup"
    assert set(keys(food)) == {"soup", "pasta"}


def test_limit_and_offset(store: BaseStore) -> None:
    for i in range(7):
        store.put(("page",), f"k{i}", {"i": i})
    first = store.search(("page",), limit=3)
    second = store.search(("page",), limit=3, offset=3)
    third = store.search(("page",), limit=3, offset=6)
    assert (len(first), len(second), len(third)) == (3, 3, 1)
    assert sorted(keys(first) + keys(second) + keys(third)) == [f"k{i}" for i in range(7)]
    assert store.search(("page",), limit=3, offset=10) == []


def test_query_limit_and_offset(store: BaseStore) -> None:
    put_docs(store)
    everything = store.search(("docs",), query="python programming tutorial", limit=10)
    assert len(everything) == 4
    page1 = store.search(("docs",), query="python programming tutorial", limit=2)
    page2 = store.search(("docs",), query="python programming tutorial", limit=2, offset=2)
    assert keys(page1) == keys(everything)[:2]
    assert keys(page2) == keys(everything)[2:]
    assert page1[0].key == "python"


def test_per_item_index_fields_and_unindexed_items(store: BaseStore) -> None:
    store.put(("idx",), "title", {"title": "Guide to growing tomatoes", "body": "zzz"},
              index=["title"])
    store.put(("idx",), "body", {"title": "zzz", "body": "Guide to growing tomatoes"},
              index=["title"])
    store.put(("idx",), "hidden", {"title": "Guide to growing tomatoes"}, index=False)
    results = store.search(("idx",), query="growing tomatoes guide")
    assert results[0].key == "title"
    assert results[0].score is not None
    # Not indexed: still found, after the ranked items and without a score.
    assert results[-1].key == "hidden" and results[-1].score is None
    assert store.get(("idx",), "hidden") is not None


# ----------------------------------------------------------------------------- namespaces


def test_list_namespaces(store: BaseStore) -> None:
    for ns in [("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f"),
               ("a", "c", "f"), ("x", "y")]:
        store.put(ns, "k", {"v": 1})
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"), ("a", "b", "d"), ("a", "b", "f")]
    assert store.list_namespaces() == [
        ("a", "b", "c"), ("a", "b", "d", "e"), ("a", "b", "d", "i"), ("a", "b", "f"),
        ("a", "c", "f"), ("x", "y")]
    assert store.list_namespaces(suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("a",), suffix=("i",)) == [("a", "b", "d", "i")]
    assert store.list_namespaces(max_depth=1) == [("a",), ("x",)]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d", "e"), ("a", "b", "d", "i")]
    if isinstance(store, AegisStore):
        # A namespace exists while it holds items. (InMemoryStore keeps emptied namespaces
        # listed; LangGraph's Postgres store, like this one, does not.)
        store.delete(("x", "y"), "k")
        assert store.list_namespaces(prefix=("x",)) == []


# ----------------------------------------------------------------------------- batches


def test_batch_of_mixed_ops(store: BaseStore) -> None:
    store.put(("b",), "old", {"v": 0})
    results = store.batch([
        PutOp(("b",), "new", {"v": 1}),
        GetOp(("b",), "old"),
        GetOp(("b",), "new"),  # reads see the store as it was before the batch
        SearchOp(("b",)),
        ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("b",)),)),
        PutOp(("b",), "old", None),
        PutOp(("b",), "twice", {"v": 1}),
        PutOp(("b",), "twice", {"v": 2}),  # the last write to a key wins
    ])
    assert len(results) == 8
    assert results[0] is None
    assert results[1].value == {"v": 0}  # type: ignore[union-attr]
    assert results[2] is None
    assert keys(results[3]) == ["old"]  # type: ignore[arg-type]
    assert results[4] == [("b",)]
    assert results[5] is None and results[6] is None and results[7] is None
    assert store.get(("b",), "old") is None
    assert store.get(("b",), "new").value == {"v": 1}  # type: ignore[union-attr]
    assert store.get(("b",), "twice").value == {"v": 2}  # type: ignore[union-attr]


def test_many_keys_in_one_batch(store: BaseStore) -> None:
    store.batch([PutOp(("many", str(i % 3)), f"k{i}", {"i": i}) for i in range(30)])
    got = store.batch([GetOp(("many", str(i % 3)), f"k{i}") for i in range(30)])
    assert [item.value["i"] for item in got] == list(range(30))  # type: ignore[union-attr]
    assert len(store.search(("many",), limit=100)) == 30


# ----------------------------------------------------------------------------- async


async def test_async_operations(store: BaseStore) -> None:
    await store.aput(("as", "u"), "a", {"text": "Async pasta recipe with cheese"})
    await store.aput(("as", "u"), "b", {"text": "Python asyncio event loop tutorial"})
    item = await store.aget(("as", "u"), "a")
    assert item is not None and item.value["text"].startswith("Async pasta")
    hits = await store.asearch(("as",), query="python asyncio tutorial")
    assert hits[0].key == "b"
    assert sorted(keys(await store.asearch(("as",), filter={"text": {"$ne": "x"}}))) == [
        "a", "b"]
    assert await store.alist_namespaces(prefix=("as",)) == [("as", "u")]
    await store.adelete(("as", "u"), "a")
    assert await store.aget(("as", "u"), "a") is None
    results = await store.abatch([GetOp(("as", "u"), "b"), PutOp(("as", "u"), "c", {"v": 3})])
    assert results[0].value["text"].startswith("Python")  # type: ignore[union-attr]
    assert (await store.aget(("as", "u"), "c")).value == {"v": 3}  # type: ignore[union-attr]


async def test_concurrent_async_puts(store: BaseStore) -> None:
    await asyncio.gather(*(store.aput(("conc",), f"k{i}", {"i": i}) for i in range(10)))
    found = await store.asearch(("conc",), limit=20)
    assert sorted(item.value["i"] for item in found) == list(range(10))


# ----------------------------------------------------------------------------- graphs


class State(TypedDict):
    user: str
    text: str
    found: list[str]


def remember(state: State) -> dict[str, Any]:
    store = get_store()
    store.put(("memories", state["user"]), uuid.uuid4().hex, {"text": state["text"]})
    return {}


def recall(state: State) -> dict[str, Any]:
    store = get_store()
    hits = store.search(("memories", state["user"]), query=state["text"], limit=3)
    return {"found": [h.value["text"] for h in hits]}


def test_graph_compiled_with_store(store: BaseStore) -> None:
    graph = (
        StateGraph(State)
        .add_node("remember", remember)
        .add_node("recall", recall)
        .add_edge(START, "remember")
        .add_edge("remember", "recall")
        .add_edge("recall", END)
        .compile(store=store)
    )
    graph.invoke({"user": "ann", "text": "Ann is allergic to peanuts", "found": []})
    out = graph.invoke({"user": "ann", "text": "Ann likes hiking in the Alps", "found": []})
    assert out["found"][0] == "Ann likes hiking in the Alps"
    assert sorted(out["found"]) == ["Ann is allergic to peanuts", "Ann likes hiking in the Alps"]
    assert store.search(("memories", "bob")) == []


async def test_async_graph_with_runtime_store(store: BaseStore) -> None:
    async def node(state: State, runtime: Runtime[None]) -> dict[str, Any]:
        assert runtime.store is not None
        await runtime.store.aput(("notes", state["user"]), "latest", {"text": state["text"]})
        item = await runtime.store.aget(("notes", state["user"]), "latest")
        return {"found": [item.value["text"]] if item else []}

    graph = StateGraph(State).add_node("node", node).add_edge(START, "node").compile(
        store=store)
    out = await graph.ainvoke({"user": "zoe", "text": "first", "found": []})
    assert out["found"] == ["first"]
    out = await graph.ainvoke({"user": "zoe", "text": "second", "found": []})
    assert out["found"] == ["second"]


# ----------------------------------------------------------------------------- Aegis only:
# TTL (InMemoryStore has none), persistence across processes, agents, client wiring


def test_ttl_support_is_declared() -> None:
    assert AegisStore.supports_ttl is True
    assert InMemoryStore.supports_ttl is False
    with pytest.raises(NotImplementedError):
        reference_store().put(("t",), "k", {"v": 1}, ttl=1)


def wait_until_gone(read: Any, timeout: float = 10.0) -> float:
    started = time.monotonic()
    while read():
        assert time.monotonic() - started < timeout, "item did not expire"
        time.sleep(0.25)
    return time.monotonic() - started


def test_ttl_expiry(client: AegisClient, ns: str) -> None:
    store = AegisStore(client, namespace=ns)
    store.put(("t",), "short", {"v": 1}, ttl=1 / 60)  # one second
    store.put(("t",), "long", {"v": 2}, ttl=60)
    store.put(("t",), "forever", {"v": 3})
    assert store.get(("t",), "short", refresh_ttl=False) is not None
    wait_until_gone(lambda: store.get(("t",), "short", refresh_ttl=False))
    assert sorted(keys(store.search(("t",)))) == ["forever", "long"]
    assert keys(store.search(("t",), query="v")).count("short") == 0
    store.put(("gone",), "x", {"v": 1}, ttl=1 / 60)
    wait_until_gone(lambda: store.list_namespaces(prefix=("gone",)))


def test_ttl_refresh_on_read(client: AegisClient, ns: str) -> None:
    store = AegisStore(client, namespace=ns)
    store.put(("r",), "read", {"v": 1}, ttl=3 / 60)
    store.put(("r",), "unread", {"v": 2}, ttl=3 / 60)
    for _ in range(4):  # 4 x 1.5 s: past the 3 s TTL, but each read renews it
        time.sleep(1.5)
        assert store.get(("r",), "read") is not None
    assert store.get(("r",), "unread", refresh_ttl=False) is None
    store.put(("r",), "search", {"v": 3}, ttl=3 / 60)
    for _ in range(3):
        time.sleep(1.5)
        assert keys(store.search(("r",), filter={"v": 3})) == ["search"]


def test_ttl_default_and_removal(client: AegisClient, ns: str) -> None:
    store = AegisStore(client, namespace=ns, ttl={"default_ttl": 1 / 60})
    store.put(("d",), "default", {"v": 1})
    store.put(("d",), "kept", {"v": 2})
    store.put(("d",), "kept", {"v": 2}, ttl=None)  # an explicit None removes the TTL
    created = store.get(("d",), "kept", refresh_ttl=False).created_at  # type: ignore[union-attr]
    wait_until_gone(lambda: store.get(("d",), "default", refresh_ttl=False))
    kept = store.get(("d",), "kept")
    assert kept is not None and kept.created_at == created


def test_items_persist_and_a_stale_id_cache_recovers(client: AegisClient, ns: str) -> None:
    one = AegisStore(client, namespace=ns)
    two = AegisStore(AegisClient(api_key="dev-key", base_url=client.base_url), namespace=ns)
    one.put(("p",), "k", {"v": 1}, ttl=30)
    assert two.get(("p",), "k").value == {"v": 1}  # type: ignore[union-attr]
    two.put(("p",), "k", {"v": 2}, ttl=None)  # dropping the TTL makes a new memory
    assert one.get(("p",), "k").value == {"v": 2}  # type: ignore[union-attr]
    two.delete(("p",), "k")
    assert one.get(("p",), "k") is None
    two.close()


def test_foreign_memories_in_the_namespace_are_ignored(client: AegisClient, ns: str) -> None:
    client.add("A plain Aegis memory about python programming", namespace=ns,
               metadata={"langgraph": {"namespace": ["x"], "key": "fake", "value": {}}})
    store = AegisStore(client, namespace=ns)
    store.put(("x",), "real", {"text": "python programming"})
    assert keys(store.search(())) == ["real"]
    assert keys(store.search(("x",), query="python programming")) == ["real"]
    assert store.list_namespaces() == [("x",)]
    assert store.get(("x",), "fake") is None


def test_agent_private_stores(client: AegisClient, ns: str) -> None:
    alice = AegisStore(client, namespace=ns, agent_id="alice")
    bob = AegisStore(client, namespace=ns, agent_id="bob")
    shared = AegisStore(client, namespace=ns, agent_id="carol", scope="global")
    alice.put(("m",), "secret", {"text": "alice's secret plan"})
    shared.put(("m",), "public", {"text": "a public note"})
    assert bob.get(("m",), "secret") is None
    assert keys(bob.search(("m",))) == ["public"]
    assert keys(bob.search(("m",), query="secret plan")) == ["public"]
    assert sorted(keys(alice.search(("m",)))) == ["public", "secret"]


async def test_async_client_only(sqlite_server: ServerProcess, ns: str) -> None:
    async with AsyncAegisClient(api_key="dev-key", base_url=sqlite_server.base_url) as aclient:
        store = AegisStore(aclient, namespace=ns)
        await store.aput(("a",), "k", {"v": 1})
        assert (await store.aget(("a",), "k")).value == {"v": 1}  # type: ignore[union-attr]
        # Sync calls get a blocking client built from the same key and URL.
        assert await asyncio.to_thread(store.get, ("a",), "k") is not None
        store.close()


async def test_store_built_from_key_and_url(sqlite_server: ServerProcess, ns: str) -> None:
    async with AegisStore(api_key="dev-key", base_url=sqlite_server.base_url,
                          namespace=ns) as store:
        store.put(("s",), "sync", {"v": 1})
        await store.aput(("s",), "async", {"v": 2})
        assert sorted(keys(await store.asearch(("s",)))) == ["async", "sync"]


async def test_sync_client_only_does_not_block_the_loop(client: AegisClient, ns: str) -> None:
    store = AegisStore(client, namespace=ns)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    try:
        for i in range(5):
            await store.aput(("nb",), f"k{i}", {"i": i})
        await store.asearch(("nb",), query="anything")
    finally:
        task.cancel()
    assert ticks > 1  # the loop kept running while requests were in flight


def test_local_mode(tmp_path: Any) -> None:
    with AegisClient.local(path=tmp_path) as local, AegisStore(local, namespace="lg") as store:
        store.put(("l",), "k", {"text": "local mode works"})
        assert store.search(("l",), query="local mode")[0].key == "k"


def test_core_contract_on_each_backend(server: ServerProcess, ns: str) -> None:
    """The essentials once more on every backend (SQLite and PostgreSQL)."""
    with AegisClient(api_key="dev-key", base_url=server.base_url) as c:
        store = AegisStore(c, namespace=ns)
        put_docs(store)
        store.put(("docs", "sub"), "same", {"text": "Recipe for pasta carbonara with eggs"})
        store.put(("docs", "sub"), "same2", {"text": "Recipe for pasta carbonara with eggs"})
        assert store.search(("docs",), query="python programming tutorial")[0].key == "python"
        assert sorted(keys(store.search(("docs", "sub")))) == ["same", "same2"]
        assert sorted(keys(store.search(("docs",), filter={"rating": {"$gte": 4}}))) == [
            "pasta", "python"]
        store.put(("docs",), "python", {"text": "Rust systems programming"})
        assert store.get(("docs",), "python").value == {  # type: ignore[union-attr]
            "text": "Rust systems programming"}
        assert store.list_namespaces() == [("docs",), ("docs", "sub")]
        store.delete(("docs",), "python")
        assert store.get(("docs",), "python") is None
        store.put(("ttl",), "k", {"v": 1}, ttl=1 / 60)
        wait_until_gone(lambda: store.get(("ttl",), "k", refresh_ttl=False))


def test_score_is_finite(store: BaseStore) -> None:
    put_docs(store)
    for hit in store.search(("docs",), query="weather in Paris"):
        assert hit.score is not None and math.isfinite(hit.score)
