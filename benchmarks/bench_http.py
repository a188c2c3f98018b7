"""A real Aegis server in a subprocess, and the timed HTTP operations the suite runs on it.

Everything here goes through the public REST API on loopback, as an agent would: the server
is ``aegis serve`` on the embedded default (SQLite file, in-process vector index, the bundled
embedding model), started over a fresh data directory.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from corpus import Item, Query

API_KEY = "dev-key"
MODEL_NAME = "all-MiniLM-L6-v2-int8"
IMPORT_BATCH = 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """``aegis serve`` over ``data_dir`` on a free loopback port."""

    data_dir: Path
    # No embedding cache: the suite repeats its query texts, and every figure should
    # include the model's work, as a first-time query does.
    env: dict[str, str] = field(default_factory=lambda: {"AEGIS_EMBEDDING_CACHE_SIZE": "0"})
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 900.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AEGIS_", "DATABASE_"))}
        env.update(LOG_LEVEL="warning", **self.env)
        log = (self.data_dir.parent / f"server-{self.port}.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aegis_memory.cli.main", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {log.name}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=600)
        self.proc = None

    def memory(self) -> dict[str, float]:
        """Resident memory now and at its peak (VmHWM), in MB, from /proc."""
        assert self.proc is not None
        out: dict[str, float] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = int(value.split()[0]) / 1024
        return out

    def wait_for_graph(self, timeout: float = 3600.0) -> float:
        """Wait until the server's HNSW graph holds every vector; returns the seconds waited.

        Imported rows are searchable at once (scored exactly while pending), but queries
        are timed on the finished graph, as a long-running server has it.
        """
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            text = httpx.get(self.url + "/metrics", timeout=30).text
            pending = [line for line in text.splitlines()
                       if line.startswith("aegis_index_pending_vectors ")]
            if not pending or float(pending[0].split()[1]) == 0:
                return time.perf_counter() - started
            time.sleep(0.5)
        raise TimeoutError("the vector index did not finish its graph")

    def disk_mb(self) -> float:
        return sum(p.stat().st_size for p in self.data_dir.rglob("*") if p.is_file()) / 2**20

    def client(self, timeout: float = 600.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout,
                            headers={"Authorization": f"Bearer {API_KEY}"})


def remove_data(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- statistics


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(samples_ms, dtype=np.float64)
    return {"p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)),
            "p99": float(np.percentile(arr, 99)), "n": int(arr.size)}


def median_of_runs(runs: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each percentile as the median over runs (``n`` summed)."""
    out = {k: statistics.median(r[k] for r in runs) for k in ("p50", "p95", "p99")}
    out["n"] = sum(int(r["n"]) for r in runs)
    out["runs"] = len(runs)
    return out


def timed_runs(
    op: Callable[[int], None], *, ops: int, runs: int, warmup: int = 10
) -> dict[str, float]:
    """Run ``op(i)`` ``warmup`` times, then ``runs`` passes of ``ops`` timed calls."""
    i = 0
    for _ in range(warmup):
        op(i)
        i += 1
    passes = []
    for _ in range(runs):
        samples = []
        for _ in range(ops):
            start = time.perf_counter()
            op(i)
            samples.append((time.perf_counter() - start) * 1000)
            i += 1
        passes.append(percentiles(samples))
    return median_of_runs(passes)


# ----------------------------------------------------------------------------- payloads


def add_body(item: Item, *, content: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "content": content or item.content, "namespace": item.namespace,
        "agent_id": item.agent_id, "scope": item.scope, "memory_type": item.memory_type,
    }
    if item.user_id:
        body["user_id"] = item.user_id
    if item.shared_with_agents:
        body["shared_with_agents"] = item.shared_with_agents
    return body


def import_body(items: Sequence[Item], vectors: np.ndarray | None,
                encoding: str = "base64") -> bytes:
    """An ``/memories/import`` body, in the export format (with embeddings when given).

    ``encoding`` is the export format's ``embedding_encoding``: ``base64`` (little-endian
    float32 bytes, what ``aegis export`` writes) or ``float`` (a JSON list of numbers).
    """
    memories = []
    if vectors is not None and encoding == "base64":
        raw = np.ascontiguousarray(vectors, dtype="<f4")
        width = raw.shape[1] * 4
        flat = raw.tobytes()
        encoded: Sequence[Any] = [base64.b64encode(flat[j * width:(j + 1) * width]).decode()
                                  for j in range(len(items))]
    else:
        encoded = [] if vectors is None else vectors
    for j, item in enumerate(items):
        m = add_body(item)
        m["id"] = item.id
        m["shared_with_agents"] = item.shared_with_agents
        if vectors is not None:
            m["embedding"] = encoded[j]
            m["embedding_model"] = MODEL_NAME
        memories.append(m)
    return orjson.dumps({"memories": memories}, option=orjson.OPT_SERIALIZE_NUMPY)


def voter_for(item: Item) -> str:
    """An agent allowed to see ``item``: a sharee, another agent of its namespace for a
    global memory, else its owner."""
    if item.scope == "agent-shared" and item.shared_with_agents:
        return item.shared_with_agents[0]
    if item.scope == "global":
        return f"{item.namespace}-agent-1"
    return item.agent_id


def query_body(q: Query, top_k: int = 10, mode: str | None = None) -> dict[str, Any]:
    """A query as the API takes it; ``mode`` None leaves the server's default (hybrid)."""
    body: dict[str, Any] = {"query": q.text, "agent_id": q.agent_id, "namespace": q.namespace,
                            "top_k": top_k}
    if mode is not None:
        body["mode"] = mode
    if q.user_id:
        body["user_id"] = q.user_id
    return body


# ----------------------------------------------------------------------------- phases


def bulk_import(
    client: httpx.Client, items: Sequence[Item], vectors: np.ndarray | None,
    *, batch: int = IMPORT_BATCH, progress: Callable[[int], None] | None = None,
    encoding: str = "base64", in_flight: int = 1,
) -> dict[str, float]:
    """Import ``items`` in batches; the next body is encoded while the server works.
    ``encoding``: how the embeddings are written (see `import_body`). ``in_flight`` > 1
    keeps that many requests going at once (each thread encodes its own body), so that one
    request's parsing and validation overlap another's database work."""
    start = time.perf_counter()
    encode_s = 0.0
    imported = reembedded = 0

    def encode(lo: int) -> bytes:
        hi = min(lo + batch, len(items))
        return import_body(items[lo:hi], None if vectors is None else vectors[lo:hi],
                           encoding)

    from concurrent.futures import ThreadPoolExecutor

    if in_flight > 1:
        def send(lo: int) -> dict[str, Any]:
            r = client.post("/memories/import", content=encode(lo),
                            headers={"Content-Type": "application/json"})
            r.raise_for_status()
            return r.json()

        with ThreadPoolExecutor(in_flight) as pool:
            for out in pool.map(send, range(0, len(items), batch)):
                imported += out["imported"]
                reembedded += out["reembedded"]
        elapsed = time.perf_counter() - start
        return {"memories": len(items), "imported": imported, "reembedded": reembedded,
                "seconds": elapsed, "per_s": len(items) / elapsed, "in_flight": in_flight}

    with ThreadPoolExecutor(1) as pool:
        t0 = time.perf_counter()
        pending = pool.submit(encode, 0)
        for lo in range(0, len(items), batch):
            body = pending.result()
            encode_s += time.perf_counter() - t0
            if lo + batch < len(items):
                t0 = time.perf_counter()
                pending = pool.submit(encode, lo + batch)
            r = client.post("/memories/import", content=body,
                            headers={"Content-Type": "application/json"})
            r.raise_for_status()
            out = r.json()
            imported += out["imported"]
            reembedded += out["reembedded"]
            if progress:
                progress(min(lo + batch, len(items)))
    elapsed = time.perf_counter() - start
    return {"memories": len(items), "imported": imported, "reembedded": reembedded,
            "seconds": elapsed, "per_s": len(items) / elapsed}


def http_queries(
    client: httpx.Client, queries: Sequence[Query], *, ops: int, runs: int,
    path: str = "/memories/query", cross_agent: bool = False, mode: str | None = None,
) -> dict[str, float]:
    def op(i: int) -> None:
        q = queries[i % len(queries)]
        body = query_body(q, mode=mode)
        if cross_agent:
            body["requesting_agent_id"] = body.pop("agent_id")
        r = client.post(path, json=body)
        r.raise_for_status()

    return timed_runs(op, ops=ops, runs=runs)


def single_adds(
    client: httpx.Client, fresh: Sequence[Item], *, ops: int, runs: int
) -> dict[str, float]:
    def op(i: int) -> None:
        r = client.post("/memories/add", json=add_body(fresh[i]))
        r.raise_for_status()

    return timed_runs(op, ops=ops, runs=runs)


def batch_adds(
    client: httpx.Client, fresh: Sequence[Item], *, ops: int, runs: int, size: int = 50
) -> dict[str, float]:
    def op(i: int) -> None:
        chunk = fresh[i * size:(i + 1) * size]
        r = client.post("/memories/add_batch", json={"items": [add_body(x) for x in chunk]})
        r.raise_for_status()

    return timed_runs(op, ops=ops, runs=runs, warmup=3)


def dedup_reinserts(
    client: httpx.Client, stored: Sequence[Item], *, ops: int, runs: int
) -> dict[str, float]:
    """Re-add memories that are already stored: answered from the hash, no embedding."""
    misses = 0

    def op(i: int) -> None:
        nonlocal misses
        r = client.post("/memories/add", json=add_body(stored[i % len(stored)]))
        r.raise_for_status()
        if r.json().get("deduped_from") is None:
            misses += 1

    result = timed_runs(op, ops=ops, runs=runs)
    result["not_deduplicated"] = misses
    return result


def votes(
    client: httpx.Client, stored: Sequence[Item], *, ops: int, runs: int
) -> dict[str, float]:
    rng = random.Random(3)

    def op(i: int) -> None:
        item = stored[i % len(stored)]
        r = client.post(f"/memories/ace/vote/{item.id}",
                        json={"vote": rng.choice(("helpful", "harmful")),
                              "voter_agent_id": voter_for(item)})
        r.raise_for_status()

    return timed_runs(op, ops=ops, runs=runs)


def mixed_load_wrk(
    url: str, queries: Sequence[Query], fresh: Sequence[Item], stored: Sequence[Item],
    workdir: Path, *, clients: int = 32, seconds: float = 30.0, read_share: float = 0.8,
) -> dict[str, Any] | None:
    """The mixed load driven by ``wrk`` (C, two threads), so that the load generator does
    not take the CPU the server needs: a Python client spends about as much CPU per
    request as the server does. ``None`` when wrk is not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    requests = workdir / "mixed-requests.tsv"
    with requests.open("w", encoding="utf-8") as fh:
        for q in queries:
            fh.write(f"read\t/memories/query\t{orjson.dumps(query_body(q)).decode()}\n")
        for item in fresh:
            fh.write(f"add\t/memories/add\t{orjson.dumps(add_body(item)).decode()}\n")
        for item in stored:
            body = {"vote": "helpful", "voter_agent_id": voter_for(item)}
            fh.write(f"vote\t/memories/ace/vote/{item.id}\t{orjson.dumps(body).decode()}\n")
    script = Path(__file__).resolve().parent / "mixed_load.lua"
    env = {**os.environ, "MIXED_FILE": str(requests), "READ_SHARE": str(read_share),
           "API_KEY": API_KEY}
    proc = subprocess.run(
        [wrk, "-t2", f"-c{clients}", f"-d{int(seconds)}s", "--timeout", "10s", "-s",
         str(script), url],
        env=env, capture_output=True, text=True, check=True,
    )
    line = next(x for x in proc.stdout.splitlines() if x.startswith("WRK_JSON "))
    raw = orjson.loads(line.removeprefix("WRK_JSON "))
    errors = sum(raw[k] for k in ("connect_errors", "read_errors", "write_errors",
                                  "status_errors", "timeouts"))
    elapsed = raw["duration_us"] / 1e6
    return {"driver": "wrk", "clients": clients, "seconds": elapsed, "ops": raw["requests"],
            "ops_per_s": raw["requests"] / elapsed, "p50": raw["p50_us"] / 1000,
            "p95": raw["p95_us"] / 1000, "p99": raw["p99_us"] / 1000,
            "max": raw["max_us"] / 1000, "n": raw["requests"], "reads": raw["reads"],
            "adds": raw["adds"], "votes": raw["votes"], "errors": errors,
            "error_kinds": [k for k in ("connect_errors", "read_errors", "write_errors",
                                        "status_errors", "timeouts") if raw[k]]}


async def mixed_load(
    url: str, queries: Sequence[Query], fresh: Sequence[Item], stored: Sequence[Item],
    *, clients: int = 32, seconds: float = 30.0, read_share: float = 0.8,
) -> dict[str, Any]:
    """``clients`` concurrent agents for ``seconds``: 80 % queries, 20 % writes (adds and
    votes, half each), each client waiting for its answer before the next request."""
    latencies: list[float] = []
    errors: list[str] = []
    counters = {"reads": 0, "adds": 0, "votes": 0}
    fresh_iter = iter(fresh)
    deadline = time.perf_counter() + seconds

    async def agent(n: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(n)
        while time.perf_counter() < deadline:
            roll = rng.random()
            if roll < read_share:
                kind, path, body = "reads", "/memories/query", query_body(rng.choice(queries))
            elif roll < read_share + (1 - read_share) / 2:
                item = next(fresh_iter)
                kind, path, body = "adds", "/memories/add", add_body(item)
            else:
                item = rng.choice(stored)
                kind, path = "votes", f"/memories/ace/vote/{item.id}"
                body = {"vote": "helpful", "voter_agent_id": voter_for(item)}
            start = time.perf_counter()
            try:
                r = await http.post(path, json=body)
                if r.status_code >= 400:
                    errors.append(f"{r.status_code} {path}")
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__} {path}")
            latencies.append((time.perf_counter() - start) * 1000)
            counters[kind] += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits,
                                 headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        started = time.perf_counter()
        await asyncio.gather(*(agent(n, http) for n in range(clients)))
        elapsed = time.perf_counter() - started
    return {"clients": clients, "seconds": elapsed, "ops": len(latencies),
            "ops_per_s": len(latencies) / elapsed, **percentiles(latencies), **counters,
            "errors": len(errors), "error_kinds": sorted(set(errors))[:10]}
