"""The SDK against the real server: over HTTP (the ``server`` fixture) and in local mode.

Each behaviour is checked through the public client API only, the way a user would call it;
sync tests run against both a served process and the in-process local mode, so the two cannot
drift apart.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aegis_memory import (
    AegisAuthError,
    AegisClient,
    AegisNotFoundError,
    AegisPermissionError,
    AegisValidationError,
    AsyncAegisClient,
    HandoffBaton,
    Memory,
    QueryResult,
)
from aegis_memory.client import Call


def _server(request: pytest.FixtureRequest, backend: str) -> Any:
    """A shared server of tests/conftest.py on ``backend``."""
    return request.getfixturevalue(f"{backend}_server")


@pytest.fixture(scope="module")
def local_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AegisClient]:
    pytest.importorskip("fastapi")
    with AegisClient.local(tmp_path_factory.mktemp("local") / "data") as client:
        yield client


@pytest.fixture(params=["http-sqlite", "http-postgres", "local"])
def client(request: pytest.FixtureRequest) -> Iterator[AegisClient]:
    if request.param == "local":
        yield request.getfixturevalue("local_client")
        return
    server = _server(request, request.param.removeprefix("http-"))
    with AegisClient(api_key=server.api_key, base_url=server.base_url, timeout=60) as http_client:
        yield http_client


@pytest.fixture
def ns() -> str:
    return "sdk-" + uuid.uuid4().hex[:12]


def test_health(client: AegisClient) -> None:
    assert client.health().status in ("healthy", "ok")


def test_readme_quickstart_flow(client: AegisClient, ns: str) -> None:
    added = client.add(
        content="Task: Build login. Steps: 1) Form, 2) Validation, 3) API",
        agent_id="planner",
        scope="agent-shared",
        shared_with_agents=["executor"],
        namespace=ns,
    )
    assert added.scope == "agent-shared"
    memories = client.query_cross_agent(
        query="current task",
        requesting_agent_id="executor",
        target_agent_ids=["planner"],
        namespace=ns,
    )
    assert isinstance(memories, QueryResult)
    assert memories[0].content.startswith("Task: Build login")
    assert memories.retrieval_event_id


def test_add_query_vote(client: AegisClient, ns: str) -> None:
    client.add("User prefers concise responses", agent_id="assistant", namespace=ns)
    memories = client.query("user preferences", agent_id="assistant", namespace=ns)
    assert memories and memories[0].score is not None
    result = client.vote(memories[0].id, "helpful", voter_agent_id="assistant")
    assert (result.bullet_helpful, result.bullet_harmful) == (1, 0)
    assert result.effectiveness_score == pytest.approx(0.5)


def test_scope_and_dedup(client: AegisClient, ns: str) -> None:
    first = client.add("Secret plan", agent_id="a", namespace=ns)
    assert first.scope == "agent-private" and not first.deduped
    again = client.add("  secret   PLAN ", agent_id="a", namespace=ns)
    assert again.deduped and again.id == first.id
    # Another agent cannot see it: 404, never 403.
    with pytest.raises(AegisNotFoundError):
        client.get(first.id, agent_id="b")


def test_get_update_delete(client: AegisClient, ns: str) -> None:
    memory_id = client.add("Old text", agent_id="a", namespace=ns, metadata={"x": 1}).id
    memory = client.get(memory_id, agent_id="a")
    assert isinstance(memory, Memory) and memory.metadata == {"x": 1}
    updated = client.update(memory_id, agent_id="a", content="New text", metadata={"y": 2})
    assert updated.content == "New text" and updated.metadata == {"x": 1, "y": 2}
    assert client.delete(memory_id, agent_id="a") is True
    with pytest.raises(AegisNotFoundError):
        client.get(memory_id, agent_id="a")
    with pytest.raises(AegisNotFoundError):
        client.delete(memory_id, agent_id="a")


def test_add_batch_over_100_items(client: AegisClient, ns: str) -> None:
    items = [
        {"content": f"fact number {i}", "agent_id": "bulk", "namespace": ns} for i in range(150)
    ]
    results = client.add_batch(items)
    assert len(results) == 150 and len({r.id for r in results}) == 150


def test_handoff(client: AegisClient, ns: str) -> None:
    client.add("The API uses cursor pagination", agent_id="researcher", namespace=ns)
    baton = client.handoff(
        "researcher", "writer", namespace=ns, task_context="pagination", share=True
    )
    assert isinstance(baton, HandoffBaton)
    assert baton.target_agent_id == "writer" and baton.memory_ids
    # Shared: the target can now read what it was handed.
    assert client.get(baton.memory_ids[0], agent_id="writer").id == baton.memory_ids[0]


def test_export_and_import(client: AegisClient, ns: str, tmp_path: Path) -> None:
    ids = {client.add(f"exported fact {i}", agent_id="a", namespace=ns).id for i in range(3)}
    exported = list(client.export(namespace=ns))
    assert {m.id for m in exported} == ids
    target = tmp_path / "backup.jsonl"
    assert client.export_to(target, namespace=ns) == 3
    result = client.import_from(target)  # same ids already there: idempotent
    assert result.imported + result.skipped == 3
    again = client.import_(exported, batch_size=2)
    assert again.imported + again.skipped == 3


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_export_import_embeddings_in_either_encoding(
    client: AegisClient, ns: str, tmp_path: Path, encoding: str
) -> None:
    """The SDK exports embeddings as numbers (the default) or base64 float32 bytes, and
    imports either without re-embedding; ``export_to`` writes base64 unless told otherwise."""
    for i in range(3):
        client.add(f"fact {i} about the deploy pipeline", agent_id="a", namespace=ns)
    floats = {m.id: m.embedding for m in client.export(namespace=ns, include_embeddings=True)}
    assert len(floats) == 3 and all(isinstance(v, list) for v in floats.values())
    kind = str if encoding == "base64" else list
    items = list(client.export(namespace=ns, include_embeddings=True,
                               embedding_encoding=encoding))  # type: ignore[arg-type]
    for m in items:
        assert isinstance(m.embedding, kind)
        assert m.embedding_vector() == floats[m.id]

    def delete_all() -> None:
        for memory_id in floats:
            assert client.delete(memory_id, agent_id="a") is True

    def assert_restored() -> None:
        again = {m.id: m.embedding for m in client.export(namespace=ns, include_embeddings=True)}
        assert again.keys() == floats.keys()
        for memory_id, vector in again.items():
            assert vector == pytest.approx(floats[memory_id], abs=1e-6)

    delete_all()
    result = client.import_(items, batch_size=2)
    assert (result.imported, result.skipped, result.reembedded) == (3, 0, 0)
    assert_restored()

    target = tmp_path / "vectors.jsonl"
    written = client.export_to(target, namespace=ns, include_embeddings=True,
                               embedding_encoding=None if encoding == "base64" else "float")
    assert written == 3
    rows = [json.loads(line) for line in target.read_text("utf-8").splitlines()]
    assert all(isinstance(r["embedding"], kind) for r in rows)
    delete_all()
    result = client.import_from(target)
    assert (result.imported, result.skipped, result.reembedded) == (3, 0, 0)
    assert_restored()


def test_sdk_refuses_bad_base64_before_sending(client: AegisClient, ns: str) -> None:
    with pytest.raises(AegisValidationError, match="embedding"):
        client.import_([{"id": uuid.uuid4().hex, "content": "x", "namespace": ns,
                         "embedding": "%%% not base64", "embedding_model": "m"}])


def test_wrong_key_is_an_auth_error(client: AegisClient) -> None:
    bad = client.with_api_key("not-a-key")  # same server, in local mode too
    with pytest.raises(AegisAuthError) as caught:
        bad.query("anything")
    assert str(caught.value) == "Authentication failed: Invalid API key"
    assert caught.value.status_code == 401


def test_server_validation_errors_are_typed(client: AegisClient) -> None:
    # Bypass the SDK's own validation to see the server's 422 mapped.
    with pytest.raises(AegisValidationError) as caught:
        client._send(Call("POST", "/memories/query", lambda d: d, json={"query": "x", "top_k": 0}))
    assert caught.value.status_code in (400, 422)
    assert "top_k" in str(caught.value)


def test_agent_keys(client: AegisClient, ns: str) -> None:
    created = client.keys.create(agent_id="bound-agent", name="sdk-test")
    assert created.key and created.agent_id == "bound-agent"
    assert created.id in {key.id for key in client.keys.list()}
    agent = client.with_api_key(created.key)
    assert agent.add("mine", namespace=ns).scope in ("agent-private", "global")
    with pytest.raises(AegisPermissionError):
        agent.add("not mine", agent_id="someone-else", namespace=ns)
    assert client.keys.revoke(created.id) is True
    with pytest.raises(AegisAuthError):
        agent.query("x", namespace=ns)  # revocation is immediate


async def test_async_client_over_http(server: Any, ns: str) -> None:
    async with AsyncAegisClient(
        api_key=server.api_key, base_url=server.base_url, timeout=60
    ) as client:
        await client.add("async fact about tea", user_id="u1", agent_id="assistant", namespace=ns)
        memories = await client.query("tea", user_id="u1", namespace=ns, agent_id="assistant")
        assert memories[0].content == "async fact about tea"
        assert [m.content async for m in client.export(namespace=ns)] == ["async fact about tea"]
        results = await client.add_batch([{"content": "b1", "namespace": ns}])
        assert len(results) == 1


async def test_async_local_mode(tmp_path: Path, ns: str) -> None:
    pytest.importorskip("fastapi")
    async with AsyncAegisClient.local(tmp_path / "data") as client:
        added = await client.add("local async fact", agent_id="a", namespace=ns)
        assert (await client.get(added.id, agent_id="a")).content == "local async fact"
    # Data survives a restart of the embedded server.
    async with AsyncAegisClient.local(tmp_path / "data") as client:
        assert (await client.get(added.id, agent_id="a")).content == "local async fact"
