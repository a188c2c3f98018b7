"""Benchmark of the filtered vector index: build, per-filter latency and recall, save/load.

Why synthetic but clustered: uniform random vectors in 384 dimensions have no structure
(every point is roughly equidistant from every other), which makes ANN search both
meaningless and unrealistically hard; real sentence embeddings are clustered by topic and
share a common direction. The corpus here is a seeded two-level Gaussian mixture (topics
→ subtopics → memories) with a shared mean component, normalised, and attributes drawn
with realistic skew (one big tenant, Zipf-distributed agents and users, namespaces that
prefer some topics) so that filters keeping ~100 %, ~30 %, ~1 % and ~0.1 % of rows exist.

Recall is measured against an exact search over a ground-truth mask computed here
independently of the index code (and the index's count is checked against it).

``--vectors PATH`` replaces the synthetic vectors by real ones from a ``.npy`` file (e.g. the
MiniLM vectors ``benchmarks/bench.py`` caches in ``benchmarks/.cache/``): the first ``n`` rows
are the corpus and queries are drawn from the rows after them. The attributes stay synthetic,
so filters are then uncorrelated with the vectors.

Usage::

    .venv/bin/python benchmarks/vector_index_bench.py --n 100000 --queries 200 --runs 3 \
        --json benchmarks/results/vector_index.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    from aegis_memory.index import IndexedRow, SearchFilter, VectorIndex
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from aegis_memory.index import IndexedRow, SearchFilter, VectorIndex

NOW = 1_750_000_000.0
K = 10
MAIN = "acme"
SCOPES = np.array(["agent-private", "agent-shared", "global"])
TYPES = np.array(["standard", "strategy", "reflection", "progress", "feature"])


# --------------------------------------------------------------------------- corpus


@dataclass
class Corpus:
    """Vectors plus attribute columns (numpy, for the independent ground truth)."""

    vectors: np.ndarray
    subtopic: np.ndarray
    labels: np.ndarray
    project: np.ndarray
    namespace: np.ndarray
    agent: np.ndarray
    user: np.ndarray
    scope: np.ndarray
    mtype: np.ndarray
    shared_with: list[tuple[str, ...]]
    expires: np.ndarray
    deprecated: np.ndarray
    effectiveness: np.ndarray
    space: Space = field(repr=False)
    ns_topics: dict[str, np.ndarray] = field(repr=False)
    real_queries: np.ndarray | None = field(default=None, repr=False)

    def rows(self) -> list[IndexedRow]:
        return [
            IndexedRow(
                label=int(self.labels[i]),
                project_id=str(self.project[i]),
                namespace=str(self.namespace[i]),
                agent_id=None if self.agent[i] == "" else str(self.agent[i]),
                user_id=None if self.user[i] == "" else str(self.user[i]),
                scope=str(self.scope[i]),
                memory_type=str(self.mtype[i]),
                shared_with=self.shared_with[i],
                expires_at=None if np.isinf(self.expires[i]) else float(self.expires[i]),
                deprecated=bool(self.deprecated[i]),
                effectiveness=float(self.effectiveness[i]),
            )
            for i in range(len(self.labels))
        ]


def _zipf_weights(n: int, s: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** s
    return w / w.sum()


@dataclass
class Space:
    """The generative model of the embeddings.

    Subtopic centres = shared mean direction (real sentence embeddings are anisotropic)
    + topic direction + subtopic offset. A memory = its centre (30 % lean towards a second
    subtopic: a memory that mentions two things) + variation within a low-rank subspace
    of its topic + a little isotropic noise. The low-rank part matters: real embeddings
    have a low local intrinsic dimension, while full-rank isotropic noise in 384
    dimensions is the hardest possible case for any ANN index (``--hard`` selects it).
    """

    centers: np.ndarray  # (topics * subs, dim)
    bases: np.ndarray  # (topics, rank, dim) within-topic variation directions
    subs: int
    hard: bool


def make_space(
    rng: np.random.Generator, dim: int, topics: int, subs: int, *, hard: bool, rank: int = 24
) -> Space:
    mean = rng.standard_normal(dim).astype(np.float32)
    mean /= np.linalg.norm(mean)
    topic = rng.standard_normal((topics, dim)).astype(np.float32) / np.sqrt(dim)
    sub = rng.standard_normal((topics, subs, dim)).astype(np.float32) / np.sqrt(dim)
    centers = (0.45 * mean + topic[:, None, :] + 0.55 * sub).reshape(topics * subs, dim)
    bases = rng.standard_normal((topics, rank, dim)).astype(np.float32) / np.sqrt(dim)
    return Space(centers=centers, bases=bases, subs=subs, hard=hard)


def sample_points(rng: np.random.Generator, space: Space, which: np.ndarray) -> np.ndarray:
    """Normalised points around the given subtopic centres (see :class:`Space`)."""
    centers = space.centers
    n, dim = len(which), centers.shape[1]
    base = centers[which]
    mixed = rng.random(n) < 0.3
    other = centers[rng.integers(0, len(centers), int(mixed.sum()))]
    w = rng.uniform(0.2, 0.5, (int(mixed.sum()), 1)).astype(np.float32)
    base[mixed] = (1 - w) * base[mixed] + w * other
    noise = rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    if space.hard:
        pts = base + 0.75 * noise
    else:
        rank = space.bases.shape[1]
        z = rng.standard_normal((n, rank)).astype(np.float32) * (0.7 / np.sqrt(rank))
        topic_of = which // space.subs
        variation = np.empty((n, dim), dtype=np.float32)
        for t in np.unique(topic_of):
            idx = np.flatnonzero(topic_of == t)
            variation[idx] = z[idx] @ space.bases[t]
        pts = base + variation + 0.25 * noise
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    return pts.astype(np.float32)


def make_corpus(n: int, dim: int, seed: int, *, hard: bool = False) -> Corpus:
    rng = np.random.default_rng(seed)
    topics, subs = 200, 12
    space = make_space(rng, dim, topics, subs, hard=hard)

    # Projects: one big tenant and 40 small ones holding 1 % between them.
    small_projects = np.array([f"proj-{i:02d}" for i in range(40)])
    project = np.where(rng.random(n) < 0.99, MAIN, rng.choice(small_projects, n))
    # Namespaces inside each project: explicit sizes so the ~30/1/0.1 % filters exist.
    named = {"default": 0.30, "research": 0.20, "ops": 0.10, "team-small": 0.01, "tiny": 0.001}
    rest = 1.0 - sum(named.values())
    ns_names = [*named, *[f"ns-{i:02d}" for i in range(50)]]
    ns_p = np.array([*named.values(), *([rest / 50] * 50)])
    namespace = rng.choice(np.array(ns_names), n, p=ns_p / ns_p.sum())
    # Each namespace prefers a handful of topics (a support namespace talks about support).
    ns_topics = {ns: rng.choice(topics, 6, replace=False) for ns in ns_names}
    topic = rng.integers(0, topics, n)
    prefer = rng.random(n) < 0.6
    for ns in ns_names:
        idx = np.flatnonzero(prefer & (namespace == ns))
        topic[idx] = rng.choice(ns_topics[ns], len(idx))
    subtopic = topic * subs + rng.integers(0, subs, n)
    vectors = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 20_000):
        stop = min(n, start + 20_000)
        vectors[start:stop] = sample_points(rng, space, subtopic[start:stop])

    agents = np.array([f"agent-{i:03d}" for i in range(300)])
    agent = rng.choice(agents, n, p=_zipf_weights(300, 0.9))
    agent = np.where(rng.random(n) < 0.05, "", agent)  # user-level memories without owner
    users = np.array([f"user-{i:04d}" for i in range(2000)])
    user = np.where(rng.random(n) < 0.7, rng.choice(users, n, p=_zipf_weights(2000, 0.8)), "")
    scope = rng.choice(SCOPES, n, p=[0.55, 0.15, 0.30])
    scope = np.where((agent == "") & (scope == "agent-private"), "global", scope)
    mtype = rng.choice(TYPES, n, p=[0.65, 0.12, 0.10, 0.08, 0.05])
    shared_with: list[tuple[str, ...]] = [()] * n
    for i in np.flatnonzero(scope == "agent-shared"):
        shared_with[i] = tuple(sorted(set(rng.choice(agents, rng.integers(1, 4)).tolist())))
    expires = np.full(n, np.inf)
    r = rng.random(n)
    expires[r < 0.01] = NOW - rng.uniform(1, 86_400 * 30, int((r < 0.01).sum()))
    fut = (r >= 0.01) & (r < 0.06)
    expires[fut] = NOW + rng.uniform(60, 86_400 * 30, int(fut.sum()))
    deprecated = rng.random(n) < 0.01
    voted = rng.random(n) < 0.3
    effectiveness = np.where(voted, np.clip(rng.normal(0.1, 0.35, n), -1, 1), 0.0)
    # Sparse, growing database ids.
    labels = np.cumsum(rng.integers(1, 4, n)).astype(np.int64) + 1000
    return Corpus(
        vectors=vectors,
        subtopic=subtopic,
        labels=labels,
        project=project,
        namespace=namespace,
        agent=agent,
        user=user,
        scope=scope,
        mtype=mtype,
        shared_with=shared_with,
        expires=expires,
        deprecated=deprecated,
        effectiveness=effectiveness,
        space=space,
        ns_topics=ns_topics,
    )


# --------------------------------------------------------------------------- filters


def truth_mask(c: Corpus, f: SearchFilter) -> np.ndarray:
    """The filter evaluated straight from the corpus columns (independent of the index)."""
    m = (c.project == f.project_id) & (c.expires > f.now)
    if f.namespace is not None:
        m &= c.namespace == f.namespace
    if not f.include_deprecated:
        m &= ~c.deprecated
    if f.owner_agent_ids is not None:
        m &= np.isin(c.agent, list(f.owner_agent_ids))
    if f.user_id is not None:
        m &= c.user == f.user_id
    if f.scopes is not None:
        m &= np.isin(c.scope, list(f.scopes))
    if f.memory_types is not None:
        m &= np.isin(c.mtype, list(f.memory_types))
    if f.min_effectiveness is not None:
        m &= c.effectiveness >= f.min_effectiveness
    if f.apply_visibility and f.visible_to_agent is not None:
        a = f.visible_to_agent
        shared = np.array([a in s for s in c.shared_with])
        m &= (c.scope == "global") | (c.agent == a) | ((c.scope == "agent-shared") & shared)
    return m


def pick_agents_for_share(c: Corpus, share: float) -> frozenset[str]:
    """Smallest set of least-active owners whose memories reach ``share`` of the rows."""
    names, counts = np.unique(c.agent[c.agent != ""], return_counts=True)
    order = np.argsort(counts)
    chosen: list[str] = []
    total = 0
    for i in order[::-1]:
        if counts[i] > share * len(c.labels):
            continue
        chosen.append(str(names[i]))
        total += counts[i]
        if total >= share * len(c.labels):
            break
    return frozenset(chosen)


def pick_user(c: Corpus, share: float) -> str:
    names, counts = np.unique(c.user[c.user != ""], return_counts=True)
    return str(names[np.argmin(np.abs(counts - share * len(c.labels)))])


def make_filters(c: Corpus) -> dict[str, SearchFilter]:
    base = {"project_id": MAIN, "now": NOW}
    agents, counts = np.unique(c.agent[c.agent != ""], return_counts=True)
    mid_agent = str(agents[np.argsort(counts)[len(counts) // 2]])
    return {
        "project (~97%)": SearchFilter(namespace=None, **base),
        "namespace default (~30%)": SearchFilter(namespace="default", **base),
        "visible to agent (~31%)": SearchFilter(namespace=None, visible_to_agent=mid_agent, **base),
        "types strategy|reflection (~21%)": SearchFilter(
            namespace=None, memory_types=frozenset({"strategy", "reflection"}), **base
        ),
        "effectiveness>=0.3 (~8%)": SearchFilter(namespace=None, min_effectiveness=0.3, **base),
        "ns default+visible+standard (~6%)": SearchFilter(
            namespace="default",
            visible_to_agent=mid_agent,
            memory_types=frozenset({"standard"}),
            **base,
        ),
        "namespace team-small (~1%)": SearchFilter(namespace="team-small", **base),
        "owners (~1%)": SearchFilter(
            namespace=None, owner_agent_ids=pick_agents_for_share(c, 0.01), **base
        ),
        "user (~0.1%)": SearchFilter(namespace=None, user_id=pick_user(c, 0.001), **base),
        "namespace tiny (~0.1%)": SearchFilter(namespace="tiny", **base),
        "small project (~0.02%)": SearchFilter(project_id="proj-07", namespace=None, now=NOW),
    }


def use_real_vectors(c: Corpus, path: Path, n_queries: int) -> None:
    """Swap in the first ``n`` rows of ``path`` as the corpus; keep later rows as queries."""
    n = len(c.labels)
    src = np.load(path, mmap_mode="r")
    if src.ndim != 2 or src.shape[1] != c.vectors.shape[1]:
        raise SystemExit(f"{path}: shape {src.shape}, expected (*, {c.vectors.shape[1]})")
    if len(src) < n + n_queries:
        raise SystemExit(f"{path}: {len(src)} rows, need {n} + {n_queries} queries")
    # Copies (np.array), not views of the memory map, whose file pages would count in RSS.
    c.vectors = np.array(src[:n], dtype=np.float32)
    pool = max(n_queries, min(len(src) - n, 20_000))
    c.real_queries = np.array(src[n : n + pool], dtype=np.float32)


def make_queries(c: Corpus, mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Half the queries are about content in scope of the filter, half about anything.

    With real vectors (``--vectors``): random rows that are not in the corpus.
    """
    if c.real_queries is not None:
        pick = rng.choice(len(c.real_queries), count, replace=False)
        return c.real_queries[pick]
    in_scope = np.flatnonzero(mask)
    which = rng.integers(0, len(c.space.centers), count)
    local = rng.random(count) < 0.5
    if len(in_scope):
        which[local] = c.subtopic[rng.choice(in_scope, int(local.sum()))]
    return sample_points(rng, c.space, which)


def exact_topk(c: Corpus, mask: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    idx = np.flatnonzero(mask)
    scores = c.vectors[idx] @ q
    order = np.lexsort((c.labels[idx], -scores))[:k]
    return c.labels[idx][order].tolist()


# --------------------------------------------------------------------------- measuring


def rss_mib() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def bench_filter(
    index: VectorIndex, flt: SearchFilter, queries: np.ndarray, truths: list[list[int]]
) -> tuple[list[float], float]:
    """Latencies (ms) of all queries and mean recall@K for one pass."""
    lat: list[float] = []
    hits = 0
    possible = 0
    for q, truth in zip(queries, truths, strict=True):
        t0 = time.perf_counter_ns()
        res = index.search(q, K, flt)
        lat.append((time.perf_counter_ns() - t0) / 1e6)
        got = {label for label, _ in res}
        if len(res) != len(truth):
            raise AssertionError(f"returned {len(res)} results, {len(truth)} exist")
        hits += len(got.intersection(truth))
        possible += len(truth)
    return lat, (hits / possible if possible else 1.0)


def run(args: argparse.Namespace) -> dict[str, Any]:
    print(
        f"# vector index benchmark: n={args.n} dim={args.dim} queries={args.queries} "
        f"runs={args.runs} seed={args.seed} hard={args.hard}"
    )
    print(f"# {platform.platform()} python {platform.python_version()} cpus={os.cpu_count()}")
    t0 = time.perf_counter()
    corpus = make_corpus(args.n, args.dim, args.seed, hard=args.hard)
    if args.vectors is not None:
        use_real_vectors(corpus, args.vectors, args.queries + args.warmup)
    rows = corpus.rows()
    print(f"corpus generated in {time.perf_counter() - t0:.1f}s")

    rss0 = rss_mib()
    options = {} if args.ef is None else {"ef_search": args.ef}
    corpus_id = hash((args.n, args.dim, args.seed, args.hard)) & 0x7FFF_FFFF
    index = None
    if args.reuse is not None:
        index = VectorIndex.load(args.reuse, dim=args.dim, model_name="bench-model", **options)
        if index is not None and index.synced_seq != corpus_id:
            index = None
    build_s = float("nan")
    if index is None:
        index = VectorIndex(args.dim, "bench-model", **options)
        t0 = time.perf_counter()
        for start in range(0, args.n, 10_000):
            index.upsert(rows[start : start + 10_000], corpus.vectors[start : start + 10_000])
        build_s = time.perf_counter() - t0
        index.synced_seq = corpus_id
        if args.reuse is not None:
            index.save(args.reuse)
        rss1 = rss_mib()
        print(
            f"build: {build_s:.1f}s ({args.n / build_s:,.0f} rows/s), RSS +{rss1 - rss0:,.0f} "
            f"MiB (vectors alone {corpus.vectors.nbytes / 2**20:,.0f} MiB)"
        )
    else:
        rss1 = rss_mib()
        print(f"index loaded from {args.reuse} (build not timed), RSS +{rss1 - rss0:,.0f} MiB")

    rng = np.random.default_rng(args.seed + 1)
    filters = make_filters(corpus)
    results: dict[str, Any] = {
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "runs": args.runs,
        "build_s": build_s,
        "rss_added_mib": rss1 - rss0,
        "filters": {},
    }
    header = (
        f"{'filter':36} {'sel%':>7} {'count':>7} {'plan':>14} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'p99 ms':>7} {'recall@10':>9}"
    )
    print(
        f"ef_search={index.ef_search} exact threshold={index.exact_threshold()} candidates "
        f"(min {index.exact_min_candidates}, crossover {index.exact_crossover:g})"
    )
    print(header)
    print("-" * len(header))
    plan_modes = ["auto", "exact", "hnsw"] if args.compare_plans else ["auto"]
    for name, flt in filters.items():
        mask = truth_mask(corpus, flt)
        count = int(mask.sum())
        if index.count(flt) != count:
            raise AssertionError(f"{name}: index count {index.count(flt)} != truth {count}")
        queries = make_queries(corpus, mask, args.queries + args.warmup, rng)
        truths = [exact_topk(corpus, mask, q, K) for q in queries[args.warmup :]]
        for mode in plan_modes:
            index.plan_mode = mode  # type: ignore[assignment]
            plan = index.explain(flt, K)
            p50s, p95s, p99s, recalls = [], [], [], []
            for q in queries[: args.warmup]:  # warm-up, untimed
                index.search(q, K, flt)
            for _ in range(args.runs):
                lat, recall = bench_filter(index, flt, queries[args.warmup :], truths)
                p50s.append(float(np.percentile(lat, 50)))
                p95s.append(float(np.percentile(lat, 95)))
                p99s.append(float(np.percentile(lat, 99)))
                recalls.append(recall)
            entry = {
                "selectivity": count / args.n,
                "count": count,
                "plan": plan["plan"],
                "filter_eval": plan["filter_eval"],
                "p50_ms": statistics.median(p50s),
                "p95_ms": statistics.median(p95s),
                "p99_ms": statistics.median(p99s),
                "recall_at_10": statistics.median(recalls),
                "p50_runs": p50s,
            }
            label = name if mode == "auto" else f"  forced {mode}"
            results["filters"].setdefault(name, {})[mode] = entry
            print(
                f"{label:36} {100 * count / args.n:7.3f} {count:7d} {plan['plan']:>14} "
                f"{entry['p50_ms']:7.3f} {entry['p95_ms']:7.3f} {entry['p99_ms']:7.3f} "
                f"{entry['recall_at_10']:9.4f}"
            )
    index.plan_mode = "auto"

    with tempfile.TemporaryDirectory(prefix="aegis-index-bench-") as tmp:
        t0 = time.perf_counter()
        index.save(Path(tmp))
        save_s = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
        t0 = time.perf_counter()
        loaded = VectorIndex.load(Path(tmp), dim=args.dim, model_name="bench-model", **options)
        load_s = time.perf_counter() - t0
        assert loaded is not None
        flt = filters["namespace default (~30%)"]
        for q in make_queries(corpus, truth_mask(corpus, flt), 20, rng):
            assert loaded.search(q, K, flt) == index.search(q, K, flt)
    print(
        f"save: {save_s:.2f}s, load: {load_s:.2f}s, on disk {size / 2**20:,.0f} MiB "
        "(load verifies SHA-256 of every file)"
    )
    results.update(save_s=save_s, load_s=load_s, disk_mib=size / 2**20)

    if args.sweep:
        results["sweep"] = sweep(index, corpus, args, rng)
    return results


def sweep(
    index: VectorIndex, corpus: Corpus, args: argparse.Namespace, rng: np.random.Generator
) -> list[dict[str, Any]]:
    """Exact vs filtered-HNSW latency across selectivities (calibrates the threshold).

    Uses owner-agent filters, which are uncorrelated with the vectors, so selectivity is
    the only thing that changes. The two plans alternate query by query so that the
    machine's noise hits both alike.
    """
    print("\nsweep: forced exact vs forced hnsw-filtered, owner filters, interleaved")
    print(f"{'sel%':>7} {'count':>7} {'exact p50':>10} {'hnsw p50':>10} {'hnsw recall':>11}")
    out = []
    shares = (0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10, 0.12, 0.15, 0.2)
    for share in shares:
        flt = SearchFilter(
            project_id=MAIN,
            namespace=None,
            now=NOW,
            owner_agent_ids=pick_agents_for_share(corpus, share),
        )
        mask = truth_mask(corpus, flt)
        queries = make_queries(corpus, mask, min(args.queries, 100) + 10, rng)
        truths = [exact_topk(corpus, mask, q, K) for q in queries]
        lat: dict[str, list[float]] = {"exact": [], "hnsw": []}
        hits = 0
        for i, (q, truth) in enumerate(zip(queries, truths, strict=True)):
            for mode in ("exact", "hnsw") if i % 2 else ("hnsw", "exact"):
                index.plan_mode = mode  # type: ignore[assignment]
                t0 = time.perf_counter_ns()
                res = index.search(q, K, flt)
                if i >= 10:  # the first 10 are warm-up
                    lat[mode].append((time.perf_counter_ns() - t0) / 1e6)
                    if mode == "hnsw":
                        hits += len({x for x, _ in res}.intersection(truth))
        row: dict[str, Any] = {
            "selectivity": float(mask.mean()),
            "count": int(mask.sum()),
            "exact_p50_ms": float(np.percentile(lat["exact"], 50)),
            "hnsw_p50_ms": float(np.percentile(lat["hnsw"], 50)),
            "hnsw_recall": hits / (K * len(lat["hnsw"])),
        }
        print(
            f"{100 * row['selectivity']:7.3f} {row['count']:7d} {row['exact_p50_ms']:10.3f} "
            f"{row['hnsw_p50_ms']:10.3f} {row['hnsw_recall']:11.4f}"
        )
        out.append(row)
    index.plan_mode = "auto"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="number of memories")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200, help="timed queries per filter")
    parser.add_argument("--warmup", type=int, default=20, help="untimed queries per filter")
    parser.add_argument("--runs", type=int, default=3, help="passes; medians are reported")
    parser.add_argument("--ef", type=int, default=None, help="ef_search (default: index's)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--hard",
        action="store_true",
        help="full-rank isotropic noise: the worst case for ANN, not realistic embeddings",
    )
    parser.add_argument(
        "--compare-plans",
        action="store_true",
        help="also time forced exact and forced hnsw for every filter",
    )
    parser.add_argument(
        "--sweep",
        action="store_true",
        help="exact vs hnsw across selectivities (threshold calibration)",
    )
    parser.add_argument(
        "--vectors",
        type=Path,
        help="real embeddings (.npy, float32, L2-normalised): first n rows are the corpus, "
        "queries come from the rows after them",
    )
    parser.add_argument("--json", type=Path, help="write results to this file")
    parser.add_argument(
        "--reuse",
        type=Path,
        help="load the built index from this directory if it matches, else build and save it",
    )
    args = parser.parse_args()
    results = run(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=float))
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
