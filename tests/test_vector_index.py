"""Tests of the filtered vector index (no timing assertions: the CI box is noisy).

Most checks compare the index against a brute-force oracle built on
:func:`aegis_memory.index.row_matches`, the plain-Python statement of the filter rules,
for each plan the planner can pick (exact, HNSW with and without the filter bitmap).
The index stores vectors as float16, so the oracle scores the same float16-rounded
vectors; a stored vector's score against itself is 1 within ~1e-3.
"""

from __future__ import annotations

import json
import math
import random
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

try:
    from aegis_memory.index import (
        IndexedRow,
        SearchFilter,
        VectorIndex,
        is_visible,
        row_matches,
    )
except ImportError:  # checkout without the package installed: use the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from aegis_memory.index import (
        IndexedRow,
        SearchFilter,
        VectorIndex,
        is_visible,
        row_matches,
    )
from tests.conftest import dress_snapshot_as_version_1

DIM = 16
NOW = 1_000_000.0
SCOPES = ("agent-private", "agent-shared", "global")
TYPES = ("standard", "strategy", "reflection", "progress", "feature")
AGENTS = ("a1", "a2", "a3", "a4", "a5")


# --------------------------------------------------------------------------- helpers


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def random_row(
    rng: random.Random, label: int, projects: tuple[str, ...] = ("p1", "p2")
) -> IndexedRow:
    expires = rng.choice([None, None, None, NOW - 10, NOW, NOW + 10])
    return IndexedRow(
        label=label,
        project_id=rng.choice(projects),
        namespace=rng.choice(("default", "ns-a", "ns-b")),
        agent_id=rng.choice((*AGENTS, None)),
        user_id=rng.choice(("u1", "u2", "u3", None)),
        scope=rng.choice(SCOPES),
        memory_type=rng.choice(TYPES),
        shared_with=tuple(rng.sample(AGENTS, rng.randint(0, 2))),
        expires_at=expires,
        deprecated=rng.random() < 0.15,
        effectiveness=rng.choice((-0.5, 0.0, 0.0, 0.25, 0.5, 1.0)),
    )


def random_filter(rng: random.Random) -> SearchFilter:
    def maybe(value: Any) -> Any:
        return value if rng.random() < 0.35 else None

    return SearchFilter(
        project_id=rng.choice(("p1", "p2", "nope")),
        namespace=rng.choice((None, None, "default", "ns-a", "missing")),
        now=NOW,
        visible_to_agent=maybe(rng.choice((*AGENTS, "stranger"))),
        apply_visibility=rng.random() < 0.8,
        owner_agent_ids=maybe(frozenset(rng.sample((*AGENTS, "ghost"), rng.randint(0, 2)))),
        user_id=maybe(rng.choice(("u1", "u2", "nobody"))),
        scopes=maybe(frozenset(rng.sample(SCOPES, rng.randint(1, 2)))),
        memory_types=maybe(frozenset(rng.sample(TYPES, rng.randint(1, 3)))),
        min_effectiveness=maybe(rng.choice((0.0, 0.25, 0.5))),
        include_deprecated=rng.random() < 0.3,
    )


class Oracle:
    """Brute-force model of the index: dicts of rows and vectors."""

    def __init__(self) -> None:
        self.rows: dict[int, IndexedRow] = {}
        self.vecs: dict[int, np.ndarray] = {}

    def upsert(self, rows: list[IndexedRow], vecs: np.ndarray) -> None:
        # Normalised as the index does it (float32, whole batch), then rounded to float16
        # as the index stores it.
        vecs = np.asarray(vecs, dtype=np.float32)
        stored = (vecs / np.linalg.norm(vecs, axis=1)[:, None]).astype(np.float16)
        for row, v in zip(rows, stored.astype(np.float32), strict=True):
            self.rows[row.label] = row
            self.vecs[row.label] = v

    def update_attrs(self, rows: list[IndexedRow]) -> None:
        for row in rows:
            if row.label in self.rows:
                self.rows[row.label] = row

    def remove(self, labels: list[int]) -> None:
        for label in labels:
            self.rows.pop(label, None)
            self.vecs.pop(label, None)

    def matching(self, flt: SearchFilter) -> list[int]:
        return [label for label, row in self.rows.items() if row_matches(row, flt)]

    def search(self, q: np.ndarray, k: int, flt: SearchFilter) -> list[tuple[int, float]]:
        q = (q / np.linalg.norm(q)).astype(np.float32)
        scored = [(label, float(self.vecs[label] @ q)) for label in self.matching(flt)]
        scored.sort(key=lambda t: (-t[1], t[0]))
        return scored[:k]


def make_index(plan: str = "auto", **kw: Any) -> VectorIndex:
    # ef_search far above the test corpus sizes makes forced-HNSW searches exhaustive,
    # so they can be compared with the oracle exactly.
    kw.setdefault("ef_search", 4096)
    return VectorIndex(DIM, "test-model", plan=plan, **kw)  # type: ignore[arg-type]


def assert_same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [label for label, _ in got] == [label for label, _ in want]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=0, atol=1e-5)


def flt(**kw: Any) -> SearchFilter:
    kw.setdefault("project_id", "p1")
    kw.setdefault("namespace", None)
    kw.setdefault("now", NOW)
    return SearchFilter(**kw)


def row(label: int, **kw: Any) -> IndexedRow:
    base = {
        "project_id": "p1",
        "namespace": "default",
        "agent_id": "a1",
        "user_id": None,
        "scope": "global",
        "memory_type": "standard",
    }
    base.update(kw)
    return IndexedRow(label=label, **base)


PLANS = ("exact", "hnsw", "auto")


@pytest.fixture(scope="module")
def populated() -> tuple[Oracle, dict[str, VectorIndex]]:
    """~800 random rows loaded into one index per plan, plus the oracle."""
    rng = random.Random(1)
    nrng = np.random.default_rng(1)
    rows = [random_row(rng, label) for label in rng.sample(range(1, 100_000), 800)]
    vecs = unit(nrng, len(rows))
    oracle = Oracle()
    oracle.upsert(rows, vecs)
    indexes = {}
    for plan in PLANS:
        index = make_index(plan)
        index.upsert(rows, vecs)
        indexes[plan] = index
    return oracle, indexes


# --------------------------------------------------------------------------- the rules


def test_visibility_rule() -> None:
    g = row(1, scope="global", agent_id="owner")
    p = row(2, scope="agent-private", agent_id="owner", shared_with=("friend",))
    s = row(3, scope="agent-shared", agent_id="owner", shared_with=("friend",))
    assert is_visible(g, "anyone")
    assert is_visible(p, "owner") and not is_visible(p, "friend")  # shared_with needs scope
    assert is_visible(s, "owner") and is_visible(s, "friend") and not is_visible(s, "other")


def test_visibility_in_index_for_each_plan() -> None:
    rows = [
        row(1, scope="global", agent_id="owner"),
        row(2, scope="agent-private", agent_id="owner", shared_with=("friend",)),
        row(3, scope="agent-shared", agent_id="owner", shared_with=("friend", "pal")),
        row(4, scope="agent-shared", agent_id="other", shared_with=("pal",)),
        row(5, scope="agent-private", agent_id="friend"),
        row(6, scope="agent-private", agent_id=None),
    ]
    vecs = unit(np.random.default_rng(0), len(rows))
    expected = {
        "owner": {1, 2, 3},
        "friend": {1, 3, 5},
        "pal": {1, 3, 4},
        "stranger": {1},
    }
    for plan in PLANS:
        index = make_index(plan, exact_min_candidates=0, exact_crossover=0)
        index.upsert(rows, vecs)
        for agent, labels in expected.items():
            f = flt(visible_to_agent=agent)
            got = {label for label, _ in index.search(vecs[0], 10, f)}
            assert got == labels, (plan, agent)
            assert index.count(f) == len(labels)
        # No agent, or visibility switched off: no restriction.
        assert index.count(flt()) == 6
        assert index.count(flt(visible_to_agent="stranger", apply_visibility=False)) == 6


@pytest.mark.parametrize(
    "field, values",
    [
        ("namespace", ["default", "ns-a", "missing"]),
        (
            "owner_agent_ids",
            [frozenset({"a1"}), frozenset({"a2", "a3"}), frozenset(), frozenset({"x"})],
        ),
        ("user_id", ["u1", "u3", "nobody"]),
        ("scopes", [frozenset({"global"}), frozenset({"agent-private", "agent-shared"})]),
        ("memory_types", [frozenset({"strategy"}), frozenset({"progress", "feature", "x"})]),
        ("min_effectiveness", [-1.0, 0.0, 0.25, 0.5, 2.0]),
        ("include_deprecated", [True, False]),
        ("visible_to_agent", ["a1", "a4", "stranger"]),
        ("now", [NOW - 11, NOW, NOW + 11]),
        ("project_id", ["p1", "p2", "nope"]),
    ],
)
@pytest.mark.parametrize("plan", PLANS)
def test_each_filter_field(
    populated: tuple[Oracle, dict[str, VectorIndex]], field: str, values: list[Any], plan: str
) -> None:
    oracle, indexes = populated
    index = indexes[plan]
    q = unit(np.random.default_rng(5), 1)[0]
    for value in values:
        f = flt(**{field: value})
        assert index.count(f) == len(oracle.matching(f)), (field, value)
        assert_same(index.search(q, 15, f), oracle.search(q, 15, f))


def test_project_isolation() -> None:
    rng = np.random.default_rng(2)
    v = unit(rng, 50)
    index = make_index()
    index.upsert([row(i + 1, project_id="A") for i in range(50)], v)
    index.upsert([row(i + 1001, project_id="B") for i in range(50)], v)  # same vectors
    for plan in PLANS:
        index.plan_mode = plan  # type: ignore[assignment]
        res = index.search(v[0], 100, flt(project_id="A"))
        assert len(res) == 50 and all(label <= 50 for label, _ in res)
        assert index.search(v[0], 10, flt(project_id="C")) == []
    assert index.count(flt(project_id="C")) == 0


def test_expiry_deprecated_and_effectiveness_boundaries() -> None:
    rows = [
        row(1, expires_at=NOW - 1),
        row(2, expires_at=NOW),  # expires_at <= now is excluded
        row(3, expires_at=NOW + 1),
        row(4),
        row(5, deprecated=True),
        row(6, effectiveness=0.5),
    ]
    index = make_index()
    index.upsert(rows, unit(np.random.default_rng(3), len(rows)))
    q = np.ones(DIM, dtype=np.float32)
    assert {x for x, _ in index.search(q, 10, flt())} == {3, 4, 6}
    assert {x for x, _ in index.search(q, 10, flt(include_deprecated=True))} == {3, 4, 5, 6}
    assert {x for x, _ in index.search(q, 10, flt(min_effectiveness=0.5))} == {6}
    assert {x for x, _ in index.search(q, 10, flt(now=NOW - 2))} == {1, 2, 3, 4, 6}


def test_expiry_and_deprecation_counters_follow_updates() -> None:
    """The index skips the expiry/deprecation tests when no live row needs them; the
    counters behind that shortcut must follow every update and removal."""
    index = make_index()
    v = unit(np.random.default_rng(15), 3)
    index.upsert([row(1, expires_at=-math.inf), row(2)], v[:2])
    assert index.count(flt()) == 1
    index.update_attrs([row(1)])
    assert index.count(flt()) == 2
    index.update_attrs([row(1, expires_at=NOW - 1, deprecated=True)])
    assert index.count(flt()) == 1 and index.count(flt(include_deprecated=True)) == 1
    index.update_attrs([row(1, deprecated=True)])
    assert index.count(flt()) == 1 and index.count(flt(include_deprecated=True)) == 2
    index.remove([1])
    index.upsert([row(3, expires_at=NOW)], v[2:])
    assert index.count(flt()) == 1 and index.count(flt(now=NOW - 1)) == 2


# --------------------------------------------------------------------------- writes


@pytest.mark.parametrize("plan", PLANS)
def test_upsert_replaces_vector(plan: str) -> None:
    rng = np.random.default_rng(4)
    v = unit(rng, 200)
    index = make_index(plan)
    index.upsert([row(i + 1) for i in range(200)], v)
    new = unit(rng, 1)[0]
    index.upsert([row(7, namespace="other")], new[None, :])
    assert len(index) == 200
    res = index.search(new, 5, flt())
    assert res[0][0] == 7 and res[0][1] == pytest.approx(1.0, abs=1e-3)
    assert len({x for x, _ in index.search(new, 200, flt())}) == 200  # no duplicates
    # The old vector no longer finds label 7, and the attributes moved with the upsert.
    assert all(x != 7 for x, _ in index.search(v[6], 3, flt(namespace="default")))
    assert index.count(flt(namespace="other")) == 1


def test_upsert_duplicate_labels_last_wins_and_validation() -> None:
    rng = np.random.default_rng(5)
    v = unit(rng, 2)
    index = make_index()
    index.upsert([row(1, namespace="x"), row(1, namespace="y")], v)
    assert len(index) == 1 and index.count(flt(namespace="y")) == 1
    assert index.search(v[1], 1, flt())[0][1] == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError):
        index.upsert([row(2)], np.zeros((1, DIM), dtype=np.float32))
    with pytest.raises(ValueError):
        index.upsert([row(2)], np.ones((1, DIM + 1), dtype=np.float32))
    with pytest.raises(ValueError):
        index.upsert([row(2), row(3)], np.ones((1, DIM), dtype=np.float32))
    with pytest.raises(ValueError):
        index.search(np.ones(DIM + 1, dtype=np.float32), 1, flt())
    with pytest.raises(ValueError):
        row(0)
    with pytest.raises(TypeError):
        row(1, shared_with="a1")
    assert len(index) == 1  # failed upserts left nothing behind
    assert index.search(v[0], 0, flt()) == []


def test_update_attrs() -> None:
    rng = np.random.default_rng(6)
    v = unit(rng, 3)
    index = make_index()
    index.upsert([row(1, scope="agent-private", agent_id="a1"), row(2, scope="global"), row(3)], v)
    seen = flt(visible_to_agent="a2")
    assert index.count(seen) == 2
    index.update_attrs([row(1, scope="agent-shared", agent_id="a1", shared_with=("a2",))])
    assert index.count(seen) == 3
    index.update_attrs([row(1, scope="agent-shared", agent_id="a1", shared_with=("a3",))])
    assert index.count(seen) == 2
    index.update_attrs([row(2, deprecated=True), row(3, project_id="p9"), row(99)])  # 99 unknown
    assert len(index) == 3
    assert index.count(flt()) == 1  # 2 is deprecated now, 3 moved to another project
    assert {x for x, _ in index.search(v[0], 5, flt())} == {1}
    assert {x for x, _ in index.search(v[0], 5, flt(project_id="p9"))} == {3}
    # The vector did not change.
    assert index.search(v[2], 1, flt(project_id="p9"))[0][1] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("plan", PLANS)
def test_remove_and_readd(plan: str) -> None:
    rng = np.random.default_rng(7)
    v = unit(rng, 300)
    index = make_index(plan)
    index.upsert([row(i + 1) for i in range(300)], v)
    gone = list(range(1, 301, 3))
    index.remove(gone)
    index.remove([*gone, 10_000])  # idempotent, unknown ignored
    assert len(index) == 200
    res = index.search(v[0], 300, flt())
    assert len(res) == 200 and not set(gone) & {x for x, _ in res}
    # New labels reuse the freed slots (their old graph nodes stay dead).
    fresh = unit(rng, 100)
    index.upsert([row(5000 + i) for i in range(100)], fresh)
    assert len(index) == 300
    top = index.search(fresh[42], 1, flt())
    assert top[0][0] == 5042 and top[0][1] == pytest.approx(1.0, abs=1e-3)
    # Re-adding a removed label brings it back with its new vector.
    index.upsert([row(1)], fresh[:1])
    res = index.search(fresh[0], 2, flt())
    assert [x for x, _ in res] == [1, 5000]  # same vector as 5000: tie broken by label
    assert res[0][1] == pytest.approx(1.0, abs=1e-3)


def test_ties_are_ordered_by_label_in_every_plan() -> None:
    v = np.tile(unit(np.random.default_rng(8), 1), (40, 1))
    for plan in PLANS:
        index = make_index(plan)
        index.upsert([row(label) for label in range(100, 60, -1)], v)
        assert [x for x, _ in index.search(v[0], 5, flt())] == [61, 62, 63, 64, 65]


# --------------------------------------------------------------------------- planner


def test_explain_reports_plans() -> None:
    rng = np.random.default_rng(9)
    n = 3000
    rows = [row(i + 1, namespace="big" if i >= 30 else "small") for i in range(n)]
    index = make_index(exact_min_candidates=100, exact_crossover=0)
    index.upsert(rows, unit(rng, n))
    assert index.explain(flt(project_id="nope"), 10)["plan"] == "empty"
    assert index.explain(flt(namespace="small"), 10)["plan"] == "exact"
    assert index.explain(flt(), 10)["plan"] == "hnsw"  # keeps every live row
    filtered = index.explain(flt(namespace="big"), 10)
    assert filtered["plan"] == "hnsw-filtered" and filtered["candidates"] == n - 30
    assert index.explain(flt(namespace="small"), 10)["filter_eval"] == "partition"
    assert make_index(plan="exact").explain(flt(), 10)["plan"] == "empty"


@pytest.mark.parametrize("plan", ["exact", "hnsw"])
def test_exactly_k_at_one_percent_over_20k_rows(plan: str) -> None:
    rng = np.random.default_rng(10)
    n, k = 20_000, 10
    owners = rng.integers(0, 100, n)  # ~1 % of rows per owner, spread over the graph
    rows = [row(i + 1, agent_id=f"agent-{owners[i]}", scope="agent-private") for i in range(n)]
    vecs = unit(rng, n, 32)
    index = VectorIndex(32, "m", plan=plan)  # type: ignore[arg-type]  # default ef_search
    index.upsert(rows, vecs)
    f = flt(owner_agent_ids=frozenset({"agent-3"}))
    matching = {i + 1 for i in range(n) if owners[i] == 3}
    assert index.count(f) == len(matching) and 100 < len(matching) < 300
    assert index.explain(f, k)["plan"] == ("exact" if plan == "exact" else "hnsw-filtered")
    vis = flt(visible_to_agent="agent-7")
    visible = {i + 1 for i in range(n) if owners[i] == 7}
    for q in unit(rng, 30, 32):
        res = index.search(q, k, f)
        assert len(res) == k and {x for x, _ in res} <= matching
        assert [s for _, s in res] == sorted((s for _, s in res), reverse=True)
        res = index.search(q, k, vis)
        assert len(res) == k and {x for x, _ in res} <= visible
    # k larger than the matching set returns all of it.
    assert {x for x, _ in index.search(vecs[0], 1000, f)} == matching
    stats = index.stats()
    if plan == "hnsw":
        assert stats["hnsw-filtered"] >= 61
        # A fall-back would still return k results; record that the graph did the work.
        assert stats.get("fallback-exact", 0) <= 2
    else:
        assert stats["exact"] == 61


class _FailingGraph:
    """Stands in for the faiss graph: searches find nothing (faiss pads with -1)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def search(self, x: np.ndarray, k: int, **kwargs: Any) -> Any:
        return np.full((len(x), k), -np.inf, np.float32), np.full((len(x), k), -1, np.int64)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_hnsw_failure_falls_back_to_exact() -> None:
    rng = np.random.default_rng(14)
    v = unit(rng, 500)
    index = make_index("hnsw")
    index.upsert([row(i + 1, namespace=f"ns{i % 2}") for i in range(500)], v)
    index._graph = _FailingGraph(index._graph)  # type: ignore[assignment]
    oracle = Oracle()
    oracle.upsert([row(i + 1, namespace=f"ns{i % 2}") for i in range(500)], v)
    for f in (flt(), flt(namespace="ns1")):
        assert_same(index.search(v[3], 10, f), oracle.search(v[3], 10, f))
    assert index.stats()["fallback-exact"] == 2


def test_random_operations_agree_with_brute_force() -> None:
    for seed in range(6):
        rng = random.Random(seed)
        nrng = np.random.default_rng(seed)
        oracle = Oracle()
        indexes = {plan: make_index(plan, initial_capacity=16) for plan in PLANS}
        label_pool = rng.sample(range(1, 10**12), 400)  # sparse, large labels
        for _ in range(12):
            op = rng.random()
            if op < 0.55:
                labels = rng.sample(label_pool, rng.randint(1, 60))
                rows = [random_row(rng, label) for label in labels]
                vecs = unit(nrng, len(rows))
                oracle.upsert(rows, vecs)
                for index in indexes.values():
                    index.upsert(rows, vecs)
            elif op < 0.75:
                labels = rng.sample(label_pool, rng.randint(1, 40))
                rows = [random_row(rng, label) for label in labels]
                oracle.update_attrs(rows)
                for index in indexes.values():
                    index.update_attrs(rows)
            else:
                labels = rng.sample(label_pool, rng.randint(1, 60))
                oracle.remove(labels)
                for index in indexes.values():
                    index.remove(labels)
            for _ in range(8):
                f = random_filter(rng)
                q = unit(nrng, 1)[0]
                k = rng.choice((1, 5, 20))
                want = oracle.search(q, k, f)
                for plan, index in indexes.items():
                    assert index.count(f) == len(oracle.matching(f)), (seed, plan, f)
                    assert_same(index.search(q, k, f), want)
                    assert len(index) == len(oracle.rows)


# --------------------------------------------------------------------------- persistence


def test_save_load_round_trip(tmp_path: Path) -> None:
    rng = random.Random(11)
    nrng = np.random.default_rng(11)
    rows = [random_row(rng, label) for label in rng.sample(range(1, 10**9), 1500)]
    vecs = unit(nrng, len(rows))
    index = make_index("auto", exact_min_candidates=50, exact_crossover=0)
    index.upsert(rows, vecs)
    index.remove([r.label for r in rows[:100]])  # leave deleted nodes and free slots
    index.synced_seq = 1234
    index.save(tmp_path)
    loaded = VectorIndex.load(
        tmp_path, dim=DIM, model_name="test-model", exact_min_candidates=50, exact_crossover=0
    )
    assert loaded is not None
    assert loaded.synced_seq == 1234 and len(loaded) == len(index) == 1400
    queries = unit(nrng, 40)
    for q in queries:
        f = random_filter(rng)
        assert loaded.count(f) == index.count(f)
        assert loaded.search(q, 10, f) == index.search(q, 10, f)
        assert loaded.explain(f, 10)["plan"] == index.explain(f, 10)["plan"]
    # The loaded index keeps working: writes reuse free slots and grow the graph.
    more = [random_row(rng, label) for label in range(10**9 + 1, 10**9 + 2001)]
    loaded.upsert(more, unit(nrng, len(more)))
    loaded.remove([more[0].label])
    assert len(loaded) == 1400 + 1999
    # Saving again replaces the snapshot and removes the old generation's files.
    loaded.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir() if p.name != ".lock")
    assert len(names) == 5 and "meta.json" in names
    again = VectorIndex.load(tmp_path, dim=DIM, model_name="test-model")
    assert again is not None and len(again) == 3399


def _saved(tmp_path: Path) -> VectorIndex:
    index = make_index()
    rng = np.random.default_rng(12)
    index.upsert([row(i + 1) for i in range(300)], unit(rng, 300))
    index.save(tmp_path)
    return index


def test_load_returns_none_when_missing_or_mismatched(tmp_path: Path) -> None:
    assert VectorIndex.load(tmp_path / "nowhere", dim=DIM, model_name="test-model") is None
    _saved(tmp_path)
    assert VectorIndex.load(tmp_path, dim=DIM, model_name="other-model") is None
    assert VectorIndex.load(tmp_path, dim=DIM * 2, model_name="test-model") is None
    assert VectorIndex.load(tmp_path, dim=DIM, model_name="test-model") is not None
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["format_version"] = 999
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert VectorIndex.load(tmp_path, dim=DIM, model_name="test-model") is None


@pytest.mark.parametrize("target", ["graph-", "attrs-", "vectors-", "strings-", "meta.json"])
@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_load_returns_none_for_corrupted_files(tmp_path: Path, target: str, damage: str) -> None:
    _saved(tmp_path)
    path = next(p for p in tmp_path.iterdir() if p.name.startswith(target))
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 3]))
    else:
        path.unlink()
    assert VectorIndex.load(tmp_path, dim=DIM, model_name="test-model") is None


def test_failed_save_keeps_previous_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _saved(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    index.upsert([row(1000)], unit(np.random.default_rng(0), 1))

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", disk_full)
    with pytest.raises(OSError):
        index.save(tmp_path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no stray temp files
    loaded = VectorIndex.load(tmp_path, dim=DIM, model_name="test-model")
    assert loaded is not None and len(loaded) == 300


def test_load_rejects_consistent_but_wrong_contents(tmp_path: Path) -> None:
    """A snapshot whose checksums match but whose arrays disagree is still rejected."""
    _saved(tmp_path)
    meta_path = tmp_path / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["n_live"] = 7
    meta_path.write_text(json.dumps(meta))
    assert VectorIndex.load(tmp_path, dim=DIM, model_name="test-model") is None


# --------------------------------------------------------------------------- threads


def test_concurrent_searches_and_writes(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    n = 3000
    index = make_index("auto", ef_search=64, exact_min_candidates=200, exact_crossover=0)
    rows = [row(i + 1, namespace=f"ns{i % 7}", agent_id=f"a{i % 5}") for i in range(n)]
    vecs = unit(rng, n)
    index.upsert(rows, vecs)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader(seed: int) -> None:
        r = np.random.default_rng(seed)
        filters = [flt(), flt(namespace="ns3"), flt(visible_to_agent="a2"), flt(namespace="ns1")]
        try:
            while not stop.is_set():
                f = filters[int(r.integers(len(filters)))]
                res = index.search(unit(r, 1)[0], 10, f)
                assert len(res) <= 10
                assert [s for _, s in res] == sorted((s for _, s in res), reverse=True)
                index.count(f)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def writer() -> None:
        r = np.random.default_rng(99)
        try:
            for step in range(30):
                labels = [int(x) for x in r.choice(np.arange(1, 2 * n), 100, replace=False)]
                index.upsert(
                    [row(x, namespace=f"ns{x % 7}", agent_id=f"a{x % 5}") for x in labels],
                    unit(r, len(labels)),
                )
                index.update_attrs([row(x, scope="agent-private") for x in labels[:30]])
                index.remove(labels[50:80])
                if step % 10 == 0:
                    index.upsert([row(i + 1) for i in range(2 * n, 2 * n + 1500)], unit(r, 1500))
                if step == 15:
                    index.save(tmp_path)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
    w = threading.Thread(target=writer)
    for t in readers:
        t.start()
    w.start()
    w.join(timeout=300)
    stop.set()
    for t in readers:
        t.join(timeout=60)
    assert not errors, errors
    assert not w.is_alive()
    # The index is still consistent afterwards: every live row is findable by itself.
    f = flt(include_deprecated=True)
    assert index.count(f) == len(index)
    for q in unit(rng, 5):
        assert len(index.search(q, 10, f)) == 10
    assert VectorIndex.load(tmp_path, dim=DIM, model_name="test-model") is not None


def test_row_replace_keeps_dataclass_semantics() -> None:
    r = row(1)
    assert replace(r, namespace="x").namespace == "x"
    with pytest.raises(AttributeError):
        r.label = 2  # type: ignore[misc]


# --------------------------------------------------------------------------- background graph


def _populate(index: VectorIndex, oracle: Oracle, n: int, seed: int) -> None:
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    rows = [random_row(rng, label) for label in range(1, n + 1)]
    vecs = unit(nrng, n)
    index.upsert(rows, vecs)
    oracle.upsert(rows, vecs)


def _check_against_oracle(index: VectorIndex, oracle: Oracle, seed: int, rounds: int = 60) -> None:
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    for _ in range(rounds):
        f = random_filter(rng)
        q = unit(nrng, 1)[0]
        assert_same(index.search(q, 10, f), oracle.search(q, 10, f))


@pytest.mark.parametrize("plan", ["auto", "hnsw"])
def test_background_rows_are_searchable_before_and_after_the_graph_has_them(plan: str) -> None:
    index, oracle = make_index(plan, graph="background"), Oracle()
    index.close()  # no builder: every row stays pending, searched exactly
    _populate(index, oracle, 600, seed=1)
    assert index.pending == 600
    _check_against_oracle(index, oracle, seed=2)

    index._closed = False  # start the builder now
    assert index.wait_for_graph(timeout=60)
    assert index.pending == 0
    _check_against_oracle(index, oracle, seed=3)
    index.close()


def test_background_updates_and_removals_keep_pending_rows_right() -> None:
    index, oracle = make_index("hnsw", graph="background"), Oracle()
    _populate(index, oracle, 400, seed=4)
    assert index.wait_for_graph(timeout=60)
    index.close()
    rng, nrng = random.Random(5), np.random.default_rng(5)
    # New vectors for rows already in the graph: pending again, found by their new vector.
    moved = [oracle.rows[label] for label in range(1, 401, 7)]
    new_vecs = unit(nrng, len(moved))
    index.upsert(moved, new_vecs)
    oracle.upsert(moved, new_vecs)
    assert index.pending == len(moved)
    # The same rows again (identical vectors) change nothing; removing pending rows
    # takes them out of the count and of the results.
    index.upsert(moved, new_vecs)
    assert index.pending == len(moved)
    gone = [row.label for row in moved[::2]]
    index.remove(gone)
    oracle.remove(gone)
    assert index.pending == len(moved) - len(gone)
    fresh = [random_row(rng, label) for label in range(1000, 1050)]
    fresh_vecs = unit(nrng, len(fresh))
    index.upsert(fresh, fresh_vecs)
    oracle.upsert(fresh, fresh_vecs)
    # Each moved row is found by its new vector (a pending row, scored exactly).
    for row, v in zip(moved[1::2], new_vecs[1::2], strict=True):
        f = flt(project_id=row.project_id, namespace=row.namespace, apply_visibility=False,
                include_deprecated=True, now=0.0)
        assert index.search(v, 1, f)[0][0] == row.label
    _check_against_oracle(index, oracle, seed=6)
    index._closed = False
    assert index.wait_for_graph(timeout=60)
    _check_against_oracle(index, oracle, seed=7)
    index.close()


@pytest.mark.parametrize("reload_graph", ["background", "sync"])
def test_snapshot_keeps_pending_rows_pending(tmp_path: Path, reload_graph: str) -> None:
    index, oracle = make_index(graph="background"), Oracle()
    _populate(index, oracle, 300, seed=8)
    assert index.wait_for_graph(timeout=60)
    index.close()
    rng, nrng = random.Random(9), np.random.default_rng(9)
    extra = [random_row(rng, label) for label in range(500, 700)]
    extra_vecs = unit(nrng, len(extra))
    index.upsert(extra, extra_vecs)
    oracle.upsert(extra, extra_vecs)
    assert index.pending == 200
    index.save(tmp_path)

    loaded = VectorIndex.load(tmp_path, dim=DIM, model_name="test-model", ef_search=4096,
                              graph=reload_graph)
    assert loaded is not None
    _check_against_oracle(loaded, oracle, seed=10)
    assert loaded.wait_for_graph(timeout=60)
    assert loaded.pending == 0
    _check_against_oracle(loaded, oracle, seed=11)
    loaded.close()


# --------------------------------------------------------------------------- graph nodes


def _graph_state(index: VectorIndex) -> tuple[int, int, bool]:
    """(graph nodes, dead nodes, node i is slot i)."""
    return int(index._graph.ntotal), index._n_dead, index._identity


def test_changed_and_removed_rows_leave_dead_nodes_that_are_never_returned() -> None:
    """faiss cannot update or delete a node: a new vector gets a new node, the old one is
    dead, and slots reused by new labels get new nodes too (node ids != slots)."""
    rng = random.Random(20)
    nrng = np.random.default_rng(20)
    index = make_index("hnsw", compact_dead_fraction=1.0)  # never compact here
    oracle = Oracle()
    rows = [random_row(rng, label) for label in range(1, 501)]
    vecs = unit(nrng, len(rows))
    index.upsert(rows, vecs)
    oracle.upsert(rows, vecs)
    assert _graph_state(index) == (500, 0, True)  # bulk load: node i is slot i
    moved = rows[::5]
    moved_vecs = unit(nrng, len(moved))
    index.upsert(moved, moved_vecs)
    oracle.upsert(moved, moved_vecs)
    gone = [r.label for r in rows[1::7]]
    index.remove(gone)
    oracle.remove(gone)
    fresh = [random_row(rng, label) for label in range(1000, 1060)]  # reuse freed slots
    fresh_vecs = unit(nrng, len(fresh))
    index.upsert(fresh, fresh_vecs)
    oracle.upsert(fresh, fresh_vecs)
    nodes, dead, identity = _graph_state(index)
    assert nodes == 500 + len(moved) + len(fresh) and dead == len(moved) + len(gone)
    assert not identity
    assert len(index) == len(oracle.rows)
    _check_against_oracle(index, oracle, seed=21)
    # Every filter path: a full mask, a slot list (partition) and every live row.
    for f in (flt(), flt(namespace="ns-a"), flt(include_deprecated=True, now=0.0,
                                                 apply_visibility=False)):
        for q in unit(nrng, 5):
            assert_same(index.search(q, 10, f), oracle.search(q, 10, f))


@pytest.mark.parametrize("graph", ["sync", "background"])
def test_graph_is_rebuilt_when_dead_nodes_pile_up(graph: str) -> None:
    rng = random.Random(22)
    nrng = np.random.default_rng(22)
    index = make_index("hnsw", graph=graph, compact_dead_fraction=0.2)
    oracle = Oracle()
    rows = [random_row(rng, label) for label in range(1, 601)]
    vecs = unit(nrng, len(rows))
    index.upsert(rows, vecs)
    oracle.upsert(rows, vecs)
    assert index.wait_for_graph(timeout=60)
    # 10 % changed: below the threshold, the dead nodes stay.
    first = rows[:60]
    first_vecs = unit(nrng, len(first))
    index.upsert(first, first_vecs)
    oracle.upsert(first, first_vecs)
    assert index.wait_for_graph(timeout=60)
    assert index._n_dead == 60 and "graph-rebuild" not in index.stats()
    # 20 % more removed: over the threshold, the graph is rebuilt from the live rows.
    gone = [r.label for r in rows[100:220]]
    index.remove(gone)
    oracle.remove(gone)
    deadline = time.monotonic() + 60
    while index._n_dead and time.monotonic() < deadline:
        time.sleep(0.02)
    assert index.wait_for_graph(timeout=60)
    assert index.stats()["graph-rebuild"] == 1
    assert _graph_state(index) == (len(oracle.rows), 0, False)
    _check_against_oracle(index, oracle, seed=23)
    index.close()


def test_background_rebuild_leaves_out_rows_changed_meanwhile() -> None:
    """Rows whose vector changes while a replacement graph is built are not put in it
    with their old vector: they stay pending and join the new graph afterwards."""
    index, oracle = make_index("hnsw", graph="background"), Oracle()
    _populate(index, oracle, 500, seed=24)
    assert index.wait_for_graph(timeout=60)
    index.close()
    with index._lock.read():  # what the builder snapshots when a rebuild starts
        slots = np.flatnonzero(index._fid_of_slot[: index._attrs.n_slots] >= 0)
        fids = index._fid_of_slot[slots].copy()
    nrng = np.random.default_rng(25)
    moved = [oracle.rows[label] for label in range(1, 51)]
    moved_vecs = unit(nrng, len(moved))
    index.upsert(moved, moved_vecs)
    oracle.upsert(moved, moved_vecs)
    graph = index._new_graph(index._train_sample())
    graph.add(np.vstack([index._vectors[s].astype(np.float32) for s in slots]))
    with index._lock.write():
        index._install(graph, slots, index._fid_of_slot[slots] == fids, len(slots))
    assert index._n_dead == 50 and index.pending == 50
    _check_against_oracle(index, oracle, seed=26)
    index._closed = False
    assert index.wait_for_graph(timeout=60)
    _check_against_oracle(index, oracle, seed=27)
    index.close()


def test_quantiser_is_retrained_once_the_store_has_grown() -> None:
    """A graph first built on a few rows quantises over the whole [-1, 1] range; once the
    store has grown it is rebuilt with ranges taken from the data."""
    nrng = np.random.default_rng(28)
    index = make_index("hnsw", ef_search=64)
    index.upsert([row(i + 1) for i in range(100)], unit(nrng, 100))
    assert index._sq_trained_on == 100
    index.upsert([row(i + 1) for i in range(100, 4200)], unit(nrng, 4100))
    assert index._sq_trained_on >= 4000 and index.stats()["graph-rebuild"] == 1
    v = unit(nrng, 1)
    index.upsert([row(99_999)], v)
    assert index.search(v[0], 1, flt())[0][0] == 99_999


def test_old_format_snapshot_is_not_used(tmp_path: Path) -> None:
    """A version-1 snapshot (hnswlib graph, float32 vectors) reads as no snapshot, so the
    owner rebuilds from the database; saving over it removes the old files."""
    index = _saved(tmp_path)
    dress_snapshot_as_version_1(tmp_path)
    assert VectorIndex.load(tmp_path, dim=DIM, model_name="test-model") is None
    index.save(tmp_path)
    assert not list(tmp_path.glob("hnsw-*"))
    assert VectorIndex.load(tmp_path, dim=DIM, model_name="test-model") is not None


def test_scores_are_those_of_the_stored_half_precision_vectors() -> None:
    """Exact scores widen float16 to float32 by bit manipulation: identical to numpy's
    cast, including zeros, subnormals and negative values."""
    from aegis_memory.index.vector_index import _widen

    halves = np.array(
        [0.0, -0.0, 1e-7, -3e-6, 6.1e-5, 0.5, -0.999, 65504.0, -2.0**-24], dtype=np.float16
    ).reshape(1, -1)
    assert np.array_equal(_widen(halves), halves.astype(np.float32))
    wide = np.random.default_rng(29).standard_normal((300, DIM)).astype(np.float16)
    assert np.array_equal(_widen(wide), wide.astype(np.float32))
