"""Building a world on a real server over HTTP, and checking every REST and web-dashboard read
path of it against the oracle (``_access_model``).

Each check asks with ``top_k`` above the population and a query every memory matches, so a
ranked path owes the caller its *whole* visible set: a missing id is a failure like a leaked
one. Paths that cap their page (the dashboard's playbook table) are checked as full pages of
the visible set.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from typing import Any

import httpx

from tests.conftest import ADMIN_KEY
from tests.reliability import _access_model as oracle
from tests.reliability._access_model import Caller, Stored, World, WorldSpec
from tests.reliability._access_tally import Tally

#: Every memory's content contains these words, so every memory matches the query.
QUERY = "deploy runbook notes"
TOP_K = 100
LONG_TTL = 30 * 86_400
ROW_ID = re.compile(r'data-memory-id="([^"]+)"')
STAT = re.compile(r'data-(stat|scope)="([a-z_-]+)">(\d+)<')


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _content(tag: str, project: int, index: int) -> str:
    return f"{tag} p{project} item {index}: the deploy runbook notes entry number {index}"


# ----------------------------------------------------------------------------- building


async def build_world(http: httpx.AsyncClient, spec: WorldSpec) -> World:
    """Create the world's projects (admin API), agent keys (``POST /keys``) and memories
    (one ``add_batch`` per project); wait out the short TTLs; then vote, deprecate, and
    change scopes and share lists (PATCH, sharing handoff)."""
    tag = "w" + uuid.uuid4().hex[:10]
    world = World(spec, (f"{tag}-a", f"{tag}-b"))
    expiring_since: float | None = None
    keys: list[str] = []
    for p, project in enumerate(spec.projects):
        r = await http.post("/admin/projects", json={"name": f"{tag}-p{p}"},
                            headers=_auth(ADMIN_KEY))
        assert r.status_code == 201, r.text
        key = r.json()["key"]
        _add_callers(world, p, key, project, await _agent_keys(http, key, project))
        items = []
        for i, m in enumerate(project.memories):
            item: dict[str, Any] = {
                "content": _content(tag, p, i), "namespace": world.namespaces[m.namespace],
                "memory_type": m.memory_type}
            for name, value in (("agent_id", m.owner), ("scope", m.scope_arg),
                                ("shared_with_agents", m.shares)):
                if value is not None:
                    item[name] = list(value) if isinstance(value, tuple) else value
            if m.expired or i % 3 == 1:
                item["ttl_seconds"] = 1 if m.expired else LONG_TTL
            items.append(item)
        r = await http.post("/memories/add_batch", json={"items": items}, headers=_auth(key))
        assert r.status_code == 200, r.text
        if any(m.expired for m in project.memories):
            expiring_since = time.time()
        for m, result in zip(project.memories, r.json()["results"], strict=True):
            # SPEC §2: the response reports the scope chosen, by the rule the oracle states.
            assert result["scope"] == m.scope, (m, result)
            assert result["deduped_from"] is None, result
            world.memories.append(Stored(result["id"], p, world.namespaces[m.namespace], m))
        keys.append(key)
    if expiring_since is not None:  # the rest sees the short-lived memories expired
        await asyncio.sleep(max(0.0, expiring_since + 1.2 - time.time()))
    for p, (project, key) in enumerate(zip(spec.projects, keys, strict=True)):
        await _vote_and_deprecate(http, key, project, world.of_project(p))
        await _change_access(http, key, world, p)
    return world


async def _agent_keys(http: httpx.AsyncClient, key: str,
                      project: oracle.ProjectSpec) -> dict[str, str]:
    keys = {}
    for agent in (*project.agents, project.outsider):
        r = await http.post("/keys", json={"agent_id": agent, "name": f"key of {agent}"},
                            headers=_auth(key))
        assert r.status_code in (200, 201), r.text
        keys[agent] = r.json()["key"]
    return keys


def _add_callers(world: World, p: int, key: str, project: oracle.ProjectSpec,
                 agent_keys: dict[str, str]) -> None:
    """The project key as no agent and as each agent (and an outsider); each agent key,
    sending its own name or nothing (alternately); and for each agent key a name it is not
    bound to, for the 403 checks."""
    world.callers.append(Caller(f"p{p} project key", p, key, None, None, "project key"))
    names = [*project.agents, project.outsider]
    for i, agent in enumerate(names):
        world.callers.append(Caller(f"p{p} project key as {agent!r}", p, key, None, agent,
                                    "project key as agent"))
        explicit = agent if i % 2 else None
        bound = Caller(f"p{p} key of {agent!r}" + (" (explicit)" if explicit else ""),
                       p, agent_keys[agent], agent, explicit,
                       "agent key, explicit" if explicit else "agent key")
        world.callers.append(bound)
        world.impostors.append((bound, names[(i + 1) % len(names)]))


async def _vote_and_deprecate(http: httpx.AsyncClient, key: str, project: oracle.ProjectSpec,
                              stored: list[Stored]) -> None:
    for m in stored:
        if m.spec.vote is not None:
            voter = m.spec.owner or project.agents[0]  # an owner, or anyone for a global one
            r = await http.post(f"/memories/ace/vote/{m.id}", headers=_auth(key),
                                json={"vote": m.spec.vote, "voter_agent_id": voter})
            assert r.status_code == 200, r.text
    doomed = [m.id for m in stored if m.spec.deprecated]
    if doomed:
        r = await http.post("/memories/ace/delta", headers=_auth(key), json={
            "operations": [{"type": "deprecate", "memory_id": mid, "reason": "property test"}
                           for mid in doomed]})
        assert r.status_code == 200 and r.json()["applied"] == len(doomed), r.text


async def _change_access(http: httpx.AsyncClient, key: str, world: World, p: int) -> None:
    """The writes that change who sees what: PATCH of scope and share list, and a handoff
    with ``share=true`` (whose key facts are a read path too: checked here)."""
    for m in world.of_project(p):
        if m.spec.repatch is None:
            continue
        scope, shares = m.spec.repatch
        r = await http.patch(f"/memories/{m.id}", headers=_auth(key), json={
            "scope": scope, "shared_with_agents": list(shares)})
        assert r.status_code == 200, r.text
        m.repatched()
        assert (r.json()["scope"], set(r.json()["shared_with_agents"])) == (
            m.scope, set(m.shares)), r.text
    handoff = world.spec.projects[p].share_handoff
    if handoff is None:
        return
    source, target, ns = handoff
    r = await http.post("/memories/handoff", headers=_auth(key), json={
        "source_agent_id": source, "target_agent_id": target, "task_context": QUERY,
        "namespace": world.namespaces[ns], "max_memories": 200, "share": True})
    assert r.status_code == 200, r.text
    as_source = Caller("sharing handoff", p, key, None, source)
    assert set(r.json()["memory_ids"]) == oracle.handoff_set(
        world, as_source, world.namespaces[ns]), r.text
    for m in world.of_project(p):
        if m.id in r.json()["memory_ids"]:
            m.shared_by_handoff(target)


# ----------------------------------------------------------------------------- checking


def _json(r: httpx.Response, tally: Tally, path: str, caller: Caller) -> Any:
    if r.status_code != 200:
        tally.fail(path, caller, f"HTTP {r.status_code}: {r.text[:300]}")
        return None
    return r.json()


def _ids(body: Any, key: str) -> list[str] | None:
    return None if body is None else [m["id"] for m in body[key]]


async def check_rest(http: httpx.AsyncClient, world: World, caller: Caller, tally: Tally,
                     *, thorough: bool = True) -> None:
    """Every REST and web-dashboard read path, for one caller.

    Not ``thorough`` (the quick form, for all but one caller of each kind), the same paths
    with fewer requests: searches and listings look in one of the two namespaces (the
    other one's memories must still not show); handoffs take one of their two forms; ids
    are read by ``GET /memories/{id}`` only, not also by the dashboard's two single-memory
    views (the same check behind three doors), and of other projects only one id each
    (all 404 alike); the project-wide dashboard is asked about the whole project only."""
    h = _auth(caller.key)
    acting = {"agent_id": caller.acting} if caller.acting else {}
    spec = world.spec
    targets = spec.projects[caller.project].targets
    namespaces = world.namespaces if thorough else (
        world.namespaces[world.callers.index(caller) % 2],)
    for ns in namespaces:
        body = {"query": QUERY, "namespace": ns, "top_k": TOP_K, **acting,
                **spec.probe_filters()}
        r = await http.post("/memories/query", json=body, headers=h)
        tally.same_set("rest query", caller, _ids(_json(r, tally, "rest query", caller),
                                                  "memories"),
                       oracle.query_set(world, caller, ns, scope=spec.probe_scope,
                                        types=spec.probe_types))

        cross: dict[str, Any] = {"query": QUERY, "namespace": ns, "top_k": TOP_K}
        if caller.acting:
            cross["requesting_agent_id"] = caller.acting
        if targets:
            cross["target_agent_ids"] = list(targets)
        if spec.probe_mode:
            cross["mode"] = spec.probe_mode
        r = await http.post("/memories/query_cross_agent", json=cross, headers=h)
        tally.same_set("rest cross-agent", caller,
                       _ids(_json(r, tally, "rest cross-agent", caller), "memories"),
                       oracle.query_set(world, caller, ns, owners=targets))

        r = await http.post("/memories/ace/playbook", headers=h, json={
            "query": QUERY, "namespace": ns, "top_k": TOP_K, **acting})
        tally.same_set("rest playbook", caller,
                       _ids(_json(r, tally, "rest playbook", caller), "entries"),
                       oracle.playbook_set(world, caller, ns))

        if caller.agent is not None:
            forms = (QUERY, None) if thorough else ((QUERY, None)[
                world.callers.index(caller) % 2],)
            await _check_handoffs(http, world, caller, ns, forms, tally)
        await _check_fragments(http, world, caller, ns, tally)
        await _check_overview(http, world, caller, ns, tally)

    r = await http.post("/memories/export", json={**acting}, headers=h)
    rows = None if r.status_code != 200 else [
        json.loads(line)["id"] for line in r.text.splitlines() if line.strip()]
    if r.status_code != 200:
        tally.fail("rest export", caller, f"HTTP {r.status_code}: {r.text[:300]}")
    tally.same_set("rest export", caller, rows, oracle.readable(world, caller))
    await _check_single_reads(http, world, caller, tally, thorough)
    if caller.acting is None:  # the project-wide API takes no agent to act as
        await _check_project_wide(http, world, caller, tally,
                                  (*world.namespaces, None) if thorough else (None,))


async def _check_handoffs(http: httpx.AsyncClient, world: World, caller: Caller, ns: str,
                          forms: tuple[str | None, ...], tally: Tally) -> None:
    """A handoff acts as its source: key facts are the source's own findable memories, with a
    task context (ranked search) and without (newest first)."""
    target = next(a for a in oracle.AGENT_POOL if a != caller.agent)
    want = oracle.handoff_set(world, caller, ns)
    for context in forms:
        body: dict[str, Any] = {"source_agent_id": caller.agent, "target_agent_id": target,
                                "namespace": ns, "max_memories": 200}
        if context:
            body["task_context"] = context
        path = "rest handoff" + (" (task context)" if context else " (recent)")
        r = await http.post("/memories/handoff", json=body, headers=_auth(caller.key))
        baton = _json(r, tally, path, caller)
        tally.same_set(path, caller, _ids(baton, "key_facts"), want)
        if baton is not None:
            tally.expect(path, caller, baton["memory_ids"] == [m["id"] for m in
                                                                baton["key_facts"]],
                         "memory_ids differ from key_facts")


async def _check_fragments(http: httpx.AsyncClient, world: World, caller: Caller, ns: str,
                           tally: Tally) -> None:
    """The web dashboard's memories table and playbook table (HTML fragments)."""
    params = {"ns": ns, **({"agent": caller.acting} if caller.acting else {})}
    h = _auth(caller.key)
    r = await http.get("/dashboard/fragments/memories", params={**params, "limit": "200"},
                       headers=h)
    rows = ROW_ID.findall(r.text) if r.status_code == 200 else None
    if rows is None:
        tally.fail("dashboard memories", caller, f"HTTP {r.status_code}: {r.text[:300]}")
    tally.same_set("dashboard memories", caller, rows, oracle.listing_set(world, caller, ns))
    r = await http.get("/dashboard/fragments/ace/playbook", params=params, headers=h)
    rows = ROW_ID.findall(r.text) if r.status_code == 200 else None
    if rows is None:
        tally.fail("dashboard playbook", caller, f"HTTP {r.status_code}: {r.text[:300]}")
    tally.same_set("dashboard playbook", caller, rows,
                   oracle.listing_set(world, caller, ns, playbook=True),
                   limit=oracle.FRAGMENT_PLAYBOOK_LIMIT)


async def _check_overview(http: httpx.AsyncClient, world: World, caller: Caller, ns: str,
                          tally: Tally) -> None:
    """The dashboard overview counts what the caller can see, and nothing else."""
    params = {"ns": ns, **({"agent": caller.acting} if caller.acting else {})}
    r = await http.get("/dashboard/fragments/overview", params=params,
                       headers=_auth(caller.key))
    if r.status_code != 200:
        tally.fail("dashboard overview", caller, f"HTTP {r.status_code}: {r.text[:300]}")
        return
    found = {(kind, name): int(n) for kind, name, n in STAT.findall(r.text)}
    want = oracle.counts(world, caller, ns)
    got = {"memories_total": found.get(("stat", "memories_total")),
           "deprecated": found.get(("stat", "deprecated")),
           "by_scope": {s: found.get(("scope", s), 0) for s in oracle.SCOPES
                        if found.get(("scope", s), 0)}}
    tally.expect("dashboard overview", caller, got == want, f"counts {got}, expected {want}")


async def _check_single_reads(http: httpx.AsyncClient, world: World, caller: Caller,
                              tally: Tally, thorough: bool) -> None:
    """Every id of the world (not ``thorough``: of other projects, one each) and one that
    never existed, by ``GET /memories/{id}``, the dashboard's detail fragment and the
    memory's timeline. An invisible id must answer exactly like the unknown one: same
    status, same body but for the id."""
    h = _auth(caller.key)
    params = {"agent_id": caller.acting} if caller.acting else {}
    allowed = oracle.readable(world, caller)
    unknown = uuid.uuid4().hex
    r = await http.get(f"/memories/{unknown}", params=params, headers=h)
    absent = (r.status_code, r.text.replace(unknown, "<id>"))
    tally.expect("rest get", caller, r.status_code == 404, f"unknown id: HTTP {r.status_code}")
    ids = world.memories
    if not thorough:
        ids = [m for m in ids if m.project == caller.project] + [
            world.of_project(p)[0] for p in range(len(world.spec.projects))
            if p != caller.project]
    for m in ids:
        r = await http.get(f"/memories/{m.id}", params=params, headers=h)
        tally.one("rest get", caller, m.id, r.status_code == 200, m.id in allowed)
        if r.status_code == 200:
            tally.expect("rest get", caller, r.json()["id"] == m.id, "another memory returned")
        else:
            tally.expect("rest get (404 = unknown)", caller,
                         (r.status_code, r.text.replace(m.id, "<id>")) == absent,
                         f"{m.id}: {r.status_code} {r.text[:200]} differs from {absent}")
        if not thorough:
            continue
        r = await http.get(f"/dashboard/fragments/memories/{m.id}", headers=h,
                           params={"agent": caller.acting} if caller.acting else {})
        tally.one("dashboard memory detail", caller, m.id, r.status_code == 200,
                  m.id in allowed)
        r = await http.get("/memories/ace/dashboard/timeline", headers=h,
                           params={"memory_id": m.id, **params})
        tally.one("dashboard timeline (one memory)", caller, m.id, r.status_code == 200,
                  m.id in allowed)
        if r.status_code == 200:
            # A memory's history names the other memories of its events (the results of a
            # query that returned it, say): only those the caller may see, or the timeline
            # would tell an agent the ids of memories that are 404 to it.
            named = {mid for e in r.json()["events"] for mid in e["memory_ids"]}
            tally.same_set("dashboard timeline (one memory): ids named", caller, named,
                           {o.id for o in world.memories if oracle.visible(o, caller)},
                           complete=False)


async def _check_project_wide(http: httpx.AsyncClient, world: World, caller: Caller,
                              tally: Tally, namespaces: tuple[str | None, ...]) -> None:
    """The project-wide dashboard API: a project key gets its own project's numbers and
    events only; an agent key is refused (403), as it would see other agents' activity."""
    h = _auth(caller.key)
    own = oracle.ids(world.of_project(caller.project))
    for ns in namespaces:
        params = {"namespace": ns} if ns else {}
        stats = await http.get("/memories/ace/dashboard/stats", params=params, headers=h)
        timeline = await http.get("/memories/ace/dashboard/timeline", headers=h,
                                  params={**params, "limit": "500"})
        if not caller.is_project_key:
            for path, r in (("dashboard stats", stats), ("dashboard timeline", timeline)):
                tally.expect(path, caller, r.status_code == 403,
                             f"agent key: HTTP {r.status_code}, expected 403")
            continue
        body = _json(stats, tally, "dashboard stats", caller)
        if body is not None:
            whole = Caller(caller.label, caller.project, caller.key, None, None)
            want = oracle.counts(world, whole, ns)
            got = {"memories_total": body["memories_total"], "deprecated": body["deprecated"],
                   "by_scope": body["by_scope"]}
            tally.expect("dashboard stats", caller, got == want, f"{got}, expected {want}")
        events = _json(timeline, tally, "dashboard timeline", caller)
        if events is not None:
            seen = {mid for e in events["events"] for mid in e["memory_ids"]}
            tally.same_set("dashboard timeline", caller, seen, own, complete=False)
    r = await http.get("/memories/ace/dashboard/sessions", headers=h,
                       params={"namespace": world.namespaces[0]})
    tally.expect("dashboard sessions", caller,
                 r.status_code == (200 if caller.is_project_key else 403),
                 f"HTTP {r.status_code}")


async def check_impostor(http: httpx.AsyncClient, world: World, caller: Caller, other: str,
                         tally: Tally) -> None:
    """An agent key naming another agent is refused with 403 on every read path."""
    h = _auth(caller.key)
    ns = world.namespaces[0]
    some_id = world.memories[0].id
    requests = [
        ("POST", "/memories/query", {"json": {"query": QUERY, "namespace": ns,
                                              "agent_id": other}}),
        ("POST", "/memories/query_cross_agent", {"json": {
            "query": QUERY, "namespace": ns, "requesting_agent_id": other}}),
        ("GET", f"/memories/{some_id}", {"params": {"agent_id": other}}),
        ("POST", "/memories/export", {"json": {"agent_id": other}}),
        ("POST", "/memories/ace/playbook", {"json": {"query": QUERY, "namespace": ns,
                                                     "agent_id": other}}),
        ("POST", "/memories/handoff", {"json": {"source_agent_id": other,
                                                "target_agent_id": caller.bound,
                                                "namespace": ns}}),
        ("GET", "/dashboard/fragments/memories", {"params": {"ns": ns, "agent": other}}),
        ("GET", "/dashboard/fragments/overview", {"params": {"ns": ns, "agent": other}}),
        ("GET", f"/dashboard/fragments/memories/{some_id}", {"params": {"agent": other}}),
        ("GET", "/memories/ace/dashboard/timeline", {"params": {"memory_id": some_id,
                                                                "agent_id": other}}),
    ]
    for method, url, kwargs in requests:
        r = await http.request(method, url, headers=h, **kwargs)
        code = r.json().get("code") if r.headers.get("content-type", "").startswith(
            "application/json") else None
        tally.expect("403 acting as another agent", caller,
                     r.status_code == 403 and code == "agent_mismatch",
                     f"{method} {url} as {other!r}: HTTP {r.status_code} {r.text[:200]}")
