"""The embedder contract shared by the local ONNX model, the OpenAI client and the cache.

Every embedder turns a batch of texts into an ``(n, dim)`` float32 matrix whose rows are
L2-normalised, so that the vector index can use inner product as cosine similarity no matter
which provider produced the vectors.

``embed`` is deliberately synchronous: the local model is CPU-bound work that must not run on
the event loop anyway, so the async service calls it through a worker thread
(``asyncio.to_thread``); one sync interface then serves the server, the CLI and the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class EmbeddingError(Exception):
    """An embedding could not be produced; ``str(error)`` is meant to be shown to a human.

    Raised for configuration mistakes (missing API key, unknown model, missing model files)
    and for provider failures (authentication, rate limits that outlast the retries, malformed
    responses). Programming errors (wrong argument types) stay ``TypeError``/``ValueError``.
    """


class Embedder(Protocol):
    """Anything that embeds texts into L2-normalised float32 vectors of a fixed size.

    Attributes:
        model_name: identifies the vector space (e.g. ``"all-MiniLM-L6-v2-int8"``). Stored
            with each vector so that vectors from different models are never compared.
        dim: length of every vector this embedder returns.
    """

    # Read-only properties, so that both plain attributes (the local model) and computed
    # values (OpenAI learns its dimension from the first response) satisfy the protocol.
    # Not runtime_checkable: on Python 3.11 isinstance() would evaluate ``dim``, which for
    # OpenAI with an unknown model means a network request.
    @property
    def model_name(self) -> str:
        """Identifier of the vector space."""
        ...

    @property
    def dim(self) -> int:
        """Length of the vectors."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` in order.

        Returns:
            ``float32`` array of shape ``(len(texts), dim)``, each row of unit L2 norm
            (an empty input gives shape ``(0, dim)``).

        Raises:
            EmbeddingError: the provider failed or is misconfigured.
        """
        ...


def ensure_text_batch(texts: Sequence[str]) -> list[str]:
    """Validate a batch and return it as a list.

    A bare ``str`` is itself a ``Sequence[str]``; embedding it would silently embed each
    character, so it is rejected instead.
    """
    if isinstance(texts, str | bytes):
        raise TypeError("embed() takes a sequence of strings, not a single string")
    batch = list(texts)
    for index, text in enumerate(batch):
        if not isinstance(text, str):
            raise TypeError(f"embed() item {index} is {type(text).__name__}, expected str")
    return batch


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit length (float32); all-zero rows stay zero instead of NaN."""
    matrix = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)
