"""Resource bounds: the server's memory and open files stay flat under a steady mixed load.

One ``aegis serve`` on the embedded default (SQLite and the in-process vector index, where a
leak would live in our own process) is filled with memories, then four clients run a steady
mix for ``quick_or_soak(20, 600)`` seconds: queries, votes (upserts over a bounded set of
voters and memories), re-adds of stored texts (dedup), and fresh adds that expire after 30 s
(so inserts, index updates and background purges keep running while the live data set stays
about the same size). The server's resident memory (VmRSS) and open file descriptors are read
from /proc every few seconds.

Data still grows: every query and vote appends an event, and expired rows leave free pages
behind. SQLite's page caches (one per connection, up to 64 MiB each) and the vector index
rightly keep new data in memory; measured per kind of operation, RSS grew by 1.2-1.8 times
what the database files grew (docs/guides/reliability.md). So after warm-up RSS may grow by
5 % (at least 10 MiB: allocator noise) plus twice the growth of the database files. Then a
last phase of dedup re-adds alone, which store nothing, must leave RSS where it was: the
request path itself must not keep anything. Descriptors may not grow beyond a small slack.
The embedding cache is set to 1,000 entries so that it reaches its bound during the warm-up
(at its default of 10,000 it would take most of the soak to fill, about 19 MiB).
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from aegis_memory import schemas as s
from aegis_memory.config import DEFAULT_PROJECT, Settings
from aegis_memory.embeddings import build_embedder
from aegis_memory.service import MemoryService, engine
from aegis_memory.service.access import Identity
from aegis_memory.store import open_store
from tests.conftest import ServerProcess, database_rows
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
#: Fresh adds expire after this long and are purged in the background (every minute), so
#: inserts, index updates and purges keep running while the live data set stays the same size.
TTL = 30
#: The share of the run, after the fill, that counts as warm-up (caches, allocator arenas).
WARM_UP = 0.4
MIB = 1024 * 1024
RSS_SLACK, RSS_FLOOR = 0.05, 10 * MIB
#: RSS allowed per byte the database files grew (page caches and index of the new data).
PER_DATA_BYTE = 2
#: The closing phase of re-adds only, and what RSS may gain in it.
STATIC_SECONDS = quick_or_soak(5, 60)
STATIC_SLACK = 4 * MIB
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
    static: tuple[Sample, Sample] | None = None  # around the closing re-add-only phase
    static_ops: int = 0
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


async def _client(n: int, http: httpx.AsyncClient, run: Run, end: float,
                  ops: tuple[str, ...] = OPS) -> None:
    rng = random.Random(n)
    fresh = Texts(f"soak client {n}", 100 + n)
    weights = [w for op, w in zip(OPS, WEIGHTS, strict=True) if op in ops]
    while time.monotonic() < end:
        op = rng.choices(ops, weights)[0]
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
            path, body = "/memories/add", {"content": fresh(), "namespace": NS,
                                           "ttl_seconds": TTL}
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
        before, ops = _sample(server, started), run.ops
        end = time.monotonic() + STATIC_SECONDS
        await asyncio.gather(*(_client(n, http, run, end, ("dedup",))
                               for n in range(CLIENTS)))
        run.static, run.static_ops = (before, _sample(server, started)), run.ops - ops
    # Times from the start of the steady load, so that the warm-up is a share of it.
    offset = load_started - started
    run.samples = [Sample(s.at - offset, s.rss, s.fds, s.db_bytes) for s in run.samples]
    return run


def _mean(samples: list[Sample], attr: str) -> float:
    return statistics.fmean(getattr(s, attr) for s in samples)


def test_memory_and_open_files_stay_flat(tmp_path: Path) -> None:
    seconds = quick_or_soak(20, 600)
    every = quick_or_soak(1, 5)
    server = ServerProcess(tmp_path / "data",
                           env={"AEGIS_EMBEDDING_CACHE_SIZE": "1000"}).start()
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
    allowed = max(RSS_SLACK * _mean(warm, "rss"), RSS_FLOOR) + PER_DATA_BYTE * max(db_growth, 0)
    assert run.static is not None
    static_growth = run.static[1].rss - run.static[0].rss
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
                        [(s.at, s.rss / MIB) for s in steady]), 2),
                    "growth_per_mib_of_data": round(rss_growth / db_growth, 2)
                    if db_growth > 0 else None},
        "re_add_only_phase": {"seconds": STATIC_SECONDS, "ops": run.static_ops,
                              "rss_growth_mib": round(static_growth / MIB, 2),
                              "fds": [run.static[0].fds, run.static[1].fds]},
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
    assert static_growth <= STATIC_SLACK, figures["re_add_only_phase"]
    assert max(s.fds for s in steady) <= max(s.fds for s in warm) + FD_SLACK, \
        figures["open_fds"]


def test_expired_memories_are_purged_however_many(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One maintenance round purges every expired memory, not one batch of them: with one
    batch of 1,000 a minute, expiring adds faster than ~17 a second piled up (found by the
    soak above). The batch is made small here so that a few rows show it."""
    monkeypatch.setattr(engine, "PURGE_BATCH", 10)

    async def scenario() -> int | None:
        settings = Settings(_env_file=None, aegis_data_dir=tmp_path, database_url=None)
        service = await MemoryService.open(settings, open_store(settings),
                                           build_embedder(settings))
        try:
            who = Identity(project_id=DEFAULT_PROJECT)
            await service.add_batch(who, [s.MemoryFields(content=f"expiring note {i}",
                                                         ttl_seconds=1) for i in range(35)])
            await service.add(who, s.MemoryFields(content="a note that stays"))
            await asyncio.sleep(1.2)
            await service.maintenance()
            return service.index.vector_count
        finally:
            await service.close()

    assert asyncio.run(scenario()) == 1
    rows = database_rows(f"sqlite:///{tmp_path / 'aegis.db'}", "SELECT content FROM memories")
    assert rows == [("a note that stays",)]
