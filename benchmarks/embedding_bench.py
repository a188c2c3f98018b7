"""Benchmark of the local embedder: latency, throughput, and int8-vs-fp32 quality.

Why these measurements: a memory write or a search embeds one short text, so single-text
latency (p50/p95) is what users feel; imports and re-embedding embed many, so a batch of 50
gives throughput. Both are measured end to end through ``LocalOnnxEmbedder.embed``
(tokenisation, inference, pooling), with 1 and 2 onnxruntime intra-op threads, and each
figure is the median over ``--runs`` repetitions, because the machines this runs on are small
and shared. A third timing runs the same ONNX model on length-sorted, padded batches of up to
32 to show what the one-text-per-run design of the embedder costs or saves.

Quality compares the shipped int8 model with the torch fp32 original (sentence-transformers)
on ~500 varied texts (mean/min cosine) and on a retrieval set (overlap of the top 10
neighbours of 50 queries among those texts). Torch is not a project dependency, so the
reference vectors come from the export venv::

    .venv/bin/python benchmarks/embedding_bench.py --reference-python /tmp/exportvenv/bin/python

which runs ``scripts/export_minilm_onnx.py --reference-vectors`` there; or in two steps::

    .venv/bin/python benchmarks/embedding_bench.py --write-sentences /tmp/s.json --skip-latency
    /tmp/exportvenv/bin/python scripts/export_minilm_onnx.py --sentences /tmp/s.json \
        --reference-vectors /tmp/ref.npy
    .venv/bin/python benchmarks/embedding_bench.py --reference-vectors /tmp/ref.npy

Without a reference the quality part is skipped (``make bench-embed`` runs latency only).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

try:
    from aegis_memory.embeddings import LocalOnnxEmbedder
    from aegis_memory.embeddings.local import default_model_dir
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from aegis_memory.embeddings import LocalOnnxEmbedder
    from aegis_memory.embeddings.local import default_model_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPORT_SCRIPT = REPO_ROOT / "scripts" / "export_minilm_onnx.py"
SEED = 20251125
N_CORPUS = 500
N_QUERIES = 50
TOP_K = 10

# --------------------------------------------------------------------------- texts

_SUBJECTS = [
    "The user",
    "My manager",
    "Alice",
    "Bob",
    "The planner agent",
    "Our team",
    "The customer",
    "The on-call engineer",
    "Dr. Nguyen",
    "The finance bot",
    "Grandma",
    "The landlord",
]
_VERBS = [
    "prefers",
    "dislikes",
    "asked about",
    "scheduled",
    "cancelled",
    "approved",
    "reported",
    "forgot",
    "is allergic to",
    "wants to learn",
    "complained about",
    "recommended",
]
_OBJECTS = [
    "dark mode in the editor",
    "the Postgres migration",
    "a flight to Berlin on Friday",
    "the quarterly revenue report",
    "vegetarian restaurants",
    "the memory leak in the worker",
    "a meeting with the design team",
    "Python type hints",
    "the HNSW index rebuild",
    "two tickets for the jazz concert",
    "peanuts and shellfish",
    "the Kubernetes upgrade",
    "morning stand-ups",
    "the new pricing page",
    "Spanish lessons",
    "the TLS certificate",
    "hiking in the Alps",
    "the invoice from March",
    "remote work on Fridays",
    "the API rate limit",
]
_TAILS = [
    "",
    ".",
    " yesterday.",
    " because of the outage.",
    " and wants a follow-up next week.",
    " — marked urgent.",
    " again!",
    " (see ticket #4521).",
    " 🎉",
    " before the deadline.",
]
_HANDWRITTEN = [
    "Always answer in French unless the user writes in English.",
    "Never store credit card numbers in long-term memory.",
    "The deployment failed because the database migration timed out.",
    "Photosynthesis converts light energy into chemical energy.",
    "Stock markets fell sharply after the central bank raised interest rates.",
    "In 1969, Apollo 11 landed the first humans on the Moon.",
    "The recipe needs two cups of flour, one egg and a pinch of salt.",
    "Quantum entanglement links the states of two particles regardless of distance.",
    "Handoff: agent-planner passes 'book flights' to agent-travel with a budget of 800 EUR.",
    "Vote: three agents approved the plan, one rejected it, two abstained.",
    "Progress: 7 of 12 subtasks done; blocked on the payment provider's sandbox.",
    "The cat knocked a glass off the kitchen table this morning.",
    "Our SLO is 99.9% availability measured over 30 days.",
    "She whispered that the meeting had been moved to Thursday afternoon.",
    "Le chat dort sur le canapé depuis ce matin.",
    "Der Zug nach Berlin hat zwanzig Minuten Verspätung.",
    "El cliente pidió un reembolso por el pedido duplicado.",
    "東京は日本の首都です。",
    "Café, naïve, façade, déjà vu, jalapeño, Zürich.",
    "Let's celebrate the release! 🎉🚀🔥",
    "def add(a: int, b: int) -> int:\n    return a + b",
    "SELECT id, content FROM memories WHERE scope = 'agent' ORDER BY created_at DESC;",
    "Error: connection refused (ECONNREFUSED) on 127.0.0.1:5432",
    "2025-11-25T12:00:03Z WARN worker-3 retrying job 8812 after timeout",
    "git rebase -i HEAD~3 && git push --force-with-lease",
    "asdf qwer zxcv 12345 !!!",
    "The mitochondria is the powerhouse of the cell.",
    "Shakespeare wrote Hamlet around the year 1600.",
    "The user's daughter starts school in September.",
    "Remind me to water the plants every Tuesday.",
]
_KEYWORDS = [
    "ok",
    "?",
    "pizza",
    "Alice",
    "allergies",
    "dark mode",
    "password reset",
    "vim",
    "Berlin",
    "flights",
    "budget",
    "TLS",
    "deadline",
    "meeting notes",
    "refund",
    "Kubernetes",
    "jazz",
]
_QUERIES = [
    "What does the user prefer in their editor?",
    "Which foods is Alice allergic to?",
    "When is the flight to Berlin?",
    "Why did the deployment fail?",
    "What did the manager say about the revenue report?",
    "Who wants to learn Spanish?",
    "Is there a problem with the worker's memory?",
    "What happened to the index rebuild?",
    "Which concert tickets were bought?",
    "What is our availability target?",
    "How many subtasks are finished?",
    "What should never be stored in memory?",
    "Which language should answers be in?",
    "What did the cat do?",
    "When does the daughter start school?",
    "What is the API rate limit?",
    "Who approved the plan?",
    "What needs to happen before the certificate expires?",
    "Which restaurants does the user like?",
    "What is blocking the payment work?",
    "Tell me about the Kubernetes upgrade.",
    "What did the landlord complain about?",
    "Any updates on the Postgres migration?",
    "Where does the user like to hike?",
    "What is in the March invoice?",
    "Which meetings were cancelled?",
    "What are the rules about remote work?",
    "What did Dr. Nguyen recommend?",
    "Which tickets are urgent?",
    "What did the finance bot report?",
    "How do I add two numbers in Python?",
    "Which query lists the agent's memories?",
    "Why can't the app reach the database?",
    "What does the recipe need?",
    "When did humans land on the Moon?",
    "What converts light into chemical energy?",
    "What happened on the stock market?",
    "Is the train to Berlin late?",
    "What did the customer ask for?",
    "What is the capital of Japan?",
    "Which plants need watering?",
    "What did the on-call engineer report?",
    "Who forgot the stand-up?",
    "Does Bob like type hints?",
    "What was discussed with the design team?",
    "Which tasks are overdue?",
    "What is the budget for the trip?",
    "How do I force-push safely?",
    "What did the worker log say?",
    "What does the team think about pricing?",
]


def build_texts(seed: int = SEED) -> tuple[list[str], list[str]]:
    """The quality corpus (500 varied texts) and 50 retrieval queries, deterministically.

    Mix: templated agent memories (the common case), hand-written sentences across domains,
    languages and formats (code, SQL, logs, emoji), bare keywords, and long paragraphs that
    exceed the 256-token limit.
    """
    rng = random.Random(seed)
    corpus: list[str] = list(_HANDWRITTEN) + list(_KEYWORDS)
    for _ in range(20):  # long paragraphs, some beyond 256 tokens
        corpus.append(" ".join(rng.choice(_HANDWRITTEN) for _ in range(rng.randint(4, 30))))
    while len(corpus) < N_CORPUS:
        corpus.append(
            f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
            f"{rng.choice(_TAILS)}"
        )
    return corpus[:N_CORPUS], list(_QUERIES[:N_QUERIES])


# --------------------------------------------------------------------------- latency


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure_embedder(
    threads: int, runs: int, calls: int, singles: list[str], batch: list[str]
) -> dict[str, Any]:
    """Single-text p50/p95 and batch-of-50 latency through ``LocalOnnxEmbedder.embed``."""
    embedder = LocalOnnxEmbedder(threads=threads)
    embedder.warmup()
    for text in singles * 3:  # warm-up: allocator arenas, caches
        embedder.embed([text])
    embedder.embed(batch)
    p50s, p95s, batch_ms = [], [], []
    for _ in range(runs):
        times = []
        for i in range(calls):
            text = singles[i % len(singles)]
            start = time.perf_counter()
            embedder.embed([text])
            times.append((time.perf_counter() - start) * 1000)
        p50s.append(_percentile(times, 50))
        p95s.append(_percentile(times, 95))
        runs_batch = []
        for _ in range(5):
            start = time.perf_counter()
            embedder.embed(batch)
            runs_batch.append((time.perf_counter() - start) * 1000)
        batch_ms.append(statistics.median(runs_batch))
    batch_median = statistics.median(batch_ms)
    return {
        "threads": threads,
        "single_p50_ms": statistics.median(p50s),
        "single_p95_ms": statistics.median(p95s),
        "batch50_ms": batch_median,
        "batch50_texts_per_s": len(batch) / (batch_median / 1000),
    }


def measure_padded_batches(threads: int, runs: int, batch: list[str]) -> dict[str, Any]:
    """The alternative design: length-sorted, padded sub-batches of up to 32 in one run each.

    Reported with the largest difference from one-text-per-run vectors, which is why the
    embedder does not do this (dynamic int8 scales are shared across a batch).
    """
    import onnxruntime as ort
    from tokenizers import Tokenizer

    model_dir = default_model_dir()
    tokenizer = Tokenizer.from_str((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer.enable_truncation(max_length=256)
    tokenizer.no_padding()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        (model_dir / "model.onnx").read_bytes(), options, providers=["CPUExecutionProvider"]
    )

    def embed_padded(texts: list[str]) -> np.ndarray:
        encodings = tokenizer.encode_batch(texts)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        out = np.empty((len(texts), 384), dtype=np.float32)
        for start in range(0, len(texts), 32):
            chunk = order[start : start + 32]
            width = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros_like(ids)
            for row, i in enumerate(chunk):
                ids[row, : len(encodings[i].ids)] = encodings[i].ids
                mask[row, : len(encodings[i].ids)] = 1
            hidden = session.run(
                None,
                {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
            )[0]
            pooled = np.einsum("bsd,bs->bd", hidden, mask.astype(np.float32))
            pooled /= mask.sum(axis=1, keepdims=True)
            out[chunk] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out

    embed_padded(batch)
    batch_ms = []
    for _ in range(runs):
        times = []
        for _ in range(5):
            start = time.perf_counter()
            vectors = embed_padded(batch)
            times.append((time.perf_counter() - start) * 1000)
        batch_ms.append(statistics.median(times))
    exact = LocalOnnxEmbedder(threads=threads).embed(batch)
    median = statistics.median(batch_ms)
    return {
        "threads": threads,
        "batch50_ms": median,
        "batch50_texts_per_s": len(batch) / (median / 1000),
        "min_cosine_vs_one_text_per_run": float((vectors * exact).sum(axis=1).min()),
    }


# --------------------------------------------------------------------------- quality


def reference_via_python(python: str, texts: list[str]) -> np.ndarray:
    """Run the export script's helper mode in another interpreter (one that has torch)."""
    with tempfile.TemporaryDirectory(prefix="embbench-") as tmp:
        sentences = Path(tmp) / "sentences.json"
        vectors = Path(tmp) / "reference.npy"
        sentences.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        subprocess.run(
            [
                python,
                str(EXPORT_SCRIPT),
                "--sentences",
                str(sentences),
                "--reference-vectors",
                str(vectors),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return np.load(vectors)


def quality(reference: np.ndarray, candidate: np.ndarray, n_corpus: int) -> dict[str, Any]:
    """Cosine int8 vs fp32 per text, and top-k neighbour overlap for the queries."""
    if reference.shape != candidate.shape:
        raise SystemExit(f"reference shape {reference.shape} != candidate {candidate.shape}")
    ref = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    cos = (ref * candidate).sum(axis=1)
    corpus_ref, queries_ref = ref[:n_corpus], ref[n_corpus:]
    corpus_new, queries_new = candidate[:n_corpus], candidate[n_corpus:]
    overlaps = []
    for q_ref, q_new in zip(queries_ref, queries_new, strict=True):
        top_ref = set(np.argsort(-(corpus_ref @ q_ref))[:TOP_K].tolist())
        top_new = set(np.argsort(-(corpus_new @ q_new))[:TOP_K].tolist())
        overlaps.append(len(top_ref & top_new) / TOP_K)
    corpus_cos = cos[:n_corpus]
    worst = np.argsort(corpus_cos)[:3]
    return {
        "texts": int(n_corpus),
        "mean_cosine": float(corpus_cos.mean()),
        "min_cosine": float(corpus_cos.min()),
        "p01_cosine": float(np.percentile(corpus_cos, 1)),
        "queries": len(overlaps),
        "query_mean_cosine": float(cos[n_corpus:].mean()),
        f"top{TOP_K}_overlap_mean": float(np.mean(overlaps)),
        f"top{TOP_K}_overlap_min": float(np.min(overlaps)),
        "worst_texts": [int(i) for i in worst],
    }


# --------------------------------------------------------------------------- main


def _print_table(
    rows: list[dict[str, Any]], columns: list[tuple[str, str, Callable[..., str]]]
) -> None:
    """Right-aligned columns: title, row key, formatter."""
    print("  " + "  ".join(f"{title:>14}" for title, _, _ in columns))
    for row in rows:
        print("  " + "  ".join(f"{fmt(row[key]):>14}" for _, key, fmt in columns))


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the selected parts, print a report (and optionally write JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions; medians reported")
    parser.add_argument("--calls", type=int, default=200, help="single-text calls per run")
    parser.add_argument("--threads", default="1,2", help="intra-op thread counts to measure")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-padded", action="store_true", help="skip the padded-batch run")
    parser.add_argument("--reference-vectors", type=Path, help="torch fp32 vectors (.npy)")
    parser.add_argument("--reference-python", help="python with torch to compute them")
    parser.add_argument("--write-sentences", type=Path, help="write the texts as JSON and exit")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    corpus, queries = build_texts()
    texts = corpus + queries
    if args.write_sentences:
        args.write_sentences.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
        print(f"wrote {len(texts)} texts ({len(corpus)} corpus + {len(queries)} queries)")
        if args.skip_latency:
            return 0

    import onnxruntime

    results: dict[str, Any] = {
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "loadavg_start": os.getloadavg()[0],
    }
    print(
        f"embedding benchmark: onnxruntime {results['onnxruntime']}, {results['cpu_count']} CPUs,"
        f" load average {results['loadavg_start']:.2f} (other work on the machine skews timings)"
    )

    if not args.skip_latency:
        templated = corpus[len(_HANDWRITTEN) + len(_KEYWORDS) + 20 :]  # typical memories
        singles, batch = templated[:10], templated[10:60]
        thread_counts = [int(t) for t in args.threads.split(",") if t]
        rows = [measure_embedder(t, args.runs, args.calls, singles, batch) for t in thread_counts]
        results["latency"] = rows
        print(
            f"\nLocalOnnxEmbedder.embed, median of {args.runs} runs "
            f"({args.calls} single calls/run; batch = 50 typical memories)"
        )
        ms = "{:.2f} ms".format
        _print_table(
            rows,
            [
                ("threads", "threads", str),
                ("single p50", "single_p50_ms", ms),
                ("single p95", "single_p95_ms", ms),
                ("batch-50", "batch50_ms", "{:.1f} ms".format),
                ("texts/s", "batch50_texts_per_s", "{:.0f}".format),
            ],
        )
        if not args.skip_padded:
            padded = [measure_padded_batches(t, args.runs, batch) for t in thread_counts]
            results["padded_batches"] = padded
            print("\nfor comparison: padded, length-sorted batches of <=32 in one run each")
            _print_table(
                padded,
                [
                    ("threads", "threads", str),
                    ("batch-50", "batch50_ms", "{:.1f} ms".format),
                    ("texts/s", "batch50_texts_per_s", "{:.0f}".format),
                    ("min cos vs 1/run", "min_cosine_vs_one_text_per_run", "{:.4f}".format),
                ],
            )

    reference: np.ndarray | None = None
    if args.reference_vectors:
        reference = np.load(args.reference_vectors)
    elif args.reference_python:
        reference = reference_via_python(args.reference_python, texts)
    if reference is None:
        print(
            "\nquality: skipped (give --reference-python /tmp/exportvenv/bin/python or "
            "--reference-vectors FILE.npy; see the module docstring)"
        )
    else:
        candidate = LocalOnnxEmbedder().embed(texts)
        q = quality(reference, candidate, len(corpus))
        results["quality"] = q
        print(f"\nquality, int8 ONNX vs torch fp32 (sentence-transformers), {q['texts']} texts:")
        print(
            f"  cosine mean {q['mean_cosine']:.4f}  min {q['min_cosine']:.4f}  "
            f"1st percentile {q['p01_cosine']:.4f}"
        )
        print(
            f"  retrieval: {q['queries']} queries over the {q['texts']} texts, top-{TOP_K} "
            f"overlap mean {q[f'top{TOP_K}_overlap_mean']:.3f}  "
            f"min {q[f'top{TOP_K}_overlap_min']:.1f}  "
            f"(query cosine mean {q['query_mean_cosine']:.4f})"
        )
        worst = ", ".join(repr(texts[i][:40]) for i in q["worst_texts"])
        print(f"  lowest-cosine texts: {worst}")

    results["loadavg_end"] = os.getloadavg()[0]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
