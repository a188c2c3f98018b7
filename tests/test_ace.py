"""ACE patterns over HTTP: votes, playbooks, reflections, delta updates, deprecation."""

from __future__ import annotations

import httpx
import pytest

from aegis_memory import AegisClient, AegisNotFoundError


@pytest.fixture
def client(server):
    with AegisClient(api_key="dev-key", base_url=server.base_url) as c:
        yield c


def test_playbook_filters_on_effectiveness_inside_the_search(client, ns):
    strong = [client.add(f"Pagination strategy {i}: follow the next cursor until it is empty",
                         namespace=ns, memory_type="strategy", scope="global") for i in range(6)]
    weak = [client.add(f"Pagination idea {i}: guess the number of pages up front",
                       namespace=ns, memory_type="strategy", scope="global") for i in range(6)]
    for m in strong:
        client.vote(m.id, "helpful", voter_agent_id="executor", task_id="t1")
    for m in weak:
        client.vote(m.id, "harmful", voter_agent_id="executor", task_id="t1")
    entries = client.playbook("API pagination", agent_id="executor", namespace=ns,
                              min_effectiveness=0.3, top_k=5)
    assert len(entries) == 5
    assert {e.id for e in entries} <= {m.id for m in strong}
    assert all(e.effectiveness_score == 0.5 for e in entries)
    assert entries == sorted(entries, key=lambda e: -e.score)
    everything = client.playbook("API pagination", agent_id="executor", namespace=ns,
                                 min_effectiveness=-1.0, top_k=12)
    assert len(everything) == 12
    # Votes boost the ranking: the proven strategies come first.
    assert {e.id for e in everything[:6]} == {m.id for m in strong}


def test_playbook_respects_visibility_and_types(client, ns):
    private = client.add("Retry with jitter when the API says 429", agent_id="alice",
                         namespace=ns, memory_type="strategy")
    standard = client.add("Retry notes that are not a strategy", namespace=ns)
    assert [e.id for e in client.playbook("retry 429", agent_id="alice", namespace=ns)] == \
        [private.id]
    assert client.playbook("retry 429", agent_id="bob", namespace=ns) == []
    assert standard.id not in {e.id for e in client.playbook("retry", namespace=ns)}


def test_reflections_surface_in_playbooks_and_by_error_pattern(client, ns):
    r = client.reflection(content="Always use while True for pagination, not range(n)",
                          agent_id="reflector", error_pattern="pagination_incomplete",
                          namespace=ns, correct_approach="loop until no next page")
    assert r.scope == "global" and r.memory_type == "reflection"
    client.add_reflection("Check the timezone before comparing dates", agent_id="reflector",
                          error_pattern="timezone_bug", namespace=ns)
    got = client.get(r.id)
    assert got.error_pattern == "pagination_incomplete"
    assert got.metadata["correct_approach"] == "loop until no next page"
    found = client.playbook("pagination", agent_id="executor", namespace=ns)
    assert found[0].id == r.id
    by_pattern = client.playbook("anything at all", agent_id="executor", namespace=ns,
                                 error_pattern="timezone_bug")
    assert [e.content for e in by_pattern] == ["Check the timezone before comparing dates"]


def test_delta_is_atomic_by_default(client, server, ns):
    keep = client.add("Deploys go out on Tuesdays", agent_id="ops", namespace=ns)
    with pytest.raises(AegisNotFoundError) as refused:
        client.apply_delta([
            {"type": "add", "content": "Deploys need two approvals"},
            {"type": "update", "memory_id": keep.id, "metadata": {"checked": True}},
            {"type": "deprecate", "memory_id": "no-such-memory"},
        ], agent_id="ops", namespace=ns)
    assert "Operation 2 (deprecate)" in str(refused.value) and "nothing was applied" in \
        str(refused.value)
    assert client.get(keep.id, agent_id="ops").metadata == {}
    assert [m.content for m in client.query("approvals", agent_id="ops", namespace=ns)] == \
        ["Deploys go out on Tuesdays"]


def test_delta_per_item_and_deprecation(client, ns):
    old = client.add("User is based in Manchester", agent_id="assistant", namespace=ns)
    result = client.apply_delta([
        {"type": "add", "content": "User is based in Berlin"},
        {"type": "update", "memory_id": "missing", "content": "x"},
    ], agent_id="assistant", namespace=ns, atomic=False)
    assert (result.applied, result.failed) == (1, 1)
    assert result.results[1].code == "memory_not_found"
    new_id = result.results[0].memory_id
    deprecated = client.deprecate(old.id, agent_id="assistant", superseded_by=new_id,
                                  reason="moved")
    assert deprecated.is_deprecated and deprecated.superseded_by == new_id
    assert deprecated.deprecation_reason == "moved" and deprecated.deprecated_by == "assistant"
    found = client.query("where is the user based", agent_id="assistant", namespace=ns)
    assert [m.id for m in found] == [new_id]
    # History is kept: the deprecated memory can still be read and exported.
    assert client.get(old.id, agent_id="assistant").is_deprecated
    # The same text can be stored again once its old copy is deprecated.
    again = client.add("User is based in Manchester", agent_id="assistant", namespace=ns)
    assert again.id != old.id and again.deduped_from is None


def test_delta_respects_ownership(server, client, ns):
    mine = client.add("Only alice may change this", agent_id="alice", scope="global",
                      namespace=ns)
    with httpx.Client(base_url=server.base_url,
                      headers={"Authorization": "Bearer dev-key"}) as http:
        r = http.post("/memories/ace/delta", json={
            "agent_id": "bob", "namespace": ns,
            "operations": [{"type": "deprecate", "memory_id": mine.id}]})
        assert r.status_code == 403 and r.json()["code"] == "not_owner"
        r = http.post("/memories/ace/delta", json={
            "agent_id": "bob", "namespace": ns, "operations": [{"type": "update"}]})
        assert r.status_code == 422 and "memory_id" in r.json()["detail"]


def test_a_reader_sees_only_successors_and_history_it_may_see(client, http, ns):
    """A deprecated memory names its successor only to readers who may see the successor,
    and its history shows another agent's events without the text that agent wrote (the
    words of its query): both would otherwise reach agents the access rule keeps out."""
    old = client.add("The nightly build runs on Jenkins", agent_id="alice", scope="global",
                     namespace=ns)
    draft = client.add("The nightly build moves to Buildkite next month", agent_id="alice",
                       namespace=ns)  # agent-private: alice's alone
    open_ = client.add("The nightly build moved to GitHub Actions", agent_id="carol",
                       scope="global", namespace=ns)
    found = client.query("where does the nightly build run, carol's private worry", top_k=5,
                         agent_id="bob", namespace=ns, min_score=0.0)
    assert old.id in {m.id for m in found}
    client.deprecate(old.id, agent_id="alice", superseded_by=draft.id, reason="moving CI")

    assert client.get(old.id, agent_id="alice").superseded_by == draft.id
    assert client.get(old.id).superseded_by == draft.id  # a project key acting as no agent
    as_bob = client.get(old.id, agent_id="bob")
    assert as_bob.is_deprecated and as_bob.superseded_by is None
    exported = {m.id: m for m in client.export(namespace=ns, agent_id="bob")}
    assert exported[old.id].superseded_by is None
    assert {m.id: m for m in client.export(namespace=ns)}[old.id].superseded_by == draft.id
    # A successor everyone may see is named to everyone.
    client.deprecate(draft.id, agent_id="alice", superseded_by=open_.id)
    assert client.get(draft.id, agent_id="alice").superseded_by == open_.id

    def history(agent: str | None) -> dict[str, dict]:
        params = {"memory_id": old.id, "namespace": ns, **({"agent_id": agent} if agent else {})}
        r = http.get("/memories/ace/dashboard/timeline", params=params)
        assert r.status_code == 200, r.text
        return {e["event_type"]: e for e in r.json()["events"]}

    as_alice = history("alice")
    assert as_alice["query"]["agent_id"] == "bob"
    assert "query" not in as_alice["query"]["payload"]
    assert as_alice["query"]["payload"]["returned"] >= 1  # counts are not bob's words
    assert as_alice["memory_deprecated"]["payload"]["superseded_by"] == draft.id  # her own
    bob_view = history("bob")
    assert bob_view["query"]["payload"]["query"].startswith("where does the nightly build")
    assert bob_view["memory_deprecated"]["payload"] == {"reason": "moving CI"}
    assert history(None)["query"]["payload"]["query"].startswith("where does")


def test_full_ace_loop_metrics_and_correlation(client, ns):
    """Query -> work on features -> vote -> pass/fail -> exact metrics for a scripted run."""
    m1 = client.add("Use cursor pagination for the orders API", namespace=ns,
                    memory_type="strategy", scope="global")
    m2 = client.add("Cache the orders list for an hour", namespace=ns,
                    memory_type="strategy", scope="global")
    for fid in ("f1", "f2", "f3"):
        client.features.create(fid, description=f"feature {fid}", namespace=ns)
    found = client.query("orders API", agent_id="executor", namespace=ns)
    assert found.retrieval_event_id
    client.vote(m1.id, "helpful", voter_agent_id="executor", task_id="f1")
    client.vote(m2.id, "harmful", voter_agent_id="executor", task_id="f2")
    client.vote(m2.id, "helpful", voter_agent_id="executor", task_id="f3")
    client.features.mark_complete("f1", namespace=ns, verified_by="qa",
                                  retrieval_event_id=found.retrieval_event_id,
                                  selected_memory_ids=[m1.id])
    linked = client.timeline(memory_id=m1.id, event_type="feature_updated")
    assert [e.retrieval_event_id for e in linked.events] == [found.retrieval_event_id]
    assert linked.events[0].payload["passes"] is True
    client.features.mark_failed("f2", "orders were stale", namespace=ns)
    client.features.mark_failed("f3", "first try broke", namespace=ns)
    client.features.mark_complete("f3", namespace=ns, verified_by="qa")

    metrics = client.eval_metrics("24h", namespace=ns)
    assert metrics.totals.features_evaluated == 3 and metrics.totals.features_passed == 2
    assert metrics.success_rate == pytest.approx(2 / 3, abs=1e-6)
    assert metrics.totals.votes == 3 and metrics.totals.helpful_votes == 2
    assert metrics.retrieval_precision == pytest.approx(2 / 3, abs=1e-6)
    assert metrics.pollution_rate == 0.0 and metrics.totals.memories == 2
    assert metrics.mttr_seconds is not None and metrics.mttr_seconds > 0
    assert metrics.totals.queries == 1

    corr = client.eval_correlation("global", namespace=ns)
    assert (corr.sample_size, corr.helpful_count, corr.harmful_count) == (3, 2, 1)
    assert corr.prob_pass_given_helpful == 1.0 and corr.prob_pass_given_harmful == 0.0
    assert corr.correlation_score == pytest.approx(1.0)

    # One more harmful vote on m1 tips it into pollution.
    client.vote(m1.id, "harmful", voter_agent_id="reviewer", task_id="f2")
    client.vote(m1.id, "harmful", voter_agent_id="auditor", task_id="f2")
    assert client.eval_metrics(namespace=ns).pollution_rate == 0.5


def test_dashboard_apis(client, server, ns):
    a = client.add("Dashboards show counts", agent_id="alice", namespace=ns,
                   memory_type="strategy")
    client.add("Global fact for the dashboard", namespace=ns)
    client.vote(a.id, "helpful", voter_agent_id="alice")
    client.progress.update(session_id="dash-session", completed=["a"], namespace=ns)
    client.features.create("dash-feature", namespace=ns)
    client.query("dashboards", agent_id="alice", namespace=ns)

    stats = client.dashboard_stats(namespace=ns)
    assert stats.memories_total == 2 and stats.by_type == {"strategy": 1, "standard": 1}
    assert stats.by_scope == {"agent-private": 1, "global": 1}
    assert stats.helpful_votes == 1 and stats.voters == 1
    assert stats.sessions_by_status == {"active": 1}
    assert stats.features_by_status == {"not_started": 1}

    activity = client.dashboard_activity(namespace=ns, days=3)
    assert len(activity.buckets) == 3
    today = activity.buckets[-1]
    assert today.counts["memory_created"] == 2 and today.counts["query"] == 1
    assert today.counts["vote"] == 1

    page = client.timeline(namespace=ns, limit=2)
    assert len(page.events) == 2 and page.next_cursor is not None
    rest = client.timeline(namespace=ns, before=page.next_cursor, limit=100)
    assert {e.id for e in page.events}.isdisjoint({e.id for e in rest.events})
    history = client.timeline(memory_id=a.id, agent_id="alice")
    assert [e.event_type for e in history.events] == ["query", "vote", "memory_created"]

    # Another agent cannot read a private memory's history; agent keys get no overview.
    with httpx.Client(base_url=server.base_url,
                      headers={"Authorization": "Bearer dev-key"}) as http:
        r = http.get("/memories/ace/dashboard/timeline",
                     params={"memory_id": a.id, "agent_id": "bob"})
        assert r.status_code == 404
        key = http.post("/keys", json={"agent_id": "bob"}).json()["key"]
        r = httpx.get(server.base_url + "/memories/ace/dashboard/stats",
                      headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 403 and r.json()["code"] == "project_key_required"
        r = http.get("/memories/ace/dashboard/timeline", params={"limit": 100_000})
        assert r.status_code == 422


async def test_async_client_has_the_ace_methods(server, ns):
    from aegis_memory import AsyncAegisClient

    async with AsyncAegisClient(api_key="dev-key", base_url=server.base_url) as client:
        r = await client.reflection("Pin dependency versions in CI", agent_id="ci",
                                    error_pattern="flaky_build", namespace=ns)
        await client.vote(r.id, "helpful", voter_agent_id="ci", task_id="build")
        entries = await client.playbook("dependency versions", agent_id="ci", namespace=ns)
        assert [e.id for e in entries] == [r.id] and entries[0].effectiveness_score == 0.5
        result = await client.apply_delta([{"type": "deprecate", "memory_id": r.id}],
                                          agent_id="ci", namespace=ns)
        assert result.applied == 1
        assert await client.playbook("dependency versions", agent_id="ci", namespace=ns) == []
        metrics = await client.eval_metrics("7d", namespace=ns)
        assert metrics.totals.votes == 1 and metrics.retrieval_precision == 1.0
        history = await client.timeline(memory_id=r.id)
        assert history.events[0].event_type == "memory_deprecated"
