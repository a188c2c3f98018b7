"""Resource bounds: the server's memory and open files stay flat under a steady mixed load.

One ``aegis serve`` on the embedded default (SQLite and the in-process vector index, where a
leak would live in our own process) is filled with memories, then four clients run a steady
mix for ``quick_or_soak(20, 600)`` seconds: queries, votes, re-adds of stored texts (dedup),
and a trickle of fresh adds. Its resident memory (VmRSS) and open file descriptors are read
from /proc every few seconds.

The data still grows a little (fresh adds, and an event per query and vote), and SQLite's
page cache and the vector index may rightly hold that growth in memory. So the bound after
warm-up is: RSS grows by at most 5 % (at least 10 MiB, allocator noise) plus the growth of
the database files, which is more than the cached pages and index vectors of the new data
can take. Without a leak the load's churn itself (thousands of requests, queries, re-adds,
vote upserts) adds nothing. Descriptors may not grow at all beyond a small slack for sockets
that come and go.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.conftest import ServerProcess
from tests.reliability._harness import (
    AUTH,
    Texts,
    open_fds,
    process_tree,
    rss_bytes,
    slope_per_minute,
)
from tests.reliability._soak import quick_or_soak, report

NS = "soak"
CLIENTS = 4
HOT, VOTERS = 50, 20  # votes go to HOT memories from VOTERS voters: a bounded set of rows
OPS = ("query", "vote", "dedup", "add")
WEIGHTS = (50, 20, 20, 10)
#: The share of the run, after the fill, that counts as warm-up (caches, allocator arenas).
WARM_UP = 0.4
MIB = 1024 * 1024
RSS_SLACK, RSS_FLOOR = 0.05, 10 * MIB
FD_SLACK = 4


@dataclass
class Sample:
    at: float
    rss: int
    fds: int
    db_bytes: int


@dataclass
class Run:
    texts: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    ops: int = 0
    added: int = 0
    failures: list[str] = field(default_factory=list)


def _db_bytes(data_dir: Path) -> int:
    """Size of the SQLite database with its WAL: what the data takes."""
    return sum(p.stat().st_size for p in data_dir.glob("aegis.db*"))


def _sample(server: ServerProcess, started: float) -> Sample:
    assert server.proc is not None
    pids = process_tree(server.proc.pid)
    return Sample(time.monotonic() - started, rss_bytes(pids), open_fds(pids),
                  _db_bytes(server.data_dir))


async def _fill(http: httpx.AsyncClient, run: Run, count: int) -> None:
    texts = Texts("soak fill", 7)
    for _ in range(count // 50):
        batch = [texts() for _ in range(50)]
        r = await http.post("/memories/add_batch",
                            json={"items": [{"content": t, "namespace": NS} for t in batch]})
        assert r.status_code == 200, r.text
        run.texts += batch
        run.ids += [x["id"] for x in r.json()["results"]]


async def _client(n: int, http: httpx.AsyncClient, run: Run, end: float) -> None:
    rng = random.Random(n)
    fresh = Texts(f"soak client {n}", 100 + n)
    while time.monotonic() < end:
        op = rng.choices(OPS, WEIGHTS)[0]
        if op == "query":
            path, body = "/memories/query", {"query": rng.choice(run.texts), "namespace": NS,
                                             "top_k": 10}
        elif op == "vote":
            path = f"/memories/ace/vote/{rng.choice(run.ids[:HOT])}"
            body = {"vote": rng.choice(("helpful", "harmful")),
                    "voter_agent_id": f"voter-{rng.randrange(VOTERS)}"}
        elif op == "dedup":
            path, body = "/memories/add", {"content": rng.choice(run.texts), "namespace": NS}
        else:
            path, body = "/memories/add", {"content": fresh(), "namespace": NS}
        r = await http.post(path, json=body)
        run.ops += 1
        if r.status_code != 200:
            run.failures.append(f"{op} {r.status_code}: {r.text[:120]}")
        elif op == "add":
            run.added += 1


async def _soak(server: ServerProcess, seconds: float, every: float, fill: int) -> Run:
    run = Run()
    started = time.monotonic()
    run.samples.append(_sample(server, started))
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=60) as http:
        await _fill(http, run, fill)
        load_started = time.monotonic()
        end = load_started + seconds
        clients = [asyncio.create_task(_client(n, http, run, end)) for n in range(CLIENTS)]
        while time.monotonic() < end:
            run.samples.append(_sample(server, started))
            await asyncio.sleep(every)
        await asyncio.gather(*clients)
        run.samples.append(_sample(server, started))
    # Times from the start of the steady load, so that the warm-up is a share of it.
    offset = load_started - started
    run.samples = [Sample(s.at - offset, s.rss, s.fds, s.db_bytes) for s in run.samples]
    return run


def _mean(samples: list[Sample], attr: str) -> float:
    return statistics.fmean(getattr(s, attr) for s in samples)


def test_memory_and_open_files_stay_flat(tmp_path: Path) -> None:
    seconds = quick_or_soak(20, 600)
    every = quick_or_soak(1, 5)
    server = ServerProcess(tmp_path / "data").start()
    try:
        run = asyncio.run(_soak(server, seconds, every, quick_or_soak(500, 2000)))
    finally:
        server.stop()
    load = [s for s in run.samples if s.at >= 0]
    steady = [s for s in load if s.at >= WARM_UP * seconds]
    window = max(2, len(steady) // 10)  # average a few samples at each end: less noise
    warm, last = steady[:window], steady[-window:]
    rss_growth = _mean(last, "rss") - _mean(warm, "rss")
    db_growth = _mean(last, "db_bytes") - _mean(warm, "db_bytes")
    allowed = max(RSS_SLACK * _mean(warm, "rss"), RSS_FLOOR) + max(db_growth, 0)
    figures = {
        "seconds": seconds, "clients": CLIENTS, "ops": run.ops,
        "ops_per_s": round(run.ops / seconds, 1), "memories_filled": len(run.ids),
        "memories_added_during_load": run.added, "samples": len(run.samples),
        "rss_mib": {"start": round(run.samples[0].rss / MIB, 1),
                    "after_warm_up": round(_mean(warm, "rss") / MIB, 1),
                    "end": round(_mean(last, "rss") / MIB, 1),
                    "max": round(max(s.rss for s in load) / MIB, 1),
                    "growth_after_warm_up": round(rss_growth / MIB, 1),
                    "allowed_growth": round(allowed / MIB, 1),
                    "slope_after_warm_up_mib_per_min": round(slope_per_minute(
                        [(s.at, s.rss / MIB) for s in steady]), 2)},
        "db_mib": {"after_warm_up": round(_mean(warm, "db_bytes") / MIB, 1),
                   "end": round(_mean(last, "db_bytes") / MIB, 1)},
        "open_fds": {"start": run.samples[0].fds, "after_warm_up": max(s.fds for s in warm),
                     "end": last[-1].fds, "max_after_warm_up": max(s.fds for s in steady),
                     "slope_after_warm_up_per_min": round(slope_per_minute(
                         [(s.at, s.fds) for s in steady]), 2)},
        "failures": len(run.failures),
    }
    report("resource-soak", figures)
    assert not run.failures, run.failures[:5]
    assert run.ops > 0 and len(steady) >= 4, "the load or the sampling did not run"
    assert rss_growth <= allowed, figures["rss_mib"]
    assert max(s.fds for s in steady) <= max(s.fds for s in warm) + FD_SLACK, \
        figures["open_fds"]
