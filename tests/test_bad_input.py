"""Bad input gets a 4xx with a sentence a person understands; never a 500; nothing half-written."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import numpy as np
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


def _model_and_dim(http, ns: str) -> tuple[str, int]:
    """This server's embedding model and vector size, from an export of a probe memory."""
    probe = http.post("/memories/add", json={"content": "probe for the model name",
                                              "namespace": ns}).json()
    row = json.loads(http.post("/memories/export", json={
        "namespace": ns, "include_embeddings": True}).text.splitlines()[0])
    assert http.delete(f"/memories/{probe['id']}").status_code == 200
    return row["embedding_model"], len(row["embedding"])


def _b64(values) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


@pytest.mark.parametrize(("embedding", "mentions"), [
    ("not base64 at all!", "not valid base64"),
    ("AAAA====", "not a whole number of float32"),
    ("QUJD\nRA==", "not valid base64"),
    (base64.b64encode(b"12345").decode(), "not a whole number of float32"),
    ("", "0 bytes"),
    (12, "embedding"),
])
def test_import_refuses_a_malformed_base64_embedding(http, ns, embedding, mentions):
    """A base64 embedding that is not base64 of float32 bytes is a 422 naming the memory's
    field, and nothing of the request is written."""
    good = {"id": uuid.uuid4().hex, "content": "a valid memory in the same request",
            "namespace": ns}
    bad = {"id": uuid.uuid4().hex, "content": "the broken one", "namespace": ns,
           "embedding": embedding, "embedding_model": "any-model"}
    r = http.post("/memories/import", json={"memories": [good, bad]})
    assert r.status_code == 422, r.text
    data = r.json()
    assert "memories.1.embedding" in data["detail"] and mentions in data["detail"], data
    assert data["detail"][0].isupper()
    assert http.post("/memories/export", json={"namespace": ns}).text == ""


@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_import_refuses_a_non_finite_embedding_and_writes_nothing(http, ns, encoding):
    """NaN or infinity in a vector the import would use is a 422 that names the memory; the
    other memories of the request are not written either."""
    model, dim = _model_and_dim(http, ns)
    rng = np.random.default_rng(3)
    good = [{"id": uuid.uuid4().hex, "content": f"valid memory {i}", "namespace": ns,
             "embedding": _b64(rng.normal(size=dim)), "embedding_model": model}
            for i in range(3)]
    vector = rng.normal(size=dim).astype(np.float32)
    bad = {"id": uuid.uuid4().hex, "content": "corrupt vector", "namespace": ns,
           "embedding_model": model}
    if encoding == "base64":
        vector[7] = np.nan
        bad["embedding"] = _b64(vector)
    else:
        # JSON has no NaN or infinity (such bodies are invalid JSON), but a number beyond
        # float32's range becomes infinity as a float32.
        bad["embedding"] = [1e39, *vector[1:].tolist()]
    r = http.post("/memories/import", json={"memories": [*good, bad]})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_embedding"
    assert bad["id"] in r.json()["detail"] and "NaN or infinity" in r.json()["detail"]
    assert http.post("/memories/export", json={"namespace": ns}).text == ""


def test_import_reembeds_a_base64_vector_of_another_size_or_model(http, ns):
    """Like a list of numbers: a vector of another model, or of another size (the same model
    name at another ``dimensions``), is not used; the text is embedded again."""
    model, dim = _model_and_dim(http, ns)
    rows = [
        {"id": uuid.uuid4().hex, "content": "the build cache lives on the NAS",
         "namespace": ns, "embedding": _b64(np.ones(dim // 2)), "embedding_model": model},
        {"id": uuid.uuid4().hex, "content": "deploys happen on Tuesdays", "namespace": ns,
         "embedding": _b64(np.full(8, np.nan)), "embedding_model": "another-model"},
    ]
    r = http.post("/memories/import", json={"memories": rows})
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 2 and r.json()["reembedded"] == 2
