"""Resident memory of the vector index at a given size (default 1M rows, dim 384).

Builds a :class:`VectorIndex` the way the server does (``graph="background"``) from real
embeddings cached by ``benchmarks/bench.py`` (``benchmarks/.cache/vectors-*.npy``, read
through a memory map in chunks), with random attributes, waits for the graph, drops the
memory map (its file pages would otherwise count in RSS) and prints the process's VmRSS
before and after. The server's own baseline (interpreter, web stack, embedding model) comes
on top of the index's share; see docs/guides/performance.md.

Usage::

    .venv/bin/python benchmarks/index_memory.py --n 1000000
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np

try:
    from aegis_memory.index import IndexedRow, VectorIndex
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from aegis_memory.index import IndexedRow, VectorIndex

CACHE = Path(__file__).resolve().parent / ".cache"
SCOPES = ("agent-private", "agent-shared", "global")
TYPES = ("standard", "strategy", "reflection", "progress", "feature")


def status(field: str) -> float:
    """A /proc/self/status field in MiB (VmRSS, VmHWM...)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rows_for(start: int, stop: int, rng: np.random.Generator) -> list[IndexedRow]:
    n = stop - start
    ns = rng.integers(0, 50, n)
    agent = rng.integers(0, 300, n)
    scope = rng.integers(0, 3, n)
    mtype = rng.integers(0, 5, n)
    return [
        IndexedRow(
            label=start + i + 1,
            project_id="acme",
            namespace=f"ns-{ns[i]}",
            agent_id=f"agent-{agent[i]}",
            user_id=None,
            scope=SCOPES[scope[i]],
            memory_type=TYPES[mtype[i]],
        )
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--vectors", type=Path, help="a .npy file (default: the cache's)")
    parser.add_argument(
        "--builder-nice",
        type=int,
        default=None,
        help="nice value of the graph builder (default: the index's, 10); 0 makes a busy "
        "machine finish the graph sooner and changes nothing in the memory figures",
    )
    args = parser.parse_args()
    if args.builder_nice is not None:
        from aegis_memory.index import vector_index

        vector_index._BUILDER_NICE = args.builder_nice
    path = args.vectors or next(iter(sorted(CACHE.glob("vectors-*.npy"))), None)
    if path is None:
        raise SystemExit(f"no vectors-*.npy in {CACHE}: run benchmarks/bench.py once")
    source = np.load(path, mmap_mode="r")
    if len(source) < args.n:
        raise SystemExit(f"{path} has {len(source)} rows, fewer than {args.n}")
    dim = source.shape[1]
    rss0 = status("VmRSS")
    print(f"# {args.n:,} rows of {path.name}, dim {dim}; RSS before the index {rss0:,.0f} MiB")
    index = VectorIndex(dim, "memory-probe", graph="background")
    rng = np.random.default_rng(1)
    started = time.monotonic()
    for start in range(0, args.n, 20_000):
        stop = min(args.n, start + 20_000)
        index.upsert(rows_for(start, stop, rng), np.asarray(source[start:stop]))
    loaded = time.monotonic() - started
    del source  # unmap: the file's pages leave RSS
    gc.collect()
    print(f"upserted in {loaded:.0f} s; pending {index.pending:,}; waiting for the graph")
    assert index.wait_for_graph()
    built = time.monotonic() - started
    index.close()
    gc.collect()
    rss1 = status("VmRSS")
    vectors_mib = index._vectors.nbytes / 2**20
    print(f"graph complete after {built:.0f} s ({args.n / built:,.0f} rows/s end to end)")
    print(f"VmRSS {rss1:,.0f} MiB (index share {rss1 - rss0:,.0f} MiB; float16 vectors "
          f"{vectors_mib:,.0f} MiB of it, capacity {len(index._vectors):,} rows); "
          f"VmHWM {status('VmHWM'):,.0f} MiB")


if __name__ == "__main__":
    main()
