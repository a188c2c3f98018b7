"""Concurrency: 64 clients mixing writes on a multi-worker server, then an exact audit.

The production shape is several worker processes over PostgreSQL (and SQLite is supported
with several workers too), so the server here runs ``--workers 3``. Sixty-four clients share
one HTTP pool and, for ``quick_or_soak(10, 60)`` seconds, mix:

* ``add``: a fresh text (a new row each time);
* ``race``: a text from a small pool that many clients add at once (the race-free dedup);
* ``dedup``: a text added before the load (must return that memory's id);
* ``vote``: helpful/harmful on a hot set of 8 memories by each client's own 4 voters, so
  the same counter rows are fought over while every expectation stays exact (a client is
  sequential, so its voter's last acknowledged vote is the one that counts);
* ``delta``: atomic add + metadata update of a hot memory, each client writing its own key;
* ``session``: appending one completed item to one of 4 hot sessions (which the first update
  creates).

Afterwards the database is read directly (SQL) and must agree with what the server
acknowledged: counters equal the acknowledged votes, no text stored twice, every dedup and
race add answered with the one id, every acknowledged session item present exactly once,
every client's last metadata value present. No request may fail or time out (a deadlock shows
as timeouts or as PostgreSQL's deadlock error, a 500).
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, ServerProcess, fresh_database
from tests.reliability._harness import AUTH, Latencies, Texts
from tests.reliability._soak import SOAK, quick_or_soak, report

CLIENTS = 64
WORKERS = 3
HOT_MEMORIES = 8
HOT_SESSIONS = 4
RACE_POOL = 100
ORIGINALS = 40
NS = "concurrency"
#: A deadlock or a stuck lock shows up as a request this slow.
CLIENT_TIMEOUT = 60.0
OPS = ("add", "race", "dedup", "vote", "delta", "session")
WEIGHTS = (20, 10, 10, 30, 10, 20)


@dataclass
class Tally:
    """What the server acknowledged, and everything that went wrong."""

    latencies: Latencies = field(default_factory=Latencies)
    errors: Counter[str] = field(default_factory=Counter)
    timeouts: int = 0
    added: dict[str, str] = field(default_factory=dict)  # fresh text -> id
    race_ids: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    dedup_wrong: list[str] = field(default_factory=list)
    #: (memory id, voter) -> the voter's last acknowledged vote.
    votes: dict[tuple[str, str], str] = field(default_factory=dict)
    #: (memory id, metadata key) -> the last acknowledged value.
    metadata: dict[tuple[str, str], int] = field(default_factory=dict)
    sessions: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: Items sent whose answer never came (none expected); they may or may not be stored.
    sessions_in_doubt: set[str] = field(default_factory=set)

    @property
    def ops(self) -> int:
        return sum(len(v) for v in self.latencies.samples.values())


@dataclass
class Fixture:
    """The memories and sessions every client fights over."""

    hot: list[str]
    originals: dict[str, str]  # text -> id
    race_texts: list[str]
    sessions: list[str]


async def _prepare(http: httpx.AsyncClient) -> Fixture:
    texts = Texts("concurrency-setup", 1)
    hot_texts = [texts() for _ in range(HOT_MEMORIES)]
    original_texts = [texts() for _ in range(ORIGINALS)]
    r = await http.post("/memories/add_batch", json={"items": [
        {"content": c, "namespace": NS} for c in hot_texts + original_texts]})
    assert r.status_code == 200, r.text
    ids = [x["id"] for x in r.json()["results"]]
    return Fixture(
        hot=ids[:HOT_MEMORIES],
        originals=dict(zip(original_texts, ids[HOT_MEMORIES:], strict=True)),
        race_texts=[texts() for _ in range(RACE_POOL)],
        sessions=[f"hot-session-{i}" for i in range(HOT_SESSIONS)],
    )


async def _client(n: int, http: httpx.AsyncClient, fx: Fixture, tally: Tally,
                  end: float) -> None:
    """One sequential client: its own random mix of operations until ``end``."""
    rng = random.Random(1000 + n)
    texts = Texts(f"concurrency-client-{n}", 2000 + n)
    voters = [f"c{n}-voter{j}" for j in range(4)]
    step = 0
    while time.monotonic() < end:
        step += 1
        op = rng.choices(OPS, WEIGHTS)[0]
        body: dict[str, Any]
        method, path = "POST", "/memories/add"
        if op == "add":
            body = {"content": texts(), "namespace": NS}
        elif op == "race":
            body = {"content": rng.choice(fx.race_texts), "namespace": NS}
        elif op == "dedup":
            body = {"content": rng.choice(list(fx.originals)), "namespace": NS}
        elif op == "vote":
            memory, voter = rng.choice(fx.hot), rng.choice(voters)
            path = f"/memories/ace/vote/{memory}"
            body = {"vote": rng.choice(("helpful", "harmful")), "voter_agent_id": voter}
        elif op == "delta":
            memory = rng.choice(fx.hot)
            path = "/memories/ace/delta"
            body = {"namespace": NS, "operations": [
                {"type": "add", "content": texts()},
                {"type": "update", "memory_id": memory, "metadata": {f"c{n}": step}},
            ]}
        else:
            session = rng.choice(fx.sessions)
            method, path = "PATCH", f"/memories/ace/session/{session}"
            body = {"namespace": NS, "completed": [f"c{n}-item{step}"]}
        started = time.perf_counter()
        try:
            r = await http.request(method, path, json=body)
        except httpx.TimeoutException:
            tally.timeouts += 1
            if op == "session":
                tally.sessions_in_doubt.add(body["completed"][0])
            continue
        except httpx.HTTPError as exc:
            tally.errors[f"{op}: {type(exc).__name__}"] += 1
            continue
        tally.latencies.record(op, time.perf_counter() - started)
        if r.status_code != 200:
            tally.errors[f"{op}: HTTP {r.status_code} {r.text[:200]}"] += 1
            continue
        _acknowledged(op, body, r.json(), fx, tally)


def _acknowledged(op: str, body: dict[str, Any], answer: dict[str, Any], fx: Fixture,
                  tally: Tally) -> None:
    """Record one acknowledged write and what it promises about the stored state."""
    if op == "add":
        tally.added[body["content"]] = answer["id"]
    elif op == "race":
        tally.race_ids[body["content"]].add(answer["id"])
    elif op == "dedup":
        if answer["id"] != fx.originals[body["content"]] or not answer.get("deduped_from"):
            tally.dedup_wrong.append(body["content"])
    elif op == "vote":
        tally.votes[(answer["memory_id"], body["voter_agent_id"])] = body["vote"]
    elif op == "delta":
        add, update = body["operations"]
        results = answer["results"]
        assert answer["applied"] == 2, answer
        tally.added[add["content"]] = results[0]["memory_id"]
        ((key, value),) = update["metadata"].items()
        tally.metadata[(update["memory_id"], key)] = value
    else:
        session = answer["session_id"]
        tally.sessions[session].append(body["completed"][0])


async def _load(server: ServerProcess, seconds: float) -> tuple[Fixture, Tally, float]:
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, limits=limits,
                                 timeout=CLIENT_TIMEOUT) as http:
        fx = await _prepare(http)
        tally = Tally()
        started = time.monotonic()
        end = started + seconds
        await asyncio.gather(*(_client(n, http, fx, tally, end) for n in range(CLIENTS)))
        return fx, tally, time.monotonic() - started


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _audit(server: ServerProcess, fx: Fixture, tally: Tally) -> dict[str, Any]:
    """Compare the database with the acknowledgements; returns the counts of each defect."""
    rows = server.sql(
        "SELECT id, content, bullet_helpful, bullet_harmful, meta FROM memories "
        "WHERE namespace = :ns", ns=NS)
    by_text: dict[str, list[str]] = defaultdict(list)
    for memory_id, content, *_ in rows:
        by_text[content].append(memory_id)
    duplicates = {c: ids for c, ids in by_text.items() if len(ids) > 1}
    lost = [c for c, memory_id in tally.added.items() if by_text.get(c) != [memory_id]]
    race_split = {c: ids for c, ids in tally.race_ids.items() if len(ids) != 1}
    race_wrong = [c for c, ids in tally.race_ids.items() if by_text.get(c) != sorted(ids)]

    stored_votes = {(m, v): kind for m, v, kind in server.sql(
        "SELECT m.id, v.voter_agent_id, v.vote FROM votes v JOIN memories m "
        "ON m.project_id = v.project_id AND m.row_id = v.memory_row_id "
        "WHERE m.namespace = :ns", ns=NS)}
    vote_rows_wrong = sorted(set(stored_votes.items()) ^ set(tally.votes.items()))
    counters = {r[0]: (r[2], r[3], _json(r[4])) for r in rows if r[0] in fx.hot}
    counter_mismatches = {}
    for memory in fx.hot:
        kinds = [k for (m, _), k in tally.votes.items() if m == memory]
        expected = (kinds.count("helpful"), kinds.count("harmful"))
        if counters[memory][:2] != expected:
            counter_mismatches[memory] = {"stored": counters[memory][:2], "acked": expected}
    metadata_lost = {f"{m} {k}": {"stored": counters[m][2].get(k), "acked": v}
                     for (m, k), v in tally.metadata.items() if counters[m][2].get(k) != v}

    stored_sessions = {sid: _json(done) for sid, done in server.sql(
        "SELECT session_id, completed FROM sessions WHERE namespace = :ns", ns=NS)}
    session_defects: dict[str, Any] = {}
    for sid, items in tally.sessions.items():
        stored = stored_sessions.get(sid, [])
        counts = Counter(stored)
        missing = [i for i in items if counts[i] == 0]
        doubled = [i for i, n in counts.items() if n > 1]
        unknown = [i for i in stored if i not in set(items) | tally.sessions_in_doubt]
        if missing or doubled or unknown:
            session_defects[sid] = {"missing": len(missing), "doubled": doubled[:5],
                                    "unknown": unknown[:5]}
    return {
        "duplicates": duplicates, "lost_adds": lost[:10], "race_split": race_split,
        "race_wrong": race_wrong[:10], "dedup_wrong": tally.dedup_wrong[:10],
        "vote_rows_wrong": vote_rows_wrong[:10], "counter_mismatches": counter_mismatches,
        "metadata_lost": dict(list(metadata_lost.items())[:10]),
        "session_defects": session_defects,
    }


#: PostgreSQL is the production shape; the quick form keeps to it (and ``make test`` to its
#: time budget), the long form runs SQLite with several workers too.
@pytest.fixture(scope="module", params=BACKENDS if SOAK else ("postgres",))
def workers_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """``aegis serve --workers 3`` for this module's tests (each in its own namespace)."""
    env = {"DB_POOL_SIZE": "10", "DB_MAX_OVERFLOW": "5"}  # 45 connections for 3 workers
    if request.param == "postgres":
        env["DATABASE_URL"] = fresh_database(request.getfixturevalue("postgres"))
    server = ServerProcess(tmp_path_factory.mktemp(f"workers-{request.param}") / "data",
                           env=env, args=["--workers", str(WORKERS)])
    yield server.start()
    server.stop()


def _backend(server: ServerProcess) -> str:
    return "postgres" if "DATABASE_URL" in server.env else "sqlite"


def test_64_clients_lose_no_update(workers_server: ServerProcess) -> None:
    server, backend = workers_server, _backend(workers_server)
    fx, tally, elapsed = asyncio.run(_load(server, quick_or_soak(10, 60)))
    defects = _audit(server, fx, tally)
    report(f"concurrency-{backend}", {
        "backend": backend, "workers": WORKERS, "clients": CLIENTS,
        "seconds": round(elapsed, 1), "ops": tally.ops,
        "ops_per_s": round(tally.ops / elapsed, 1),
        "errors": dict(tally.errors), "timeouts": tally.timeouts,
        "acked_votes": len(tally.votes), "acked_adds": len(tally.added),
        "session_items": sum(len(v) for v in tally.sessions.values()),
        "defects": {k: len(v) for k, v in defects.items()},
        "latency": tally.latencies.summary(),
    })
    assert tally.ops > CLIENTS, "the load did not run"
    assert not tally.errors and not tally.timeouts, (tally.errors, tally.timeouts)
    assert not any(defects.values()), {k: v for k, v in defects.items() if v}


async def _all_at_once(server: ServerProcess, memory: str, session: str,
                       n: int) -> list[httpx.Response]:
    """``n`` votes, ``n`` metadata patches, ``n`` delta updates and ``n`` appends to one new
    session, all sent at once."""
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, limits=limits,
                                 timeout=CLIENT_TIMEOUT) as http:
        writes = []
        for i in range(n):
            writes += [
                http.post(f"/memories/ace/vote/{memory}", json={
                    "vote": "helpful" if i % 2 else "harmful", "voter_agent_id": f"v{i}"}),
                http.patch(f"/memories/{memory}", json={"metadata": {f"patch{i}": i}}),
                http.post("/memories/ace/delta", json={"namespace": NS, "operations": [
                    {"type": "update", "memory_id": memory, "metadata": {f"delta{i}": i}}]}),
                http.patch(f"/memories/ace/session/{session}",
                           json={"namespace": NS, "completed": [f"item{i}"]}),
            ]
        return await asyncio.gather(*writes)


def test_writers_of_one_row_all_count(workers_server: ServerProcess) -> None:
    """The lost updates the load above found, made certain: many writers of one memory row
    and one session at the same moment (votes recounting the counters, metadata merges by
    update and by delta, the first appends to a session that does not exist yet)."""
    n = 24
    r = httpx.post(workers_server.base_url + "/memories/add", headers=AUTH, timeout=30,
                   json={"content": f"one row for all {uuid.uuid4().hex}", "namespace": NS})
    memory, session = r.json()["id"], f"one-session-{uuid.uuid4().hex[:8]}"
    answers = asyncio.run(_all_at_once(workers_server, memory, session, n))
    assert [a.status_code for a in answers] == [200] * len(answers), \
        [a.text for a in answers if a.status_code != 200][:3]

    ((helpful, harmful, meta),) = workers_server.sql(
        "SELECT bullet_helpful, bullet_harmful, meta FROM memories WHERE id = :id", id=memory)
    assert (helpful, harmful) == (n // 2, n - n // 2)
    keys = set(_json(meta))
    assert keys == {f"patch{i}" for i in range(n)} | {f"delta{i}" for i in range(n)}
    ((completed,),) = workers_server.sql(
        "SELECT completed FROM sessions WHERE session_id = :sid", sid=session)
    assert sorted(_json(completed)) == sorted(f"item{i}" for i in range(n))


def _response(sock: socket.socket) -> bytes:
    """One HTTP/1.1 response with a Content-Length body; b"" if the server closed instead."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except ConnectionResetError:
        return data
    return data


def test_idle_keep_alive_connection_is_still_served(workers_server: ServerProcess) -> None:
    """A connection idle for longer than httpx keeps one (5 s) is still answered. At
    uvicorn's default keep-alive of 5 s the server closed such connections just as clients
    reused them, and the 60 s soak above saw a request fail now and then with a ReadError."""
    request = b"GET /health HTTP/1.1\r\nHost: aegis\r\n\r\n"
    with socket.create_connection(("127.0.0.1", workers_server.port), timeout=10) as sock:
        sock.sendall(request)
        first = _response(sock)
        time.sleep(6)
        sock.sendall(request)
        second = _response(sock)
    assert first.startswith(b"HTTP/1.1 200"), first
    assert second.startswith(b"HTTP/1.1 200"), second
