"""Embeddings from the OpenAI HTTP API (or any server that speaks the same protocol).

Why a hand-written client instead of the ``openai`` SDK: httpx is already a core dependency,
the protocol is one POST, and owning the retry loop lets us give the operator one clear
message per failure mode. Because only the wire protocol is assumed, ``base_url`` can point at
OpenAI-compatible servers (Azure-style proxies, vLLM, Ollama, LiteLLM) too.

Protocol: ``POST {base_url}/embeddings`` with JSON ``{"model", "input": [...]}`` and, when a
non-native size is requested, ``"dimensions"``; the reply's ``data[i].embedding`` lists are
matched to the inputs by ``data[i].index``.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np

from aegis_memory.embeddings.base import EmbeddingError, ensure_text_batch, l2_normalize

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "text-embedding-3-small"

KNOWN_MODEL_DIMS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
"""Native output sizes of OpenAI's embedding models, so ``dim`` is known without a request."""

AUTH_FAILED_MESSAGE = "OpenAI embeddings: authentication failed (check OPENAI_API_KEY)"
_DIMENSION_PROBE_TEXT = "dimension probe"
_sleep = time.sleep  # module-level so tests can record the waits instead of sleeping


def _error_detail(response: httpx.Response) -> str:
    """The provider's own explanation (``error.message``), shortened, or the raw body start."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"][:300]
        if isinstance(error, str):
            return error[:300]
    text = response.text.strip()
    return text[:300] if text else response.reason_phrase


def _retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (``retry-after-ms``, ``Retry-After`` as seconds or
    an HTTP date), or None when it did not say."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class OpenAIEmbedder:
    """Embed texts through the OpenAI embeddings endpoint.

    The vector size (``dim``) is, in order of preference: the ``dim`` argument (then sent as
    ``"dimensions"`` unless it equals the model's native size, since older models such as
    ada-002 reject that field); the native size of a known model (``KNOWN_MODEL_DIMS``);
    otherwise it is learned from the first response. Reading ``dim`` before any embedding
    for an unknown model therefore makes one small probe request.

    Failures: HTTP 429 and 5xx responses and network errors are retried up to
    ``max_attempts`` tries in all, waiting as long as ``Retry-After`` says (capped at
    ``max_retry_after``) or else with exponential backoff; 401 and other client errors are
    not retried. Every failure surfaces as ``EmbeddingError`` with a message for humans.
    The API key never appears in messages.

    Thread safety: the underlying ``httpx.Client`` is shared and safe across threads.
    Call ``close()`` (or use ``with``) to release its connections.

    Args:
        api_key: OpenAI API key, sent as ``Authorization: Bearer``.
        base_url: API root, default ``https://api.openai.com/v1``.
        model: embedding model name; also this embedder's ``model_name``.
        dim: requested vector size (see above).
        timeout: seconds per HTTP request.
        batch_size: inputs per request (OpenAI accepts up to 2048).
        max_attempts: tries per request, including the first.
        backoff: first backoff delay in seconds; doubles per retry, with jitter.
        max_retry_after: upper bound on any single wait, in seconds.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        model: str = DEFAULT_MODEL,
        dim: int | None = None,
        timeout: float = 30,
        batch_size: int = 256,
        *,
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 60.0,
    ) -> None:
        if not api_key:
            raise EmbeddingError("OpenAI embeddings: an API key is required (OPENAI_API_KEY)")
        if dim is not None and dim < 1:
            raise ValueError("dim must be a positive integer")
        if batch_size < 1 or batch_size > 2048:
            raise ValueError("batch_size must be between 1 and 2048")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.model = model
        self._url = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/embeddings"
        self._native_dim = KNOWN_MODEL_DIMS.get(model)
        self._requested_dim = dim
        self._dim: int | None = dim if dim is not None else self._native_dim
        self._send_dimensions = dim is not None and dim != self._native_dim
        self._timeout = timeout
        self._batch_size = batch_size
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._max_retry_after = max_retry_after
        self._dim_lock = threading.Lock()
        self._client = httpx.Client(
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {api_key}",
                "User-Agent": "aegis-memory",
            },
        )

    @property
    def model_name(self) -> str:
        """The OpenAI model name: vectors of different models are never mixed."""
        return self.model

    @property
    def dim(self) -> int:
        """Vector size; for an unknown model without ``dim`` this makes one probe request."""
        if self._dim is None:
            self._embed_batch([_DIMENSION_PROBE_TEXT])
        assert self._dim is not None  # set by _embed_batch or it raised
        return self._dim

    @property
    def url(self) -> str:
        """The full embeddings endpoint URL requests go to."""
        return self._url

    def __repr__(self) -> str:
        return f"OpenAIEmbedder({self.model!r}, dim={self._dim}, url={self._url!r})"

    def close(self) -> None:
        """Close pooled HTTP connections."""
        self._client.close()

    def __enter__(self) -> OpenAIEmbedder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in requests of at most ``batch_size`` inputs; see ``Embedder``."""
        batch = ensure_text_batch(texts)
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._embed_batch(batch[start : start + self._batch_size])
            for start in range(0, len(batch), self._batch_size)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _embed_batch(self, inputs: list[str]) -> np.ndarray:
        """One request: send, validate, reorder by index, learn/check dim, normalise."""
        payload: dict[str, Any] = {"model": self.model, "input": inputs}
        if self._send_dimensions:
            payload["dimensions"] = self._requested_dim
        response = self._post(payload)
        matrix = self._parse(response, len(inputs))
        with self._dim_lock:
            if self._dim is None:
                self._dim = int(matrix.shape[1])
        if matrix.shape[1] != self._dim:
            raise EmbeddingError(
                f"OpenAI embeddings: model {self.model!r} returned {matrix.shape[1]}-dimensional "
                f"vectors, expected {self._dim}"
            )
        return l2_normalize(matrix)

    def _post(self, payload: dict[str, Any]) -> httpx.Response:
        """POST with retries on 429, 5xx and network errors; raise EmbeddingError otherwise."""
        reason = "no attempt made"
        for attempt in range(1, self._max_attempts + 1):
            delay: float | None = None
            try:
                response = self._client.post(self._url, json=payload)
            except httpx.TimeoutException:
                reason = f"request timed out after {self._timeout:g}s"
            except httpx.TransportError as exc:
                reason = f"could not reach {self._url}: {exc or type(exc).__name__}"
            else:
                status = response.status_code
                if status == 200:
                    return response
                if status == 401:
                    raise EmbeddingError(AUTH_FAILED_MESSAGE)
                if status == 429:
                    reason = f"rate limited (HTTP 429): {_error_detail(response)}"
                    delay = _retry_after_seconds(response)
                elif status >= 500:
                    reason = f"server error (HTTP {status}): {_error_detail(response)}"
                    delay = _retry_after_seconds(response)
                else:
                    raise EmbeddingError(
                        f"OpenAI embeddings: request rejected (HTTP {status}): "
                        f"{_error_detail(response)}"
                    )
            if attempt < self._max_attempts:
                if delay is None:
                    delay = self._backoff * (2 ** (attempt - 1)) * (0.5 + random.random() / 2)
                _sleep(min(delay, self._max_retry_after))
        raise EmbeddingError(
            f"OpenAI embeddings: {reason} (gave up after {self._max_attempts} attempts)"
        )

    def _parse(self, response: httpx.Response, expected: int) -> np.ndarray:
        """Turn ``data[*].embedding`` into a float32 matrix in input order, or raise."""
        try:
            body = response.json()
        except ValueError as exc:
            raise EmbeddingError("OpenAI embeddings: malformed response (not JSON)") from exc
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != expected:
            got = len(data) if isinstance(data, list) else "no"
            raise EmbeddingError(
                f"OpenAI embeddings: malformed response ({got} embeddings for {expected} inputs)"
            )
        rows: list[Any] = [None] * expected
        for position, item in enumerate(data):
            if not isinstance(item, dict) or not isinstance(item.get("embedding"), list):
                raise EmbeddingError("OpenAI embeddings: malformed response (missing embedding)")
            index = item.get("index", position)
            if not isinstance(index, int) or not 0 <= index < expected or rows[index] is not None:
                raise EmbeddingError(f"OpenAI embeddings: malformed response (bad index {index!r})")
            rows[index] = item["embedding"]
        try:
            matrix = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise EmbeddingError(
                "OpenAI embeddings: malformed response (embeddings are not equal-length "
                "lists of numbers)"
            ) from exc
        if matrix.ndim != 2 or matrix.shape[1] == 0 or not np.isfinite(matrix).all():
            raise EmbeddingError("OpenAI embeddings: malformed response (invalid vectors)")
        return matrix
