"""Session progress and feature tracking (SPEC §3), over HTTP and through the SDK."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from aegis_memory import AegisClient
from aegis_memory.client import (
    AegisConflictError,
    AegisPermissionError,
    AegisValidationError,
    AsyncAegisClient,
)
from aegis_memory.schemas_progress import Feature, FeatureList, SessionProgress
from tests.conftest import ServerProcess, new_project


@pytest.fixture
def client(server: ServerProcess) -> Iterator[AegisClient]:
    with AegisClient(api_key="dev-key", base_url=server.base_url, timeout=60) as c:
        yield c


def _agent_key(http: httpx.Client, agent_id: str) -> str:
    r = http.post("/keys", json={"agent_id": agent_id, "name": "progress-test"})
    assert r.status_code == 201, r.text
    return r.json()["key"]


# ----------------------------------------------------------------------------- sessions


def test_readme_session_progress_snippet(server: ServerProcess) -> None:
    # A project of its own, so the README's fixed session id and default namespace are ours.
    _, key = new_project(server)
    with AegisClient(api_key=key, base_url=server.base_url, timeout=60) as client:
        client.progress.update(
            session_id="build-dashboard",
            completed=["auth", "routing"],
            in_progress="api-client",
            blocked=[{"item": "payments", "reason": "Waiting for API keys"}]
        )
        session = client.progress.get("build-dashboard")
    assert isinstance(session, SessionProgress)
    assert session.session_id == "build-dashboard"
    assert session.namespace == "default"
    assert session.status == "active"
    assert session.completed == ["auth", "routing"]
    assert session.in_progress == "api-client"
    assert session.blocked == [{"item": "payments", "reason": "Waiting for API keys"}]
    assert session.progress_percent is None
    assert session.created_at is not None and session.updated_at is not None


def test_session_create_get_update_list(client: AegisClient, http: httpx.Client, ns: str) -> None:
    created = client.progress.create("s1", namespace=ns, agent_id="builder", total_items=4,
                                     summary="Build the dashboard")
    assert created.status == "active" and created.agent_id == "builder"
    assert created.progress_percent == 0.0

    updated = client.progress.update("s1", namespace=ns, completed=["auth", "routing"],
                                     next=["charts"], agent_id="builder")
    assert updated.completed == ["auth", "routing"]
    updated = client.progress.update("s1", namespace=ns, completed=["routing", "api", "auth"],
                                     in_progress="charts", agent_id="builder")
    assert updated.completed == ["auth", "routing", "api"]  # appended, no duplicates, in order
    assert updated.next_items == ["charts"]
    assert updated.in_progress == "charts"
    assert updated.progress_percent == 75.0
    assert updated.summary == "Build the dashboard"

    # Duplicate create is a 409 in the error contract's shape.
    r = http.post("/memories/ace/session", json={"session_id": "s1", "namespace": ns})
    assert r.status_code == 409
    assert set(r.json()) >= {"detail", "code"} and r.json()["code"] == "session_exists"
    with pytest.raises(AegisConflictError):
        client.progress.create("s1", namespace=ns)

    # Same id in another namespace is another session.
    assert client.progress.create("s1", namespace=ns + "-b").completed == []

    # Invalid status is a 422 (server) / validation error (SDK, before sending).
    r = http.patch(f"/memories/ace/session/s1?namespace={ns}",
                   json={"namespace": ns, "status": "done"})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    r = http.post("/memories/ace/session", json={"session_id": "s9", "namespace": ns,
                                                 "status": "bogus"})
    assert r.status_code == 422
    with pytest.raises(AegisValidationError):
        client.progress.update("s1", namespace=ns, status="done")  # type: ignore[arg-type]

    client.progress.update("s2", namespace=ns, status="paused")
    client.progress.update("s1", namespace=ns, status="completed", agent_id="builder")
    everything = client.progress.list(namespace=ns)
    assert {s.session_id for s in everything} == {"s1", "s2"}
    assert [s.session_id for s in client.progress.list(namespace=ns, status="paused")] == ["s2"]
    assert len(client.progress.list(namespace=ns, limit=1)) == 1
    r = http.get("/memories/ace/sessions", params={"namespace": ns, "limit": 100_000})
    assert r.status_code == 422  # the limit is bounded

    r = http.get("/memories/ace/session/nope", params={"namespace": ns})
    assert r.status_code == 404 and r.json()["code"] == "session_not_found"


def test_sessions_and_features_stay_in_their_project(
    client: AegisClient, server: ServerProcess, ns: str
) -> None:
    client.progress.update("private-session", namespace=ns, completed=["a"])
    client.features.create("private-feature", namespace=ns)
    _, key = new_project(server)
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"},
                      timeout=60) as other:
        r = other.get("/memories/ace/session/private-session", params={"namespace": ns})
        assert r.status_code == 404
        assert other.get("/memories/ace/sessions", params={"namespace": ns}).json()[
            "sessions"] == []
        r = other.get("/memories/ace/feature/private-feature", params={"namespace": ns})
        assert r.status_code == 404
        r = other.patch("/memories/ace/feature/private-feature",
                        json={"namespace": ns, "status": "in_progress"})
        assert r.status_code == 404
        assert other.get("/memories/ace/features", params={"namespace": ns}).json()["total"] == 0
        # The other project's update creates its own session; ours is untouched.
        r = other.patch("/memories/ace/session/private-session",
                        json={"namespace": ns, "completed": ["intruder"]})
        assert r.status_code == 200 and r.json()["completed"] == ["intruder"]
    assert client.progress.get("private-session", namespace=ns).completed == ["a"]


def test_agent_keys_act_only_as_their_agent(
    client: AegisClient, http: httpx.Client, ns: str
) -> None:
    key = _agent_key(http, "worker")
    with client.with_api_key(key) as agent:
        own = agent.progress.update("w1", namespace=ns, completed=["step-1"])
        assert own.agent_id == "worker"  # defaults to the bound agent
        r = httpx.post(http.base_url.join("/memories/ace/session"),
                       headers={"Authorization": f"Bearer {key}"},
                       json={"session_id": "w2", "namespace": ns, "agent_id": "boss"})
        assert r.status_code == 403 and r.json()["code"] == "agent_mismatch"
        r = httpx.patch(http.base_url.join("/memories/ace/session/w1"),
                        headers={"Authorization": f"Bearer {key}"},
                        json={"namespace": ns, "agent_id": "boss", "completed": ["x"]})
        assert r.status_code == 403
        r = httpx.post(http.base_url.join("/memories/ace/feature"),
                       headers={"Authorization": f"Bearer {key}"},
                       json={"feature_id": "f", "namespace": ns, "agent_id": "boss"})
        assert r.status_code == 403

        # A session another agent owns cannot be changed with this key.
        client.progress.create("boss-session", namespace=ns, agent_id="boss")
        r = httpx.patch(http.base_url.join("/memories/ace/session/boss-session"),
                        headers={"Authorization": f"Bearer {key}"},
                        json={"namespace": ns, "completed": ["x"]})
        assert r.status_code == 403
    assert client.progress.get("boss-session", namespace=ns).completed == []


# ----------------------------------------------------------------------------- features


def test_feature_lifecycle_and_counts(client: AegisClient, http: httpx.Client, ns: str) -> None:
    f = client.features.create("login", description="User can log in", namespace=ns,
                               session_id="sess", category="auth",
                               test_steps=["open /login", "submit"], agent_id="builder")
    assert isinstance(f, Feature)
    assert f.status == "not_started" and f.passes is False and f.implemented_by == "builder"
    assert f.test_steps == ["open /login", "submit"]

    r = http.post("/memories/ace/feature", json={"feature_id": "login", "namespace": ns})
    assert r.status_code == 409 and r.json()["code"] == "feature_exists"
    r = http.post("/memories/ace/feature", json={"feature_id": "x", "namespace": ns,
                                                 "status": "done"})
    assert r.status_code == 422

    # Premature completion is refused: "complete" needs passes=true.
    r = http.patch("/memories/ace/feature/login", json={"namespace": ns, "status": "complete"})
    assert r.status_code == 422
    assert r.json()["code"] == "premature_completion"
    assert "premature completion" in r.json()["detail"]
    r = http.post("/memories/ace/feature", json={"feature_id": "y", "namespace": ns,
                                                 "status": "complete"})
    assert r.status_code == 422
    with pytest.raises(AegisValidationError):
        client.features.update("login", namespace=ns, status="complete")
    assert client.features.get("login", namespace=ns).status == "not_started"

    assert client.features.update("login", namespace=ns, status="in_progress").status == (
        "in_progress")
    done = client.features.mark_complete("login", namespace=ns, verified_by="qa")
    assert done.status == "complete" and done.passes is True
    assert done.verified_by == "qa" and done.completed_at is not None

    client.features.create("signup", namespace=ns, session_id="sess")
    failed = client.features.update("signup", namespace=ns, passes=False,
                                    failure_reason="captcha breaks")
    assert failed.status == "failed" and failed.passes is False
    assert failed.failure_reason == "captcha breaks" and failed.completed_at is None
    again = client.features.mark_failed("signup", "still broken", namespace=ns)
    assert again.status == "failed" and again.failure_reason == "still broken"

    client.features.create("search", namespace=ns)
    client.features.update("search", namespace=ns, status="in_progress")
    client.features.create("export", namespace=ns)

    listed = client.features.list(namespace=ns)
    assert isinstance(listed, FeatureList)
    assert (listed.total, listed.passing, listed.failing, listed.in_progress) == (4, 1, 1, 1)
    assert [f.feature_id for f in listed.features] == ["login", "signup", "search", "export"]
    body = http.get("/memories/ace/features", params={"namespace": ns}).json()
    assert {k: body[k] for k in ("total", "passing", "failing", "in_progress")} == {
        "total": 4, "passing": 1, "failing": 1, "in_progress": 1}
    by_session = client.features.list(namespace=ns, session_id="sess")
    assert by_session.total == 2
    assert client.features.list(namespace=ns, status="failed").features[0].feature_id == "signup"

    r = http.get("/memories/ace/feature/nope", params={"namespace": ns})
    assert r.status_code == 404
    r = http.patch("/memories/ace/feature/nope", json={"namespace": ns, "passes": True})
    assert r.status_code == 404


def test_feature_update_records_outcome_event(
    client: AegisClient, server: ServerProcess, ns: str
) -> None:
    client.add("Use JWT for auth", namespace=ns)
    hits = client.query("auth", namespace=ns)
    client.features.create("jwt", namespace=ns)
    done = client.features.mark_complete(
        "jwt", namespace=ns, retrieval_event_id=hits.retrieval_event_id, task_id="jwt-task",
        agent_id="builder",
    )
    assert done.passes is True and done.verified_by == "builder"
    rows = server.sql(
        "SELECT agent_id, task_id, retrieval_event_id, payload FROM events "
        "WHERE event_type = 'feature_updated' AND namespace = :ns", ns=ns,
    )
    assert len(rows) == 1
    agent, task, retrieval, payload = rows[0]
    assert (agent, task, retrieval) == ("builder", "jwt-task", hits.retrieval_event_id)
    payload = json.loads(payload) if isinstance(payload, str) else payload
    assert payload["passes"] is True
    assert payload["status"] == "complete"


def test_agent_key_verifies_as_itself(client: AegisClient, http: httpx.Client, ns: str) -> None:
    key = _agent_key(http, "qa-bot")
    client.features.create("pay", namespace=ns)
    with client.with_api_key(key) as qa:
        done = qa.features.mark_complete("pay", namespace=ns)
        assert done.verified_by == "qa-bot"
        with pytest.raises(AegisPermissionError):
            qa.features.mark_complete("pay", namespace=ns, verified_by="someone-else")


# ----------------------------------------------------------------------------- async, handoff


async def test_async_client_parity(server: ServerProcess, ns: str) -> None:
    async with AsyncAegisClient(api_key="dev-key", base_url=server.base_url, timeout=60) as c:
        session = await c.progress.update("async-s", namespace=ns, completed=["one"],
                                          total_items=2)
        assert session.progress_percent == 50.0
        assert (await c.progress.get("async-s", namespace=ns)).completed == ["one"]
        await c.features.create("async-f", namespace=ns)
        listed = await c.features.list(namespace=ns)
        assert listed.total == 1


def test_handoff_carries_session_progress(http: httpx.Client, ns: str) -> None:
    r = http.patch("/memories/ace/session/handoff-s", json={
        "namespace": ns, "agent_id": "planner", "in_progress": "api-client",
        "next_items": ["charts", "exports"],
        "blocked": [{"item": "payments", "reason": "Waiting for API keys"}],
    })
    assert r.status_code == 200, r.text
    http.patch("/memories/ace/session/other-agent", json={
        "namespace": ns, "agent_id": "someone-else", "in_progress": "unrelated"})
    r = http.post("/memories/add", json={"content": "The API uses REST", "agent_id": "planner",
                                         "namespace": ns})
    assert r.status_code == 200, r.text
    r = http.post("/memories/handoff", json={"source_agent_id": "planner",
                                             "target_agent_id": "executor", "namespace": ns})
    assert r.status_code == 200, r.text
    baton = r.json()
    assert baton["active_tasks"] == ["api-client"]
    assert baton["next_items"] == ["charts", "exports"]
    assert baton["blocked_on"] == [{"item": "payments", "reason": "Waiting for API keys"}]
    assert "api-client" in baton["summary"]
