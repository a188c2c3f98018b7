"""SPEC §2 access rule, every scope x caller x read path, over HTTP against a real server.

A memory that exists but is not visible must look exactly like one that does not exist (404).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.conftest import ServerProcess, new_project

SCOPES = ("agent-private", "agent-shared", "global")


@dataclass(frozen=True)
class Caller:
    name: str
    key: str
    agent: str | None  # the agent_id sent in requests (None: omitted)


@pytest.fixture
def world(server: ServerProcess, http: httpx.Client, ns: str):
    """alice owns one memory per scope; the shared one is shared with bob."""
    ids = {}
    for scope in SCOPES:
        body = {
            "content": f"alice notes the deploy checklist for {scope} release {ns}",
            "agent_id": "alice", "namespace": ns, "scope": scope,
        }
        if scope == "agent-shared":
            body["shared_with_agents"] = ["bob"]
        r = http.post("/memories/add", json=body)
        assert r.status_code == 200, r.text
        assert r.json()["scope"] == scope
        ids[scope] = r.json()["id"]
    alice_key = http.post("/keys", json={"agent_id": "alice", "name": "alice"}).json()["key"]
    carol_key = http.post("/keys", json={"agent_id": "carol", "name": "carol"}).json()["key"]
    _, other_project_key = new_project(server)
    callers = {
        "owner": Caller("owner", "dev-key", "alice"),
        "owner_key": Caller("owner_key", alice_key, None),
        "shared_agent": Caller("shared_agent", "dev-key", "bob"),
        "other_agent": Caller("other_agent", "dev-key", "carol"),
        "project_key": Caller("project_key", "dev-key", None),
        "other_agent_key": Caller("other_agent_key", carol_key, None),
        "other_project": Caller("other_project", other_project_key, "alice"),
    }
    return ids, callers


VISIBLE = {
    "owner": set(SCOPES),
    "owner_key": set(SCOPES),
    "shared_agent": {"agent-shared", "global"},
    "other_agent": {"global"},
    "project_key": set(SCOPES),
    "other_agent_key": {"global"},
    "other_project": set(),
}


def _client(server: ServerProcess, caller: Caller) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=60,
                        headers={"Authorization": f"Bearer {caller.key}"})


def _scopes_of(found_ids: set[str], ids: dict[str, str]) -> set[str]:
    return {scope for scope, mid in ids.items() if mid in found_ids}


@pytest.mark.parametrize("who", list(VISIBLE))
def test_query(server, world, ns, who):
    ids, callers = world
    caller = callers[who]
    with _client(server, caller) as c:
        body = {"query": "deploy checklist release", "namespace": ns, "top_k": 10}
        if caller.agent:
            body["agent_id"] = caller.agent
        r = c.post("/memories/query", json=body)
        assert r.status_code == 200, r.text
        found = {m["id"] for m in r.json()["memories"]}
    assert _scopes_of(found, ids) == VISIBLE[who]
    assert found <= set(ids.values())


@pytest.mark.parametrize("who", list(VISIBLE))
def test_query_cross_agent(server, world, ns, who):
    ids, callers = world
    caller = callers[who]
    with _client(server, caller) as c:
        body = {"query": "deploy checklist", "namespace": ns, "target_agent_ids": ["alice"]}
        if caller.agent:
            body["requesting_agent_id"] = caller.agent
        r = c.post("/memories/query_cross_agent", json=body)
        assert r.status_code == 200, r.text
        found = {m["id"] for m in r.json()["memories"]}
    assert _scopes_of(found, ids) == VISIBLE[who]


@pytest.mark.parametrize("who", list(VISIBLE))
def test_get(server, world, who):
    ids, callers = world
    caller = callers[who]
    with _client(server, caller) as c:
        params = {"agent_id": caller.agent} if caller.agent else {}
        for scope, mid in ids.items():
            r = c.get(f"/memories/{mid}", params=params)
            if scope in VISIBLE[who]:
                assert r.status_code == 200, r.text
                assert r.json()["id"] == mid
            else:
                assert r.status_code == 404, r.text
                assert r.json()["code"] == "memory_not_found"
                assert "not found" in r.json()["detail"]


@pytest.mark.parametrize("who", list(VISIBLE))
def test_vote(server, world, who):
    ids, callers = world
    caller = callers[who]
    with _client(server, caller) as c:
        for scope, mid in ids.items():
            body = {"vote": "helpful"}
            if caller.agent:
                body["voter_agent_id"] = caller.agent
            r = c.post(f"/memories/ace/vote/{mid}", json=body)
            if caller.agent is None and caller.key == "dev-key":
                # A project key acting as no agent has no voter identity to count.
                assert r.status_code == 422 and r.json()["code"] == "voter_required"
            elif scope in VISIBLE[who]:
                assert r.status_code == 200, r.text
                assert r.json()["bullet_helpful"] >= 1
            else:
                assert r.status_code == 404, r.text


@pytest.mark.parametrize("who", list(VISIBLE))
def test_export(server, world, ns, who):
    ids, callers = world
    caller = callers[who]
    with _client(server, caller) as c:
        body = {"namespace": ns}
        if caller.agent:
            body["agent_id"] = caller.agent
        r = c.post("/memories/export", json=body)
        assert r.status_code == 200, r.text
        found = {json.loads(line)["id"] for line in r.text.splitlines() if line.strip()}
    assert _scopes_of(found, ids) == VISIBLE[who]
    assert found <= set(ids.values())


@pytest.mark.parametrize("who", list(VISIBLE))
def test_handoff(server, world, ns, who):
    """A handoff acts as its source: only alice (or a project key) may hand alice's work on."""
    ids, callers = world
    caller = callers[who]
    with _client(server, caller) as c:
        r = c.post("/memories/handoff", json={
            "source_agent_id": "alice", "target_agent_id": "bob", "namespace": ns,
            "task_context": "deploy checklist",
        })
    if who == "other_agent_key":
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "agent_mismatch"
    elif who == "other_project":
        assert r.status_code == 200, r.text
        assert r.json()["memory_ids"] == []
    else:
        # Project keys may act as any agent of their project, so they may hand off as alice.
        assert r.status_code == 200, r.text
        assert set(r.json()["memory_ids"]) == set(ids.values())


def test_agent_key_cannot_act_as_another_agent(server, world, ns):
    _, callers = world
    with _client(server, callers["other_agent_key"]) as c:
        for path, body in [
            ("/memories/add", {"content": "x", "agent_id": "alice", "namespace": ns}),
            ("/memories/query", {"query": "x", "agent_id": "alice", "namespace": ns}),
            ("/memories/query_cross_agent",
             {"query": "x", "requesting_agent_id": "alice", "namespace": ns}),
            ("/memories/export", {"agent_id": "alice", "namespace": ns}),
        ]:
            r = c.post(path, json=body)
            assert r.status_code == 403, (path, r.text)
            assert r.json()["code"] == "agent_mismatch"
        r = c.post("/keys", json={})
        assert r.status_code == 403


def test_share_on_handoff_makes_private_visible_to_target(server, http, ns):
    mid = http.post("/memories/add", json={
        "content": "the staging database password rotates on fridays", "agent_id": "alice",
        "namespace": ns}).json()["id"]
    assert http.get(f"/memories/{mid}", params={"agent_id": "bob"}).status_code == 404
    r = http.post("/memories/handoff", json={
        "source_agent_id": "alice", "target_agent_id": "bob", "namespace": ns, "share": True})
    assert r.status_code == 200 and mid in r.json()["memory_ids"]
    got = http.get(f"/memories/{mid}", params={"agent_id": "bob"})
    assert got.status_code == 200 and got.json()["scope"] == "agent-shared"
    assert http.get(f"/memories/{mid}", params={"agent_id": "carol"}).status_code == 404


def test_revoked_key_is_refused_at_once(server, http):
    created = http.post("/keys", json={"name": "short-lived"}).json()
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert httpx.get(server.base_url + "/keys", headers=headers).status_code == 200
    assert http.delete(f"/keys/{created['id']}").status_code == 200
    r = httpx.get(server.base_url + "/keys", headers=headers)
    assert r.status_code == 401
    assert r.json()["detail"] == "Authentication failed: Invalid API key"


def test_keys_are_stored_only_as_hashes(server, http):
    created = http.post("/keys", json={"name": "hashed", "agent_id": "hal"}).json()
    secret = created["key"]
    rows = server.sql("SELECT * FROM api_keys WHERE id = :id", id=created["id"])
    assert len(rows) == 1
    assert not any(secret in str(value) for value in rows[0])  # no column holds the secret
    assert hashlib.sha256(secret.encode()).hexdigest() in rows[0]


def test_a_key_stops_working_when_it_expires(server, http):
    expires = datetime.now(UTC) + timedelta(seconds=3)
    created = http.post("/keys", json={"name": "brief", "expires_at": expires.isoformat()})
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['key']}"}
    assert httpx.get(server.base_url + "/keys", headers=headers).status_code == 200
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    r = httpx.get(server.base_url + "/keys", headers=headers)
    assert r.status_code == 401 and r.json()["detail"] == "Authentication failed: Invalid API key"
    past = http.post("/keys", json={"expires_at": "2020-01-01T00:00:00Z"})
    assert past.status_code == 422 and "future" in past.json()["detail"]


def test_keys_are_listed_without_secrets(http):
    created = http.post("/keys", json={"name": "listed", "agent_id": "zed"}).json()
    listed = http.get("/keys").json()["keys"]
    mine = [k for k in listed if k["id"] == created["id"]]
    assert mine and "key" not in mine[0] and mine[0]["agent_id"] == "zed"
    assert created["key"].startswith(mine[0]["prefix"])
