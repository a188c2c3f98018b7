"""``/metrics``: every series the server advertises moves when the traffic it counts happens,
on both backends, and several workers add up to one set of figures.

Traffic goes through the SDK against a real server; the scrape is parsed with
prometheus-client's own parser, so these tests read what Prometheus would read.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aegis_memory.client import AegisClient
from tests.conftest import ServerProcess

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str) -> tuple[Samples, dict[str, str]]:
    """The scrape as {(sample name, labels): value}, and each aegis family's type."""
    r = httpx.get(base_url + "/metrics", timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    kinds: dict[str, str] = {}
    for family in text_string_to_metric_families(r.text):
        if not family.name.startswith("aegis_"):
            continue
        kinds[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, kinds


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of a sample over every label set that includes ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def drive_traffic(client: AegisClient, ns: str) -> dict[str, int]:
    """One of everything the metrics count; returns how many live memories it left."""
    first = client.add("Deploys go out on Tuesdays after the freeze", agent_id="ops",
                       namespace=ns, scope="global")
    again = client.add("Deploys go out on Tuesdays after the freeze", agent_id="ops",
                       namespace=ns, scope="global")
    assert again.deduped
    client.add_batch([{"content": f"Runbook step {i} for the payments service",
                       "agent_id": "ops", "scope": "global", "namespace": ns}
                      for i in range(3)])
    for _ in range(2):  # the second time the query's vector comes from the cache
        assert client.query("when do deploys happen", agent_id="ops", namespace=ns)
    client.query_cross_agent("payments runbook", requesting_agent_id="qa", namespace=ns)
    client.get(first.id, agent_id="ops")
    client.vote(first.id, "helpful", voter_agent_id="qa")
    client.vote(first.id, "harmful", voter_agent_id="reviewer")
    client.apply_delta([{"type": "add", "content": "Freeze starts on Mondays at noon",
                         "scope": "global"}], agent_id="ops", namespace=ns)
    client.add_reflection("Retrying a failed migration twice corrupted the ledger",
                          agent_id="ops", error_pattern="migration-retry", namespace=ns)
    client.playbook("migration failed", agent_id="ops", namespace=ns)
    client.handoff("ops", "qa", namespace=ns, task_context="deploys")
    client.progress.create("s1", namespace=ns, agent_id="ops")
    client.progress.update("s1", completed=["plan"], status="completed", namespace=ns,
                           agent_id="ops")
    client.features.create("f-pass", description="deploy", namespace=ns, agent_id="ops")
    client.features.mark_complete("f-pass", namespace=ns, agent_id="ops")
    client.features.create("f-fail", description="rollback", namespace=ns, agent_id="ops")
    client.features.mark_failed("f-fail", "rollback left a stale lock", namespace=ns,
                                agent_id="ops")
    exported = list(client.export(namespace=ns))
    assert len(exported) == 6
    moved = [{**m.model_dump(mode="json"), "id": uuid.uuid4().hex,
              "namespace": f"{ns}-copy"} for m in exported[:2]]
    assert client.import_(moved).imported == 2
    return {"live": 8}


@pytest.fixture
def client(server: ServerProcess) -> Iterator[AegisClient]:
    with AegisClient(api_key="dev-key", base_url=server.base_url) as c:
        yield c


def test_every_advertised_series_moves_with_the_traffic_it_counts(
    server: ServerProcess, client: AegisClient, backend: str
) -> None:
    ns = f"metrics-{uuid.uuid4().hex[:8]}"
    before, kinds = scrape(server.base_url)
    drive_traffic(client, ns)
    httpx.get(server.base_url + "/no-such-route", timeout=10)
    after, kinds = scrape(server.base_url)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    # Every counter and histogram family moved (a family that never moves is a lie).
    for family, kind in kinds.items():
        if kind == "counter":
            assert moved(f"{family}_total") > 0, family
        elif kind == "histogram":
            assert moved(f"{family}_count") > 0, family

    # ... and by the amounts the traffic implies.
    assert moved("aegis_http_requests_total", route="/memories/add", status="200") == 2
    assert moved("aegis_http_requests_total", route="unmatched", status="404") == 1
    for op in ("add", "query", "query_cross_agent", "get", "vote", "delta", "reflection",
               "playbook", "handoff", "export", "import"):
        assert moved("aegis_operations_total", operation=op, outcome="ok") >= 1, op
        assert moved("aegis_operation_duration_seconds_count", operation=op) >= 1, op
    assert moved("aegis_operations_total", operation="query", outcome="ok") == 2
    assert moved("aegis_dedup_hits_total") == 1
    # 1 + 3 (batch) + 1 (delta) + 1 (reflection) + 2 (import)
    assert moved("aegis_memories_added_total") == 8
    assert moved("aegis_votes_total", vote="helpful") == 1
    assert moved("aegis_votes_total", vote="harmful") == 1
    assert moved("aegis_reflections_total") == 1
    assert moved("aegis_session_updates_total", status="active") == 1
    assert moved("aegis_session_updates_total", status="completed") == 1
    assert moved("aegis_feature_updates_total", outcome="passed") == 1
    assert moved("aegis_feature_updates_total", outcome="failed") == 1
    assert moved("aegis_embedding_cache_requests_total", result="hit") >= 1
    assert moved("aegis_embedding_cache_requests_total", result="miss") >= 1

    # Gauges: state read off the service at the scrape.
    pools = {dict(ls)["pool"] for (n, ls) in after if n == "aegis_db_pool_size"}
    assert pools == ({"primary"} if backend == "postgres"
                     else {"sqlite_writer", "sqlite_reader", "sqlite_point"})
    assert total(after, "aegis_http_requests_in_flight") == 1  # the scrape itself
    assert total(after, "aegis_db_pool_size") > 0
    assert total(after, "aegis_db_pool_connections", state="idle") > 0
    if backend == "sqlite":  # PostgreSQL searches in the database: no in-process index
        assert total(after, "aegis_index_vectors") - total(before, "aegis_index_vectors") == 8
        assert 0 <= total(after, "aegis_index_pending_vectors") <= total(
            after, "aegis_index_vectors")


def test_a_failed_operation_counts_as_an_error(server: ServerProcess,
                                               client: AegisClient) -> None:
    before, _ = scrape(server.base_url)
    r = httpx.get(server.base_url + f"/memories/{uuid.uuid4().hex}",
                  headers={"Authorization": "Bearer dev-key"}, timeout=10)
    assert r.status_code == 404
    after, _ = scrape(server.base_url)
    assert (total(after, "aegis_operations_total", operation="get", outcome="error")
            - total(before, "aegis_operations_total", operation="get", outcome="error")) == 1


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    base = tmp_path_factory.mktemp("metrics-workers")
    shared = base / "prometheus"
    server = ServerProcess(base / "data", args=["--workers", "2"],
                           env={"PROMETHEUS_MULTIPROC_DIR": str(shared)}).start()
    yield server, shared
    server.stop()


def test_several_workers_add_up_in_every_scrape(
    two_workers: tuple[ServerProcess, Path],
) -> None:
    server, shared = two_workers
    headers = {"Authorization": "Bearer dev-key"}
    ns = f"workers-{uuid.uuid4().hex[:8]}"
    requests = 40
    for i in range(requests):
        # A new connection each time, so that both workers take some of them.
        r = httpx.post(server.base_url + "/memories/add", headers=headers, timeout=30,
                       json={"content": f"worker note {i}", "namespace": ns})
        assert r.status_code == 200, r.text
    pids = {p.stem.rsplit("_", 1)[-1] for p in shared.glob("counter_*.db")}
    assert len(pids) == 2, f"expected files from both workers, found {sorted(pids)}"
    seen = defaultdict(int)
    for _ in range(6):  # each scrape may be answered by either worker: all must agree
        samples, _ = scrape(server.base_url)
        count = total(samples, "aegis_http_requests_total", route="/memories/add",
                      status="200")
        seen[count] += 1
        assert total(samples, "aegis_memories_added_total") == requests
    assert dict(seen) == {requests: 6}
