"""Corpus files and cached embeddings for the benchmark suite.

Embedding a million memories with the bundled model takes about half an hour on two cores,
so the vectors are computed once per (corpus seed, size, model) and kept in
``benchmarks/.cache/`` (not committed). They are the model's real vectors for the corpus
texts, computed exactly as the server computes them (``LocalOnnxEmbedder.embed``), so a
query embedded by the server finds what it would find in production.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from corpus import CorpusSpec, Item, generate

from aegis_memory.embeddings.local import LOCAL_MODEL_NAME, LocalOnnxEmbedder

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
_CHUNK = 2048


def corpus_vectors(
    spec: CorpusSpec, items: list[Item], *, log: bool = True
) -> tuple[np.ndarray, float | None]:
    """The model's vectors for ``items`` (float32, L2-normalised, one row per item).

    Returns the vectors and, when they had to be computed now, the embedding rate in
    texts per second (``None`` when they came from the cache). A cached smaller corpus of the
    same seed is a prefix of this one, so its vectors are reused.
    """
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    path = CACHE_DIR / f"vectors-{LOCAL_MODEL_NAME}-seed{spec.seed}-n{spec.n}.npy"
    for cached in sorted(CACHE_DIR.glob(f"vectors-{LOCAL_MODEL_NAME}-seed{spec.seed}-n*.npy")):
        vecs = np.load(cached, mmap_mode="r")
        if len(vecs) >= len(items):
            # A smaller corpus of the same seed is a prefix of a larger one.
            return np.ascontiguousarray(vecs[: len(items)]), None
    # Reuse the vectors of the largest cached prefix.
    out = np.lib.format.open_memmap(
        CACHE_DIR / (path.name + ".partial"), mode="w+", dtype=np.float32,
        shape=(len(items), 384),
    )
    done = 0
    for other in sorted(CACHE_DIR.glob(f"vectors-{LOCAL_MODEL_NAME}-seed{spec.seed}-n*.npy")):
        prev = np.load(other, mmap_mode="r")
        take = min(len(prev), len(items))
        if take > done:
            out[:take] = prev[:take]
            done = take
    embedder = LocalOnnxEmbedder()
    start = time.perf_counter()
    todo = len(items) - done
    for lo in range(done, len(items), _CHUNK):
        hi = min(lo + _CHUNK, len(items))
        out[lo:hi] = embedder.embed([it.content for it in items[lo:hi]])
        if log and (hi // _CHUNK) % 25 == 0:
            rate = (hi - done) / (time.perf_counter() - start)
            print(f"  embedded {hi:,}/{len(items):,} ({rate:,.0f}/s)", flush=True)
    elapsed = time.perf_counter() - start
    out.flush()
    del out
    (CACHE_DIR / (path.name + ".partial")).rename(path)
    return np.asarray(np.load(path, mmap_mode="r")), (todo / elapsed if todo else None)


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1])
    spec = CorpusSpec(n=n)
    items = generate(spec)
    vecs, rate = corpus_vectors(spec, items)
    print(vecs.shape, rate)
