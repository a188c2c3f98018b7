"""An in-memory LRU cache in front of any embedder.

Why: agents re-send the same texts constantly (repeated queries, identical memories written by
several agents, retries after a failed request). Embedding is the most expensive step of a
write or a search (milliseconds locally, a paid network round trip with OpenAI), while a
cached 384-float vector costs about 1.5 KB. Keys are ``(model_name, sha256(text))`` so that
switching models can never serve a vector from the wrong space, and the texts themselves are
not kept in memory.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from aegis_memory.embeddings.base import Embedder, EmbeddingError, ensure_text_batch

CacheKey = tuple[str, bytes]


class CachedEmbedder:
    """LRU-cached wrapper with the same ``Embedder`` interface as the embedder it wraps.

    Each call looks every text up, sends only the misses (each distinct text once) to the
    inner embedder in a single ``embed`` call, stores the results and answers in input order.

    Counters: every input text counts once, as a hit if its vector was cached when the call
    began and as a miss otherwise (so a text repeated inside one uncached call is two misses
    but is embedded once).

    Thread safety: the table and counters are guarded by a lock that is *not* held while the
    inner embedder runs, so concurrent calls proceed in parallel; two threads missing the same
    text at the same moment may both embed it, which is harmless.

    Args:
        inner: the embedder to cache.
        max_entries: vectors kept; the least recently used are evicted beyond this.
    """

    def __init__(self, inner: Embedder, max_entries: int = 10_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1 (build no cache to disable caching)")
        self.inner = inner
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def model_name(self) -> str:
        """The inner embedder's model name."""
        return self.inner.model_name

    @property
    def dim(self) -> int:
        """The inner embedder's vector size."""
        return self.inner.dim

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return (
            f"CachedEmbedder({self.inner!r}, entries={len(self)}/{self.max_entries}, "
            f"hits={self.hits}, misses={self.misses})"
        )

    def clear(self) -> None:
        """Drop every cached vector (counters are kept)."""
        with self._lock:
            self._entries.clear()

    def _key(self, text: str) -> CacheKey:
        return (self.inner.model_name, hashlib.sha256(text.encode("utf-8")).digest())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``, serving repeats from the cache; see ``Embedder.embed``."""
        batch = ensure_text_batch(texts)
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = [self._key(text) for text in batch]
        found: dict[CacheKey, np.ndarray] = {}
        missing: dict[CacheKey, str] = {}  # insertion-ordered, one entry per distinct text
        with self._lock:
            for key, text in zip(keys, batch, strict=True):
                vector = self._entries.get(key)
                if vector is not None:
                    self._entries.move_to_end(key)
                    found[key] = vector
                    self.hits += 1
                else:
                    missing.setdefault(key, text)
                    self.misses += 1

        if missing:
            fresh = np.asarray(self.inner.embed(list(missing.values())), dtype=np.float32)
            if fresh.shape != (len(missing), self.dim):
                raise EmbeddingError(
                    f"{self.inner.model_name}: embedder returned shape {fresh.shape}, expected "
                    f"{(len(missing), self.dim)}"
                )
            with self._lock:
                for key, row in zip(missing, fresh, strict=True):
                    vector = row.copy()
                    vector.flags.writeable = False  # shared by every later hit
                    found[key] = vector
                    self._entries[key] = vector
                    self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)

        # np.stack copies, so callers may modify the result without touching the cache.
        return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)
