"""Tests for aegis_memory.embeddings: the bundled ONNX model, the LRU cache, the OpenAI client.

The local tests run the real shipped model. The OpenAI tests talk HTTP to a small fake server
on 127.0.0.1 that speaks the embeddings protocol (no mocks of httpx); only ``_sleep`` is
replaced, to record the waits of the retry loop instead of spending them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aegis_memory.config import Settings
from aegis_memory.embeddings import (
    LOCAL_MODEL_NAME,
    CachedEmbedder,
    EmbeddingError,
    LocalOnnxEmbedder,
    OpenAIEmbedder,
    build_embedder,
)
from aegis_memory.embeddings import openai as openai_module
from aegis_memory.embeddings.local import default_model_dir

# --------------------------------------------------------------------------- local model


@pytest.fixture(scope="module")
def local() -> LocalOnnxEmbedder:
    embedder = LocalOnnxEmbedder()
    embedder.warmup()
    return embedder


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_model_files_are_package_resources() -> None:
    model_dir = default_model_dir()
    for name in ("model.onnx", "tokenizer.json", "model.json", "NOTICE", "LICENSE"):
        assert (model_dir / name).is_file(), name
    meta = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    assert meta["name"] == LOCAL_MODEL_NAME
    assert meta["dim"] == 384
    assert meta["max_seq_length"] == 256
    assert meta["license"] == "Apache-2.0"
    digest = hashlib.sha256((model_dir / "model.onnx").read_bytes()).hexdigest()
    assert digest == meta["sha256"]


def test_local_metadata_known_before_loading() -> None:
    embedder = LocalOnnxEmbedder()
    assert embedder.model_name == LOCAL_MODEL_NAME
    assert embedder.dim == 384
    assert "not loaded" in repr(embedder)


def test_local_shape_dtype_and_normalisation(local: LocalOnnxEmbedder) -> None:
    texts = ["The user prefers dark mode.", "Deploy failed at 3am.", "Berlin", "a b c d e f"]
    vectors = local.embed(texts)
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("anchor", "close", "far"),
    [
        ("The cat is sleeping on the sofa.", "A kitten naps on the couch.", "Interest rates rose."),
        (
            "The user prefers dark mode in the editor.",
            "This person likes a dark theme for their code editor.",
            "The flight to Madrid leaves at noon.",
        ),
        (
            "How do I reset my password?",
            "I forgot my login password and need to change it.",
            "Photosynthesis happens in chloroplasts.",
        ),
        (
            "The deployment failed because the database migration timed out.",
            "A slow schema migration broke the release.",
            "She baked a chocolate cake for the party.",
        ),
        (
            "Alice is allergic to peanuts.",
            "Alice must not eat nuts because of an allergy.",
            "The server listens on port 8000.",
        ),
        ("What is the capital of France?", "Paris is the capital of France.", "I like jazz."),
    ],
)
def test_local_semantic_similarity(
    local: LocalOnnxEmbedder, anchor: str, close: str, far: str
) -> None:
    a, c, f = local.embed([anchor, close, far])
    assert cosine(a, c) > cosine(a, f) + 0.1


def test_local_deterministic_across_calls_and_instances(local: LocalOnnxEmbedder) -> None:
    texts = ["Memory engines store facts.", "Agents hand off tasks.", "🙂"]
    first = local.embed(texts)
    np.testing.assert_array_equal(first, local.embed(texts))
    np.testing.assert_allclose(first, LocalOnnxEmbedder(threads=1).embed(texts), atol=1e-5)


def test_local_batch_equals_single(local: LocalOnnxEmbedder) -> None:
    texts = [
        "ok",
        "The quick brown fox jumps over the lazy dog.",
        "Stock prices fell sharply after the central bank raised interest rates again today.",
        "",
        "Emoji party 🎉🚀",
        " ".join(["long"] * 120),
    ]
    batch = local.embed(texts)
    singles = np.stack([local.embed([text])[0] for text in texts])
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    # Order and grouping do not matter either.
    reordered = local.embed(list(reversed(texts)))
    np.testing.assert_allclose(reordered[::-1], batch, atol=1e-5)


def test_local_empty_list(local: LocalOnnxEmbedder) -> None:
    vectors = local.embed([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_local_empty_list_does_not_load_the_model() -> None:
    embedder = LocalOnnxEmbedder()
    assert embedder.embed([]).shape == (0, 384)
    assert "not loaded" in repr(embedder)


def test_local_rejects_a_bare_string(local: LocalOnnxEmbedder) -> None:
    with pytest.raises(TypeError):
        local.embed("not a list")
    with pytest.raises(TypeError):
        local.embed(["fine", 3])  # type: ignore[list-item]


def test_local_long_text_is_truncated(local: LocalOnnxEmbedder) -> None:
    words = [f"word{i % 97}" for i in range(5000)]
    long_text = " ".join(words)
    other_tail = " ".join(words[:1000] + ["completely", "different", "ending"] * 500)
    vectors = local.embed([long_text, other_tail])
    assert vectors.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Only the first 256 tokens count, so the different tails give the same vector.
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_local_unicode_and_emoji(local: LocalOnnxEmbedder) -> None:
    texts = ["😀😀😀", "東京は日本の首都です。", "Ünïcödé façade naïve", "\u200b\t\n", "مرحبا"]
    vectors = local.embed(texts)
    assert vectors.shape == (5, 384)
    assert np.all(np.isfinite(vectors))
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_local_thread_safe(local: LocalOnnxEmbedder) -> None:
    texts = [f"Concurrent memory number {i} about topic {i % 7}" for i in range(24)]
    expected = local.embed(texts)
    fresh = LocalOnnxEmbedder()  # lazily loaded by whichever thread gets there first
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda i: fresh.embed(texts[i : i + 3]), range(0, 24, 3)))
    np.testing.assert_allclose(np.concatenate(results), expected, atol=1e-5)


def test_local_works_with_hf_hub_offline() -> None:
    code = (
        "from aegis_memory.embeddings import LocalOnnxEmbedder\n"
        "v = LocalOnnxEmbedder().embed(['offline works'])\n"
        "print(v.shape[0], v.shape[1])\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "384"]


def test_local_missing_model_dir(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match=r"model\.json"):
        LocalOnnxEmbedder(model_dir=tmp_path)


def test_local_corrupt_model_is_detected(tmp_path: Path) -> None:
    source = Path(str(default_model_dir()))
    for name in ("model.json", "tokenizer.json"):
        shutil.copyfile(source / name, tmp_path / name)
    (tmp_path / "model.onnx").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    embedder = LocalOnnxEmbedder(model_dir=tmp_path)
    with pytest.raises(EmbeddingError, match="corrupt"):
        embedder.embed(["x"])


def test_local_rejects_bad_threads() -> None:
    with pytest.raises(ValueError):
        LocalOnnxEmbedder(threads=0)


# --------------------------------------------------------------------------- cache


class CountingEmbedder:
    """A tiny deterministic embedder that records what it was asked to embed."""

    def __init__(self, model_name: str = "counting", dim: int = 8) -> None:
        self.model_name = model_name
        self.dim = dim
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            row = np.random.default_rng(seed).normal(size=self.dim)
            rows.append(row / np.linalg.norm(row))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)


def test_cache_counts_hits_and_misses() -> None:
    inner = CountingEmbedder()
    cache = CachedEmbedder(inner, max_entries=100)
    first = cache.embed(["a", "b", "c"])
    assert (cache.hits, cache.misses) == (0, 3)
    second = cache.embed(["b", "d", "a"])
    assert (cache.hits, cache.misses) == (2, 4)
    assert inner.calls == [["a", "b", "c"], ["d"]]  # only the miss, in one call
    np.testing.assert_array_equal(second[0], first[1])
    np.testing.assert_array_equal(second[2], first[0])
    assert cache.model_name == "counting"
    assert cache.dim == 8
    assert len(cache) == 4


def test_cache_embeds_repeated_text_once_per_call() -> None:
    inner = CountingEmbedder()
    cache = CachedEmbedder(inner)
    vectors = cache.embed(["x", "y", "x", "x"])
    assert inner.calls == [["x", "y"]]
    assert (cache.hits, cache.misses) == (0, 4)
    np.testing.assert_array_equal(vectors[0], vectors[2])


def test_cache_evicts_least_recently_used() -> None:
    inner = CountingEmbedder()
    cache = CachedEmbedder(inner, max_entries=2)
    cache.embed(["a", "b"])
    cache.embed(["a"])  # a is now the most recent
    cache.embed(["c"])  # evicts b
    inner.calls.clear()
    cache.embed(["a", "b", "c"])
    assert inner.calls == [["b"]]
    assert len(cache) == 2


def test_cache_results_are_copies() -> None:
    cache = CachedEmbedder(CountingEmbedder())
    original = cache.embed(["a"]).copy()
    result = cache.embed(["a"])
    result[0, :] = 0.0
    np.testing.assert_array_equal(cache.embed(["a"]), original)


def test_cache_empty_and_validation() -> None:
    cache = CachedEmbedder(CountingEmbedder(dim=5))
    assert cache.embed([]).shape == (0, 5)
    with pytest.raises(TypeError):
        cache.embed("abc")
    with pytest.raises(ValueError):
        CachedEmbedder(CountingEmbedder(), max_entries=0)


def test_cache_over_local_model_gives_same_vectors(local: LocalOnnxEmbedder) -> None:
    texts = [
        "Cached memories are fast.",
        "Uncached ones are embedded.",
        "Cached memories are fast.",
    ]
    cache = CachedEmbedder(local, max_entries=10)
    direct = local.embed(texts)
    cold = cache.embed(texts)
    warm = cache.embed(texts)
    np.testing.assert_allclose(cold, direct, atol=1e-6)
    np.testing.assert_array_equal(warm, cold)
    assert cache.misses == 3
    assert cache.hits == 3
    assert cache.model_name == LOCAL_MODEL_NAME
    assert cache.dim == 384


def test_cache_thread_safe() -> None:
    inner = CountingEmbedder()
    cache = CachedEmbedder(inner, max_entries=50)
    texts = [f"t{i % 60}" for i in range(600)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda i: cache.embed(texts[i : i + 10]), range(0, 600, 10)))
    expected = CountingEmbedder().embed(texts)
    np.testing.assert_array_equal(np.concatenate(results), expected)
    assert cache.hits + cache.misses == 600
    assert len(cache) <= 50


# --------------------------------------------------------------------------- OpenAI

API_KEY = "sk-test-aegis-123"
NATIVE_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "fake-model": 8,
    "fixed-model": 8,
}


def raw_vector(text: str, dim: int) -> list[float]:
    """The fake server's deterministic, deliberately unnormalised vector for a text."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return (np.random.default_rng(seed).normal(size=dim) * 3.0).tolist()


def expected_vectors(texts: Sequence[str], dim: int) -> np.ndarray:
    matrix = np.asarray([raw_vector(text, dim) for text in texts], dtype=np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


class FakeOpenAI:
    """A real HTTP server on 127.0.0.1 speaking the OpenAI embeddings protocol.

    ``failures`` holds canned error responses ``(status, headers)`` served, in order, before
    normal answers. Every request is recorded (path, Authorization header, JSON body).
    Successful answers list the embeddings in reverse order, each with its ``index``.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures: deque[tuple[int, dict[str, str]]] = deque()
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with fake.lock:
                    fake.requests.append(
                        {
                            "path": self.path,
                            "authorization": self.headers.get("Authorization"),
                            "content_type": self.headers.get("Content-Type"),
                            "json": body,
                        }
                    )
                    failure = fake.failures.popleft() if fake.failures else None
                if self.path != "/v1/embeddings":
                    return self.reply(404, {"error": {"message": "Not found"}})
                if self.headers.get("Authorization") != f"Bearer {API_KEY}":
                    return self.reply(
                        401,
                        {
                            "error": {
                                "message": "Incorrect API key provided.",
                                "type": "invalid_request_error",
                                "code": "invalid_api_key",
                            }
                        },
                    )
                if failure is not None:
                    status, headers = failure
                    return self.reply(status, {"error": {"message": f"fake {status}"}}, headers)
                if (
                    not isinstance(body, dict)
                    or not isinstance(body.get("model"), str)
                    or not isinstance(body.get("input"), list)
                    or not all(isinstance(t, str) for t in body["input"])
                ):
                    return self.reply(400, {"error": {"message": "'input' is invalid"}})
                model = body["model"]
                if model not in NATIVE_DIMS:
                    return self.reply(404, {"error": {"message": f"model {model} not found"}})
                dim = NATIVE_DIMS[model]
                if model != "fixed-model":
                    dim = body.get("dimensions", dim)
                data = [
                    {"object": "embedding", "index": i, "embedding": raw_vector(text, dim)}
                    for i, text in enumerate(body["input"])
                ]
                data.reverse()  # clients must order by index, not by position
                return self.reply(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": model,
                        "usage": {"prompt_tokens": 1, "total_tokens": 1},
                    },
                )

            def reply(
                self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                encoded = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(encoded)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record the retry loop's waits instead of sleeping."""
    recorded: list[float] = []
    monkeypatch.setattr(openai_module, "_sleep", recorded.append)
    return recorded


def make_openai(fake: FakeOpenAI, **kwargs: Any) -> OpenAIEmbedder:
    kwargs.setdefault("api_key", API_KEY)
    return OpenAIEmbedder(base_url=fake.base_url, **kwargs)


def test_openai_success_orders_by_index(fake_openai: FakeOpenAI) -> None:
    texts = ["first memory", "second memory", "third", "🎉 unicode ü"]
    with make_openai(fake_openai) as embedder:
        assert embedder.dim == 1536  # known model: no request needed
        assert fake_openai.requests == []
        vectors = embedder.embed(texts)
    assert vectors.shape == (4, 1536)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, expected_vectors(texts, 1536), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    [request] = fake_openai.requests
    assert request["path"] == "/v1/embeddings"
    assert request["authorization"] == f"Bearer {API_KEY}"
    assert request["content_type"] == "application/json"
    assert request["json"] == {"model": "text-embedding-3-small", "input": texts}
    assert embedder.model_name == "text-embedding-3-small"


def test_openai_splits_into_batches(fake_openai: FakeOpenAI) -> None:
    texts = [f"text {i}" for i in range(5)]
    embedder = make_openai(fake_openai, model="fake-model", batch_size=2)
    vectors = embedder.embed(texts)
    np.testing.assert_allclose(vectors, expected_vectors(texts, 8), atol=1e-6)
    assert [r["json"]["input"] for r in fake_openai.requests] == [
        ["text 0", "text 1"],
        ["text 2", "text 3"],
        ["text 4"],
    ]
    embedder.close()


def test_openai_dimensions_are_requested(fake_openai: FakeOpenAI) -> None:
    embedder = make_openai(fake_openai, model="text-embedding-3-large", dim=256)
    assert embedder.dim == 256
    vectors = embedder.embed(["shortened vector"])
    assert vectors.shape == (1, 256)
    np.testing.assert_allclose(vectors, expected_vectors(["shortened vector"], 256), atol=1e-6)
    assert fake_openai.requests[0]["json"]["dimensions"] == 256
    embedder.close()


def test_openai_native_dim_is_not_sent_as_dimensions(fake_openai: FakeOpenAI) -> None:
    embedder = make_openai(fake_openai, model="text-embedding-3-small", dim=1536)
    embedder.embed(["x"])
    assert "dimensions" not in fake_openai.requests[0]["json"]
    embedder.close()


def test_openai_learns_dim_from_first_response(fake_openai: FakeOpenAI) -> None:
    embedder = make_openai(fake_openai, model="fake-model")
    assert embedder.embed(["learn"]).shape == (1, 8)
    assert embedder.dim == 8
    assert len(fake_openai.requests) == 1
    embedder.close()


def test_openai_dim_probe_for_unknown_model(fake_openai: FakeOpenAI) -> None:
    embedder = make_openai(fake_openai, model="fake-model")
    assert embedder.dim == 8  # one probe request
    assert len(fake_openai.requests) == 1
    assert embedder.embed([]).shape == (0, 8)
    assert len(fake_openai.requests) == 1
    embedder.close()


def test_openai_401_is_a_clear_error(fake_openai: FakeOpenAI, sleeps: list[float]) -> None:
    embedder = make_openai(fake_openai, api_key="sk-wrong")
    with pytest.raises(EmbeddingError) as info:
        embedder.embed(["hello"])
    assert str(info.value) == "OpenAI embeddings: authentication failed (check OPENAI_API_KEY)"
    assert "sk-wrong" not in str(info.value)
    assert len(fake_openai.requests) == 1  # not retried
    assert sleeps == []
    embedder.close()


def test_openai_429_retry_after_then_success(fake_openai: FakeOpenAI, sleeps: list[float]) -> None:
    fake_openai.failures.append((429, {"Retry-After": "2"}))
    embedder = make_openai(fake_openai, model="fake-model", backoff=0.01)
    vectors = embedder.embed(["rate limited once"])
    np.testing.assert_allclose(vectors, expected_vectors(["rate limited once"], 8), atol=1e-6)
    assert len(fake_openai.requests) == 2
    assert sleeps == [2.0]  # the server's Retry-After, not the backoff
    embedder.close()


def test_openai_500_twice_then_success(fake_openai: FakeOpenAI, sleeps: list[float]) -> None:
    fake_openai.failures.extend([(500, {}), (502, {})])
    embedder = make_openai(fake_openai, model="fake-model", backoff=0.1)
    vectors = embedder.embed(["flaky server"])
    np.testing.assert_allclose(vectors, expected_vectors(["flaky server"], 8), atol=1e-6)
    assert len(fake_openai.requests) == 3
    assert len(sleeps) == 2
    assert 0.05 <= sleeps[0] <= 0.1  # exponential backoff with jitter
    assert 0.1 <= sleeps[1] <= 0.2
    embedder.close()


def test_openai_gives_up_after_three_attempts(fake_openai: FakeOpenAI, sleeps: list[float]) -> None:
    fake_openai.failures.extend([(503, {}), (503, {}), (503, {}), (503, {})])
    embedder = make_openai(fake_openai, model="fake-model", backoff=0.01)
    with pytest.raises(EmbeddingError, match=r"server error \(HTTP 503\).*after 3 attempts"):
        embedder.embed(["down"])
    assert len(fake_openai.requests) == 3
    assert len(sleeps) == 2
    embedder.close()


def test_openai_retry_after_is_capped(fake_openai: FakeOpenAI, sleeps: list[float]) -> None:
    fake_openai.failures.append((429, {"Retry-After": "3600"}))
    embedder = make_openai(fake_openai, model="fake-model", max_retry_after=5)
    embedder.embed(["patience"])
    assert sleeps == [5]
    embedder.close()


def test_openai_client_error_is_not_retried(fake_openai: FakeOpenAI, sleeps: list[float]) -> None:
    embedder = make_openai(fake_openai, model="no-such-model", dim=8)
    with pytest.raises(EmbeddingError, match=r"HTTP 404\): model no-such-model not found"):
        embedder.embed(["x"])
    assert len(fake_openai.requests) == 1
    assert sleeps == []
    embedder.close()


def test_openai_unreachable_server(sleeps: list[float]) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    embedder = OpenAIEmbedder(
        API_KEY, base_url=f"http://127.0.0.1:{port}/v1", model="fake-model", timeout=5
    )
    with pytest.raises(EmbeddingError, match=r"could not reach .*after 3 attempts"):
        embedder.embed(["x"])
    assert len(sleeps) == 2
    embedder.close()


def test_openai_dim_mismatch_is_reported(fake_openai: FakeOpenAI) -> None:
    # "fixed-model" ignores "dimensions", like some OpenAI-compatible servers do.
    embedder = make_openai(fake_openai, model="fixed-model", dim=12)
    with pytest.raises(EmbeddingError, match="returned 8-dimensional vectors, expected 12"):
        embedder.embed(["x"])
    assert fake_openai.requests[0]["json"]["dimensions"] == 12
    embedder.close()


def test_openai_requires_a_key() -> None:
    with pytest.raises(EmbeddingError, match="API key"):
        OpenAIEmbedder("")


def test_openai_default_url() -> None:
    embedder = OpenAIEmbedder(API_KEY)
    assert embedder.url == "https://api.openai.com/v1/embeddings"
    assert embedder.dim == 1536
    embedder.close()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "7"}, 7.0), ({"retry-after-ms": "250"}, 0.25), ({}, None)],
)
def test_retry_after_parsing(headers: dict[str, str], expected: float | None) -> None:
    import httpx

    response = httpx.Response(429, headers=headers)
    assert openai_module._retry_after_seconds(response) == expected


def test_retry_after_http_date() -> None:
    import httpx

    response = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert openai_module._retry_after_seconds(response) == 0.0  # in the past: retry now


# --------------------------------------------------------------------------- build_embedder


def settings(**values: Any) -> Settings:
    values.setdefault("openai_api_key", None)
    values.setdefault("openai_base_url", None)
    values.setdefault("aegis_embedding_model", None)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_build_local_with_cache() -> None:
    embedder = build_embedder(settings(aegis_embedding_provider="local"))
    assert isinstance(embedder, CachedEmbedder)
    assert isinstance(embedder.inner, LocalOnnxEmbedder)
    assert embedder.model_name == LOCAL_MODEL_NAME
    assert embedder.dim == 384
    assert embedder.max_entries == 10_000


def test_build_local_without_cache_and_by_name() -> None:
    embedder = build_embedder(
        settings(
            aegis_embedding_provider="local",
            aegis_embedding_cache_size=0,
            aegis_embedding_model=LOCAL_MODEL_NAME,
        )
    )
    assert isinstance(embedder, LocalOnnxEmbedder)
    upstream = build_embedder(settings(aegis_embedding_model="all-MiniLM-L6-v2"))
    assert upstream.model_name == LOCAL_MODEL_NAME


def test_build_local_unknown_model_is_an_error() -> None:
    with pytest.raises(EmbeddingError, match="not available with the local provider"):
        build_embedder(settings(aegis_embedding_model="text-embedding-3-small"))


def test_build_openai_requires_key() -> None:
    with pytest.raises(EmbeddingError) as info:
        build_embedder(settings(aegis_embedding_provider="openai"))
    assert str(info.value) == (
        "OPENAI_API_KEY is required for embeddings when AEGIS_EMBEDDING_PROVIDER=openai"
    )


def test_build_openai(fake_openai: FakeOpenAI) -> None:
    embedder = build_embedder(
        settings(
            aegis_embedding_provider="openai",
            openai_api_key=API_KEY,
            openai_base_url=fake_openai.base_url,
            aegis_embedding_cache_size=5,
        )
    )
    assert isinstance(embedder, CachedEmbedder)
    assert isinstance(embedder.inner, OpenAIEmbedder)
    assert embedder.model_name == "text-embedding-3-small"
    assert embedder.inner.url == f"{fake_openai.base_url}/embeddings"
    embedder.embed(["once", "once"])
    embedder.embed(["once"])
    assert len(fake_openai.requests) == 1
    embedder.inner.close()
