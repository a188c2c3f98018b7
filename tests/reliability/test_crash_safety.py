"""Crash safety: SIGKILL the server under write load, restart it, and audit every write.

The process killed is the one that writes the data, ``aegis serve`` (its whole process tree
when it has workers), at a random moment while six clients add single memories and batches,
re-add known texts (dedup), vote and apply atomic deltas. The clients keep a ledger of what
the server acknowledged (a 200 with the id, or the vote counts) and of requests whose answer
never came ("in doubt": they may or may not have been committed).

After each restart on the same data (same directory, same ``DATABASE_URL``), with no manual
step, the database is read directly and must hold:

* every acknowledged memory exactly once, and no text stored twice;
* no memory nobody asked for; an in-doubt batch or delta entirely or not at all;
* each acknowledged vote (every vote comes from a fresh voter, so expectations are exact),
  counters equal to the vote rows, and never below a count the server once answered;
* a vector index that agrees with the database: on SQLite ``aegis_index_vectors`` equals the
  number of stored vectors, and on both backends a query for a memory's own text finds it in
  the top 3.

In-doubt writes are settled by each audit (found: from then on they are expected; missing:
from then on they must stay missing), so every audit is exact. On SQLite every fourth stop
(the second, then every fourth) is a graceful one instead, so that restarts also load a saved
index snapshot and replay from it rather than always rebuilding the index.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, ServerProcess, fresh_database
from tests.reliability._harness import AUTH, Texts, kill_server, metric
from tests.reliability._soak import quick_or_soak, report

NS = "crash"
CLIENTS = 6
BATCH = 5
OPS = ("add", "batch", "vote", "dedup", "delta")
WEIGHTS = (30, 15, 30, 10, 15)
#: Memories checked by a query of their own text after each restart: every new one, up to
#: this many, and as many older ones picked at random.
NEW_CHECKED, OLD_CHECKED = 40, 10


@dataclass
class Ledger:
    """What the server acknowledged (or an audit found), and what is still in doubt."""

    memories: dict[str, str] = field(default_factory=dict)  # id -> text
    ids: list[str] = field(default_factory=list)  # the same ids, for random picks
    unchecked: list[str] = field(default_factory=list)  # not yet found by a query
    delta_targets: list[str] = field(default_factory=list)  # memories no delta updated yet
    deltas: dict[str, str] = field(default_factory=dict)  # target id -> its delta's tag
    votes: dict[str, tuple[str, str]] = field(default_factory=dict)  # voter -> (memory, kind)
    answered: dict[str, tuple[int, int]] = field(default_factory=dict)  # highest counts seen
    doubtful_adds: list[str] = field(default_factory=list)
    doubtful_batches: list[list[str]] = field(default_factory=list)
    doubtful_deltas: list[tuple[str, str, str]] = field(default_factory=list)
    doubtful_votes: dict[str, tuple[str, str]] = field(default_factory=dict)
    acknowledged: Counter[str] = field(default_factory=Counter)
    settled: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def known(self, memory_id: str, text: str) -> None:
        self.memories[memory_id] = text
        self.ids.append(memory_id)
        self.unchecked.append(memory_id)
        self.delta_targets.append(memory_id)


# ----------------------------------------------------------------------------- load


class NotSent(Exception):
    """The connection was refused: the request never reached a server, so it wrote nothing
    (unlike a request cut off by the kill, whose write is in doubt)."""


class Client:
    """One sequential client writing until the server goes away."""

    def __init__(self, n: int, http: httpx.AsyncClient, ledger: Ledger, seed: int) -> None:
        self.http, self.ledger = http, ledger
        self.rng = random.Random(seed * 100 + n)
        self.texts = Texts(f"crash c{n} s{seed}", seed * 100 + n)

    async def run(self, down: asyncio.Event) -> None:
        while not down.is_set():
            op = self.rng.choices(OPS, WEIGHTS)[0]
            if op in ("vote", "dedup") and not self.ledger.ids:
                op = "add"
            if op == "delta" and not self.ledger.delta_targets:
                op = "add"
            try:
                await getattr(self, op)()
            except NotSent:
                self.ledger.settled["refused"] += 1
                await asyncio.sleep(0.01)

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The answer, or None when none came (the server died): the write is in doubt."""
        try:
            r = await self.http.post(path, json=body)
        except httpx.ConnectError as exc:
            raise NotSent from exc
        except httpx.HTTPError:
            return None
        if r.status_code != 200:
            self.ledger.errors[f"{path.split('/')[-1]} {r.status_code}: {r.text[:120]}"] += 1
            return None
        return r.json()

    async def add(self) -> None:
        text = self.texts()
        answer = await self._post("/memories/add", {"content": text, "namespace": NS})
        if answer is None:
            self.ledger.doubtful_adds.append(text)
            return
        self.ledger.acknowledged["add"] += 1
        self.ledger.known(answer["id"], text)

    async def batch(self) -> None:
        texts = [self.texts() for _ in range(BATCH)]
        answer = await self._post("/memories/add_batch", {"items": [
            {"content": t, "namespace": NS} for t in texts]})
        if answer is None:
            self.ledger.doubtful_batches.append(texts)
            return
        self.ledger.acknowledged["batch"] += 1
        for text, result in zip(texts, answer["results"], strict=True):
            self.ledger.known(result["id"], text)

    async def vote(self) -> None:
        memory = self.rng.choice(self.ledger.ids)
        voter, kind = f"voter-{uuid.uuid4().hex[:12]}", self.rng.choice(("helpful", "harmful"))
        answer = await self._post(f"/memories/ace/vote/{memory}",
                                  {"vote": kind, "voter_agent_id": voter})
        if answer is None:
            self.ledger.doubtful_votes[voter] = (memory, kind)
            return
        self.ledger.acknowledged["vote"] += 1
        self.ledger.votes[voter] = (memory, kind)
        seen = self.ledger.answered.get(memory, (0, 0))
        self.ledger.answered[memory] = (max(seen[0], answer["bullet_helpful"]),
                                        max(seen[1], answer["bullet_harmful"]))

    async def dedup(self) -> None:
        memory = self.rng.choice(self.ledger.ids)
        answer = await self._post("/memories/add", {"content": self.ledger.memories[memory],
                                                    "namespace": NS})
        if answer is None:
            return  # a re-add writes nothing either way
        self.ledger.acknowledged["dedup"] += 1
        if answer["id"] != memory or answer.get("deduped_from") != memory:
            self.ledger.errors[f"dedup answered {answer['id']} for {memory}"] += 1

    async def delta(self) -> None:
        targets = self.ledger.delta_targets
        target = targets.pop(self.rng.randrange(len(targets)))
        text, tag = self.texts(), uuid.uuid4().hex[:12]
        answer = await self._post("/memories/ace/delta", {"namespace": NS, "operations": [
            {"type": "add", "content": text},
            {"type": "update", "memory_id": target, "metadata": {"delta_tag": tag}},
        ]})
        if answer is None:
            self.ledger.doubtful_deltas.append((text, target, tag))
            return
        self.ledger.acknowledged["delta"] += 1
        self.ledger.known(answer["results"][0]["memory_id"], text)
        self.ledger.deltas[target] = tag


async def _write_until_stopped(server: ServerProcess, ledger: Ledger, seed: int,
                               after: float, graceful: bool) -> int:
    """Run the clients; after ``after`` seconds kill the server (or stop it gracefully).
    Returns how many processes were killed."""
    down = asyncio.Event()
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=30) as http:
        clients = [Client(n, http, ledger, seed) for n in range(CLIENTS)]
        tasks = [asyncio.create_task(c.run(down)) for c in clients]
        await asyncio.sleep(after)
        killed = 0
        if graceful:
            await asyncio.to_thread(server.stop)
        else:
            killed = await asyncio.to_thread(kill_server, server)
        down.set()
        await asyncio.gather(*tasks)
        return killed


# ----------------------------------------------------------------------------- audit


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else (value or {})


def audit(server: ServerProcess, ledger: Ledger) -> Counter[str]:
    """Compare the database with the ledger; settle what was in doubt. Returns defects."""
    defects: Counter[str] = Counter()
    rows = server.sql("SELECT id, content, bullet_helpful, bullet_harmful, meta FROM memories "
                      "WHERE namespace = :ns", ns=NS)
    by_text: dict[str, list[str]] = defaultdict(list)
    for memory_id, text, *_ in rows:
        by_text[text].append(memory_id)
    meta = {r[0]: _json(r[4]) for r in rows}
    defects["duplicates"] = sum(len(ids) - 1 for ids in by_text.values())
    defects["lost"] = sum(by_text.get(t) != [i] for i, t in ledger.memories.items())
    defects["lost_delta_updates"] = sum(
        meta.get(target, {}).get("delta_tag") != tag for target, tag in ledger.deltas.items())

    expected = set(ledger.memories.values())
    for text in ledger.doubtful_adds:
        expected.add(text)
        _settle(ledger, "add", [text], by_text)
    for texts in ledger.doubtful_batches:
        expected.update(texts)
        found = sum(t in by_text for t in texts)
        defects["partial_batches"] += 0 < found < len(texts)
        _settle(ledger, "batch", texts, by_text)
    for text, target, tag in ledger.doubtful_deltas:
        expected.add(text)
        added, updated = text in by_text, meta.get(target, {}).get("delta_tag") == tag
        defects["partial_deltas"] += added != updated
        if _settle(ledger, "delta", [text], by_text) and updated:
            ledger.deltas[target] = tag
    defects["phantoms"] = sum(t not in expected for t in by_text)
    ledger.doubtful_adds, ledger.doubtful_batches, ledger.doubtful_deltas = [], [], []

    _audit_votes(server, ledger, rows, defects)
    return defects


def _settle(ledger: Ledger, kind: str, texts: list[str],
            by_text: dict[str, list[str]]) -> bool:
    """In-doubt texts found are expected from now on; returns whether all were found."""
    if not all(t in by_text for t in texts):
        ledger.settled[f"{kind}_absent"] += 1
        return False
    ledger.settled[f"{kind}_present"] += 1
    for text in texts:
        ledger.known(by_text[text][0], text)
    return True


def _audit_votes(server: ServerProcess, ledger: Ledger, rows: list[tuple],
                 defects: Counter[str]) -> None:
    stored = {voter: (memory, kind) for memory, voter, kind in server.sql(
        "SELECT m.id, v.voter_agent_id, v.vote FROM votes v JOIN memories m "
        "ON m.project_id = v.project_id AND m.row_id = v.memory_row_id "
        "WHERE m.namespace = :ns", ns=NS)}
    defects["lost_votes"] = sum(stored.get(v) != vote for v, vote in ledger.votes.items())
    for voter, vote in ledger.doubtful_votes.items():
        if voter in stored:
            defects["wrong_votes"] += stored[voter] != vote
            ledger.votes[voter] = vote
        ledger.settled[f"vote_{'present' if voter in stored else 'absent'}"] += 1
    ledger.doubtful_votes = {}
    defects["phantom_votes"] = sum(v not in ledger.votes for v in stored)
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    for memory, kind in stored.values():
        tally[memory][kind] += 1
    for memory_id, _, helpful, harmful, _ in rows:
        counted = (tally[memory_id]["helpful"], tally[memory_id]["harmful"])
        answered = ledger.answered.get(memory_id, (0, 0))
        defects["vote_mismatches"] += (helpful, harmful) != counted or (
            helpful < answered[0] or harmful < answered[1])


def check_index(server: ServerProcess, backend: str, ledger: Ledger,
                rng: random.Random) -> tuple[Counter[str], list[int]]:
    """The search side agrees with the database. Returns defects and the ranks found."""
    defects: Counter[str] = Counter()
    if backend == "sqlite":
        stored = server.sql("SELECT count(*) FROM memories WHERE embedding IS NOT NULL")[0][0]
        defects["index_count_mismatches"] += metric(server.base_url,
                                                    "aegis_index_vectors") != stored
    picked = ledger.unchecked[-NEW_CHECKED:]
    older = [i for i in ledger.ids if i not in set(picked)]
    picked += rng.sample(older, min(OLD_CHECKED, len(older)))
    ledger.unchecked = []
    ranks = []
    with httpx.Client(base_url=server.base_url, headers=AUTH, timeout=30) as http:
        for memory_id in picked:
            r = http.post("/memories/query", json={
                "query": ledger.memories[memory_id], "namespace": NS, "top_k": 3})
            assert r.status_code == 200, r.text
            found = [m["id"] for m in r.json()["memories"]]
            if memory_id in found:
                ranks.append(found.index(memory_id) + 1)
            else:
                defects["index_misses"] += 1
    return defects, ranks


# ----------------------------------------------------------------------------- the test


@pytest.mark.parametrize("backend", BACKENDS)
def test_acknowledged_writes_survive_sigkill(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    kills_wanted = quick_or_soak(3, 20)
    env = {}
    if backend == "postgres":
        env["DATABASE_URL"] = fresh_database(request.getfixturevalue("postgres"))
    # PostgreSQL as in production, with several workers: the whole tree is killed.
    workers = ["--workers", "2"] if backend == "postgres" else []
    server = ServerProcess(tmp_path / "data", env=env, args=workers)
    rng = random.Random(12)
    ledger = Ledger()
    defects: Counter[str] = Counter()
    restarts: list[float] = []
    ranks: list[int] = []
    kills = graceful_stops = processes_killed = 0
    try:
        cycle = 0
        while True:
            started = time.monotonic()
            server.start()
            restarts.append(time.monotonic() - started)
            defects.update(audit(server, ledger))
            found, seen = check_index(server, backend, ledger, rng)
            defects.update(found)
            ranks += seen
            if kills == kills_wanted:
                break
            graceful = backend == "sqlite" and cycle % 4 == 1
            processes_killed += asyncio.run(_write_until_stopped(
                server, ledger, cycle, rng.uniform(0.5, 3.0), graceful))
            if graceful:
                graceful_stops += 1
            else:
                kills += 1
            cycle += 1
    finally:
        server.stop()
    figures = {
        "backend": backend, "workers": int(workers[1]) if workers else 1,
        "kills": kills, "processes_killed": processes_killed,
        "graceful_stops": graceful_stops,
        "acknowledged_writes": sum(ledger.acknowledged.values()),
        "acknowledged": dict(ledger.acknowledged),
        "memories": len(ledger.memories), "votes": len(ledger.votes),
        "in_doubt_settled": dict(ledger.settled),
        "lost": defects["lost"] + defects["lost_votes"] + defects["lost_delta_updates"],
        "duplicates": defects["duplicates"], "vote_mismatches": defects["vote_mismatches"],
        "defects": {k: v for k, v in defects.items() if v},
        "errors": dict(ledger.errors),
        "queries_checked": len(ranks) + defects["index_misses"],
        "found_first": sum(r == 1 for r in ranks),
        "restart_s": {"first": round(restarts[0], 2),
                      "median": round(statistics.median(restarts[1:]), 2),
                      "max": round(max(restarts[1:]), 2)},
    }
    report(f"crash-safety-{backend}", figures)
    assert kills == kills_wanted and ledger.acknowledged["add"] > 0
    assert not ledger.errors, ledger.errors
    assert not +defects, dict(+defects)


@pytest.mark.parametrize(("env", "pragma"), [
    ({}, 1),  # NORMAL: survives the process being killed (the tests above)
    ({"AEGIS_ENV": "production"}, 2),  # FULL: every commit synced, survives a power cut
    ({"AEGIS_SQLITE_SYNCHRONOUS": "FULL"}, 2),
    ({"AEGIS_ENV": "production", "AEGIS_SQLITE_SYNCHRONOUS": "normal"}, 1),
])
def test_sqlite_syncs_every_commit_in_production_or_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], pragma: int
) -> None:
    """A kill of the process is survived at either setting; a power cut only with FULL,
    which production gets by default. Checked on the store's own connections."""
    from aegis_memory.config import Settings
    from aegis_memory.store import open_store

    monkeypatch.delenv("AEGIS_ENV", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = open_store(Settings(aegis_data_dir=tmp_path))
    try:
        for engine in (store._writer, store._reader, store._point_engine):
            with engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar_one() == pragma
    finally:
        asyncio.run(store.close())
