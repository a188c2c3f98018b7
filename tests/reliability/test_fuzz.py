"""API fuzzing (issue 12): schemathesis generates requests from the server's own OpenAPI schema
and sends them to a real ``aegis serve`` on each backend. Every answer must be no 5xx, have a
documented status code and content type, match the documented response schema, and carry
``X-Request-ID`` (SPEC §4).

Why the schema of a running server: it is what clients generate their code from, so a response
that disagrees with it is a bug of the schema or of the server, whichever is wrong.

Every operation of the schema is fuzzed - none is excluded - in both generation modes
(positive: valid by the schema; negative: violating it), with a project key and with an agent
key (the operator API with the admin key). Path ids are drawn half from what hypothesis makes
up and half from real ids seeded first, so the found-and-visible paths run too, not only 404s.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ADMIN_KEY, ServerProcess
from tests.reliability._soak import SOAK, quick_or_soak, report

#: Generated cases per operation, per key and per generation mode. Quick: ~300 per backend;
#: soak: ~14,000 per backend (the issue asks for at least 2,000).
EXAMPLES = quick_or_soak(2, 100)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
FUZZ_AGENT = "fuzz-agent"
#: A fixed seed reproduces a run (AEGIS_FUZZ_SEED=...); otherwise each run explores anew.
SEED = int(os.environ.get("AEGIS_FUZZ_SEED") or random.randrange(2**32))


@dataclass
class Seeded:
    """Real ids on the server, for the path parameters of the same names."""

    ids: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Tally:
    """What one backend's fuzzing sent and got."""

    cases: Counter[str] = field(default_factory=Counter)  # per key label and mode
    statuses: Counter[int] = field(default_factory=Counter)
    ok_operations: set[str] = field(default_factory=set)  # saw a 2xx at least once
    failures: list[str] = field(default_factory=list)


def _seed(server: ServerProcess, http: httpx.Client) -> tuple[Seeded, str]:
    """Memories (several owners and scopes), a session, a feature and spare keys; returns
    them and an agent key bound to FUZZ_AGENT."""
    seeded = Seeded({"memory_id": [], "session_id": [], "feature_id": [], "key_id": []})
    for i, (agent, scope) in enumerate([(FUZZ_AGENT, "agent-private"), ("other", "global"),
                                        ("other", "agent-private"), (None, "global")]):
        r = http.post("/memories/add", json={"content": f"Seeded fact number {i} for fuzzing",
                                             "agent_id": agent, "scope": scope})
        assert r.status_code == 200, r.text
        seeded.ids["memory_id"].append(r.json()["id"])
    r = http.post("/memories/add", json={"content": "Shared with the fuzz agent",
                                         "agent_id": "other", "shared_with_agents": [FUZZ_AGENT]})
    seeded.ids["memory_id"].append(r.json()["id"])
    r = http.post("/memories/ace/session", json={"session_id": "fuzz-session",
                                                 "agent_id": FUZZ_AGENT})
    assert r.status_code == 201, r.text
    seeded.ids["session_id"].append("fuzz-session")
    r = http.post("/memories/ace/feature", json={"feature_id": "fuzz-feature",
                                                 "description": "A feature to fuzz"})
    assert r.status_code == 201, r.text
    seeded.ids["feature_id"].append("fuzz-feature")
    for n in range(3):  # revocable by the fuzzer without locking it out
        r = http.post("/keys", json={"name": f"spare-{n}"})
        assert r.status_code == 201, r.text
        seeded.ids["key_id"].append(r.json()["id"])
    r = http.post("/keys", json={"agent_id": FUZZ_AGENT, "name": "fuzz agent"})
    assert r.status_code == 201, r.text
    return seeded, r.json()["key"]


def _strategy(op: APIOperation, mode: GenerationMode, seeded: Seeded) -> st.SearchStrategy[Case]:
    """Cases for ``op``: generated, or with real ids in the path (explicit path parameters are
    used as given, the rest of the case is still generated)."""
    generated = op.as_strategy(generation_mode=mode)
    names = [name for name in seeded.ids if "{" + name + "}" in op.path]
    if not names or mode is GenerationMode.NEGATIVE:
        return generated
    real = st.fixed_dictionaries({n: st.sampled_from(seeded.ids[n]) for n in names}).flatmap(
        lambda params: op.as_strategy(generation_mode=mode, path_parameters=params))
    return st.one_of(real, generated)  # real first: hypothesis tries its first branch first


def _fuzz_operation(
    op: APIOperation, mode: GenerationMode, who: str, key: str, server: ServerProcess,
    seeded: Seeded, session: requests.Session, tally: Tally,
) -> None:
    def one(case: Case) -> None:
        tally.cases[f"{who}/{mode.value}"] += 1
        response = case.call_and_validate(
            base_url=server.base_url, session=session, checks=CHECKS, timeout=60,
            headers={"Authorization": f"Bearer {key}"})
        tally.statuses[response.status_code] += 1
        if 200 <= response.status_code < 300:
            tally.ok_operations.add(op.label)
        assert response.headers.get("x-request-id"), f"{op.label}: no X-Request-ID"

    run = hypothesis.given(case=_strategy(op, mode, seeded))(one)
    run = hypothesis.settings(
        max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
        suppress_health_check=list(HealthCheck))(run)
    run = hypothesis.seed(SEED)(run)
    try:
        run()
    except Unsatisfiable:
        pass  # nothing in the operation can be made invalid (no parameters, no body)
    except (Exception, BaseExceptionGroup) as exc:  # every failure is collected, then reported
        text = "\n".join(str(exc).splitlines()[:40])
        tally.failures.append(f"{op.label} [{who}, {mode.value}]: {text}")


def _keys_for(op: APIOperation, project_key: str, agent_key: str) -> list[tuple[str, str]]:
    if op.path.startswith("/admin/"):
        return [("admin", ADMIN_KEY)]
    return [("project", project_key), ("agent", agent_key)]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_operation_survives_schema_fuzzing(
    backend: str, start_server: Callable[..., ServerProcess]
) -> None:
    server = start_server(backend=backend)
    started = time.monotonic()
    with httpx.Client(base_url=server.base_url, timeout=60,
                      headers={"Authorization": "Bearer dev-key"}) as http:
        seeded, agent_key = _seed(server, http)
        # The agent key is really bound (else its half would repeat the project key's).
        r = http.post("/memories/query", json={"query": "fact", "agent_id": "other"},
                      headers={"Authorization": f"Bearer {agent_key}"})
        assert r.status_code == 403, r.text
    schema = schemathesis.openapi.from_url(server.base_url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 35, [op.label for op in operations]
    tally = Tally()
    with requests.Session() as session:
        for op in operations:
            for who, key in _keys_for(op, "dev-key", agent_key):
                for mode in MODES:
                    _fuzz_operation(op, mode, who, key, server, seeded, session, tally)
    seconds = time.monotonic() - started

    total = sum(tally.cases.values())
    figures: dict[str, Any] = {
        "backend": backend, "seed": SEED, "operations": len(operations),
        "examples_per_operation_key_mode": EXAMPLES, "cases": total,
        "cases_by_key_and_mode": dict(sorted(tally.cases.items())),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "operations_with_a_2xx": len(tally.ok_operations), "failures": len(tally.failures),
        "seconds": round(seconds, 1),
    }
    report(f"fuzz-{backend}", figures)

    assert not tally.failures, f"seed {SEED}:\n\n" + "\n\n".join(tally.failures[:10])
    assert total >= (2_000 if SOAK else 150), figures
    # Not a fuzzer that only ever hears 4xx: most operations were also answered with success
    # (quick: 2 cases a key and mode leave some to chance; soak: measured 37 of 37).
    assert len(tally.ok_operations) >= (0.9 if SOAK else 0.6) * len(operations), sorted(
        {op.label for op in operations} - tally.ok_operations)
    assert httpx.get(server.base_url + "/ready", timeout=10).status_code == 200
    assert server.log_path is not None
    assert "Traceback" not in server.log_path.read_text()



# ----------------------------------------------------------------------------- pinned findings
# What the fuzzer found, as plain tests on both backends (a fuzzer finds them only by chance).


def test_import_with_a_repeated_vote_keeps_the_last(http: httpx.Client, ns: str) -> None:
    """Two votes of one voter for one task in an export: the last one counts, as voting again
    does on the API (it was a 500: the unique index on votes)."""
    memory_id = uuid.uuid4().hex
    votes = [{"voter_agent_id": "v", "task_id": "t", "vote": "helpful"},
             {"voter_agent_id": "v", "task_id": "t", "vote": "harmful"}]
    r = http.post("/memories/import", json={"memories": [
        {"id": memory_id, "content": "voted twice", "namespace": ns, "votes": votes}]})
    assert r.status_code == 200 and r.json()["imported"] == 1, r.text
    [row] = [json.loads(line) for line in
             http.post("/memories/export", json={"namespace": ns}).text.splitlines()]
    assert [(v["voter_agent_id"], v["vote"]) for v in row["votes"]] == [("v", "harmful")]


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("GET", "/memories/ace/dashboard/timeline?before=9223372036854775808", None, "before"),
    ("POST", "/memories/import", {"memories": [{"id": "c1", "content": "x",
                                                "bullet_helpful": 3_000_000_000}]},
     "bullet_helpful"),
    ("POST", "/memories/import", {"memories": [{"id": "c2", "content": "x",
                                                "bullet_harmful": -5}]}, "bullet_harmful"),
    ("POST", "/memories/import", {"memories": [{"id": "c3", "content": ""}]}, "content"),
    ("POST", "/memories/import", {"memories": [{"id": "c4", "content": "x", "agent_id": ""}]},
     "agent_id"),
])
def test_numbers_and_names_beyond_the_columns_are_422(
    http: httpx.Client, method: str, path: str, body: dict[str, Any] | None, field: str
) -> None:
    """A cursor beyond BIGINT was a 500 on both backends, a counter beyond INTEGER one on
    PostgreSQL; an import now holds a memory to the rules of an add."""
    r = http.request(method, path, json=body)
    assert r.status_code == 422 and field in r.json()["detail"], r.text


def test_error_responses_are_declared(http: httpx.Client) -> None:
    """The schema declares the error shape the server sends, and /metrics as text."""
    document = http.get("/openapi.json").json()
    add = document["paths"]["/memories/add"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "422", "429"} <= set(add)
    assert add["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "HTTPValidationError" not in document["components"]["schemas"]
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
