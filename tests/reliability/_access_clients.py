"""The same checks through the two other doors to the same rules: the MCP endpoint the server
mounts at ``/mcp`` (the official MCP client over streamable HTTP, with the caller's key), and
the SDK in local mode (``AegisClient.local``, the engine in this process over the data
directory a server wrote).

Neither may grant anything the REST API would not; both owe the caller the same sets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from aegis_memory.client import AegisClient
from aegis_memory.client.errors import AegisError, AegisNotFoundError, AegisPermissionError
from tests.reliability import _access_model as oracle
from tests.reliability._access_model import Caller, World
from tests.reliability._access_rest import QUERY, TOP_K
from tests.reliability._access_tally import Tally

T = TypeVar("T")


def _target(caller: Caller) -> str:
    return next(a for a in oracle.AGENT_POOL if a != caller.agent)


# ----------------------------------------------------------------------------- MCP


def _structured(call: Any) -> dict[str, Any] | None:
    if call.is_error:
        return None
    return call.structured_content or json.loads(call.content[0].text)


async def check_mcp(url: str, world: World, caller: Caller, tally: Tally,
                    impostor_as: str | None = None) -> None:
    """MCP tools search_memories, playbook, handoff and get_memory, as this caller."""
    transport = streamable_http_client(url, http_client=httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {caller.key}"}, timeout=httpx2.Timeout(120.0)))
    acting = {"agent_id": caller.acting} if caller.acting else {}
    spec = world.spec
    async with Client(transport) as mcp:

        async def tool(path: str, name: str, args: dict[str, Any]) -> dict[str, Any] | None:
            call = await mcp.call_tool(name, args)
            body = _structured(call)
            if body is None:
                tally.fail(path, caller, f"tool error: {call.content[0].text[:300]}")
            return body

        for ns in world.namespaces:
            args = {"query": QUERY, "namespace": ns, "top_k": TOP_K, **acting,
                    **spec.probe_filters()}
            found = await tool("mcp search_memories", "search_memories", args)
            tally.same_set("mcp search_memories", caller,
                           None if found is None else [m["id"] for m in found["memories"]],
                           oracle.query_set(world, caller, ns, scope=spec.probe_scope,
                                            types=spec.probe_types))
            book = await tool("mcp playbook", "playbook",
                              {"query": QUERY, "namespace": ns, "top_k": TOP_K, **acting})
            tally.same_set("mcp playbook", caller,
                           None if book is None else [e["id"] for e in book["entries"]],
                           oracle.playbook_set(world, caller, ns))
            if caller.agent is not None:
                baton = await tool("mcp handoff", "handoff", {
                    "source_agent_id": caller.agent, "target_agent_id": _target(caller),
                    "task_context": QUERY, "namespace": ns, "max_memories": 200})
                tally.same_set("mcp handoff", caller, None if baton is None else
                               [m["id"] for m in baton.get("key_facts", [])],
                               oracle.handoff_set(world, caller, ns))
        allowed = oracle.readable(world, caller)
        for m in world.memories:
            call = await mcp.call_tool("get_memory", {"memory_id": m.id, **acting})
            tally.one("mcp get_memory", caller, m.id, not call.is_error, m.id in allowed)
            if call.is_error:
                tally.expect("mcp get_memory", caller,
                             "not found" in call.content[0].text.lower(),
                             f"error is not 'not found': {call.content[0].text[:200]}")
        if impostor_as is not None:
            for name, args in (
                ("search_memories", {"query": QUERY, "agent_id": impostor_as}),
                ("get_memory", {"memory_id": world.memories[0].id, "agent_id": impostor_as}),
                ("playbook", {"query": QUERY, "agent_id": impostor_as}),
            ):
                call = await mcp.call_tool(name, args)
                tally.expect("mcp 403 acting as another agent", caller,
                             call.is_error and "bound" in call.content[0].text,
                             f"{name} as {impostor_as!r}: {call.content[0].text[:200]}")


# ----------------------------------------------------------------------------- SDK local mode


def _sdk(tally: Tally, path: str, caller: Caller, fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except AegisError as exc:
        tally.fail(path, caller, f"{type(exc).__name__}: {exc}")
        return None


def check_local(client: AegisClient, world: World, caller: Caller, tally: Tally,
                impostor_as: str | None = None) -> None:
    """The SDK's read methods in local mode, as this caller (its key on the embedded app)."""
    spec = world.spec
    targets = list(spec.projects[caller.project].targets) or None
    with client.with_api_key(caller.key) as c:
        for ns in world.namespaces:
            found = _sdk(tally, "sdk local query", caller, lambda ns=ns: c.query(
                QUERY, agent_id=caller.acting, namespace=ns, top_k=TOP_K,
                scope=spec.probe_scope, memory_types=spec.probe_types, mode=spec.probe_mode))
            tally.same_set("sdk local query", caller,
                           None if found is None else [m.id for m in found],
                           oracle.query_set(world, caller, ns, scope=spec.probe_scope,
                                            types=spec.probe_types))
            cross = _sdk(tally, "sdk local cross-agent", caller, lambda ns=ns: c.query_cross_agent(
                QUERY, requesting_agent_id=caller.acting, target_agent_ids=targets,
                namespace=ns, top_k=TOP_K, mode=spec.probe_mode))
            tally.same_set("sdk local cross-agent", caller,
                           None if cross is None else [m.id for m in cross],
                           oracle.query_set(world, caller, ns, owners=tuple(targets or ())))
            book = _sdk(tally, "sdk local playbook", caller, lambda ns=ns: c.playbook(
                QUERY, agent_id=caller.acting, namespace=ns, top_k=TOP_K))
            tally.same_set("sdk local playbook", caller,
                           None if book is None else [e.id for e in book],
                           oracle.playbook_set(world, caller, ns))
            if caller.agent is not None:
                baton = _sdk(tally, "sdk local handoff", caller, lambda ns=ns: c.handoff(
                    caller.agent, _target(caller), namespace=ns, task_context=QUERY,
                    max_memories=200))
                tally.same_set("sdk local handoff", caller,
                               None if baton is None else [m.id for m in baton.key_facts],
                               oracle.handoff_set(world, caller, ns))
        rows = _sdk(tally, "sdk local export", caller,
                    lambda: [m.id for m in c.export(agent_id=caller.acting)])
        tally.same_set("sdk local export", caller, rows, oracle.readable(world, caller))
        allowed = oracle.readable(world, caller)
        for m in world.memories:
            try:
                found_one = c.get(m.id, agent_id=caller.acting).id == m.id
            except AegisNotFoundError:
                found_one = False
            tally.one("sdk local get", caller, m.id, found_one, m.id in allowed)
        if impostor_as is not None:
            for name, call in (
                ("query", lambda: c.query(QUERY, agent_id=impostor_as)),
                ("get", lambda: c.get(world.memories[0].id, agent_id=impostor_as)),
                ("export", lambda: list(c.export(agent_id=impostor_as))),
            ):
                try:
                    call()
                    refused = False
                except AegisPermissionError:
                    refused = True
                tally.expect("sdk local 403 acting as another agent", caller, refused,
                             f"{name} as {impostor_as!r} was not refused")
