"""Core endpoints over HTTP: add, dedup, query, get, update, delete, TTL, export/import, restart."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.conftest import ServerProcess, dress_snapshot_as_version_1, fresh_database


def add(http: httpx.Client, **body) -> dict:
    r = http.post("/memories/add", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def query(http: httpx.Client, **body) -> list[dict]:
    r = http.post("/memories/query", json=body)
    assert r.status_code == 200, r.text
    return r.json()["memories"]


def test_health_and_request_id(http):
    r = http.get("/health")
    assert r.status_code == 200 and r.json()["status"] == "healthy"
    assert r.headers["x-request-id"]
    r = http.get("/health", headers={"X-Request-ID": "trace-123"})
    assert r.headers["x-request-id"] == "trace-123"
    assert http.get("/ready").json()["status"] == "ready"
    assert "aegis_http_requests_total" in http.get("/metrics").text


def test_add_get_query_roundtrip(http, ns):
    created = add(http, content="The billing service retries webhooks three times",
                  agent_id="ops", namespace=ns, metadata={"source": "runbook"},
                  memory_type="strategy")
    assert created["scope"] == "agent-private" and created["deduped_from"] is None
    got = http.get(f"/memories/{created['id']}", params={"agent_id": "ops"}).json()
    assert got["content"].startswith("The billing service")
    assert got["metadata"] == {"source": "runbook"} and got["memory_type"] == "strategy"
    assert got["effectiveness_score"] == 0.0
    found = query(http, query="how often are webhooks retried?", agent_id="ops", namespace=ns)
    assert found[0]["id"] == created["id"] and 0 < found[0]["score"] <= 1
    by_meaning = query(http, query="how often are webhooks retried?", agent_id="ops",
                       namespace=ns, mode="vector")
    assert by_meaning[0]["id"] == created["id"] and by_meaning[0]["score"] > 0.3
    r = http.post("/memories/query", json={"query": "webhooks", "namespace": ns})
    assert r.json()["retrieval_event_id"] and r.json()["query_time_ms"] >= 0


def test_scope_choice(http, ns):
    assert add(http, content="a global fact", namespace=ns)["scope"] == "global"
    assert add(http, content="an owned fact", agent_id="a", namespace=ns)["scope"] == \
        "agent-private"
    assert add(http, content="a shared fact", agent_id="a", shared_with_agents=["b"],
               namespace=ns)["scope"] == "agent-shared"
    assert add(http, content="explicit global", agent_id="a", scope="global",
               namespace=ns)["scope"] == "global"
    r = http.post("/memories/add", json={"content": "x", "scope": "agent-private",
                                         "namespace": ns})
    assert r.status_code == 422 and r.json()["code"] == "owner_required"


def test_dedup_sequential_whitespace_and_case(http, ns):
    first = add(http, content="Prefers   dark mode", agent_id="a", namespace=ns)
    again = add(http, content="  prefers dark MODE ", agent_id="a", namespace=ns)
    assert again["id"] == first["id"] and again["deduped_from"] == first["id"]
    other_agent = add(http, content="Prefers dark mode", agent_id="b", namespace=ns)
    assert other_agent["id"] != first["id"]
    export = http.post("/memories/export", json={"namespace": ns}).text.splitlines()
    assert len(export) == 2


def test_dedup_concurrent_threads(server: ServerProcess, ns):
    content = f"deploys happen on tuesdays {uuid.uuid4().hex}"

    def _add(_: int) -> str:
        with httpx.Client(base_url=server.base_url, timeout=60,
                          headers={"Authorization": "Bearer dev-key"}) as c:
            r = c.post("/memories/add", json={"content": content, "namespace": ns,
                                              "agent_id": "racer"})
            assert r.status_code == 200, r.text
            return r.json()["id"]

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(_add, range(8)))
    assert len(set(ids)) == 1
    with httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer dev-key"}) as c:
        rows = c.post("/memories/export", json={"namespace": ns}).text.splitlines()
    assert len(rows) == 1


def test_batch_dedups_inside_batch(http, ns):
    r = http.post("/memories/add_batch", json={"items": [
        {"content": "Uses PostgreSQL 16", "namespace": ns},
        {"content": "uses postgresql 16", "namespace": ns},
        {"content": "Runs on Kubernetes", "namespace": ns},
    ]})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert results[0]["id"] == results[1]["id"] and results[1]["deduped_from"] == results[0]["id"]
    assert results[2]["id"] != results[0]["id"] and results[0]["deduped_from"] is None
    rows = http.post("/memories/export", json={"namespace": ns}).text.splitlines()
    assert len(rows) == 2


def test_update_and_delete(http, ns):
    mid = add(http, content="Team standup at 9am", agent_id="pm", namespace=ns,
              metadata={"a": 1})["id"]
    r = http.patch(f"/memories/{mid}", json={"agent_id": "pm", "content": "Team standup at 10am",
                                             "metadata": {"b": 2}})
    assert r.status_code == 200, r.text
    assert r.json()["content"] == "Team standup at 10am"
    assert r.json()["metadata"] == {"a": 1, "b": 2}
    found = query(http, query="when is standup", agent_id="pm", namespace=ns)
    assert found[0]["content"] == "Team standup at 10am"
    # Another agent cannot see it, so cannot change it either.
    assert http.patch(f"/memories/{mid}", json={"agent_id": "dev", "content": "x"}).status_code \
        == 404
    r = http.patch(f"/memories/{mid}", json={"agent_id": "pm", "scope": "global"})
    assert r.json()["scope"] == "global"
    r = http.patch(f"/memories/{mid}", json={"agent_id": "dev", "content": "hijack"})
    assert r.status_code == 403 and r.json()["code"] == "not_owner"
    assert http.delete(f"/memories/{mid}", params={"agent_id": "dev"}).status_code == 403
    assert http.delete(f"/memories/{mid}", params={"agent_id": "pm"}).status_code == 200
    assert http.get(f"/memories/{mid}").status_code == 404
    assert query(http, query="standup", namespace=ns) == []


def test_ttl_hides_expired(http, ns):
    mid = add(http, content="temporary maintenance window tonight", namespace=ns,
              ttl_seconds=1)["id"]
    assert http.get(f"/memories/{mid}").status_code == 200
    time.sleep(1.5)
    assert http.get(f"/memories/{mid}").status_code == 404
    assert query(http, query="maintenance window", namespace=ns) == []
    again = add(http, content="temporary maintenance window tonight", namespace=ns)
    assert again["id"] != mid and again["deduped_from"] is None


def test_votes_replace_per_voter_and_task(http, ns):
    mid = add(http, content="Use exponential backoff on 429", namespace=ns)["id"]
    vote = lambda **b: http.post(f"/memories/ace/vote/{mid}", json=b).json()  # noqa: E731
    assert vote(vote="helpful", voter_agent_id="a")["bullet_helpful"] == 1
    r = vote(vote="harmful", voter_agent_id="a")  # replaces a's vote (same task: none)
    assert (r["bullet_helpful"], r["bullet_harmful"]) == (0, 1)
    r = vote(vote="helpful", voter_agent_id="a", task_id="t1")
    r = vote(vote="helpful", voter_agent_id="b")
    assert (r["bullet_helpful"], r["bullet_harmful"]) == (2, 1)
    assert r["effectiveness_score"] == (2 - 1) / (2 + 1 + 1)
    got = http.get(f"/memories/{mid}").json()
    assert got["bullet_helpful"] == 2 and got["effectiveness_score"] == 0.25


def test_export_import_roundtrip(server: ServerProcess, backend, http, ns, start_server):
    """Export from one backend, import into the other: the way to move between them."""
    a = add(http, content="Deploy with blue-green", agent_id="ops", namespace=ns,
            shared_with_agents=["dev"], metadata={"k": "v"}, ttl_seconds=3600,
            memory_type="strategy")
    http.post(f"/memories/ace/vote/{a['id']}", json={"vote": "helpful",
                                                      "voter_agent_id": "dev", "task_id": "f1"})
    lines = http.post("/memories/export", json={"namespace": ns, "include_embeddings": True}).text
    rows = [json.loads(line) for line in lines.splitlines()]
    assert len(rows) == 1 and rows[0]["embedding_model"] and len(rows[0]["embedding"]) > 0
    other = start_server(backend="sqlite" if backend == "postgres" else "postgres")
    with httpx.Client(base_url=other.base_url, headers={"Authorization": "Bearer dev-key"},
                      timeout=60) as c:
        r = c.post("/memories/import", json={"memories": rows})
        assert r.status_code == 200, r.text
        assert r.json()["imported"] == 1 and r.json()["reembedded"] == 0
        r = c.post("/memories/import", json={"memories": rows})
        assert r.json() | {"ids": []} == {"imported": 0, "skipped": 1, "reembedded": 0,
                                          "ids": []}
        back = [json.loads(x) for x in c.post(
            "/memories/export", json={"namespace": ns, "include_embeddings": True}
        ).text.splitlines()]
        assert len(back) == 1
        for field in ("id", "content", "agent_id", "scope", "shared_with_agents", "metadata",
                      "memory_type", "created_at", "expires_at", "bullet_helpful", "votes",
                      "embedding"):
            assert back[0][field] == rows[0][field], field
        found = c.post("/memories/query", json={"query": "deployment strategy",
                                                  "namespace": ns, "agent_id": "dev"}).json()
        assert found["memories"][0]["id"] == a["id"]


def test_export_import_roundtrip_base64_embeddings(server: ServerProcess, http, ns):
    """``embedding_encoding: "base64"``: each vector is the base64 of its little-endian
    float32 bytes; it imports without re-embedding, as does the float form, into the same
    vector; neither changes any other field."""
    a = add(http, content="Rotate the signing keys every quarter", agent_id="ops",
            namespace=ns, scope="global", metadata={"k": "v"})
    as_float = json.loads(http.post("/memories/export", json={
        "namespace": ns, "include_embeddings": True}).text)
    as_b64 = json.loads(http.post("/memories/export", json={
        "namespace": ns, "include_embeddings": True, "embedding_encoding": "base64"}).text)
    assert isinstance(as_float["embedding"], list) and isinstance(as_b64["embedding"], str)
    raw = base64.b64decode(as_b64["embedding"], validate=True)
    assert np.frombuffer(raw, dtype="<f4").tolist() == as_float["embedding"]
    assert {k: v for k, v in as_b64.items() if k != "embedding"} == {
        k: v for k, v in as_float.items() if k != "embedding"}
    # Without include_embeddings the encoding changes nothing.
    plain = json.loads(http.post("/memories/export", json={
        "namespace": ns, "embedding_encoding": "base64"}).text)
    assert plain["embedding"] is None and plain["embedding_model"] is None

    for row in (as_b64, as_float):
        assert http.delete(f"/memories/{a['id']}").status_code == 200
        r = http.post("/memories/import", json={"memories": [row]})
        assert r.status_code == 200, r.text
        assert r.json() | {"ids": []} == {"imported": 1, "skipped": 0, "reembedded": 0,
                                          "ids": []}
        back = json.loads(http.post("/memories/export", json={
            "namespace": ns, "include_embeddings": True}).text)
        assert back["embedding"] == pytest.approx(as_float["embedding"], abs=1e-6)
        assert {k: v for k, v in back.items() if k != "embedding"} == {
            k: v for k, v in as_float.items() if k != "embedding"}
        found = query(http, query="how often are signing keys rotated", namespace=ns)
        assert found[0]["id"] == a["id"]
    # Idempotent in either form.
    r = http.post("/memories/import", json={"memories": [as_b64]})
    assert r.json()["skipped"] == 1 and r.json()["imported"] == 0


def test_filtered_search_fills_top_k_at_one_percent(server: ServerProcess, http, ns):
    """20k memories, one agent owns 1 %: a filtered top-10 returns 10, all that agent's."""
    model = http.post("/memories/export", json={"namespace": "nothing-here"})  # warm path
    assert model.status_code == 200
    probe = add(http, content="probe for the model name", namespace=ns)
    exported = json.loads(http.post("/memories/export", json={
        "namespace": ns, "include_embeddings": True}).text.splitlines()[0])
    model_name, dim = exported["embedding_model"], len(exported["embedding"])
    http.delete(f"/memories/{probe['id']}")
    rng = np.random.default_rng(7)
    total, rare = 20_000, 200
    # Clustered like real sentence embeddings (topics), not uniform noise.
    centres = rng.normal(size=(64, dim))
    vectors = (centres[rng.integers(0, 64, total)] + 0.6 * rng.normal(size=(total, dim)))
    vectors = vectors.astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for start in range(0, total, 1000):
        batch = []
        for i in range(start, start + 1000):
            owner = "rare-agent" if i % (total // rare) == 0 else f"agent-{i % 37}"
            batch.append({
                "id": uuid.uuid4().hex, "content": f"synthetic memory number {i}",
                "agent_id": owner, "namespace": ns, "scope": "agent-private",
                "embedding": vectors[i].tolist(), "embedding_model": model_name,
            })
        r = http.post("/memories/import", json={"memories": batch})
        assert r.status_code == 200 and r.json()["imported"] == 1000, r.text
    found = query(http, query="synthetic memory", agent_id="rare-agent", namespace=ns, top_k=10)
    assert len(found) == 10 and {m["agent_id"] for m in found} == {"rare-agent"}
    found = query(http, query="synthetic memory", namespace=ns, top_k=50,
                  target_agent_ids=["rare-agent"])
    assert len(found) == 50
    found = query(http, query="synthetic memory", agent_id="rare-agent", namespace=ns,
                  top_k=1000)
    assert len(found) == rare


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_restart_keeps_everything(start_server, tmp_path, backend, request):
    data = tmp_path / "persist"
    env = {}
    if backend == "postgres":
        env["DATABASE_URL"] = fresh_database(request.getfixturevalue("postgres"))
    first = start_server(data, **env)
    with httpx.Client(base_url=first.base_url, headers={"Authorization": "Bearer dev-key"}) as c:
        ids = [c.post("/memories/add", json={"content": f"fact {i} about the migration plan",
                                             "agent_id": "a"}).json()["id"] for i in range(5)]
        key = c.post("/keys", json={"agent_id": "a"}).json()["key"]
    first.stop()
    second = start_server(data, **env)
    with httpx.Client(base_url=second.base_url, headers={"Authorization": f"Bearer {key}"}) as c:
        for mid in ids:
            assert c.get(f"/memories/{mid}").status_code == 200
        found = c.post("/memories/query", json={"query": "migration plan", "top_k": 10}).json()
        assert {m["id"] for m in found["memories"]} == set(ids)
    second.stop()
    if backend == "postgres":
        return  # no index files: PostgreSQL searches its own HNSW index
    # A lost index file is rebuilt from the database.
    import shutil

    shutil.rmtree(data / "index", ignore_errors=True)
    third = start_server(data)
    with httpx.Client(base_url=third.base_url, headers={"Authorization": "Bearer dev-key"}) as c:
        found = c.post("/memories/query", json={"query": "migration plan", "agent_id": "a"}).json()
        assert {m["id"] for m in found["memories"]} == set(ids)


def test_an_old_format_index_snapshot_is_rebuilt_from_the_database(start_server, tmp_path):
    """A snapshot of format version 1 (the hnswlib graph, float32 vectors) is not used: the
    server starts, rebuilds the index from the database, and its next save replaces it."""
    data = tmp_path / "old-index"
    first = start_server(data)
    with httpx.Client(base_url=first.base_url, headers={"Authorization": "Bearer dev-key"}) as c:
        ids = [c.post("/memories/add", json={"content": f"note {i} on the release checklist"}
                      ).json()["id"] for i in range(4)]
    first.stop()
    index_dir = data / "index"
    meta = json.loads((index_dir / "meta.json").read_text())
    assert meta["format_version"] == 2
    dress_snapshot_as_version_1(index_dir)

    second = start_server(data)
    with httpx.Client(base_url=second.base_url, headers={"Authorization": "Bearer dev-key"}) as c:
        found = c.post("/memories/query", json={"query": "release checklist", "top_k": 10}).json()
        assert {m["id"] for m in found["memories"]} == set(ids)
    second.stop()
    meta = json.loads((index_dir / "meta.json").read_text())
    assert meta["format_version"] == 2
    assert not list(index_dir.glob("hnsw-*.bin"))  # the old graph file is gone


def test_import_reembeds_a_vector_that_cannot_be_ranked(server: ServerProcess, http, ns):
    """An exported embedding that is all zeros has no direction (cosine is undefined): the
    import embeds the text again instead of storing a memory no search could rank."""
    probe = add(http, content="probe for the model", namespace=ns)
    exported = json.loads(http.post("/memories/export", json={
        "namespace": ns, "include_embeddings": True}).text.splitlines()[0])
    http.delete(f"/memories/{probe['id']}")
    row = {"id": uuid.uuid4().hex, "content": "the staging database lives in Frankfurt",
           "namespace": ns, "embedding": [0.0] * len(exported["embedding"]),
           "embedding_model": exported["embedding_model"]}
    r = http.post("/memories/import", json={"memories": [row]})
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 1 and r.json()["reembedded"] == 1
    found = query(http, query="where is the staging database", namespace=ns)
    assert found[0]["id"] == row["id"] and 0.3 < found[0]["score"] <= 1.0


def test_concurrent_queries_answer_like_sequential_ones(server: ServerProcess, http, ns):
    """Under load the server moves searches off the event loop (IndexSync.search, busy);
    answers and their visibility must not change."""
    items = [{"content": f"Deploy note {i}: service {i % 7} needs flag {i % 5}",
              "agent_id": f"a{i % 3}", "namespace": ns,
              "scope": ("agent-private", "global")[i % 2]} for i in range(60)]
    assert http.post("/memories/add_batch", json={"items": items}).status_code == 200
    asks = [{"query": f"which flag does service {i % 7} need", "agent_id": f"a{i % 3}",
             "namespace": ns, "top_k": 5} for i in range(24)]

    def ids(body: dict) -> list[str]:
        return [m["id"] for m in body["memories"]]

    def visible(ask: dict, body: dict) -> bool:
        return all(m["scope"] == "global" or m["agent_id"] == ask["agent_id"]
                   for m in body["memories"])

    sequential = [ids(http.post("/memories/query", json=a).json()) for a in asks]
    assert all(sequential)

    async def all_at_once() -> list[list[str]]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60,
                                     headers={"Authorization": "Bearer dev-key"}) as client:
            answers = await asyncio.gather(*(client.post("/memories/query", json=a)
                                             for a in asks))
        assert all(visible(a, r.json()) for a, r in zip(asks, answers, strict=True))
        return [ids(r.json()) for r in answers]

    assert asyncio.run(all_at_once()) == sequential
