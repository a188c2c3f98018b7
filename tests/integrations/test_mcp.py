"""The MCP server, driven by the official MCP client against a real Aegis server.

In-process (``mcp.Client(server)``), over stdio as a subprocess (like Claude Desktop launches
it), over standalone streamable HTTP, and mounted at ``/mcp`` in the Aegis app itself.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("mcp")

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from aegis_memory.integrations.mcp import create_server, mount_mcp
from tests.conftest import ServerProcess, clean_env, free_port

EXPECTED_TOOLS = {
    "add_memory", "search_memories", "get_memory", "delete_memory", "vote", "playbook",
    "reflection", "get_session_progress", "update_session_progress", "get_feature",
    "list_features", "update_feature", "handoff",
}


def result(call: Any) -> dict[str, Any]:
    """A successful tool call's structured result (its text content is the same JSON)."""
    assert not call.is_error, call.content
    assert json.loads(call.content[0].text) == call.structured_content
    return call.structured_content


def error_text(call: Any) -> str:
    assert call.is_error, call.structured_content
    return call.content[0].text


@pytest.fixture
def client(sqlite_server: ServerProcess, ns: str) -> Client:
    """An in-process client of a server for this test's namespace, acting as ``mcp-agent``.

    Enter it in the test (``async with client:``): anyio task groups must be entered and left
    in one task, and pytest-asyncio sets fixtures up and tears them down in different tasks.
    """
    return Client(create_server(api_key="dev-key", base_url=sqlite_server.base_url,
                                agent_id="mcp-agent", namespace=ns))


# ----------------------------------------------------------------------------- in-process


async def test_tools_are_listed_with_typed_schemas(client: Client) -> None:
    async with client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == EXPECTED_TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 30, tool.name
            for name, prop in tool.input_schema["properties"].items():
                assert prop.get("description"), f"{tool.name}.{name} has no description"

        add = tools["add_memory"].input_schema
        assert add["required"] == ["content"]
        assert add["properties"]["memory_type"]["enum"] == [
            "standard", "strategy", "reflection", "progress", "feature"]
        assert add["properties"]["memory_type"]["default"] == "standard"
        vote = tools["vote"].input_schema
        assert set(vote["required"]) == {"memory_id", "vote"}
        assert vote["properties"]["vote"]["enum"] == ["helpful", "harmful"]
        search = tools["search_memories"].input_schema["properties"]
        assert search["top_k"]["maximum"] == 100 and search["top_k"]["minimum"] == 1
        blocked = tools["update_session_progress"].input_schema
        assert blocked["$defs"]["Blocker"]["required"] == ["item"]
        assert tools["search_memories"].annotations.read_only_hint is True
        assert tools["delete_memory"].annotations.destructive_hint is True
        assert "search_memories" in (client.instructions or "")


async def test_add_search_get_vote_playbook_delete(client: Client, ns: str) -> None:
    async with client:
        added = result(await client.call_tool("add_memory", {
            "content": "The user prefers dark mode in every editor.", "user_id": "alice",
            "metadata": {"source": "chat"}}))
        assert added["scope"] == "agent-private" and added["namespace"] == ns
        assert added["deduplicated"] is False
        again = result(await client.call_tool("add_memory", {
            "content": "the user prefers   dark mode in every editor.", "user_id": "alice"}))
        assert again["id"] == added["id"] and again["deduplicated"] is True

        found = result(await client.call_tool("search_memories", {
            "query": "Which color theme does the user like?", "top_k": 3}))
        assert found["count"] >= 1 and found["retrieval_event_id"]
        top = found["memories"][0]
        assert top["id"] == added["id"] and top["score"] > 0
        assert top["agent_id"] == "mcp-agent" and top["user_id"] == "alice"

        got = result(await client.call_tool("get_memory", {"memory_id": added["id"]}))
        assert got["content"] == "The user prefers dark mode in every editor."
        assert got["metadata"] == {"source": "chat"}

        lesson = result(await client.call_tool("reflection", {
            "content": "Always ask which timezone a deadline is in.",
            "error_pattern": "timezone_confusion", "correct_approach": "Confirm the timezone."}))
        assert lesson["memory_type"] == "reflection" and lesson["scope"] == "global"
        voted = result(await client.call_tool("vote", {
            "memory_id": lesson["id"], "vote": "helpful", "task_id": "t1",
            "context": "Avoided a missed deadline."}))
        assert voted["bullet_helpful"] == 1 and voted["effectiveness_score"] == pytest.approx(0.5)

        book = result(await client.call_tool("playbook", {"query": "deadline across timezones"}))
        assert [entry["id"] for entry in book["entries"]] == [lesson["id"]]
        assert book["entries"][0]["bullet_helpful"] == 1 and book["retrieval_event_id"]

        deleted = result(await client.call_tool("delete_memory", {"memory_id": added["id"]}))
        assert deleted == {"id": added["id"], "deleted": True}
        gone = error_text(await client.call_tool("get_memory", {"memory_id": added["id"]}))
        assert "not found" in gone.lower()


async def test_explicit_arguments_override_the_defaults(client: Client, ns: str) -> None:
    async with client:
        other = ns + "-other"
        added = result(await client.call_tool("add_memory", {
            "content": "Shared deployment checklist lives in the wiki.", "agent_id": "planner",
            "namespace": other, "scope": "agent-shared", "shared_with_agents": ["executor"],
            "memory_type": "strategy"}))
        assert added["namespace"] == other and added["scope"] == "agent-shared"
        # The default agent (mcp-agent) may not see it; the agent it is shared with may.
        assert "not found" in error_text(await client.call_tool(
            "get_memory", {"memory_id": added["id"]})).lower()
        seen = result(await client.call_tool("get_memory", {
            "memory_id": added["id"], "agent_id": "executor"}))
        assert seen["agent_id"] == "planner" and seen["shared_with_agents"] == ["executor"]
        found = result(await client.call_tool("search_memories", {
            "query": "deployment checklist", "namespace": other, "agent_id": "executor",
            "memory_types": ["strategy"]}))
        assert [m["id"] for m in found["memories"]] == [added["id"]]


async def test_session_progress_update_and_get(client: Client, ns: str) -> None:
    async with client:
        session = "build-" + uuid.uuid4().hex[:6]
        first = result(await client.call_tool("update_session_progress", {
            "session_id": session, "completed": ["auth"], "in_progress": "payments",
            "next": ["emails"], "total_items": 4,
            "blocked": [{"item": "deploy", "reason": "waiting for credentials"}]}))
        assert first["completed"] == ["auth"] and first["namespace"] == ns
        assert first["progress_percent"] == pytest.approx(25.0)
        second = result(await client.call_tool("update_session_progress", {
            "session_id": session, "completed": ["payments", "auth"], "summary": "Half way.",
            "status": "paused"}))
        assert second["completed"] == ["auth", "payments"] and second["status"] == "paused"
        got = result(await client.call_tool("get_session_progress", {"session_id": session}))
        assert got["completed"] == ["auth", "payments"] and got["summary"] == "Half way."
        assert got["next_items"] == ["emails"]
        assert got["blocked"] == [{"item": "deploy", "reason": "waiting for credentials"}]
        assert "no session 'no-such-session'" in error_text(await client.call_tool(
            "get_session_progress", {"session_id": "no-such-session"})).lower()
        bad = error_text(await client.call_tool("update_session_progress", {
            "session_id": session, "status": "finished"}))
        assert "status" in bad


async def test_features_update_and_get(client: Client) -> None:
    async with client:
        created = result(await client.call_tool("update_feature", {
            "feature_id": "login", "description": "Users can log in.",
            "test_steps": ["open /login", "submit the form"]}))
        assert created["status"] == "not_started" and created["passes"] is False
        refused = error_text(await client.call_tool("update_feature", {
            "feature_id": "login", "status": "complete"}))
        assert "passes" in refused
        done = result(await client.call_tool("update_feature", {
            "feature_id": "login", "status": "complete", "passes": True, "verified_by": "qa"}))
        assert done["status"] == "complete" and done["passes"] is True and done["completed_at"]
        failed = result(await client.call_tool("update_feature", {
            "feature_id": "signup", "status": "failed", "passes": False,
            "failure_reason": "Captcha never loads."}))
        assert failed["status"] == "failed" and failed["failure_reason"] == "Captcha never loads."
        got = result(await client.call_tool("get_feature", {"feature_id": "login"}))
        assert got["test_steps"] == ["open /login", "submit the form"]
        assert got["verified_by"] == "qa"
        listed = result(await client.call_tool("list_features", {}))
        assert listed["total"] == 2 and listed["passing"] == 1 and listed["failing"] == 1
        assert "'nope'" in error_text(await client.call_tool(
            "get_feature", {"feature_id": "nope"}))


async def test_handoff(client: Client, ns: str) -> None:
    async with client:
        fact = result(await client.call_tool("add_memory", {
            "content": "The billing API rate limit is 100 requests per minute."}))
        await client.call_tool("update_session_progress", {
            "session_id": "billing", "in_progress": "retry logic", "next": ["alerts"]})
        baton = result(await client.call_tool("handoff", {
            "target_agent_id": "reviewer", "task_context": "billing API limits", "share": True}))
        assert baton["source_agent_id"] == "mcp-agent" and baton["target_agent_id"] == "reviewer"
        assert fact["id"] in [m["id"] for m in baton["key_facts"]]
        assert baton["shared"] is True
        # Shared: the target now sees the memory.
        seen = result(await client.call_tool("get_memory", {
            "memory_id": fact["id"], "agent_id": "reviewer"}))
        assert seen["id"] == fact["id"]


async def test_handoff_needs_a_source_agent(sqlite_server: ServerProcess, ns: str) -> None:
    server = create_server(api_key="dev-key", base_url=sqlite_server.base_url, namespace=ns)
    async with Client(server) as no_default:
        text = error_text(await no_default.call_tool("handoff", {"target_agent_id": "b"}))
    assert "source_agent_id is required" in text


async def test_resources(client: Client, ns: str) -> None:
    async with client:
        resources = {str(r.uri): r for r in (await client.list_resources()).resources}
        assert set(resources) == {"aegis://memories/recent"}
        templates = {t.uri_template for t in (await client.list_resource_templates())
                     .resource_templates}
        assert templates == {"aegis://sessions/{session_id}", "aegis://memories/{memory_id}"}

        ids = []
        for i in range(3):
            added = result(await client.call_tool("add_memory", {"content": f"Recent fact {i}."}))
            ids.append(added["id"])
        recent = await client.read_resource("aegis://memories/recent")
        body = json.loads(recent.contents[0].text)
        assert recent.contents[0].mime_type == "application/json"
        assert body["namespace"] == ns
        assert [m["id"] for m in body["memories"]] == ids[::-1]

        memory = json.loads((await client.read_resource(f"aegis://memories/{ids[0]}"))
                            .contents[0].text)
        assert memory["content"] == "Recent fact 0."

        await client.call_tool("update_session_progress", {
            "session_id": "s-res", "completed": ["one"]})
        session = json.loads((await client.read_resource("aegis://sessions/s-res")).contents[0].text)
        assert session["session_id"] == "s-res" and session["completed"] == ["one"]
        with pytest.raises(MCPError, match="unknown-session"):
            await client.read_resource("aegis://sessions/unknown-session")


async def test_recent_memories_with_an_agent_key(sqlite_server: ServerProcess, ns: str) -> None:
    """An agent key may not read the timeline: the resource falls back to the agent's view."""
    with httpx.Client(base_url=sqlite_server.base_url,
                      headers={"Authorization": "Bearer dev-key"}) as http:
        key = http.post("/keys", json={"agent_id": "solo"}).json()["key"]
    server = create_server(api_key=key, base_url=sqlite_server.base_url, namespace=ns)
    async with Client(server) as agent_client:
        first = result(await agent_client.call_tool("add_memory", {"content": "Solo fact A."}))
        second = result(await agent_client.call_tool("add_memory", {"content": "Solo fact B."}))
        body = json.loads((await agent_client.read_resource("aegis://memories/recent"))
                          .contents[0].text)
        assert [m["id"] for m in body["memories"]] == [second["id"], first["id"]]
        # Acting as another agent with an agent key is refused, as a tool error.
        refused = error_text(await agent_client.call_tool("add_memory", {
            "content": "Impersonation.", "agent_id": "someone-else"}))
        assert "bound to agent" in refused or "solo" in refused


async def test_errors_are_tool_errors(client: Client, sqlite_server: ServerProcess) -> None:
    async with client:
        missing = error_text(await client.call_tool("get_memory", {"memory_id": "no-such-id"}))
        assert "not found" in missing.lower()
        invalid = error_text(await client.call_tool("search_memories", {"query": "x", "top_k": 0}))
        assert "top_k" in invalid
        empty = error_text(await client.call_tool("add_memory", {"content": ""}))
        assert "content" in empty

        wrong_key = create_server(api_key="not-a-key", base_url=sqlite_server.base_url)
        async with Client(wrong_key) as bad:
            text = error_text(await bad.call_tool("search_memories", {"query": "anything"}))
        assert "Authentication failed" in text

        down = create_server(api_key="dev-key", base_url=f"http://127.0.0.1:{free_port()}")
        async with Client(down) as offline:
            text = error_text(await offline.call_tool("get_memory", {"memory_id": "x"}))
        assert "Cannot connect to Aegis server" in text


async def test_client_factory_with_local_mode(tmp_path: Path) -> None:
    """``create_server(lambda: AsyncAegisClient.local(...))``: the embedded engine, no server."""
    from aegis_memory import AsyncAegisClient

    server = create_server(lambda: AsyncAegisClient.local(path=tmp_path / "data"),
                           agent_id="local-agent")
    async with Client(server) as local:
        added = result(await local.call_tool("add_memory", {"content": "Local mode works."}))
        got = result(await local.call_tool("get_memory", {"memory_id": added["id"]}))
        assert got["agent_id"] == "local-agent"
    assert (tmp_path / "data" / "aegis.db").exists()


# ----------------------------------------------------------------------------- subprocesses


def _params(args: list[str], **env: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=args,
                                 env=clean_env(**env), cwd=str(Path(__file__).parents[2]))


async def _exercise(mcp_client: Client, ns: str) -> None:
    tools = {tool.name for tool in (await mcp_client.list_tools()).tools}
    assert tools == EXPECTED_TOOLS
    added = result(await mcp_client.call_tool("add_memory", {
        "content": "Deploys happen on Tuesdays.", "namespace": ns}))
    found = result(await mcp_client.call_tool("search_memories", {
        "query": "When do deploys happen?", "namespace": ns}))
    assert found["memories"][0]["id"] == added["id"]
    missing = error_text(await mcp_client.call_tool("get_memory", {"memory_id": "nope"}))
    assert "not found" in missing.lower()


async def test_stdio_module_subprocess(sqlite_server: ServerProcess, ns: str) -> None:
    """``python -m aegis_memory.integrations.mcp``: the key comes from AEGIS_API_KEY."""
    params = _params(["-m", "aegis_memory.integrations.mcp", "--base-url",
                      sqlite_server.base_url, "--agent-id", "stdio-agent"],
                     AEGIS_API_KEY="dev-key")
    async with Client(params) as mcp_client:
        await _exercise(mcp_client, ns)
        got = result(await mcp_client.call_tool("search_memories", {
            "query": "deploys", "namespace": ns}))
        assert got["memories"][0]["agent_id"] == "stdio-agent"


async def test_stdio_aegis_mcp_command(sqlite_server: ServerProcess, ns: str) -> None:
    """``aegis --base-url URL mcp`` through the real root app with this module registered
    (what ``aegis mcp`` does once `cli.main` registers `mcp_cmd`)."""
    launcher = ("import sys; from aegis_memory.cli import main, mcp_cmd; "
                "'mcp' in {c.name for c in main.app.registered_commands} "
                "or mcp_cmd.register(main.app); sys.argv[0] = 'aegis'; main.app()")
    params = _params(["-c", launcher, "--base-url", sqlite_server.base_url,
                      "--api-key", "dev-key", "mcp", "--namespace", ns])
    async with Client(params) as mcp_client:
        await _exercise(mcp_client, ns)
        recent = json.loads((await mcp_client.read_resource("aegis://memories/recent"))
                            .contents[0].text)
        assert recent["namespace"] == ns and len(recent["memories"]) == 1


def test_aegis_mcp_rejects_a_malformed_url() -> None:
    launcher = ("import sys; from aegis_memory.cli import main, mcp_cmd; "
                "'mcp' in {c.name for c in main.app.registered_commands} "
                "or mcp_cmd.register(main.app); sys.argv[0] = 'aegis'; main.app()")
    done = subprocess.run([sys.executable, "-c", launcher, "--base-url", "not a url", "mcp"],
                          env=clean_env(), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 5, done.stderr
    assert done.stdout == ""
    assert "URL" in done.stderr or "url" in done.stderr


async def test_standalone_streamable_http(sqlite_server: ServerProcess, ns: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aegis_memory.integrations.mcp", "--transport", "http",
         "--port", str(port), "--base-url", sqlite_server.base_url, "--api-key", "dev-key"],
        env=clean_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                assert time.monotonic() < deadline, "the MCP HTTP server did not start"
                await asyncio.sleep(0.2)
        async with Client(url) as mcp_client:
            await _exercise(mcp_client, ns)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------- mounted


@pytest.fixture
def mounted_app(tmp_path: Path) -> Iterator[str]:
    """``create_app()`` + `mount_mcp`, served by uvicorn on a free port (in a thread)."""
    import uvicorn

    from aegis_memory.config import Settings
    from aegis_memory.server.app import create_app

    app = create_app(Settings(aegis_data_dir=tmp_path / "data", aegis_api_key="dev-key"),
                     configure_logging=False)
    mount_mcp(app, agent_id="mounted-agent")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.1)
    yield base
    server.should_exit = True
    thread.join(timeout=30)


def _http_transport(url: str, key: str | None) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return streamable_http_client(url, http_client=httpx2.AsyncClient(
        headers=headers, timeout=httpx2.Timeout(60.0)))


async def test_mounted_in_the_aegis_app(mounted_app: str) -> None:
    url = mounted_app + "/mcp"
    async with Client(_http_transport(url, "dev-key")) as mcp_client:
        assert {t.name for t in (await mcp_client.list_tools()).tools} == EXPECTED_TOOLS
        added = result(await mcp_client.call_tool("add_memory", {
            "content": "Mounted servers share the app's store."}))
        assert added["scope"] == "agent-private"
        got = result(await mcp_client.call_tool("get_memory", {"memory_id": added["id"]}))
        assert got["agent_id"] == "mounted-agent"
        found = result(await mcp_client.call_tool("search_memories", {"query": "mounted store"}))
        assert found["memories"][0]["id"] == added["id"]
        recent = json.loads((await mcp_client.read_resource("aegis://memories/recent"))
                            .contents[0].text)
        assert [m["id"] for m in recent["memories"]] == [added["id"]]
        assert "not found" in error_text(await mcp_client.call_tool(
            "get_memory", {"memory_id": "nope"})).lower()

    # The REST API sees what the MCP tools stored: one store.
    with httpx.Client(base_url=mounted_app, headers={"Authorization": "Bearer dev-key"}) as http:
        assert http.get(f"/memories/{added['id']}").json()["content"].startswith("Mounted")


async def test_mounted_endpoint_acts_with_the_callers_key(mounted_app: str) -> None:
    url = mounted_app + "/mcp"
    no_key = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert no_key.status_code == 401 and no_key.json()["code"] == "missing_api_key"

    async with Client(_http_transport(url, "wrong-key")) as bad:
        text = error_text(await bad.call_tool("search_memories", {"query": "anything"}))
        assert "Authentication failed" in text

    with httpx.Client(base_url=mounted_app, headers={"Authorization": "Bearer dev-key"}) as http:
        agent_key = http.post("/keys", json={"agent_id": "bound"}).json()["key"]
        private = http.post("/memories/add", json={
            "content": "Only the planner knows this.", "agent_id": "planner"}).json()
    async with Client(_http_transport(url, agent_key)) as bound:
        # The agent key acts as its own agent: another agent's private memory is invisible,
        # and acting as another agent is refused.
        text = error_text(await bound.call_tool("get_memory", {
            "memory_id": private["id"], "agent_id": "bound"}))
        assert "not found" in text.lower()
        refused = error_text(await bound.call_tool("get_memory", {
            "memory_id": private["id"], "agent_id": "planner"}))
        assert "bound" in refused
