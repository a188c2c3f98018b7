"""Bad input gets a 4xx with a sentence a person understands; never a 500; nothing half-written."""

from __future__ import annotations

import httpx
import pytest

BAD_BODIES = [
    ("/memories/add", {"content": ""}, 422, "content"),
    ("/memories/add", {"content": "   "}, 422, "content"),
    ("/memories/add", {"content": "x" * 50_001}, 422, "content"),
    ("/memories/add", {"content": "ok", "scope": "team"}, 422, "scope"),
    ("/memories/add", {"content": "ok", "agent_id": 5}, 422, "agent_id"),
    ("/memories/add", {"content": "ok", "metadata": "not an object"}, 422, "metadata"),
    ("/memories/add", {"content": "ok", "ttl_seconds": -1}, 422, "ttl_seconds"),
    ("/memories/add", {"content": "ok", "agentid": "typo"}, 422, "agentid"),
    ("/memories/add", {"content": "nul\x00byte"}, 422, "content"),
    ("/memories/add", {}, 422, "content"),
    ("/memories/query", {"query": "x", "top_k": 0}, 422, "top_k"),
    ("/memories/query", {"query": "x", "top_k": 1_000_000}, 422, "top_k"),
    ("/memories/query", {"query": ""}, 422, "query"),
    ("/memories/query", {"query": "x", "memory_types": ["nope"]}, 422, "memory_types"),
    ("/memories/add_batch", {"items": []}, 422, "items"),
    ("/memories/add_batch", {"items": [{"content": "a"}] * 101}, 422, "items"),
    ("/memories/ace/vote/abc", {"vote": "meh", "voter_agent_id": "a"}, 422, "vote"),
]


@pytest.mark.parametrize(("path", "body", "status", "mentions"), BAD_BODIES)
def test_bad_bodies(http, path, body, status, mentions):
    r = http.post(path, json=body)
    assert r.status_code == status, r.text
    data = r.json()
    assert mentions in data["detail"] and data["code"]
    assert data["detail"][0].isupper()


def test_malformed_json(http):
    r = http.post("/memories/add", content=b'{"content": "oops"',
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_json"
    assert "not valid JSON" in r.json()["detail"]


def test_body_too_large(http):
    r = http.post("/memories/add", content=b"x" * 3_000_000,
                  headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"


def test_unknown_ids_and_routes(http):
    assert http.get("/memories/does-not-exist").status_code == 404
    assert http.delete("/memories/does-not-exist").status_code == 404
    assert http.patch("/memories/does-not-exist", json={"content": "x"}).status_code == 404
    r = http.post("/memories/ace/vote/does-not-exist", json={"vote": "helpful",
                                                             "voter_agent_id": "a"})
    assert r.status_code == 404
    r = http.get("/nope")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    r = http.patch("/memories/x", json={})
    assert r.status_code == 422 and "nothing to update" in r.json()["detail"]


def test_auth_errors(server):
    r = httpx.post(server.base_url + "/memories/query", json={"query": "x"})
    assert r.status_code == 401 and r.json()["detail"].startswith(
        "Authentication failed: Invalid API key")
    r = httpx.post(server.base_url + "/memories/query", json={"query": "x"},
                   headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["detail"] == "Authentication failed: Invalid API key"


def test_failed_batch_writes_nothing(http, ns):
    r = http.post("/memories/add_batch", json={"items": [
        {"content": "valid one", "namespace": ns},
        {"content": "needs owner", "scope": "agent-private", "namespace": ns},
    ]})
    assert r.status_code == 422
    assert http.post("/memories/export", json={"namespace": ns}).text == ""
