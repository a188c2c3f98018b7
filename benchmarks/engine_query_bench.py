"""Filtered top-10 queries through the whole engine, embedding excluded, on SQLite and PostgreSQL.

What is timed is ``MemoryService.search_vector``, which is ``query`` after the text has been
embedded: identity and visibility filter, the search planner, hydrating the rows from the
database, re-checking visibility and queueing the retrieval event. The model's cost is left out
on purpose (``embedding_bench.py`` measures it).

Two backends (``--backend``, both by default), loaded with the same rows through the same
import path (``MemoryService.import_``, precomputed vectors):

* ``sqlite`` - the embedded store; vectors are searched in the process
  (``aegis_memory.index.VectorIndex``: exact or HNSW, picked per query; its plan counters say
  which ran).
* ``postgres`` - a throwaway embedded PostgreSQL server with pgvector (``durable=False``);
  vectors are searched in the database (``aegis_memory.store.postgres.search``: a capped count,
  then exact ranking of the matching rows or an iterative HNSW scan). Which statements each
  search ran and how long the count took are recorded by wrapping that module's functions in
  this process; nothing in ``src/`` changes. By default the HNSW index is built after the load
  (``--pg-index``), which is several times faster than maintaining it row by row.

Corpus: the clustered synthetic vectors of ``vector_index_bench.py`` (topics, not uniform
noise), 100 agents owning 1 % each, 30 % global / 60 % private / 10 % shared memories.
Filters: the whole namespace (project key, ~100 %), what one agent may see (~31 %), one
agent's own memories (``target_agent_ids``, ~1 %), and the shared memories one agent may see
(``scope="agent-shared"``, ~0.2 %: selective, but on columns no index covers). Recall@10 is
measured against exact search over the same visible set computed here.

Usage::

    .venv/bin/python benchmarks/engine_query_bench.py --n 100000 --queries 200 --runs 3
    .venv/bin/python benchmarks/engine_query_bench.py --backend postgres \
        --sweep-ef 40,64,100,200 --sweep-threshold 500,2000,5000
    .venv/bin/python benchmarks/engine_query_bench.py --backend postgres \
        --pg-ef-construction 128 --pg-shared-buffers 1GB
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
BACKENDS = ("sqlite", "postgres")
WARMUP = 20


class LookupEmbedder:
    """Returns the vector registered for a text: the benchmark excludes embedding cost."""

    model_name = MODEL

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.table: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


def make_data(n: int, seed: int) -> dict:
    """The corpus and its attributes, shared by both backends (same rows, same order)."""
    corpus = make_corpus(n, 384, seed)
    vectors = corpus.vectors.astype(np.float32)
    rng = np.random.default_rng(seed)
    owners = rng.integers(0, AGENTS, n)
    scope_draw = rng.random(n)
    scopes = np.where(scope_draw < 0.3, "global",
                      np.where(scope_draw < 0.9, "agent-private", "agent-shared"))
    share_with = rng.integers(0, AGENTS, n)
    return {"vectors": vectors, "owners": owners, "scopes": scopes, "share_with": share_with}


def exported(data: dict, i: int) -> s.ImportedMemory:
    scope = data["scopes"][i]
    shared = [f"agent-{data['share_with'][i]}"] if scope == "agent-shared" else []
    return s.ImportedMemory(
        id=uuid.uuid4().hex, content=f"synthetic memory {i}", namespace="main",
        agent_id=f"agent-{data['owners'][i]}", scope=scope, shared_with_agents=shared,
        embedding=data["vectors"][i].tolist(), embedding_model=MODEL,
    )


async def load(service: MemoryService, data: dict, batch_size: int) -> float:
    """Import every memory through ``MemoryService.import_`` (the bulk path of the API: one
    multi-row INSERT per batch; SQLite's in-process index catches up after each batch);
    returns seconds."""
    identity = Identity(project_id="default")
    n = len(data["vectors"])
    started = time.perf_counter()
    for start in range(0, n, batch_size):
        batch = [exported(data, i) for i in range(start, min(n, start + batch_size))]
        await service.import_(identity, s.ImportRequest(memories=batch))
    return time.perf_counter() - started


# --------------------------------------------------------------------------- probes


class PostgresProbe:
    """Records, per search, which statements PostgreSQL ran and how long they took.

    Wraps functions of ``aegis_memory.store.postgres.search`` (and the name the store imported)
    for the life of the benchmark. ``search_ms`` is the work inside the transaction (settings,
    count, search statements); BEGIN/COMMIT and taking a pooled connection are outside it.
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None
        self._undo: list[Callable[[], None]] = []

    def _patch(self, module: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(module, name)
        setattr(module, name, make(original))
        self._undo.append(lambda: setattr(module, name, original))

    def install(self) -> None:
        from aegis_memory.store.postgres import search as pg_search
        from aegis_memory.store.postgres import store as pg_store

        def search_vectors(original: Any) -> Any:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                self._current = {"count_ms": 0.0, "statements": []}
                started = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    self._current["search_ms"] = (time.perf_counter() - started) * 1000
                    self.records.append(self._current)
                    self._current = None
            return wrapped

        def count_capped(original: Any) -> Any:
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    if self._current is not None:
                        self._current["count_ms"] += (time.perf_counter() - started) * 1000
            return wrapped

        def statement(kind: str) -> Callable[[Any], Any]:
            def make(original: Any) -> Any:
                def wrapped(*args: Any, **kwargs: Any) -> Any:
                    if self._current is not None:
                        self._current["statements"].append(kind)
                    return original(*args, **kwargs)
                return wrapped
            return make

        self._patch(pg_store, "search_vectors", search_vectors)
        self._patch(pg_search, "count_capped", count_capped)
        self._patch(pg_search, "hnsw_statement", statement("hnsw"))
        self._patch(pg_search, "exact_statement", statement("exact"))
        self._patch(pg_store, "search_vector_ids", search_vectors)

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    def mark(self) -> int:
        return len(self.records)

    def summary(self, since: int) -> dict[str, Any]:
        records = self.records[since:]
        paths = Counter("+".join(r["statements"]) or "empty" for r in records)
        return {
            "paths": dict(paths),
            "count_p50_ms": round(statistics.median(r["count_ms"] for r in records), 3),
            "db_p50_ms": round(statistics.median(r["search_ms"] for r in records), 3),
        }


class SqliteProbe:
    """The in-process index counts its plans; the difference over a filter is what ran."""

    def __init__(self, service: MemoryService) -> None:
        self.index = service.index.index  # type: ignore[union-attr]
        self._before: dict[str, int] = {}

    def mark(self) -> int:
        self._before = self.index.stats()
        return 0

    def summary(self, since: int) -> dict[str, Any]:
        after = self.index.stats()
        paths = {k: v - self._before.get(k, 0) for k, v in after.items()}
        return {"paths": {k: v for k, v in paths.items() if v}}


class HydrationTimer:
    """Times ``store.get_memories_by_row_ids`` (reading the hits' rows), both backends."""

    def __init__(self, service: MemoryService) -> None:
        self.ms: list[float] = []
        original = service.store.get_memories_by_row_ids

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await original(*args, **kwargs)
            finally:
                self.ms.append((time.perf_counter() - started) * 1000)

        service.store.get_memories_by_row_ids = timed  # type: ignore[method-assign]

    def mark(self) -> int:
        return len(self.ms)

    def p50_since(self, mark: int) -> float | None:
        """None when no separate read happened (PostgreSQL reads the rows with the search)."""
        recent = self.ms[mark:]
        return round(statistics.median(recent), 3) if recent else None


# --------------------------------------------------------------------------- backends


@contextmanager
def postgres_cluster(directory: Path, shared_buffers: str | None) -> Iterator[Any]:
    """A throwaway PostgreSQL server (fsync off); yields it, stops it at the end."""
    from aegis_memory.store.postgres.embedded import EmbeddedPostgres

    cluster = EmbeddedPostgres(directory / "pg", durable=False).start()
    try:
        if shared_buffers:  # needs a restart; the server's default is 128MB
            cluster.psql(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
            cluster.stop()
            cluster.start()
        yield cluster
    finally:
        cluster.stop()


HNSW_INDEX = "ix_memories_embedding_hnsw"


async def load_postgres(
    service: MemoryService, data: dict, cluster: Any, args: argparse.Namespace
) -> tuple[dict[str, float], str]:
    """Load through the same import path as SQLite. With ``--pg-index rebuild`` (default) the
    HNSW index the migration created is dropped first and built again after the load with the
    same definition, which is several times faster than maintaining it row by row (pgvector
    inserts each row into the graph); ``incremental`` keeps it. Then VACUUM ANALYZE, the state
    autovacuum reaches on its own, so that it does not start in the middle of the timings.
    Returns the timings and the index definition used."""
    database = "bench"
    timings: dict[str, float] = {}
    definition = cluster.psql(
        f"SELECT indexdef FROM pg_indexes WHERE indexname = '{HNSW_INDEX}'", database
    ).strip()
    if args.pg_index == "rebuild":
        cluster.psql(f"DROP INDEX {HNSW_INDEX}", database)
        if args.pg_ef_construction:
            definition = re.sub(r"ef_construction\s*=\s*'?\d+'?",
                                f"ef_construction = {args.pg_ef_construction}", definition)
    timings["load_seconds"] = await load(service, data, args.batch)
    if args.pg_index == "rebuild":
        started = time.perf_counter()
        cluster.psql(
            f"SET maintenance_work_mem = '{args.pg_maintenance_work_mem}'; {definition}",
            database,
        )
        timings["index_build_seconds"] = time.perf_counter() - started
    started = time.perf_counter()
    cluster.psql("VACUUM ANALYZE memories", database)
    timings["vacuum_analyze_seconds"] = time.perf_counter() - started
    return timings, definition


async def open_service(backend: str, directory: Path, url: str | None) -> MemoryService:
    settings = Settings(aegis_data_dir=directory, aegis_embedding_cache_size=0,
                        database_url=url if backend == "postgres" else None)
    return await MemoryService.open(settings, open_store(settings), LookupEmbedder(384))


# --------------------------------------------------------------------------- measuring


# (name, acting agent, owner filter, scope filter). The last one is selective on columns no
# index covers (scope, and the shared-with list), unlike the owner filter.
CASES = [
    ("namespace, project key (~100 %)", None, None, None),
    ("visible to one agent (~31 %)", 7, None, None),
    ("one agent's own (~1 %)", None, 7, None),
    ("shared scope, one agent (~0.2 %)", 7, None, "agent-shared"),
]


def visible_mask(
    data: dict, agent: int | None, only_owner: int | None, scope: str | None = None
) -> np.ndarray:
    owners, scopes, share = data["owners"], data["scopes"], data["share_with"]
    mask = np.ones(len(owners), dtype=bool)
    if agent is not None:
        mask = (scopes == "global") | (owners == agent) | (
            (scopes == "agent-shared") & (share == agent))
    if only_owner is not None:
        mask &= owners == only_owner
    if scope is not None:
        mask &= scopes == scope
    return mask


def ground_truth(data: dict, key: tuple, mask: np.ndarray, queries: np.ndarray) -> list[set]:
    """Exact top-10 row numbers among ``mask`` per query; cached, as the sweeps repeat them."""
    cache = data.setdefault("truth", {})
    if key not in cache:
        scores = queries @ data["vectors"].T
        scores[:, ~mask] = -np.inf
        k = min(10, int(mask.sum()))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        cache[key] = [set(row.tolist()) for row in top]
    return cache[key]


async def bench(
    service: MemoryService, data: dict, probe: Any, hydration: HydrationTimer, queries: int,
    seed: int,
) -> list[dict]:
    rng = np.random.default_rng(seed + 1)
    vectors = data["vectors"]
    identity = Identity(project_id="default")
    rows = []
    for name, agent, owner, scope in CASES:
        mask = visible_mask(data, agent, owner, scope)
        picks = rng.integers(0, len(vectors), queries + WARMUP)
        qv = vectors[picks] + 0.05 * rng.normal(size=(len(picks), vectors.shape[1]))
        qv = (qv / np.linalg.norm(qv, axis=1, keepdims=True)).astype(np.float32)
        times, results = [], []
        candidates = np.flatnonzero(mask)
        for j, q in enumerate(qv):
            if j == WARMUP:
                mark, hydration_mark = probe.mark(), hydration.mark()
            started = time.perf_counter()
            result = await service.search_vector(
                identity, q, query=f"q:{name}:{j}", namespace="main", top_k=10,
                agent=f"agent-{agent}" if agent is not None else None,
                owners=[f"agent-{owner}"] if owner is not None else None, scope=scope,
            )
            elapsed = time.perf_counter() - started
            if j >= WARMUP:
                times.append(elapsed * 1000)
                results.append(result.memories)
        plan = probe.summary(mark)
        plan["hydrate_p50_ms"] = hydration.p50_since(hydration_mark)
        # Ground truth after the timed loop, so its BLAS work does not disturb the timings.
        truth = ground_truth(data, (seed, name), mask, qv[WARMUP:])
        recalls = []
        for exact, memories in zip(truth, results, strict=True):
            got = {int(m.content.rsplit(" ", 1)[1]) for m in memories}
            recalls.append(len(got & exact) / min(10, len(candidates)))
        rows.append({
            "filter": name, "matching": int(mask.sum()),
            "selectivity": round(float(mask.mean()), 4),
            "p50_ms": round(statistics.median(times), 3),
            "p95_ms": round(float(np.percentile(times, 95)), 3),
            "recall_at_10": round(float(np.mean(recalls)), 4),
            **plan,
        })
    return rows


def median_of_runs(runs: list[list[dict]]) -> list[dict]:
    summary = []
    for i, first in enumerate(runs[0]):
        row = dict(first)
        for key in ("p50_ms", "p95_ms", "count_p50_ms", "db_p50_ms", "hydrate_p50_ms"):
            if first.get(key) is not None:
                row[key] = round(statistics.median(r[i][key] for r in runs), 3)
        row["recall_at_10"] = round(statistics.median(r[i]["recall_at_10"] for r in runs), 4)
        paths: Counter[str] = Counter()
        for r in runs:
            paths.update(r[i]["paths"])
        row["paths"] = dict(paths)
        summary.append(row)
    return summary


async def run_backend(backend: str, data: dict, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"aegis-bench-{backend}-") as tmp:
        directory = Path(tmp)
        if backend == "postgres":
            with postgres_cluster(directory, args.pg_shared_buffers) as cluster:
                return await measure(backend, data, args, directory, cluster)
        return await measure(backend, data, args, directory, None)


async def measure(
    backend: str, data: dict, args: argparse.Namespace, directory: Path, cluster: Any
) -> dict:
    url = cluster.create_database("bench") if cluster is not None else None
    service = await open_service(backend, directory, url)
    hydration = HydrationTimer(service)
    probe: Any = None
    try:
        n = len(data["vectors"])
        print(f"[{backend}] loading {n} memories...", flush=True)
        definition = None
        if backend == "postgres":
            timings, definition = await load_postgres(service, data, cluster, args)
        else:
            timings = {"load_seconds": await load(service, data, args.batch)}
        report: dict[str, Any] = {k: round(v, 1) for k, v in timings.items()}
        if definition:
            report["hnsw_index"] = definition
        report["load_rows_per_second"] = round(n / timings["load_seconds"])
        print(f"[{backend}] loaded: {timings_text(timings)}", flush=True)
        if backend == "postgres":
            report["pg_index"] = args.pg_index
            report["server"] = {
                key: cluster.psql(f"SHOW {key}", "bench").strip()
                for key in ("server_version", "shared_buffers", "work_mem")
            }
            report["server"]["pgvector"] = cluster.psql(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'", "bench"
            ).strip()
            probe = PostgresProbe()
            probe.install()
            plan = service.store.search_plan  # type: ignore[attr-defined]
            report["plan"] = dict(vars(plan))
        else:
            probe = SqliteProbe(service)
            index = probe.index
            report["plan"] = {"exact_threshold": index.exact_threshold(),
                              "ef_search": index.ef_search}
        runs = [await bench(service, data, probe, hydration, args.queries, args.seed + r)
                for r in range(args.runs)]
        report["results"] = median_of_runs(runs)
        if backend == "postgres":
            report["sweep"] = await sweep(service, data, probe, hydration, args)
        return report
    finally:
        if isinstance(probe, PostgresProbe):
            probe.uninstall()
        await service.close()


async def sweep(
    service: MemoryService, data: dict, probe: Any, hydration: HydrationTimer,
    args: argparse.Namespace,
) -> list:
    """Vary the PostgreSQL planner's knobs on the loaded data (``--sweep-*``)."""
    plan = service.store.search_plan  # type: ignore[attr-defined]
    default = dict(vars(plan))
    settings = [{"ef_search": v} for v in args.sweep_ef]
    settings += [{"exact_threshold": v} for v in args.sweep_threshold]
    out = []
    try:
        for change in settings:
            for key, value in {**default, **change}.items():
                setattr(plan, key, value)
            print(f"[postgres] sweep {change}...", flush=True)
            runs = [await bench(service, data, probe, hydration, args.queries, args.seed + r)
                    for r in range(args.runs)]
            out.append({"setting": change, "results": median_of_runs(runs)})
    finally:
        for key, value in default.items():
            setattr(plan, key, value)
    return out


# --------------------------------------------------------------------------- output


def timings_text(timings: dict[str, float]) -> str:
    return ", ".join(f"{k.removesuffix('_seconds').replace('_', ' ')} {v:.1f} s"
                     for k, v in timings.items())


def paths_text(paths: dict[str, int]) -> str:
    total = sum(paths.values()) or 1
    return ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(paths.items(), key=lambda p: -p[1]))


def print_backend(backend: str, report: dict) -> None:
    print(f"\n[{backend}] load {report['load_seconds']} s "
          f"({report['load_rows_per_second']:,} rows/s)", end="")
    if "index_build_seconds" in report:
        print(f", HNSW index built afterwards in {report['index_build_seconds']} s", end="")
    elif backend == "postgres":
        print(", HNSW index maintained during the load", end="")
    else:
        print(", in-process index built during the load", end="")
    print(f"\n  planner {report['plan']}")
    if "server" in report:
        print(f"  server {report['server']}\n  index {report['hnsw_index']}")
    extra = backend == "postgres"
    head = f"{'filter':34} {'rows':>7} {'p50 ms':>7} {'p95 ms':>7} {'r@10':>6}"
    if extra:
        head += f" {'count':>6} {'db':>6}"
    print(head + f" {'hydr.':>6}  path")
    for row in report["results"]:
        line = (f"{row['filter']:34} {row['matching']:7d} {row['p50_ms']:7.2f} "
                f"{row['p95_ms']:7.2f} {row['recall_at_10']:6.3f}")
        if extra:
            line += f" {row['count_p50_ms']:6.2f} {row['db_p50_ms']:6.2f}"
        hydrate = row.get("hydrate_p50_ms")
        hydrate_text = f"{hydrate:6.2f}" if hydrate is not None else "  with"
        print(line + f" {hydrate_text}  " + paths_text(row["paths"]))
    if extra:
        print("  count: the capped count query; db: all the search's statements (settings, "
              "count, search) inside its transaction; hydr.: reading the hits' rows (p50 ms)")
    for item in report.get("sweep", []):
        print(f"  sweep {item['setting']}:")
        for row in item["results"]:
            print(f"    {row['filter']:32} p50 {row['p50_ms']:6.2f}  p95 {row['p95_ms']:6.2f}  "
                  f"r@10 {row['recall_at_10']:.3f}  count {row['count_p50_ms']:.2f}  "
                  f"{paths_text(row['paths'])}")


def print_side_by_side(reports: dict[str, dict]) -> None:
    names = list(reports)
    print("\nside by side (p50 / p95 ms, recall@10):")
    print(f"{'filter':34} " + " ".join(f"{n:>24}" for n in names))
    for i, (name, *_) in enumerate(CASES):
        cells = []
        for n in names:
            row = reports[n]["results"][i]
            cells.append(f"{row['p50_ms']:6.2f} / {row['p95_ms']:6.2f}  {row['recall_at_10']:.3f}")
        print(f"{name:34} " + " ".join(f"{c:>24}" for c in cells))


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


async def main_async(args: argparse.Namespace) -> dict:
    data = make_data(args.n, args.seed)
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    reports = {}
    for backend in backends:
        reports[backend] = await run_backend(backend, data, args)
        print_backend(backend, reports[backend])
    return {"n": args.n, "queries": args.queries, "runs": args.runs, "backends": reports,
            "date": time.strftime("%Y-%m-%d"),
            "machine": {"python": platform.python_version(), "cpu": cpu_name(),
                        "cores": os.cpu_count(), "load_avg": os.getloadavg()}}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--batch", type=int, default=1000,
                        help="memories per import request while loading")
    parser.add_argument("--sweep-ef", type=int_list, default=[],
                        help="PostgreSQL only: also measure with these hnsw.ef_search values")
    parser.add_argument("--sweep-threshold", type=int_list, default=[],
                        help="PostgreSQL only: also measure with these exact_threshold values")
    parser.add_argument("--pg-index", choices=["rebuild", "incremental"], default="rebuild",
                        help="PostgreSQL only: build the HNSW index after the load (fast) or "
                        "keep the migration's index and maintain it row by row")
    parser.add_argument("--pg-ef-construction", type=int, default=None,
                        help="PostgreSQL only, with --pg-index rebuild: build the HNSW index "
                        "with this ef_construction instead of the migration's")
    parser.add_argument("--pg-maintenance-work-mem", default="1GB",
                        help="PostgreSQL only: for the index build (the graph should fit)")
    parser.add_argument("--pg-shared-buffers", default=None,
                        help="PostgreSQL only: e.g. 1GB (default: the server's, 128MB)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print(f"engine query benchmark: {args.n} memories, medians of {args.runs} runs x "
          f"{args.queries} queries per filter, {os.cpu_count()} cores", flush=True)
    report = asyncio.run(main_async(args))
    if len(report["backends"]) > 1:
        print_side_by_side(report["backends"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
