"""Local sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime, no torch.

Why local by default: a self-hosted memory engine should work with no API key and no network.
The model (about 23 MB) ships inside the package, is loaded with ``importlib.resources`` (so
an installed wheel works the same as a source checkout) and never downloads anything, which is
why ``HF_HUB_OFFLINE=1`` changes nothing here. The graph ends at ``last_hidden_state``; mean
pooling over the attention mask and L2 normalisation are done in numpy, exactly as
sentence-transformers does for this model. ``scripts/export_minilm_onnx.py`` builds the files.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aegis_memory.embeddings.base import EmbeddingError, ensure_text_batch, l2_normalize

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

LOCAL_MODEL_NAME = "all-MiniLM-L6-v2-int8"
"""Name of the model shipped with the package (and the ``model_name`` of its vectors)."""

_MODEL_FILE = "model.onnx"
_TOKENIZER_FILE = "tokenizer.json"
_METADATA_FILE = "model.json"


def default_model_dir() -> Traversable:
    """Location of the bundled model inside the installed package (a wheel or the src tree)."""
    return resources.files("aegis_memory.embeddings") / "models" / LOCAL_MODEL_NAME


def default_threads() -> int:
    """CPU threads per embedder: at most 2, because the server shares the CPU with request
    handling and more threads buy little for the short sequences memories usually are."""
    return max(1, min(2, os.cpu_count() or 1))


class LocalOnnxEmbedder:
    """Embed texts with the bundled all-MiniLM-L6-v2 int8 ONNX model.

    The onnxruntime session is created lazily on the first ``embed`` (or ``warmup``) so that
    importing or constructing the embedder is cheap (CLI start-up, tests that never embed).
    ``model_name`` and ``dim`` come from ``model.json`` and are known right away.

    Threads: ``threads`` is both the session's intra-op thread count and, for calls with
    several texts, the number of texts run side by side (each text runs alone, see
    ``embed``, and one short text keeps two cores only partly busy). Intra-op threads do not
    spin-wait between runs, so an idle embedder leaves the CPU to the rest of the server.

    Thread safety: one instance may be shared by many threads. Loading is guarded by a lock;
    onnxruntime's ``InferenceSession.run`` and the tokenizer's encode calls are safe to call
    concurrently.

    Args:
        model_dir: directory with ``model.onnx``, ``tokenizer.json`` and ``model.json``;
            defaults to the copy bundled in the package.
        threads: CPU threads to use (default ``min(2, os.cpu_count())``).
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        if threads is not None and threads < 1:
            raise ValueError("threads must be >= 1")
        self._dir: Traversable = Path(model_dir) if model_dir is not None else default_model_dir()
        self._threads = threads if threads is not None else default_threads()
        self._metadata = self._read_metadata()
        self.model_name: str = str(self._metadata.get("name", LOCAL_MODEL_NAME))
        self.dim: int = int(self._metadata.get("dim", 384))
        self.max_seq_length: int = int(self._metadata.get("max_seq_length", 256))
        self._lock = threading.Lock()
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._input_names: tuple[str, ...] = ()
        self._pool: ThreadPoolExecutor | None = None

    @property
    def threads(self) -> int:
        """The thread count the embedder uses (or will use)."""
        return self._threads

    def close(self) -> None:
        """Stop the worker threads used for multi-text calls (the session stays usable)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def __repr__(self) -> str:
        loaded = "loaded" if self._session is not None else "not loaded"
        return f"LocalOnnxEmbedder({self.model_name!r}, dim={self.dim}, {loaded})"

    def _file(self, name: str) -> Traversable:
        """A model file, with a clear error if the package was installed without it."""
        item = self._dir / name
        if not item.is_file():
            raise EmbeddingError(
                f"local embedding model file {name!r} not found in {self._dir}; "
                "reinstall aegis-memory or run scripts/export_minilm_onnx.py"
            )
        return item

    def _read_metadata(self) -> dict[str, Any]:
        """Read ``model.json`` (name, dim, max_seq_length, sha256)."""
        try:
            data = json.loads(self._file(_METADATA_FILE).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise EmbeddingError(
                f"local embedding model metadata is not valid JSON: {exc}"
            ) from exc
        if not isinstance(data, dict):
            raise EmbeddingError("local embedding model metadata must be a JSON object")
        return data

    def _load(self) -> onnxruntime.InferenceSession:
        """Create the tokenizer and the session once; later calls return the cached session."""
        session = self._session
        if session is not None:
            return session
        with self._lock:
            if self._session is not None:
                return self._session
            try:
                import onnxruntime as ort
                from tokenizers import Tokenizer
            except ImportError as exc:
                raise EmbeddingError(
                    f"local embeddings need onnxruntime and tokenizers ({exc}); "
                    "install them with: pip install 'aegis-memory[server]'"
                ) from exc

            model_bytes = self._file(_MODEL_FILE).read_bytes()
            expected = self._metadata.get("sha256")
            # A git-LFS pointer or a truncated copy would otherwise fail with an opaque
            # protobuf error deep inside onnxruntime.
            if expected and hashlib.sha256(model_bytes).hexdigest() != expected:
                raise EmbeddingError(
                    f"local embedding model {self._dir / _MODEL_FILE} is corrupt "
                    "(sha256 does not match model.json)"
                )
            tokenizer = Tokenizer.from_str(self._file(_TOKENIZER_FILE).read_text(encoding="utf-8"))
            # Truncate to the model's trained length; never pad (see embed). The shipped
            # tokenizer.json would otherwise truncate at 128 and pad everything to 128.
            tokenizer.enable_truncation(max_length=self.max_seq_length)
            tokenizer.no_padding()

            options = ort.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3  # warnings about unused initialisers are noise
            # Spinning buys ~5% latency for ~15% more CPU; the server needs that CPU more.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            try:
                session = ort.InferenceSession(
                    model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime raises its own untyped exceptions
                raise EmbeddingError(f"could not load the local embedding model: {exc}") from exc

            self._input_names = tuple(i.name for i in session.get_inputs())
            self._tokenizer = tokenizer
            self._session = session
            return session

    def warmup(self) -> None:
        """Load the model and run one inference, so the first real request is not slow."""
        self.embed(["warm-up"])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``; see ``Embedder.embed``.

        Texts are tokenised together (truncated to ``max_seq_length`` tokens) but run through
        the encoder one at a time, each at its exact length. Why not padded batches: the int8
        model quantises activations dynamically with one scale per tensor, so inside a batch
        a text's vector would depend on the other texts and on the padding (measured: cosine
        down to 0.96 between the same text embedded alone and in a batch). One text per run
        makes every vector reproducible and independent of how callers group texts (which
        the cache relies on), and wastes nothing on padding. Several texts run side by side
        on ``threads`` workers, which on 2 cores is faster than padded batches
        (see benchmarks/embedding_bench.py).
        """
        batch = ensure_text_batch(texts)
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        session = self._load()
        assert self._tokenizer is not None  # set together with the session
        # encode_batch_fast (tokenizers >= 0.20) skips character offsets, which we never use.
        encode = getattr(self._tokenizer, "encode_batch_fast", self._tokenizer.encode_batch)
        encodings = encode(batch, add_special_tokens=True)
        pool = self._worker_pool() if len(encodings) > 1 else None
        if pool is None:
            rows = [self._run_one(session, e.ids, e.type_ids) for e in encodings]
        else:
            # onnxruntime releases the GIL in run(), so the texts really run in parallel.
            rows = list(pool.map(lambda e: self._run_one(session, e.ids, e.type_ids), encodings))
        return l2_normalize(np.stack(rows))

    def _worker_pool(self) -> ThreadPoolExecutor | None:
        """The executor that runs several texts at once, created on first need (None when
        ``threads`` is 1)."""
        if self._threads < 2:
            return None
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self._threads, thread_name_prefix="aegis-embed"
                )
            return self._pool

    def _run_one(
        self, session: onnxruntime.InferenceSession, ids: list[int], type_ids: list[int]
    ) -> np.ndarray:
        """Encode one tokenised text and mean-pool its token vectors (no padding, so the
        attention-mask-weighted mean of sentence-transformers is the plain mean here)."""
        input_ids = np.asarray(ids, dtype=np.int64)[None, :]
        available = {
            "input_ids": input_ids,
            "attention_mask": np.ones_like(input_ids),
            "token_type_ids": np.asarray(type_ids, dtype=np.int64)[None, :],
        }
        try:
            feed = {name: available[name] for name in self._input_names}
        except KeyError as exc:
            raise EmbeddingError(f"local embedding model expects an unknown input {exc}") from exc
        try:
            hidden = session.run(None, feed)[0]
        except Exception as exc:  # onnxruntime's exceptions share no useful base class
            raise EmbeddingError(f"local embedding inference failed: {exc}") from exc
        return np.asarray(hidden[0], dtype=np.float32).mean(axis=0)
