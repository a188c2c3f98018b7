"""Hostile input (issue 12) against real servers on both backends: bodies over the size limit,
deep nesting, invalid UTF-8, NUL characters, huge share lists, SQL and full-text syntax in
text, and key guessing. Every answer must be a clear 4xx or a correct 2xx - never a 500 - and
the data must come out of it intact.

Prompt injection through SmartMemory is in test_prompt_injection.py, and paths (CLI export and
import, ids in URLs, static files) in test_hostile_paths.py.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_KEY, ServerProcess
from tests.reliability._soak import SOAK, quick_or_soak, report

MAX_BODY_BYTES = 2_000_000  # the server's default (Settings.max_body_bytes)
MAX_JSON_DEPTH = 32  # schemas.MAX_JSON_DEPTH

#: Every status a hostile request got in this module, for the report (and none is a 5xx).
STATUSES: Counter[int] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_statuses() -> Iterator[None]:
    yield
    report("hostile-input", {"requests": sum(STATUSES.values()),
                             "statuses": {str(k): v for k, v in sorted(STATUSES.items())}})


def sent(response: httpx.Response, *expected: int) -> httpx.Response:
    """Count the answer; it must be one of ``expected`` and never a 5xx."""
    STATUSES[response.status_code] += 1
    assert response.status_code < 500, response.text
    if expected:
        assert response.status_code in expected, (response.status_code, response.text[:500])
    if response.status_code >= 400:  # SPEC §4: a sentence and a stable code
        body = response.json()
        assert body["detail"][0].isupper() and body["code"], body
    return response


def nested(depth: int, leaf: Any = "leaf") -> dict[str, Any]:
    value: Any = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def raw_nested(depth: int) -> str:
    """``depth`` nested objects as JSON text (json.dumps itself would recurse that deep)."""
    return '{"k":' * depth + '"leaf"' + "}" * depth


# ----------------------------------------------------------------------------- body size


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body streamed without Content-Length (httpx sends it chunked)."""
    for start in range(0, total, size):
        yield b" " * min(size, total - start)


def test_bodies_over_the_limit_are_413_declared_or_streamed(http: httpx.Client) -> None:
    over = MAX_BODY_BYTES + 1
    json_type = {"Content-Type": "application/json"}
    for path in ("/memories/add", "/memories/query", "/memories/ace/delta", "/keys"):
        declared = sent(http.post(path, content=b" " * over, headers=json_type), 413)
        assert declared.json()["code"] == "payload_too_large"
        streamed = sent(http.post(path, content=_chunks(over), headers=json_type), 413)
        assert streamed.json()["code"] == "payload_too_large"
        assert "transfer-encoding" in streamed.request.headers  # really without a length
    # Just under the limit is read and judged on its content, not refused for its size.
    padded = json.dumps({"content": "a memory padded with spaces"}).encode()
    body = padded[:-1] + b" " * (MAX_BODY_BYTES - len(padded)) + b"}"
    assert len(body) == MAX_BODY_BYTES
    assert sent(http.post("/memories/add", content=body, headers=json_type), 200)
    # Imports have their own, larger limit (MAX_IMPORT_BYTES): 3 MB is read, not refused.
    r = sent(http.post("/memories/import", content=_chunks(3_000_000), headers=json_type), 400)
    assert r.json()["code"] == "invalid_json"
    assert sent(http.get("/ready"), 200)


# ----------------------------------------------------------------------------- nesting


def _deep_requests(ns: str, depth: int, memory_id: str) -> list[tuple[str, str, str]]:
    """(method, path, JSON text) of every request that takes a free-form object."""
    deep = raw_nested(depth)
    return [
        ("POST", "/memories/add", f'{{"content":"deep","namespace":"{ns}","metadata":{deep}}}'),
        ("POST", "/memories/add",
         f'{{"content":"deep c","namespace":"{ns}","coordination_metadata":{deep}}}'),
        ("PATCH", f"/memories/{memory_id}", f'{{"metadata":{deep}}}'),
        ("POST", "/memories/ace/reflection",
         f'{{"content":"deep r","namespace":"{ns}","metadata":{deep}}}'),
        ("POST", "/memories/ace/delta", f'{{"namespace":"{ns}","operations":[{{"type":"add",'
                                        f'"content":"deep d","metadata":{deep}}}]}}'),
        ("POST", "/memories/ace/session",
         f'{{"session_id":"s-{depth}","namespace":"{ns}","metadata":{deep}}}'),
        ("POST", "/memories/import", f'{{"memories":[{{"id":"{uuid.uuid4().hex}",'
                                     f'"content":"deep i","namespace":"{ns}",'
                                     f'"metadata":{deep}}}]}}'),
        ("POST", "/memories/query", f'{{"query":"deep","namespace":"{ns}","x":{deep}}}'),
    ]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 500, 1_000, 10_000])
def test_deep_nesting_is_a_clear_4xx(http: httpx.Client, ns: str, depth: int) -> None:
    """Deeper than 32 levels is a 422 (orjson stops parsing past 1,024: a 400), on every
    route that takes an object. Before the limit, a memory 300 levels deep was stored and
    then broke every read that returned it (500)."""
    memory_id = sent(http.post("/memories/add", json={"content": "to patch", "namespace": ns}),
                     200).json()["id"]
    for method, path, text in _deep_requests(ns, depth, memory_id):
        r = sent(http.request(method, path, content=text.encode(),
                              headers={"Content-Type": "application/json"}), 400, 422)
        if depth < 1024 and path != "/memories/query":
            assert "deeper than 32 levels" in r.json()["detail"], (path, r.text[:300])
    exported = http.post("/memories/export", json={"namespace": ns}).text.splitlines()
    assert [json.loads(line)["content"] for line in exported] == ["to patch"]
    assert sent(http.get(f"/memories/{memory_id}"), 200).json()["metadata"] == {}


def test_nesting_at_the_limit_is_stored_and_read_back(http: httpx.Client, ns: str) -> None:
    deep = nested(MAX_JSON_DEPTH)
    r = sent(http.post("/memories/add", json={
        "content": "the deepest metadata allowed", "namespace": ns, "metadata": deep,
        "coordination_metadata": {"list": [[[[1, 2]]]]}}), 200)
    memory_id = r.json()["id"]
    assert sent(http.get(f"/memories/{memory_id}"), 200).json()["metadata"] == deep
    found = sent(http.post("/memories/query", json={"query": "deepest metadata",
                                                     "namespace": ns}), 200).json()
    assert found["memories"][0]["metadata"] == deep
    row = json.loads(sent(http.post("/memories/export", json={"namespace": ns}), 200).text)
    assert row["metadata"] == deep and row["coordination_metadata"] == {"list": [[[[1, 2]]]]}


# ----------------------------------------------------------------------------- encodings


INVALID_UTF8 = [
    b'{"content": "\xff\xfe broken"}',
    b'{"content": "overlong \xc0\xaf slash"}',
    b'{"content": "cut short \xe6\x97"}',
    b'{"content": "encoded surrogate \xed\xa0\x80"}',
    b'{"content": "lone escape \\ud800 surrogate"}',
    b'\xef\xbb\xbf{"content": "after a BOM"}',
    b'{"content": "latin-1 caf\xe9"}',
]


@pytest.mark.parametrize("body", INVALID_UTF8, ids=range(len(INVALID_UTF8)))
def test_invalid_utf8_in_a_body_is_400(http: httpx.Client, body: bytes) -> None:
    r = sent(http.post("/memories/add", content=body,
                       headers={"Content-Type": "application/json"}), 400)
    assert r.json()["code"] == "invalid_json"


def test_invalid_utf8_in_paths_queries_and_keys(server: ServerProcess, http: httpx.Client) -> None:
    raw = httpx.Client(base_url=server.base_url, timeout=30)
    assert sent(http.get("/memories/%ff%fe"), 404)
    assert sent(http.get("/memories/ace/session/%c0%af"), 404)
    sent(http.get("/memories/ace/sessions?namespace=%ff"), 200, 422)
    sent(http.get("/memories/ace/dashboard/timeline?agent_id=%ed%a0%80"), 200, 422)
    # A key that is not even ASCII: refused like any wrong key.
    r = raw.get("/keys", headers={"Authorization": b"Bearer \xff\xfe-not-a-key"})
    assert sent(r, 401).json()["code"] == "invalid_api_key"


# ----------------------------------------------------------------------------- NUL


def _nul_requests(ns: str, memory_id: str) -> list[tuple[str, str, dict[str, Any] | None, str]]:
    """(method, path, body, the field the 422 must name) for NUL in every kind of place."""
    nul = "bad\u0000text"
    return [
        ("POST", "/memories/add", {"content": nul, "namespace": ns}, "content"),
        ("POST", "/memories/add", {"content": "ok", "namespace": ns, "agent_id": nul},
         "agent_id"),
        ("POST", "/memories/add", {"content": "ok", "namespace": nul}, "namespace"),
        ("POST", "/memories/add", {"content": "ok", "namespace": ns, "metadata": {nul: 1}},
         "metadata"),
        ("POST", "/memories/add", {"content": "ok", "namespace": ns,
                                   "metadata": {"deep": [{"x": nul}]}}, "metadata.deep.0.x"),
        ("POST", "/memories/add", {"content": "ok", "namespace": ns,
                                   "shared_with_agents": ["a", nul]}, "shared_with_agents"),
        ("POST", "/memories/add", {"content": "ok", "namespace": ns, "error_pattern": nul},
         "error_pattern"),
        ("POST", "/memories/query", {"query": nul, "namespace": ns}, "query"),
        ("PATCH", f"/memories/{memory_id}", {"metadata": {"k": nul}}, "metadata.k"),
        ("POST", f"/memories/ace/vote/{memory_id}", {"vote": "helpful", "voter_agent_id": "v",
                                                     "task_id": nul}, "task_id"),
        ("POST", "/memories/ace/delta", {"namespace": ns, "operations": [
            {"type": "deprecate", "memory_id": memory_id, "reason": nul}]}, "reason"),
        ("POST", "/memories/ace/reflection", {"content": "lesson", "namespace": ns,
                                              "correct_approach": nul}, "correct_approach"),
        ("POST", "/memories/ace/session", {"session_id": nul, "namespace": ns}, "session_id"),
        ("POST", "/memories/ace/feature", {"feature_id": "f", "namespace": ns,
                                           "description": nul}, "description"),
        ("POST", "/memories/import", {"memories": [{"id": uuid.uuid4().hex, "content": nul,
                                                    "namespace": ns}]}, "content"),
        ("POST", "/memories/import", {"memories": [{"id": f"x{nul}", "content": "ok",
                                                    "namespace": ns}]}, "id"),
        ("POST", "/keys", {"name": nul}, "name"),
        ("GET", "/memories/bad%00id", None, "memory_id"),
        ("GET", "/memories/ace/session/s%00", None, "session_id"),
        ("GET", "/memories/ace/sessions?namespace=a%00b", None, "namespace"),
        ("GET", "/memories/ace/dashboard/timeline?event_type=%00", None, "event_type"),
        ("DELETE", "/keys/k%00", None, "key_id"),
    ]


def test_nul_characters_are_422_everywhere_and_write_nothing(
    http: httpx.Client, ns: str
) -> None:
    """PostgreSQL cannot store U+0000 in text or JSONB: it was a 500 there (for ids, names,
    metadata) and stored on SQLite. Now both refuse it with a 422 naming the field."""
    memory_id = sent(http.post("/memories/add", json={"content": "the only memory",
                                                     "namespace": ns}), 200).json()["id"]
    for method, path, body, field in _nul_requests(ns, memory_id):
        r = sent(http.request(method, path, json=body), 422)
        assert field in r.json()["detail"] and "NUL" in r.json()["detail"], (path, r.text)
    rows = http.post("/memories/export", json={"namespace": ns}).text.splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["metadata"] == {}
    assert json.loads(rows[0])["votes"] == [] and not json.loads(rows[0])["is_deprecated"]
    # The escaped form is just text: a backslash, a "u" and four zeros.
    r = sent(http.post("/memories/add", json={"content": "write \\u0000 in C as '\\0'",
                                              "namespace": ns}), 200)
    got = sent(http.get(f"/memories/{r.json()['id']}"), 200).json()["content"]
    assert got == "write \\u0000 in C as '\\0'"


# ----------------------------------------------------------------------------- share lists


def _share_flow(http: httpx.Client, ns: str, agents: list[str]) -> str:
    """Share a memory with ``agents``: it comes back intact, the first and last of them find
    it, an outsider does not. Returns its id."""
    r = sent(http.post("/memories/add", json={
        "content": f"shared with {len(agents)} agents", "namespace": ns, "agent_id": "owner",
        "shared_with_agents": agents}), 200)
    memory_id = r.json()["id"]
    assert r.json()["scope"] == "agent-shared"
    assert sent(http.get(f"/memories/{memory_id}"), 200).json()["shared_with_agents"] == agents
    for reader in (agents[0], agents[-1]):
        found = sent(http.post("/memories/query", json={
            "query": "shared agents", "namespace": ns, "agent_id": reader}), 200).json()
        assert memory_id in [m["id"] for m in found["memories"]]
    outsider = sent(http.post("/memories/query", json={
        "query": "shared agents", "namespace": ns, "agent_id": "outsider"}), 200).json()
    assert outsider["memories"] == []
    return memory_id


def test_huge_share_lists(http: httpx.Client, ns: str) -> None:
    """1,000 names of 251 characters, the most a share list may hold: stored, read back and
    searched on both backends. (PostgreSQL's planner index once held the whole list, whose
    rows are limited to 2,704 bytes: ~65 UUID names were the most; migration 0008.)"""
    agents = [f"agent-{i:04d}-" + "x" * 240 for i in range(1_000)]
    memory_id = _share_flow(http, ns, agents)
    one_more = [*agents, "agent-1000"]
    for method, path, body in [
        ("POST", "/memories/add", {"content": "too many", "namespace": ns, "agent_id": "o",
                                   "shared_with_agents": one_more}),
        ("PATCH", f"/memories/{memory_id}", {"shared_with_agents": one_more}),
        ("POST", "/memories/ace/delta", {"namespace": ns, "operations": [
            {"type": "add", "content": "too many", "shared_with_agents": one_more}]}),
        ("POST", "/memories/ace/reflection", {"content": "too many", "namespace": ns,
                                              "shared_with_agents": one_more}),
        ("POST", "/memories/import", {"memories": [{
            "id": uuid.uuid4().hex, "content": "too many", "namespace": ns, "agent_id": "o",
            "scope": "agent-shared", "shared_with_agents": one_more}]}),
    ]:
        r = sent(http.request(method, path, json=body), 422)
        assert "shared_with_agents" in r.json()["detail"] and "1000" in r.json()["detail"]
    # 100,000 names is a 413 (the body limit) before any parsing: nothing is written.
    sent(http.post("/memories/add", json={"content": "way too many", "namespace": ns,
                                          "shared_with_agents": agents * 100}), 413)
    assert len(http.post("/memories/export", json={"namespace": ns}).text.splitlines()) == 1


# ----------------------------------------------------------------------------- SQL and FTS

#: Query syntax of SQL, SQLite FTS5 and PostgreSQL tsquery, and odd text; each with the
#: word the memory holding it must be found by (None: nothing to find by words).
SYNTAX = [
    ("'; DROP TABLE memories; --", "drop"),
    ("Robert'); DELETE FROM memories WHERE ('1'='1", "robert"),
    ("' OR '1'='1", None),
    ('"unbalanced quote', "unbalanced"),
    ("NEAR(apples oranges, 2)", "apples"),
    ("NEAR(", None),
    ("*", None),
    ("prefix*", "prefix"),
    ("AND OR NOT", None),
    ("content:secret", "secret"),
    ("-excluded +included", "included"),
    ("^anchored", "anchored"),
    ("col:val* AND (x OR", "val"),
    ("fat & rat | !cat", "fat"),
    ("phrase <-> operator", "phrase"),
    ("to_tsquery('english', 'x')", "tsquery"),
    ("%_% LIKE wildcards", "wildcards"),
    ("\\ backslash \\\\", "backslash"),
    ("$$ dollar quoting $$", "dollar"),
    ("{}[]()<>", None),
    ("Grüße aus Köln, naïve café", "café"),
    ("日本語のテキスト検索", None),
    ("emoji 🚀🔥 rocket", "rocket"),
    ("zero\u200bwidth joiner", None),
]
MODES = ("hybrid", "text", "vector")


def test_sql_and_fulltext_syntax_is_only_text(
    server: ServerProcess, http: httpx.Client, ns: str
) -> None:
    sentinel_ns = ns + "-sentinel"
    sentinel = sent(http.post("/memories/add", json={
        "content": "A sentinel that must survive", "namespace": sentinel_ns}), 200).json()["id"]
    ids: dict[str, str] = {}
    for text, _ in SYNTAX:
        r = sent(http.post("/memories/add", json={"content": f"note: {text} (end)",
                                                  "namespace": ns}), 200)
        ids[text] = r.json()["id"]
    for text, word in SYNTAX:
        for mode in MODES:
            r = sent(http.post("/memories/query", json={"query": text, "namespace": ns,
                                                        "mode": mode, "top_k": 30}), 200)
            found = [m["id"] for m in r.json()["memories"]]
            if mode != "text" or word is not None:
                # The memory holding the text is found by meaning (always) and by its words.
                assert ids[text] in found, (text, mode, r.json()["memories"][:3])
        if word is not None:
            r = sent(http.post("/memories/query", json={"query": word, "namespace": ns,
                                                        "mode": "text", "top_k": 30}), 200)
            assert ids[text] in [m["id"] for m in r.json()["memories"]], (word, text)
    # Stored verbatim, and the tables are all there.
    for text, memory_id in ids.items():
        assert sent(http.get(f"/memories/{memory_id}"), 200).json()["content"] == \
            f"note: {text} (end)"
    assert sent(http.get(f"/memories/{sentinel}"), 200)
    (count,), = server.sql("SELECT count(*) FROM memories WHERE namespace = :ns", ns=ns)
    assert count == len(SYNTAX)


def test_sql_in_names_does_not_widen_access(http: httpx.Client, ns: str) -> None:
    """Agent, user and namespace names full of SQL are names: they match only themselves."""
    private = sent(http.post("/memories/add", json={
        "content": "alice's private note", "namespace": ns, "agent_id": "alice"}), 200).json()
    for name in ("x' OR '1'='1", "alice' --", "' OR agent_id IS NOT NULL --", "alice%", "_lice"):
        for field in ("agent_id", "user_id"):
            r = sent(http.post("/memories/query", json={"query": "private note",
                                                        "namespace": ns, field: name}), 200)
            ids = [m["id"] for m in r.json()["memories"]]
            assert private["id"] not in ids, (name, field)
        sent(http.get(f"/memories/{private['id']}", params={"agent_id": name}), 404)
    r = sent(http.post("/memories/query", json={"query": "private note",
                                                "namespace": f"{ns}' OR '1'='1"}), 200)
    assert r.json()["memories"] == []


_OPERATORS = ["AND", "OR", "NOT", "NEAR(", ")", "(", '"', "*", ":", "^", "-", "+", "&", "|",
              "!", "<->", "'", ";", "--", "/*", "*/", "\\", "%", "_", "{", "}", "NEAR/2"]


@pytest.fixture(scope="module")
def syntax_cases() -> Iterator[Counter[str]]:
    yield Counter()


def test_random_query_syntax_never_fails(
    backend: str, http: httpx.Client, ns: str, syntax_cases: Counter[str]
) -> None:
    """Random mixtures of operators and words, as queries in every mode: always a 200."""
    sent(http.post("/memories/add", json={"content": "apples and oranges near the door",
                                          "namespace": ns}), 200)
    tokens = st.one_of(st.sampled_from(_OPERATORS), st.sampled_from(["apples", "door", "x"]),
                       st.text(min_size=1, max_size=8).filter(lambda s: "\x00" not in s))
    queries = st.lists(tokens, min_size=1, max_size=8).map(" ".join).filter(str.strip)

    @settings(max_examples=quick_or_soak(25, 700), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(query=queries, mode=st.sampled_from(MODES))
    def run(query: str, mode: str) -> None:
        syntax_cases[backend] += 1
        sent(http.post("/memories/query", json={"query": query, "namespace": ns,
                                                "mode": mode}), 200)

    run()
    report(f"hostile-query-syntax-{backend}", {"queries": syntax_cases[backend]})


# ----------------------------------------------------------------------------- key guessing


def _guess(server: ServerProcess, path: str, key: str) -> httpx.Response:
    return httpx.get(server.base_url + path, headers={"Authorization": f"Bearer {key}"},
                     timeout=30)


def test_key_guessing_is_rate_limited(start_server: Callable[..., ServerProcess]) -> None:
    """Wrong keys from one address: AUTH_FAILURES_PER_MINUTE are checked, then 429 with
    Retry-After. The admin key is guessed against the same allowance. The soak form guesses
    flat out for over a minute and counts how many guesses were checked at all."""
    per_minute = quick_or_soak(5, 30)  # the soak form runs the default (30)
    server = start_server(AUTH_FAILURES_PER_MINUTE=str(per_minute))
    statuses = [sent(_guess(server, "/keys", f"aegis_{uuid.uuid4().hex}")).status_code
                for _ in range(per_minute + 3)]
    assert statuses == [401] * per_minute + [429] * 3
    refused = _guess(server, "/memories/ace/features", "guess")
    assert sent(refused, 429).json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "failed sign-ins" in refused.json()["detail"]
    # The right key still works from the same address; the admin key shares the allowance.
    assert sent(_guess(server, "/keys", "dev-key"), 200)
    assert sent(_guess(server, "/admin/projects", "admin-guess"), 429)
    assert sent(_guess(server, "/admin/projects", ADMIN_KEY), 200)

    duration = quick_or_soak(3, 65)
    checked = refused_count = 0
    started = time.monotonic()
    while time.monotonic() - started < duration:
        status = sent(_guess(server, "/keys", f"aegis_{uuid.uuid4().hex}")).status_code
        checked += status == 401
        refused_count += status == 429
    elapsed = time.monotonic() - started
    # One more guess per 60/per_minute seconds refills: at most one per started interval.
    assert checked <= elapsed / (60 / per_minute) + 1, (checked, elapsed)
    report("hostile-key-guessing", {
        "auth_failures_per_minute": per_minute, "seconds": round(elapsed, 1),
        "guesses": checked + refused_count, "checked": checked, "refused_429": refused_count,
        "guesses_per_second_sent": round((checked + refused_count) / elapsed, 1),
        "checked_per_minute": round(checked * 60 / elapsed, 1)})
    if SOAK:
        assert checked + refused_count > 1_000  # flat out, and still only ~30 a minute
