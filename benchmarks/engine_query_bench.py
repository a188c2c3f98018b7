"""Filtered top-10 queries through the whole engine on the embedded store, embedding excluded.

What is timed is ``MemoryService.search_vector``, which is ``query`` after the text has been
embedded: identity and visibility filter, the index planner (exact or HNSW), hydrating the rows
from SQLite, re-checking visibility and queueing the retrieval event. The model's cost is left
out on purpose (``embedding_bench.py`` measures it).

Corpus: the clustered synthetic vectors of ``vector_index_bench.py`` (topics, not uniform
noise), 100 agents owning 1 % each, 30 % global / 60 % private / 10 % shared memories.
Filters: the whole namespace (project key, ~100 %), what one agent may see (~31 %), and one
agent's own memories (``target_agent_ids``, ~1 %). Recall@10 is measured against exact search
over the same visible set computed here.

Usage::

    .venv/bin/python benchmarks/engine_query_bench.py --n 100000 --queries 200 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
try:
    import aegis_memory  # noqa: F401
except ImportError:  # a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from vector_index_bench import make_corpus

from aegis_memory import schemas as s
from aegis_memory.config import Settings
from aegis_memory.service import Identity, MemoryService
from aegis_memory.store import open_store

MODEL = "bench-precomputed"
AGENTS = 100


class LookupEmbedder:
    """Returns the vector registered for a text: the benchmark excludes embedding cost."""

    model_name = MODEL

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.table: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


async def build(n: int, data_dir: Path, seed: int) -> tuple[MemoryService, dict]:
    corpus = make_corpus(n, 384, seed)
    vectors = corpus.vectors.astype(np.float32)
    rng = np.random.default_rng(seed)
    owners = rng.integers(0, AGENTS, n)
    scope_draw = rng.random(n)
    scopes = np.where(scope_draw < 0.3, "global",
                      np.where(scope_draw < 0.9, "agent-private", "agent-shared"))
    share_with = rng.integers(0, AGENTS, n)
    embedder = LookupEmbedder(384)
    settings = Settings(aegis_data_dir=data_dir, aegis_embedding_cache_size=0)
    service = await MemoryService.open(settings, open_store(settings), embedder)
    identity = Identity(project_id="default")
    started = time.perf_counter()
    for start in range(0, n, 1000):
        batch = []
        for i in range(start, min(n, start + 1000)):
            shared = [f"agent-{share_with[i]}"] if scopes[i] == "agent-shared" else []
            batch.append(s.ExportedMemory(
                id=uuid.uuid4().hex, content=f"synthetic memory {i}", namespace="main",
                agent_id=f"agent-{owners[i]}", scope=scopes[i], shared_with_agents=shared,
                embedding=vectors[i].tolist(), embedding_model=MODEL,
            ))
        await service.import_(identity, s.ImportRequest(memories=batch))
    ingest_s = time.perf_counter() - started
    meta = {"vectors": vectors, "owners": owners, "scopes": scopes, "share_with": share_with,
            "embedder": embedder, "ingest_s": ingest_s}
    return service, meta


def visible_mask(meta: dict, agent: int | None, only_owner: int | None) -> np.ndarray:
    owners, scopes, share = meta["owners"], meta["scopes"], meta["share_with"]
    mask = np.ones(len(owners), dtype=bool)
    if agent is not None:
        mask = (scopes == "global") | (owners == agent) | (
            (scopes == "agent-shared") & (share == agent))
    if only_owner is not None:
        mask &= owners == only_owner
    return mask


async def bench(service: MemoryService, meta: dict, queries: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed + 1)
    vectors = meta["vectors"]
    identity = Identity(project_id="default")
    cases = [
        ("namespace, project key (~100 %)", None, None),
        ("visible to one agent (~31 %)", 7, None),
        ("one agent's own (~1 %)", None, 7),
    ]
    # Row ids are assigned in insertion order, so the i-th memory has row id i + 1.
    rows = []
    for name, agent, owner in cases:
        mask = visible_mask(meta, agent, owner)
        picks = rng.integers(0, len(vectors), queries + 20)
        qv = vectors[picks] + 0.05 * rng.normal(size=(len(picks), vectors.shape[1]))
        qv = (qv / np.linalg.norm(qv, axis=1, keepdims=True)).astype(np.float32)
        times, results = [], []
        candidates = np.flatnonzero(mask)
        for j, q in enumerate(qv):
            started = time.perf_counter()
            result = await service.search_vector(
                identity, q, query=f"q:{name}:{j}", namespace="main", top_k=10,
                agent=f"agent-{agent}" if agent is not None else None,
                owners=[f"agent-{owner}"] if owner is not None else None,
            )
            elapsed = time.perf_counter() - started
            if j >= 20:  # after warm-up
                times.append(elapsed * 1000)
                results.append((q, result.memories))
        # Ground truth after the timed loop, so its BLAS work does not disturb the timings.
        recalls = []
        for q, memories in results:
            scores = vectors[candidates] @ q
            exact = set(candidates[np.argsort(-scores)[:10]].tolist())
            got = {int(m.content.rsplit(" ", 1)[1]) for m in memories}
            recalls.append(len(got & exact) / min(10, len(candidates)))
        rows.append({
            "filter": name, "selectivity": round(float(mask.mean()), 4),
            "p50_ms": round(statistics.median(times), 3),
            "p95_ms": round(float(np.percentile(times, 95)), 3),
            "recall_at_10": round(float(np.mean(recalls)), 4),
        })
    return rows


async def main_async(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        service, meta = await build(args.n, Path(tmp), args.seed)
        try:
            runs = [await bench(service, meta, args.queries, args.seed + r)
                    for r in range(args.runs)]
        finally:
            await service.close()
    summary = []
    for i, first in enumerate(runs[0]):
        summary.append({
            **first,
            "p50_ms": round(statistics.median(r[i]["p50_ms"] for r in runs), 3),
            "p95_ms": round(statistics.median(r[i]["p95_ms"] for r in runs), 3),
            "recall_at_10": round(statistics.median(r[i]["recall_at_10"] for r in runs), 4),
        })
    return {"n": args.n, "queries": args.queries, "runs": args.runs,
            "ingest_seconds": round(meta["ingest_s"], 1), "results": summary,
            "machine": {"python": platform.python_version(), "cpu": platform.processor(),
                        "cores": __import__("os").cpu_count()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    print(f"engine query benchmark: {args.n} memories, ingest {report['ingest_seconds']} s "
          f"(import with precomputed vectors), medians of {args.runs} runs x {args.queries} "
          "queries")
    print(f"{'filter':36} {'sel':>7} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>10}")
    for row in report["results"]:
        print(f"{row['filter']:36} {row['selectivity']:7.2%} {row['p50_ms']:8.2f} "
              f"{row['p95_ms']:8.2f} {row['recall_at_10']:10.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
