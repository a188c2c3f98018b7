"""The server on the OpenAI-compatible provider (against a fake that speaks the real protocol),
and the refusal to open data embedded with another model."""

from __future__ import annotations

import httpx
import pytest

from tests.test_embeddings import API_KEY, FakeOpenAI


@pytest.fixture
def fake_openai():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


def test_openai_provider_end_to_end_and_model_guard(start_server, tmp_path, fake_openai):
    data = tmp_path / "openai-data"
    server = start_server(
        data,
        AEGIS_EMBEDDING_PROVIDER="openai",
        AEGIS_EMBEDDING_MODEL="text-embedding-3-small",
        OPENAI_API_KEY=API_KEY,
        OPENAI_BASE_URL=fake_openai.base_url,
    )
    with httpx.Client(base_url=server.base_url, headers={"Authorization": "Bearer dev-key"},
                      timeout=60) as c:
        ids = [c.post("/memories/add", json={"content": text}).json()["id"]
               for text in ("alpha release notes", "beta rollout plan", "gamma incident log")]
        found = c.post("/memories/query", json={"query": "beta rollout plan", "mode": "vector"}
                       ).json()["memories"]
        assert found[0]["id"] == ids[1] and found[0]["score"] == pytest.approx(1.0, abs=1e-5)
        exported = c.post("/memories/export", json={"include_embeddings": True}).text
        assert '"embedding_model":"text-embedding-3-small"' in exported
    seen = [r for r in fake_openai.requests if r["path"] == "/v1/embeddings"]
    assert seen and all(r["authorization"] == f"Bearer {API_KEY}" for r in seen)
    assert {r["json"]["model"] for r in seen} == {"text-embedding-3-small"}
    server.stop()

    # The same data with the local model: refused with a message saying what to do.
    with pytest.raises(RuntimeError) as refused:
        start_server(data)
    message = str(refused.value)
    assert "embedded with model 'text-embedding-3-small'" in message
    assert "aegis reindex" in message


def test_openai_provider_without_key_is_refused(start_server, tmp_path):
    with pytest.raises(RuntimeError) as refused:
        start_server(tmp_path / "nokey", AEGIS_EMBEDDING_PROVIDER="openai")
    assert "OPENAI_API_KEY is required for embeddings" in str(refused.value)
