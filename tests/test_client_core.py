"""SDK tests that need no Aegis server.

They cover what the client decides on its own: configuration precedence, request building
(inspected as `Call` objects), response parsing and error mapping (through httpx's
MockTransport), streaming, connection failures against a closed port, and the local-mode
transports (against a tiny stand-in ASGI app, not the real server).
"""

from __future__ import annotations

import copy
import inspect
import json
import pickle
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import aegis_memory
from aegis_memory import (
    AegisAuthError,
    AegisClient,
    AegisConflictError,
    AegisConnectionError,
    AegisError,
    AegisNotFoundError,
    AegisPermissionError,
    AegisRateLimitError,
    AegisServerError,
    AegisTimeoutError,
    AegisValidationError,
    AsyncAegisClient,
    QueryResult,
)
from aegis_memory.client import Call, resolve_config
from aegis_memory.client._api import ClientOps, KeysOps
from aegis_memory.client._core import Drain, Plan
from aegis_memory.client.errors import parse_retry_after
from aegis_memory.client.types import ExportFilters
from aegis_memory.schemas import (
    AddBatchResponse,
    AddResult,
    ExportedMemory,
    ImportResponse,
    Memory,
    MemoryFields,
)

# ----------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test may read the developer's real ~/.aegis or AEGIS_* variables."""
    for name in ("AEGIS_API_KEY", "AEGIS_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    config_dir = tmp_path / "aegis-config"
    monkeypatch.setenv("AEGIS_CONFIG_DIR", str(config_dir))
    return config_dir


def write_config(config_dir: Path, data: Any) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(data)
    (config_dir / "config.json").write_text(text, encoding="utf-8")


def memory_json(memory_id: str = "m1", content: str = "fact", **extra: Any) -> dict[str, Any]:
    return {"id": memory_id, "content": content, "scope": "global", **extra}


Handler = Callable[[httpx.Request], httpx.Response]


class Server:
    """A scripted stand-in server: records requests, answers from a handler or a queue."""

    def __init__(self, *responses: httpx.Response | Handler) -> None:
        self.requests: list[httpx.Request] = []
        self._responses = list(responses)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self._responses.pop(0) if len(self._responses) > 1 else self._responses[0]
        return answer(request) if callable(answer) else answer

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)

    def sync(self, **kwargs: Any) -> AegisClient:
        return AegisClient(transport=httpx.MockTransport(self), **kwargs)

    def async_(self, **kwargs: Any) -> AsyncAegisClient:
        return AsyncAegisClient(transport=httpx.MockTransport(self), **kwargs)


def ok(data: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=data, headers=headers)


def error(
    status: int, detail: Any = None, code: str | None = None, **headers: str
) -> httpx.Response:
    body: dict[str, Any] = {}
    if detail is not None:
        body["detail"] = detail
    if code is not None:
        body["code"] = code
    return httpx.Response(status, json=body, headers=headers)


def drive(plan: Plan[Any], answers: list[Any]) -> tuple[list[Any], Any]:
    """Run a plan without a transport: feed it ``answers``, return (steps, final value)."""
    steps: list[Any] = []
    answers = list(answers)
    try:
        step = next(plan)
        while True:
            steps.append(step)
            step = plan.send(answers.pop(0))
    except StopIteration as done:
        return steps, done.value


def build(method: str, /, *args: Any, owner: type = ClientOps, **kwargs: Any) -> Any:
    """The request description a method would send (no network)."""
    client = AegisClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    target = client if owner is ClientOps else client.keys
    return getattr(owner, method).build(target, *args, **kwargs)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ----------------------------------------------------------------------------- configuration


def test_defaults_when_nothing_is_configured() -> None:
    config = resolve_config()
    assert (config.api_key, config.base_url) == ("dev-key", "http://localhost:8000")
    assert (config.api_key_source, config.base_url_source) == ("default", "default")


def test_config_file_active_profile_is_used(_isolated_config: Path) -> None:
    write_config(
        _isolated_config,
        {
            "profiles": {
                "default": {"api_key": "file-default", "base_url": "http://default:1"},
                "prod": {"api_key": "file-prod", "base_url": "https://prod.example/"},
            },
            "active": "prod",
        },
    )
    config = resolve_config()
    assert config.api_key == "file-prod"
    assert config.base_url == "https://prod.example"  # trailing slash dropped
    assert config.api_key_source.startswith("config:")


def test_env_beats_config_file_and_arguments_beat_env(
    _isolated_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(
        _isolated_config,
        {"profiles": {"default": {"api_key": "file-key", "base_url": "http://file:1"}}},
    )
    monkeypatch.setenv("AEGIS_API_KEY", "env-key")
    config = resolve_config()
    # Each setting resolves on its own: key from the environment, URL from the file.
    assert (config.api_key, config.base_url) == ("env-key", "http://file:1")
    assert config.api_key_source == "env:AEGIS_API_KEY"

    monkeypatch.setenv("AEGIS_BASE_URL", "http://env:2")
    assert resolve_config().base_url == "http://env:2"

    config = resolve_config(api_key="arg-key", base_url="http://arg:3")
    assert (config.api_key, config.base_url) == ("arg-key", "http://arg:3")
    assert (config.api_key_source, config.base_url_source) == ("argument", "argument")


def test_empty_env_values_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_API_KEY", "  ")
    monkeypatch.setenv("AEGIS_BASE_URL", "")
    config = resolve_config()
    assert (config.api_key, config.base_url) == ("dev-key", "http://localhost:8000")


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"profiles": "nope"}),
        json.dumps({"profiles": {"default": "nope"}}),
        json.dumps({"profiles": {"default": {"api_key": 7, "base_url": ""}}}),
        json.dumps({"profiles": {"other": {"api_key": "x"}}, "active": "missing"}),
        json.dumps({"profiles": {"default": {"api_key": "x"}}, "active": 3}),
    ],
)
def test_bad_config_file_is_ignored(_isolated_config: Path, content: str) -> None:
    write_config(_isolated_config, content)
    config = resolve_config()
    assert (config.api_key, config.base_url) == ("dev-key", "http://localhost:8000")


def test_config_dir_that_is_a_file_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    monkeypatch.setenv("AEGIS_CONFIG_DIR", str(not_a_dir))
    assert resolve_config().api_key == "dev-key"


def test_base_url_without_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="http://"):
        AegisClient(base_url="localhost:8000")


def test_client_sends_resolved_key_and_user_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEGIS_API_KEY", "env-key")
    server = Server(ok({"status": "healthy", "version": "1"}))
    with server.sync(base_url="http://aegis.test:9") as client:
        assert client.health().status == "healthy"
    request = server.requests[0]
    assert request.headers["authorization"] == "Bearer env-key"
    assert request.headers["user-agent"] == f"aegis-memory-python/{aegis_memory.__version__}"
    assert str(request.url) == "http://aegis.test:9/health"
    assert "env-key" not in repr(client) and "env-key" not in repr(client.config)


def test_with_api_key_keeps_url_and_timeout() -> None:
    server = Server(ok({"status": "healthy"}))
    with server.sync(api_key="project-key", base_url="http://aegis.test", timeout=3) as client:
        other = client.with_api_key("agent-key")
        other.health()
        client.health()
    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer agent-key",
        "Bearer project-key",
    ]
    assert other.base_url == "http://aegis.test" and other._timeout == 3


def test_base_url_with_path_prefix_is_kept() -> None:
    server = Server(ok({"status": "healthy"}))
    with server.sync(base_url="https://host.example/aegis/") as client:
        client.health()
    assert str(server.requests[0].url) == "https://host.example/aegis/health"


# ----------------------------------------------------------------------------- connection errors


def test_connection_error_message_sync() -> None:
    port = closed_port()
    with (
        AegisClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client,
        pytest.raises(AegisConnectionError) as caught,
    ):
        client.add("hello", agent_id="a")
    message = str(caught.value)
    assert message.startswith(f"Cannot connect to Aegis server\n  URL: http://127.0.0.1:{port}")
    assert caught.value.status_code is None
    assert not isinstance(caught.value, AegisTimeoutError)


async def test_connection_error_message_async() -> None:
    port = closed_port()
    async with AsyncAegisClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        with pytest.raises(AegisConnectionError) as caught:
            await client.query("anything")
    assert str(caught.value).startswith(
        f"Cannot connect to Aegis server\n  URL: http://127.0.0.1:{port}"
    )


def test_connection_error_while_streaming_export() -> None:
    port = closed_port()
    with AegisClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        stream = client.export()  # nothing is sent until iteration starts
        with pytest.raises(AegisConnectionError, match="Cannot connect to Aegis server"):
            next(iter(stream))


def test_read_timeout_is_a_timeout_error() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with (
        AegisClient(transport=httpx.MockTransport(slow)) as client,
        pytest.raises(AegisTimeoutError) as caught,
    ):
        client.health()
    assert isinstance(caught.value, AegisConnectionError)
    assert "did not answer in time" in str(caught.value)


# ----------------------------------------------------------------------------- request building


def test_add_sends_only_given_fields() -> None:
    call = build("add", "User prefers dark mode", agent_id="assistant")
    assert isinstance(call, Call)
    assert (call.method, call.path, call.params) == ("POST", "/memories/add", None)
    assert call.json == {
        "content": "User prefers dark mode",
        "agent_id": "assistant",
        "namespace": "default",
        "memory_type": "standard",
    }


def test_add_with_every_field() -> None:
    call = build(
        "add",
        "Task: build login",
        user_id="u1",
        agent_id="planner",
        namespace="app",
        metadata={"k": [1, None]},
        ttl_seconds=60,
        scope="agent-shared",
        shared_with_agents="executor",  # one name is accepted where a list is expected
        memory_type="strategy",
        derived_from_agents=["a", "a", "b"],
        coordination_metadata={"step": 1},
        error_pattern="pagination",
    )
    assert call.json == {
        "content": "Task: build login",
        "user_id": "u1",
        "agent_id": "planner",
        "namespace": "app",
        "metadata": {"k": [1, None]},
        "ttl_seconds": 60,
        "scope": "agent-shared",
        "shared_with_agents": ["executor"],
        "memory_type": "strategy",
        "derived_from_agents": ["a", "b"],  # the wire model dedupes
        "coordination_metadata": {"step": 1},
        "error_pattern": "pagination",
    }
    assert call.parse({"id": "m1", "scope": "agent-shared"}) == AddResult(
        id="m1", scope="agent-shared"
    )


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"content": "   "}, "content"),
        ({"content": "x", "scope": "public"}, "scope"),
        ({"content": "x", "ttl_seconds": 0}, "ttl_seconds"),
        ({"content": "x", "agent_id": " "}, "agent_id: must not be empty"),
    ],
)
def test_add_rejects_bad_arguments_before_sending(kwargs: dict[str, Any], fragment: str) -> None:
    server = Server(ok({"id": "m1", "scope": "global"}))
    with server.sync() as client, pytest.raises(AegisValidationError) as caught:
        client.add(**kwargs)
    assert fragment in str(caught.value)
    assert caught.value.status_code is None
    assert isinstance(caught.value, ValueError)
    assert server.requests == []


def test_unknown_keyword_is_a_type_error() -> None:
    with AegisClient() as client, pytest.raises(TypeError):
        client.add("x", agentid="a")  # type: ignore[call-arg]


def test_query_builds_filters() -> None:
    call = build(
        "query",
        "user preferences",
        agent_id="assistant",
        top_k=3,
        memory_types="strategy",
        target_agent_ids=["planner"],
        min_score=0.2,
    )
    assert (call.method, call.path) == ("POST", "/memories/query")
    assert call.json == {
        "query": "user preferences",
        "agent_id": "assistant",
        "namespace": "default",
        "top_k": 3,
        "min_score": 0.2,
        "memory_types": ["strategy"],
        "target_agent_ids": ["planner"],
    }
    result = call.parse(
        {"memories": [memory_json(score=0.9)], "retrieval_event_id": "ev1", "query_time_ms": 4.5}
    )
    assert isinstance(result, QueryResult)
    assert result[0].content == "fact" and result[0].score == 0.9
    assert (result.retrieval_event_id, result.query_time_ms, result.ids) == ("ev1", 4.5, ["m1"])


def test_query_cross_agent_body() -> None:
    call = build(
        "query_cross_agent",
        query="current task",
        requesting_agent_id="executor",
        target_agent_ids=["planner"],
    )
    assert (call.method, call.path) == ("POST", "/memories/query_cross_agent")
    assert call.json == {
        "query": "current task",
        "requesting_agent_id": "executor",
        "target_agent_ids": ["planner"],
        "namespace": "default",
        "top_k": 10,
    }


def test_get_and_delete_put_agent_in_query_and_quote_ids() -> None:
    call = build("get", "m/1?x", agent_id="a")
    assert (call.method, call.path, call.params, call.json) == (
        "GET",
        "/memories/m%2F1%3Fx",
        {"agent_id": "a"},
        None,
    )
    call = build("delete", "m1")
    assert (call.method, call.path, call.params) == ("DELETE", "/memories/m1", None)
    assert call.parse({"id": "m1", "deleted": True}) is True
    assert call.parse(None) is True  # 204 No Content


def test_quoted_id_reaches_the_server_quoted() -> None:
    server = Server(ok(memory_json("../keys")))
    with server.sync() as client:
        client.get("../keys")
    assert server.requests[0].url.raw_path == b"/memories/..%2Fkeys"


@pytest.mark.parametrize("bad", ["", "  "])
def test_empty_ids_are_refused(bad: str) -> None:
    with pytest.raises(AegisValidationError, match="memory_id"):
        build("get", bad)
    with pytest.raises(AegisValidationError, match="key_id"):
        build("revoke", bad, owner=KeysOps)


def test_update_sends_only_the_changes() -> None:
    call = build("update", "m1", agent_id="a", metadata={"tag": "x"})
    assert (call.method, call.path) == ("PATCH", "/memories/m1")
    assert call.json == {"agent_id": "a", "metadata": {"tag": "x"}}
    with pytest.raises(AegisValidationError, match="nothing to update"):
        build("update", "m1", agent_id="a")


def test_handoff_and_vote() -> None:
    call = build("handoff", "planner", "executor", task_context="login", share=True)
    assert (call.method, call.path) == ("POST", "/memories/handoff")
    assert call.json == {
        "source_agent_id": "planner",
        "target_agent_id": "executor",
        "namespace": "default",
        "task_context": "login",
        "max_memories": 20,
        "share": True,
    }
    call = build("vote", "m1", "helpful", voter_agent_id="assistant")
    assert (call.method, call.path) == ("POST", "/memories/ace/vote/m1")
    assert call.json == {"vote": "helpful", "voter_agent_id": "assistant"}
    with pytest.raises(AegisValidationError, match="vote"):
        build("vote", "m1", "useful")


def test_keys_and_health_calls() -> None:
    call = build("create", agent_id="executor", name="ci", owner=KeysOps)
    assert (call.method, call.path, call.json) == (
        "POST",
        "/keys",
        {"agent_id": "executor", "name": "ci"},
    )
    assert build("create", owner=KeysOps).json == {}
    call = build("list", owner=KeysOps)
    assert (call.method, call.path, call.json) == ("GET", "/keys", None)
    call = build("revoke", "k1", owner=KeysOps)
    assert (call.method, call.path) == ("DELETE", "/keys/k1")
    assert call.parse(None) is True
    call = build("health")
    assert (call.method, call.path) == ("GET", "/health")


def test_export_call() -> None:
    call = build("export", namespace="app", include_embeddings=True)
    assert (call.method, call.path) == ("POST", "/memories/export")
    assert call.json == {
        "namespace": "app",
        "format": "jsonl",
        "include_embeddings": True,
        "include_deprecated": True,
    }


def test_add_batch_validates_everything_then_chunks_by_100() -> None:
    items: list[dict[str, Any] | MemoryFields] = [{"content": f"fact {i}"} for i in range(249)]
    items.append(MemoryFields(content="last", agent_id="a"))
    plan = build("add_batch", items)
    answers = [
        AddBatchResponse(
            results=[AddResult(id=f"id{n}", scope="global") for n in range(size)], count=size
        )
        for size in (100, 100, 50)
    ]
    steps, results = drive(plan, answers)
    assert [len(step.json["items"]) for step in steps] == [100, 100, 50]
    assert all(step.path == "/memories/add_batch" for step in steps)
    assert steps[2].json["items"][-1] == {"content": "last", "agent_id": "a"}
    assert len(results) == 250

    with pytest.raises(AegisValidationError, match=r"items\[1\]\.content"):
        drive(build("add_batch", [{"content": "ok"}, {"content": ""}]), [])
    with pytest.raises(AegisValidationError, match=r"items\[0\]\.agentid"):
        drive(build("add_batch", [{"content": "ok", "agentid": "typo"}]), [])
    assert drive(build("add_batch", []), []) == ([], [])


def test_import_chunks_lazily_and_sums_counts() -> None:
    memories = (memory_json(f"m{i}") for i in range(5))
    plan = build("import_", memories, agent_id="a", batch_size=2)
    answers = [
        ImportResponse(imported=2, skipped=0, reembedded=1, ids=["m0", "m1"]),
        ImportResponse(imported=1, skipped=1, reembedded=0, ids=["m2", "m3"]),
        ImportResponse(imported=1, skipped=0, reembedded=1, ids=["m4"]),
    ]
    steps, total = drive(plan, answers)
    assert [[m["id"] for m in step.json["memories"]] for step in steps] == [
        ["m0", "m1"],
        ["m2", "m3"],
        ["m4"],
    ]
    assert all(step.json["agent_id"] == "a" for step in steps)
    assert total == ImportResponse(
        imported=4, skipped=1, reembedded=2, ids=["m0", "m1", "m2", "m3", "m4"]
    )
    with pytest.raises(AegisValidationError, match="batch_size"):
        drive(build("import_", [], batch_size=1001), [])
    with pytest.raises(AegisValidationError, match=r"memories\[1\]\.id"):
        drive(build("import_", [memory_json(), {"content": "no id"}]), [])


def test_export_to_is_one_drain_step(tmp_path: Path) -> None:
    target = tmp_path / "out" / "backup.jsonl"
    plan = build("export_to", target, namespace="app")
    step = next(plan)
    assert isinstance(step, Drain) and step.call.json["namespace"] == "app"
    step.sink(ExportedMemory(id="m1", content="a"))
    with pytest.raises(StopIteration) as done:
        plan.send(1)
    assert done.value.value == 1
    assert [json.loads(line)["id"] for line in target.read_text().splitlines()] == ["m1"]


def test_sync_and_async_clients_have_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    assert public(AegisClient) - {"local"} == public(AsyncAegisClient) - {"local", "aclose"}
    for name in ("add", "query", "query_cross_agent", "update", "import_", "export"):
        sync_params = inspect.signature(getattr(AegisClient(), name)).parameters
        assert sync_params == inspect.signature(getattr(AsyncAegisClient(), name)).parameters
    assert inspect.iscoroutinefunction(AsyncAegisClient.close)
    export_params = set(inspect.signature(AegisClient().export).parameters)
    assert export_params == set(ExportFilters.__annotations__)


def test_methods_keep_their_names_docs_and_signatures() -> None:
    client = AegisClient()
    assert client.add.__name__ == "add"
    assert "Store one memory" in (client.add.__doc__ or "")
    assert list(inspect.signature(client.add).parameters)[:2] == ["content", "user_id"]
    assert inspect.signature(client.add).return_annotation == "AddResult"
    assert inspect.signature(AsyncAegisClient().add).return_annotation == "Awaitable[AddResult]"
    assert inspect.signature(client.export).return_annotation == "Iterator[ExportedMemory]"
    assert list(inspect.signature(AegisClient.add).parameters)[:2] == ["self", "content"]


def test_methods_can_be_called_on_the_class() -> None:
    server = Server(ok({"status": "healthy"}))
    with server.sync() as client:
        assert AegisClient.health(client).status == "healthy"


# ----------------------------------------------------------------------------- responses and errors


@pytest.mark.parametrize(
    ("response", "exc_type", "message"),
    [
        (
            error(401, "Authentication failed: Invalid API key", "invalid_api_key"),
            AegisAuthError,
            "Authentication failed: Invalid API key",
        ),
        (httpx.Response(401), AegisAuthError, "Authentication failed: Invalid API key"),
        (error(403, "Key is bound to agent a", "forbidden_agent"), AegisPermissionError, None),
        (error(404, "Memory not found", "not_found"), AegisNotFoundError, "Memory not found"),
        (error(409, "Session exists", "conflict"), AegisConflictError, "Session exists"),
        (error(413, "Body too large", "too_large"), AegisValidationError, "Body too large"),
        (error(400, "Bad input", "bad_request"), AegisValidationError, "Bad input"),
        (
            error(422, [{"loc": ["body", "top_k"], "msg": "must be >= 1", "type": "x"}]),
            AegisValidationError,
            "top_k: must be >= 1",
        ),
        (httpx.Response(500, text="Internal Server Error"), AegisServerError, None),
        (
            httpx.Response(502, text="<html><body>Bad gateway</body></html>"),
            AegisServerError,
            "The Aegis server failed (HTTP 502)",
        ),
        (error(418, "teapot"), AegisError, "teapot"),
    ],
)
def test_errors_map_to_types(
    response: httpx.Response, exc_type: type[AegisError], message: str | None
) -> None:
    response.headers["X-Request-ID"] = "req-42"
    server = Server(response)
    with server.sync() as client, pytest.raises(exc_type) as caught:
        client.get("m1")
    assert type(caught.value) is exc_type
    assert caught.value.status_code == response.status_code
    assert caught.value.request_id == "req-42"
    if message is not None:
        assert str(caught.value) == message
    assert caught.value.detail == str(caught.value)


def test_error_code_is_kept() -> None:
    server = Server(error(404, "Memory not found", "memory_not_found"))
    with server.sync() as client, pytest.raises(AegisNotFoundError) as caught:
        client.delete("m1")
    assert caught.value.code == "memory_not_found"


def test_rate_limit_carries_retry_after() -> None:
    server = Server(error(429, "Rate limit exceeded", "rate_limited", **{"Retry-After": "7"}))
    with server.sync() as client, pytest.raises(AegisRateLimitError) as caught:
        client.query("q")
    assert caught.value.retry_after == 7.0
    assert caught.value.code == "rate_limited"


def test_retry_after_formats() -> None:
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    http_date = "Wed, 21 Oct 2015 07:28:10 GMT"
    assert parse_retry_after(http_date, now=1445412480.0) == 10.0


def test_unexpected_success_bodies_are_reported() -> None:
    server = Server(httpx.Response(200, text="<html>proxy login</html>"))
    with server.sync() as client, pytest.raises(AegisError, match="not JSON"):
        client.health()
    server = Server(ok({"unexpected": True}))
    with server.sync() as client, pytest.raises(AegisError, match="Unexpected response"):
        client.add("x")


def test_results_are_typed_objects() -> None:
    server = Server(
        ok({"id": "m1", "scope": "agent-private", "deduped_from": "m0"}),
        ok({"memories": [memory_json()], "retrieval_event_id": "ev", "query_time_ms": 1}),
        ok(
            {
                "memory_id": "m1",
                "vote": "helpful",
                "bullet_helpful": 1,
                "bullet_harmful": 0,
                "effectiveness_score": 0.5,
            }
        ),
        ok({"keys": [{"id": "k1", "project_id": "p", "prefix": "ak_"}]}),
        httpx.Response(204),
    )
    with server.sync() as client:
        added = client.add("x", agent_id="a")
        assert added.deduped and added.scope == "agent-private"
        memories = client.query("x")
        assert memories[0].content == "fact" and memories.retrieval_event_id == "ev"
        assert client.vote(memories[0].id, "helpful").effectiveness_score == 0.5
        assert [key.id for key in client.keys.list()] == ["k1"]
        assert client.keys.revoke("k1") is True


def test_query_result_survives_copy_and_pickle() -> None:
    result = QueryResult([Memory(id="m", content="c")], retrieval_event_id="e", query_time_ms=2.0)
    for clone in (copy.copy(result), copy.deepcopy(result), pickle.loads(pickle.dumps(result))):
        assert isinstance(clone, QueryResult)
        assert clone == result and clone.retrieval_event_id == "e" and clone.query_time_ms == 2.0
    assert "retrieval_event_id='e'" in repr(result)


def test_batch_failure_midway_raises_after_earlier_chunks() -> None:
    first = ok({"results": [{"id": f"i{n}", "scope": "global"} for n in range(100)], "count": 100})
    server = Server(first, error(500, "db down"))
    with server.sync() as client, pytest.raises(AegisServerError, match="db down"):
        client.add_batch([{"content": f"c{n}"} for n in range(150)])
    assert len(server.requests) == 2


# ----------------------------------------------------------------------------- streaming


def jsonl(*rows: dict[str, Any]) -> httpx.Response:
    text = "\n\n".join(json.dumps(row) for row in rows) + "\n"
    return httpx.Response(200, text=text, headers={"content-type": "application/x-ndjson"})


def test_export_streams_lines_sync() -> None:
    server = Server(jsonl(memory_json("a"), memory_json("b", votes=[])))
    with server.sync() as client:
        stream = client.export(namespace="app")
        assert server.requests == []  # lazy: nothing sent before iteration
        ids = [memory.id for memory in stream]
    assert ids == ["a", "b"]
    assert server.body() == {
        "namespace": "app",
        "format": "jsonl",
        "include_embeddings": False,
        "include_deprecated": True,
    }


async def test_export_streams_lines_async() -> None:
    server = Server(jsonl(memory_json("a"), memory_json("b")))
    async with server.async_() as client:
        ids = [memory.id async for memory in client.export()]
    assert ids == ["a", "b"]


def test_export_accepts_a_json_array_answer() -> None:
    server = Server(ok([memory_json("a"), memory_json("b")]))
    with server.sync() as client:
        assert [m.id for m in client.export()] == ["a", "b"]


@pytest.mark.parametrize("use_async", [False, True])
async def test_export_errors_are_typed(use_async: bool) -> None:
    server = Server(error(403, "Key is bound to agent x", "forbidden_agent"))
    with pytest.raises(AegisPermissionError, match="bound to agent"):
        if use_async:
            async with server.async_() as client:
                async for _ in client.export(agent_id="y"):
                    pass
        else:
            with server.sync() as client:
                list(client.export(agent_id="y"))


def test_bad_export_line_is_reported() -> None:
    server = Server(httpx.Response(200, text='{"id": "a", "content": "x"}\n{oops\n', headers={}))
    with server.sync() as client, pytest.raises(AegisError, match="bad line"):
        list(client.export())


def test_export_to_and_import_from_round_trip(tmp_path: Path) -> None:
    rows = [memory_json(f"m{i}", f"fact {i}", votes=[]) for i in range(3)]
    target = tmp_path / "backup.jsonl"
    server = Server(
        jsonl(*rows),
        lambda request: ok(
            {
                "imported": len(json.loads(request.content)["memories"]),
                "skipped": 0,
                "reembedded": 0,
                "ids": [m["id"] for m in json.loads(request.content)["memories"]],
            }
        ),
    )
    with server.sync() as client:
        assert client.export_to(target) == 3
        result = client.import_from(target, batch_size=2)
    assert result.imported == 3 and result.ids == ["m0", "m1", "m2"]
    assert [r.url.path for r in server.requests] == [
        "/memories/export",
        "/memories/import",
        "/memories/import",
    ]
    sent = server.body(1)["memories"][0]
    assert (sent["id"], sent["content"]) == ("m0", "fact 0")


def test_import_from_json_array_file(tmp_path: Path) -> None:
    source = tmp_path / "backup.json"
    source.write_text(json.dumps([memory_json("a"), memory_json("b")]))
    server = Server(ok({"imported": 2, "skipped": 0, "reembedded": 0}))
    with server.sync() as client:
        assert client.import_from(source).imported == 2
    assert [m["id"] for m in server.body()["memories"]] == ["a", "b"]


def test_failed_export_to_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "backup.jsonl"
    server = Server(httpx.Response(200, text='{"id": "a", "content": "x"}\nnot json\n'))
    with server.sync() as client, pytest.raises(AegisError):
        client.export_to(target)
    assert list(tmp_path.iterdir()) == []


async def test_async_export_to_and_import(tmp_path: Path) -> None:
    target = tmp_path / "backup.jsonl"
    server = Server(jsonl(memory_json("a")), ok({"imported": 1, "skipped": 0, "reembedded": 0}))
    async with server.async_() as client:
        assert await client.export_to(target, agent_id="x") == 1
        assert (await client.import_from(target)).imported == 1
    assert server.body(0)["agent_id"] == "x"


async def test_async_methods_are_coroutines_and_validate_on_await() -> None:
    server = Server(ok({"id": "m1", "scope": "global"}))
    async with server.async_() as client:
        pending = client.add("")  # nothing raised (or sent) until awaited
        with pytest.raises(AegisValidationError):
            await pending
        assert (await client.add("ok")).id == "m1"
        batch = await client.add_batch([])
    assert batch == [] and len(server.requests) == 1


# ----------------------------------------------------------------------------- packaging


def test_import_aegis_memory_is_light() -> None:
    code = (
        "import sys, aegis_memory; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'starlette', 'sqlalchemy', 'numpy', 'pydantic_settings', 'onnxruntime') "
        "or m.startswith('aegis_memory.server')]; "
        "print(heavy)"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert output.strip() == "[]"


def test_package_exports() -> None:
    for name in (
        "AegisClient",
        "AsyncAegisClient",
        "Memory",
        "AddResult",
        "VoteResult",
        "HandoffBaton",
        "QueryResult",
        "AegisRateLimitError",
        "__version__",
    ):
        assert hasattr(aegis_memory, name), name
