"""Text embeddings for Aegis Memory: a local ONNX model by default, OpenAI optionally.

Everything the rest of the code needs is re-exported here; ``build_embedder`` turns the
settings into a ready embedder so that the server and the CLI choose providers the same way.
Provider modules import their heavy dependencies (onnxruntime, tokenizers) only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aegis_memory.embeddings.base import Embedder, EmbeddingError
from aegis_memory.embeddings.cache import CachedEmbedder
from aegis_memory.embeddings.local import LOCAL_MODEL_NAME, LocalOnnxEmbedder
from aegis_memory.embeddings.openai import DEFAULT_MODEL as DEFAULT_OPENAI_MODEL
from aegis_memory.embeddings.openai import KNOWN_MODEL_DIMS, OpenAIEmbedder

if TYPE_CHECKING:
    from aegis_memory.config import Settings

__all__ = [
    "DEFAULT_OPENAI_MODEL",
    "KNOWN_MODEL_DIMS",
    "LOCAL_MODEL_ALIASES",
    "LOCAL_MODEL_NAME",
    "CachedEmbedder",
    "Embedder",
    "EmbeddingError",
    "LocalOnnxEmbedder",
    "OpenAIEmbedder",
    "build_embedder",
]

LOCAL_MODEL_ALIASES = frozenset(
    {LOCAL_MODEL_NAME, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
)
"""Values of AEGIS_EMBEDDING_MODEL that select the bundled model (people naturally write the
upstream name; the vectors are recorded under ``LOCAL_MODEL_NAME`` either way)."""


def build_embedder(settings: Settings) -> Embedder:
    """Create the embedder the settings ask for, wrapped in an LRU cache when enabled.

    ``aegis_embedding_provider="local"`` gives the bundled all-MiniLM-L6-v2 int8 model (it
    loads lazily on the first embedding); ``"openai"`` gives ``OpenAIEmbedder`` with
    ``aegis_embedding_model`` (default text-embedding-3-small) and ``openai_base_url``.
    ``aegis_embedding_cache_size`` > 0 wraps the result in ``CachedEmbedder``.

    Raises:
        EmbeddingError: the configuration cannot work (no OpenAI key, unknown local model,
            unknown provider); raised here so the server fails at start-up, not on first use.
    """
    provider = settings.aegis_embedding_provider
    model = settings.aegis_embedding_model
    embedder: Embedder
    if provider == "local":
        if model is not None and model.strip() not in LOCAL_MODEL_ALIASES:
            raise EmbeddingError(
                f"AEGIS_EMBEDDING_MODEL={model!r} is not available with the local provider, "
                f"which ships only {LOCAL_MODEL_NAME!r}; unset AEGIS_EMBEDDING_MODEL or set "
                "AEGIS_EMBEDDING_PROVIDER=openai"
            )
        embedder = LocalOnnxEmbedder()
    elif provider == "openai":
        if not settings.openai_api_key:
            raise EmbeddingError(
                "OPENAI_API_KEY is required for embeddings when AEGIS_EMBEDDING_PROVIDER=openai"
            )
        embedder = OpenAIEmbedder(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            model=model or DEFAULT_OPENAI_MODEL,
        )
    else:
        raise EmbeddingError(
            f"AEGIS_EMBEDDING_PROVIDER={provider!r} is not supported (use 'local' or 'openai')"
        )
    if settings.aegis_embedding_cache_size > 0:
        return CachedEmbedder(embedder, max_entries=settings.aegis_embedding_cache_size)
    return embedder
