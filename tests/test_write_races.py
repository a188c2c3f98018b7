"""Concurrent writes to the same memories, on both backends, through the real server.

SQLite has one writer at a time, so these hold there by construction; PostgreSQL runs the
transactions concurrently under READ COMMITTED, where they once deadlocked (two deltas
listing the same memories in opposite orders: one aborted, a 500) and lost updates (two
handoffs sharing one memory with different agents: one agent dropped from the list). The
store now locks rows in one order and re-runs a transaction PostgreSQL aborted to break a
deadlock (``PostgresStore._run``).
"""

from __future__ import annotations

import asyncio

import httpx

AUTH = {"Authorization": "Bearer dev-key"}
WRITERS = 16
ROUNDS = 6


async def _add(http: httpx.AsyncClient, ns: str, content: str) -> str:
    r = await http.post("/memories/add", json={
        "content": content, "namespace": ns, "agent_id": "alice", "scope": "global"})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def test_deltas_over_the_same_memories_in_opposite_orders(server, ns):
    """16 writers, 6 rounds each: every delta updates the same four memories, half of them in
    reverse order. All succeed, and every metadata key each one merged is there."""

    async def run() -> tuple[list[int], list[dict]]:
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH,
                                     timeout=120) as http:
            ids = [await _add(http, ns, f"Shared runbook step {i}") for i in range(4)]

            async def writer(w: int) -> list[int]:
                order = ids if w % 2 else ids[::-1]
                statuses = []
                for round_ in range(ROUNDS):
                    r = await http.post("/memories/ace/delta", json={
                        "agent_id": "alice", "namespace": ns, "operations": [
                            {"type": "update", "memory_id": m,
                             "metadata": {f"w{w}r{round_}": True}} for m in order]})
                    statuses.append(r.status_code)
                    assert r.status_code != 200 or r.json()["applied"] == 4, r.text
                return statuses

            statuses = await asyncio.gather(*(writer(w) for w in range(WRITERS)))
            stored = [(await http.get(f"/memories/{m}")).json()["metadata"] for m in ids]
            return [s for per_writer in statuses for s in per_writer], stored

    statuses, stored = asyncio.run(run())
    assert statuses == [200] * (WRITERS * ROUNDS)
    expected = {f"w{w}r{r}" for w in range(WRITERS) for r in range(ROUNDS)}
    for metadata in stored:
        assert set(metadata) == expected


def test_concurrent_handoffs_sharing_the_same_memories_keep_every_agent(server, ns):
    """12 handoffs at once share the same five memories with twelve different agents: each
    memory ends up shared with all twelve, and each of them finds it."""
    targets = [f"helper-{i:02d}" for i in range(12)]

    async def run() -> list[list[str]]:
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH,
                                     timeout=120) as http:
            ids = []
            for i in range(5):
                r = await http.post("/memories/add", json={
                    "content": f"Customer escalation note {i}", "namespace": ns,
                    "agent_id": "lead"})  # agent-private until shared
                assert r.status_code == 200, r.text
                ids.append(r.json()["id"])
            answers = await asyncio.gather(*(http.post("/memories/handoff", json={
                "source_agent_id": "lead", "target_agent_id": target, "namespace": ns,
                "share": True, "max_memories": 5}) for target in targets))
            assert [a.status_code for a in answers] == [200] * len(targets)
            for target in targets[::5]:
                found = await http.post("/memories/query", json={
                    "query": "customer escalation", "namespace": ns, "agent_id": target,
                    "top_k": 10})
                assert {m["id"] for m in found.json()["memories"]} == set(ids), target
            return [(await http.get(f"/memories/{m}")).json()["shared_with_agents"]
                    for m in ids]

    for shared in asyncio.run(run()):
        assert sorted(shared) == targets


def test_an_update_racing_a_deprecation_never_gives_back_the_dedup_key(server, ns):
    """A content update decides the new dedup key from the memory as it read it; a
    deprecation committing in between would be overwritten by that key, and the next add of
    the same text would then be "deduplicated" into a deprecated memory. The store refuses a
    change whose inputs moved, and the update is decided again from the fresh row."""

    async def run() -> None:
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH,
                                     timeout=120) as http:
            ids = [await _add(http, ns, f"Deploys go out on Tuesdays, take {i}")
                   for i in range(10)]
            answers = await asyncio.gather(*(request for i, m in enumerate(ids) for request in (
                http.patch(f"/memories/{m}", json={
                    "agent_id": "alice", "content": f"Deploys go out on Thursdays, take {i}"}),
                http.post("/memories/ace/delta", json={
                    "agent_id": "alice", "namespace": ns,
                    "operations": [{"type": "deprecate", "memory_id": m}]}),
            )))
            assert [a.status_code for a in answers] == [200] * 20, [a.text for a in answers]
            for i, m in enumerate(ids):
                again = await http.post("/memories/add", json={
                    "content": f"Deploys go out on Thursdays, take {i}", "namespace": ns,
                    "agent_id": "alice", "scope": "global"})
                assert again.json()["id"] != m, "deduplicated into a deprecated memory"

    asyncio.run(run())
    held = server.sql("SELECT count(*) FROM memories WHERE namespace = :ns "
                      "AND is_deprecated AND dedup_key IS NOT NULL", ns=ns)
    assert held == [(0,)]


def test_a_scope_change_racing_handoffs_keeps_every_shared_agent(server, ns):
    """Changing only a memory's scope keeps its share list, as read; handoffs adding agents
    to that list at the same moment must not be written over."""
    helpers = [f"helper-{i:02d}" for i in range(8)]

    async def run() -> list[str]:
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH,
                                     timeout=120) as http:
            r = await http.post("/memories/add", json={
                "content": "Escalations go to the on-call lead", "namespace": ns,
                "agent_id": "lead", "shared_with_agents": ["reviewer"]})
            memory_id = r.json()["id"]
            answers = await asyncio.gather(*(request for helper in helpers for request in (
                http.post("/memories/handoff", json={
                    "source_agent_id": "lead", "target_agent_id": helper, "namespace": ns,
                    "share": True, "max_memories": 5}),
                http.patch(f"/memories/{memory_id}", json={
                    "agent_id": "lead", "scope": "agent-shared"}),
            )))
            assert [a.status_code for a in answers] == [200] * 16, [a.text for a in answers]
            return (await http.get(f"/memories/{memory_id}")).json()["shared_with_agents"]

    assert sorted(asyncio.run(run())) == sorted(["reviewer", *helpers])
