"""Engine-only filtered queries on a data directory a benchmark server left behind.

The server is stopped first (it saves its vector index on shutdown), then the same data
directory is opened in this process with ``MemoryService.open``, exactly as ``aegis serve``
opens it. What is timed is ``MemoryService.search_vector``: everything ``/memories/query``
does once the text is a vector (visibility filter, planner, vector search, reading the hits'
rows, re-checking them, queueing the retrieval event). The query vectors are the model's
vectors of the suite's query texts, computed beforehand.

Recall@10 compares each answer with the exact top 10 among the rows the same filter
allows: the index is switched to its exact plan (brute force over the filter's rows) and the
same queries are run again. With PostgreSQL (``database_url``) the same is done in the
database: the store's exact threshold is raised so that every query ranks its rows exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bench_http import median_of_runs, percentiles
from corpus import Query

from aegis_memory.config import Settings
from aegis_memory.embeddings.local import LocalOnnxEmbedder
from aegis_memory.service import Identity, MemoryService
from aegis_memory.store import open_store

WARMUP = 20


async def _open(data_dir: Path, database_url: str | None) -> MemoryService:
    settings = Settings(aegis_data_dir=data_dir, aegis_embedding_cache_size=0,
                        database_url=database_url)
    return await MemoryService.open(settings, open_store(settings), LocalOnnxEmbedder())


async def _run(
    service: MemoryService, queries: Sequence[Query], vectors: np.ndarray, start: int, count: int
) -> tuple[list[float], list[list[str]]]:
    identity = Identity(project_id="default")
    times: list[float] = []
    answers: list[list[str]] = []
    for j in range(start, start + count):
        q = queries[j % len(queries)]
        t0 = time.perf_counter()
        result = await service.search_vector(
            identity, vectors[j % len(queries)], agent=q.agent_id, query=q.text,
            namespace=q.namespace, user_id=q.user_id, top_k=10,
        )
        times.append((time.perf_counter() - t0) * 1000)
        answers.append([m.id for m in result.memories])
    return times, answers


async def engine_queries(
    data_dir: Path, queries: Sequence[Query], vectors: np.ndarray, *, ops: int, runs: int,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Latency over ``runs`` passes of ``ops`` queries, recall@10 against exact search."""
    started = time.perf_counter()
    service = await _open(data_dir, database_url)
    open_s = time.perf_counter() - started
    try:
        index = getattr(service.index, "index", None)
        await _run(service, queries, vectors, 0, WARMUP)
        passes = []
        answers: list[list[str]] = []
        for r in range(runs):
            times, got = await _run(service, queries, vectors, WARMUP + r * ops, ops)
            passes.append(percentiles(times))
            answers.extend(got)
        plans = dict(index.stats()) if index is not None else {}
        with _exact_plan(service):
            _, exact = await _run(service, queries, vectors, WARMUP, ops * runs)
        hits = [len(set(a) & set(e)) / len(e) for a, e in zip(answers, exact, strict=True) if e]
        recall = float(np.mean(hits)) if hits else None
    finally:
        await service.close()
    return {**median_of_runs(passes), "recall_at_10": recall, "plans": plans,
            "open_seconds": open_s}


@contextlib.contextmanager
def _exact_plan(service: MemoryService) -> Iterator[None]:
    """Exact search for the ground truth: the in-process index's exact plan, or for
    PostgreSQL the store's exact ranking (threshold above any row count)."""
    index = getattr(service.index, "index", None)
    if index is not None:
        index.plan_mode = "exact"
        try:
            yield
        finally:
            index.plan_mode = "auto"
        return
    plan = service.store.search_plan  # type: ignore[attr-defined]
    saved = plan.exact_threshold
    plan.exact_threshold = 10**12
    try:
        yield
    finally:
        plan.exact_threshold = saved


def run_engine_queries(
    data_dir: Path, queries: Sequence[Query], vectors: np.ndarray, *, ops: int, runs: int,
    database_url: str | None = None,
) -> dict[str, Any]:
    return asyncio.run(engine_queries(data_dir, queries, vectors, ops=ops, runs=runs,
                                      database_url=database_url))
