"""What syncing every commit costs on SQLite: ``AEGIS_SQLITE_SYNCHRONOUS`` normal vs full.

With WAL, ``synchronous=NORMAL`` writes each commit to the WAL file and syncs only at
checkpoints: a killed process loses nothing, a power cut may lose the last commits. ``FULL``
syncs the WAL at every commit (the default with ``AEGIS_ENV=production``). The price is one
fsync per write transaction, so it depends on the disk: this script measures it on this
machine's, through the whole engine (``MemoryService.add``, one memory per call, the way an
agent stores what it learns), with the embedding left out (precomputed vectors) so that the
write path is what is timed.

Prints, per setting, the median over ``--runs`` runs of adds per second and the per-add
p50/p95 latency, and the ratio FULL / NORMAL.

Usage::

    .venv/bin/python benchmarks/sqlite_durability_bench.py --adds 500 --runs 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

try:
    import aegis_memory  # noqa: F401
except ImportError:  # a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from aegis_memory import schemas as s
from aegis_memory.config import Settings
from aegis_memory.service import Identity, MemoryService
from aegis_memory.store import open_store

DIM = 384


class RandomEmbedder:
    """A fixed random unit vector per text: no model cost in the timings."""

    model_name = "bench-random"
    dim = DIM

    def __init__(self) -> None:
        self._rng = np.random.default_rng(7)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._rng.standard_normal((len(texts), DIM)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


async def one_run(synchronous: str, adds: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=os.environ.get("AEGIS_BENCH_DIR")) as directory:
        settings = Settings(aegis_data_dir=Path(directory), aegis_sqlite_synchronous=synchronous)
        service = await MemoryService.open(settings, open_store(settings), RandomEmbedder())
        identity = Identity(project_id="default")
        latencies = []
        try:
            started = time.perf_counter()
            for i in range(adds):
                t0 = time.perf_counter()
                await service.add(identity, s.MemoryFields(
                    content=f"durability benchmark note {i}", agent_id="bench"))
                latencies.append((time.perf_counter() - t0) * 1000)
            elapsed = time.perf_counter() - started
        finally:
            await service.close()
    latencies.sort()
    return {"adds_per_s": adds / elapsed, "p50_ms": latencies[len(latencies) // 2],
            "p95_ms": latencies[int(len(latencies) * 0.95)]}


async def main_async(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    results: dict[str, list[dict[str, float]]] = {"normal": [], "full": []}
    for _ in range(args.runs):  # alternate, so drift on a shared machine hits both alike
        for synchronous in results:
            results[synchronous].append(await one_run(synchronous, args.adds))
    return {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            for name, runs in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adds", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    print(f"SQLite durability: {args.adds} single adds per run, medians of {args.runs} runs, "
          f"{os.cpu_count()} cores", flush=True)
    medians = asyncio.run(main_async(args))
    print(f"{'synchronous':<12} {'adds/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for name, m in medians.items():
        print(f"{name:<12} {m['adds_per_s']:>8.1f} {m['p50_ms']:>8.2f} {m['p95_ms']:>8.2f}")
    ratio = medians["full"]["adds_per_s"] / medians["normal"]["adds_per_s"]
    print(f"full / normal throughput: {ratio:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"medians": medians, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
