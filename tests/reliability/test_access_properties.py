"""Property tests of the access rule (SPEC §2), issue 12: random worlds of projects, agents,
scopes, share lists and keys; every read path must return exactly what the oracle says.

Hypothesis draws a world (``_access_model.worlds``); it is built on a real ``aegis serve``
(one per backend for the module, a fresh set of projects and namespaces per example), and
then every caller — each project key acting as no agent, as each agent and as an outsider;
each agent key, naming itself or not; other projects' keys, by construction — reads it by
every path: REST query, cross-agent query, get, export, ACE playbook, handoff (both forms),
the dashboard API and the web dashboard's fragments, and the MCP endpoint. Agent keys also
try to act as another agent on each path (403). After the last example the server is stopped
and the SDK's local mode opens its data directory and checks every world again.

Zero leaks, zero missing and zero other failures is the only passing figure.
``AEGIS_ACCESS_SEED=<n>`` replays a soak run (its seed is printed and reported);
``AEGIS_ACCESS_EXAMPLES=<n>`` changes the number of worlds per backend.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings

from aegis_memory.client import AegisClient
from tests.conftest import ServerProcess, fresh_database, new_project
from tests.reliability import _access_model as model
from tests.reliability._access_figures import Figures
from tests.reliability._access_rest import build_world, check_impostor, check_rest
from tests.reliability._access_tally import Tally
from tests.reliability._soak import SOAK, quick_or_soak, report

pytest.importorskip("mcp")
from tests.reliability._access_clients import check_local, check_mcp

EXAMPLES = int(os.environ.get("AEGIS_ACCESS_EXAMPLES") or quick_or_soak(5, 100))
MAX_MEMORIES = quick_or_soak(5, 8)
SEED = int(os.environ.get("AEGIS_ACCESS_SEED") or random.randrange(2**32))
#: Requests in flight at once (callers checked side by side): the machine has two cores.
PARALLEL = 4

FIGURES = Figures(seed=SEED if SOAK else "derandomized")


@dataclass
class Harness:
    backend: str
    server: ServerProcess
    worlds: list[model.World] = field(default_factory=list)


@pytest.fixture(scope="module", params=("sqlite", "postgres"))
def harness(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    env = {}
    if request.param == "postgres":
        env["DATABASE_URL"] = fresh_database(request.getfixturevalue("postgres"))
    server = ServerProcess(tmp_path_factory.mktemp(f"access-{request.param}") / "data",
                           env=env).start()
    yield Harness(request.param, server)
    server.stop()


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    if FIGURES.examples:
        report("access-properties", FIGURES.as_dict())


async def _check_world(harness: Harness, spec: model.WorldSpec, tally: Tally) -> model.World:
    base = harness.server.base_url
    limit = asyncio.Semaphore(PARALLEL)
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        started = time.perf_counter()
        world = await build_world(http, spec)
        FIGURES.seconds[f"{harness.backend} building worlds"] += time.perf_counter() - started

        # The long form sends every caller through every door; the quick form sends every
        # caller through the REST API and one caller of each kind through the slower ones.
        thorough = world.callers if SOAK else world.representatives()

        async def one(caller: model.Caller) -> None:
            async with limit:
                await check_rest(http, world, caller, tally, thorough=caller in thorough)
                if caller in thorough:
                    await check_mcp(base + "/mcp", world, caller, tally)

        async def impostor(caller: model.Caller, other: str) -> None:
            async with limit:
                await check_impostor(http, world, caller, other, tally)

        await asyncio.gather(*(one(c) for c in world.callers),
                             *(impostor(c, o) for c, o in world.impostors))
        # One MCP session per world for the refusals (a session costs a handshake).
        caller, other = world.impostors[0]
        await check_mcp(base + "/mcp", world, caller, tally, impostor_as=other)
    return world


def _settings(test: Callable[..., None]) -> Callable[..., None]:
    """Worlds on real servers are slow examples: no deadline, no example database (a failing
    world is printed whole instead), the same worlds on every quick run (``derandomize``),
    and a reported seed for the long form."""
    test = settings(
        max_examples=EXAMPLES, deadline=None, derandomize=not SOAK, database=None,
        print_blob=True,
        # Shrinking replays examples against the server, minutes each on a failure: only in
        # the long form (a quick failure prints the whole world and every disagreement).
        phases=list(Phase) if SOAK else [Phase.explicit, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(test)
    return seed(SEED)(test) if SOAK else test


@_settings
@given(spec=model.worlds(MAX_MEMORIES))
def test_every_read_path_returns_exactly_the_visible_set(harness: Harness,
                                                         spec: model.WorldSpec) -> None:
    tally = Tally()
    started = time.perf_counter()
    world = asyncio.run(_check_world(harness, spec, tally))
    FIGURES.add(harness.backend, world, tally, time.perf_counter() - started)
    assert tally.failed == 0 and tally.leaks == 0 and tally.misses == 0, (
        f"seed {FIGURES.seed}, {harness.backend}: {tally.summary()}\nworld: {spec!r}")
    harness.worlds.append(world)


def test_a_memorys_timeline_names_no_memory_the_agent_cannot_see(harness: Harness) -> None:
    """Found by the property test: the history of a memory an agent may see listed, in its
    events, the other memories of those events (a project-wide query's results), private
    ones of other agents included: their ids, which are 404 to that agent."""
    base, ns = harness.server.base_url, "timeline-" + uuid.uuid4().hex[:8]
    _, key = new_project(harness.server)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as http:
        shared = http.post("/memories/add", json={
            "content": "deploy runbook notes for everyone", "namespace": ns,
            "scope": "global"}).json()["id"]
        private = http.post("/memories/add", json={
            "content": "deploy runbook notes only alice knows", "namespace": ns,
            "agent_id": "alice"}).json()["id"]
        found = http.post("/memories/query", json={"query": "deploy runbook notes",
                                                   "namespace": ns}).json()["memories"]
        assert {m["id"] for m in found} == {shared, private}
        bob = http.post("/keys", json={"agent_id": "bob"}).json()["key"]
        whole = http.get("/memories/ace/dashboard/timeline", params={"memory_id": shared})
        assert private in {i for e in whole.json()["events"] for i in e["memory_ids"]}
    for headers, params in (({"Authorization": f"Bearer {bob}"}, {}),
                            ({"Authorization": f"Bearer {key}"}, {"agent_id": "bob"})):
        r = httpx.get(base + "/memories/ace/dashboard/timeline", headers=headers,
                      params={"memory_id": shared, **params})
        assert r.status_code == 200, r.text
        events = r.json()["events"]
        assert {e["event_type"] for e in events} == {"memory_created", "query"}
        assert all(e["memory_ids"] == [shared] for e in events), events
        assert httpx.get(base + f"/memories/{private}", headers=headers,
                         params=params).status_code == 404


#: The world the local-mode test checks when the property test did not run first (``-k``).
FIXED_WORLD = model.WorldSpec(
    projects=(
        model.ProjectSpec(("ann", "anna"), (
            model.MemorySpec("ann", None, ("anna",), "strategy", 0, False, False, "helpful"),
            model.MemorySpec("ann", "agent-private", None, "standard", 0, False, False, None),
            model.MemorySpec(None, None, None, "reflection", 1, False, True, None),
            model.MemorySpec("anna", "global", None, "standard", 1, True, False, None),
        ), ("ann",)),
        model.ProjectSpec(("ann", "Ann"), (
            model.MemorySpec("Ann", "agent-shared", ("ann",), "reflection", 0, False, False,
                             "harmful"),
        ), ()),
    ),
    probe_scope=None, probe_types=None,
)


def test_local_mode_over_the_servers_data_dir(harness: Harness) -> None:
    """The SDK's local mode, in this process, over the data the server wrote (stopped
    first): the same engine must apply the same rule to every world checked above."""
    if not harness.worlds:
        tally = Tally()
        harness.worlds.append(asyncio.run(_check_world(harness, FIXED_WORLD, tally)))
        assert tally.failed == 0, tally.summary()
    harness.server.stop()
    overrides = {}
    if "DATABASE_URL" in harness.server.env:
        overrides["database_url"] = harness.server.env["DATABASE_URL"]
    tally = Tally()
    started = time.perf_counter()
    with AegisClient.local(Path(harness.server.data_dir), **overrides) as client:
        for world in harness.worlds:
            for caller in world.callers if SOAK else world.representatives():
                check_local(client, world, caller, tally)
            caller, other = world.impostors[0]
            check_local(client, world, caller, tally, impostor_as=other)
    FIGURES.add_local(harness.backend, len(harness.worlds), tally,
                      time.perf_counter() - started)
    assert tally.failed == 0 and tally.leaks == 0 and tally.misses == 0, tally.summary()
