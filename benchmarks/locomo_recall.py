"""Retrieval quality on LoCoMo: recall@5/10/20 and MRR of each search mode, through the SDK.

What it measures (issue 9), following the protocol of the dataset's README
(``../shared/data/locomo/README.md``): every turn of a conversation is stored as one memory
(one namespace per conversation, turns added in chronological order with ``add_batch``), then
every question that has evidence is asked with ``client.query(..., top_k=20, mode=...)`` for
each mode in ``--modes``. For a question with evidence turns E and retrieved turns R,
recall@k = |E ∩ R[:k]| / |E| and the reciprocal rank is 1 / rank of the first evidence turn in
R (0 if none is among the ``--top-k`` returned). Figures are averaged per category
(1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial) and overall *excluding*
category 5, which is reported on its own.

``hybrid`` (the default mode) is the row the targets apply to; ``text`` (full-text BM25) is the
lexical baseline and ``vector`` (cosine) the dense one, measured in the same run on the same
memories. Alongside quality it measures the ingest rate (memories/s, wall clock, embedding
included) and, per mode, the client-side latency of one query call (query embedding included)
as p50/p95 after a warm-up of ``WARMUP_QUERIES`` uncounted queries.

Everything goes through the public SDK: an embedded server in a temporary directory
(``AegisClient.local``) by default, or a running server with ``--url`` and ``--api-key`` (use a
fresh project or ``--namespace-prefix``: memories left in the namespaces from an earlier run
would be ranked too). Results, with the machine profile, go to
``benchmarks/results/locomo_recall.json``. The process exits 0 whether the targets are met or
not: it reports.

Usage::

    .venv/bin/python benchmarks/locomo_recall.py                    # all 7 conversations
    .venv/bin/python benchmarks/locomo_recall.py --conversations 1  # a quick look
    .venv/bin/python benchmarks/locomo_recall.py --modes hybrid,text
    .venv/bin/python benchmarks/locomo_recall.py --url http://127.0.0.1:8000 --api-key dev-key
    make bench-quality BENCH_ARGS="--conversations 2"
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import fmean
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import machine
from bench_http import percentiles

from aegis_memory import AegisClient
from aegis_memory.schemas import MAX_BATCH, SearchMode

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (ROOT / ".." / "shared" / "data" / "locomo" / "locomo-dev7.json").resolve()
DEFAULT_JSON = ROOT / "benchmarks" / "results" / "locomo_recall.json"

MODES: tuple[SearchMode, ...] = ("hybrid", "vector", "text")
KS = (5, 10, 20)
CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop",
              5: "adversarial"}
SCORED_CATEGORIES = (1, 2, 3, 4)  # "overall" averages these; category 5 is reported apart
AGENT_ID = "locomo"
WARMUP_QUERIES = 20

#: Issue 9's targets, for the default mode (hybrid).
TARGET_RECALL_AT_10 = 0.68
TARGET_MRR = 0.50
TARGET_P50_MS = 15.0

#: From the dataset's README: all 10 conversations (ours are 7 of them), turn text prefixed
#: with the speaker; R@5, R@10, R@20, MRR. For reference only, not measured here.
PUBLISHED_BASELINES: dict[str, tuple[float, float, float, float]] = {
    "BM25": (0.466, 0.549, 0.628, 0.399),
    "dense all-MiniLM-L6-v2 (cosine)": (0.350, 0.439, 0.541, 0.282),
    "naive hybrid (RRF)": (0.467, 0.548, 0.631, 0.383),
    "BM25, session date prefixed": (0.498, 0.574, 0.655, 0.427),
    "dense, session date prefixed": (0.398, 0.495, 0.599, 0.328),
    "hybrid, session date prefixed": (0.515, 0.606, 0.678, 0.434),
}


# ----------------------------------------------------------------------------- the dataset


@dataclass(frozen=True)
class Turn:
    dia_id: str
    speaker: str
    text: str
    session: int
    session_date: str
    caption: str | None = None


@dataclass(frozen=True)
class Question:
    text: str
    category: int
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Conversation:
    sample_id: str
    turns: list[Turn]
    questions: list[Question]  # only those with evidence


def _sessions(conversation: dict[str, Any]) -> list[int]:
    """The session numbers of a conversation, in order (``session_N`` keys holding turns)."""
    numbers = (re.fullmatch(r"session_(\d+)", key) for key in conversation)
    return sorted(int(m.group(1)) for m in numbers if m and conversation[m.group(0)])


def parse_conversation(item: dict[str, Any]) -> Conversation:
    """One LoCoMo item: its turns in chronological order and its questions with evidence."""
    conversation = item["conversation"]
    turns = [
        Turn(dia_id=t["dia_id"], speaker=t["speaker"], text=t["text"], session=n,
             session_date=conversation.get(f"session_{n}_date_time", ""),
             caption=t.get("blip_caption") or None)
        for n in _sessions(conversation)
        for t in conversation[f"session_{n}"]
    ]
    questions = [
        Question(text=q["question"], category=int(q["category"]), evidence=tuple(q["evidence"]))
        for q in item["qa"]
        if q.get("evidence")
    ]
    return Conversation(sample_id=item["sample_id"], turns=turns, questions=questions)


def load_conversations(path: Path, limit: int | None = None) -> list[Conversation]:
    """The first ``limit`` conversations of a LoCoMo JSON file (all when ``None``)."""
    items = json.loads(path.read_text(encoding="utf-8"))
    return [parse_conversation(item) for item in items[:limit]]


def unknown_evidence(conversation: Conversation) -> list[str]:
    """Evidence ids naming no turn of the conversation (the data has a few typos, kept as is:
    they count against recall, as the protocol's formula says)."""
    ids = {t.dia_id for t in conversation.turns}
    return [e for q in conversation.questions for e in q.evidence if e not in ids]


# ----------------------------------------------------------------------------- ingest


def memory_content(turn: Turn) -> str:
    """What is stored, and so embedded and full-text indexed, for one turn:
    ``[<session date>] <speaker>: <text>``, plus `` [shares <caption>]`` for a shared photo.

    The dataset's protocol allows the speaker and the session date in what is indexed, and the
    questions need both: they name who did something ("What did Caroline ...") and temporal
    ones are answered from the session's date ("yesterday" in a turn of 8 May 2023). A turn
    carries no date of its own, so without the prefix no retriever could match "in May 2023".
    The photo's caption is all the other speaker (and so an agent) saw of a shared photo, and
    some evidence turns are little more than that photo.
    """
    content = f"[{turn.session_date}] {turn.speaker}: {turn.text}"
    return f"{content} [shares {turn.caption}]" if turn.caption else content


def namespace_for(prefix: str, conversation: Conversation) -> str:
    return f"{prefix}-{conversation.sample_id}"


def memory_item(turn: Turn, namespace: str) -> dict[str, Any]:
    """The ``add_batch`` item of one turn; its identity and session are kept in ``metadata``."""
    return {
        "content": memory_content(turn),
        "agent_id": AGENT_ID,
        "namespace": namespace,
        "metadata": {"dia_id": turn.dia_id, "speaker": turn.speaker, "session": turn.session,
                     "session_date": turn.session_date},
    }


def _batches(turns: Sequence[Turn], size: int) -> Iterator[Sequence[Turn]]:
    for start in range(0, len(turns), size):
        yield turns[start:start + size]


def ingest(
    client: AegisClient, conversation: Conversation, namespace: str
) -> tuple[dict[str, list[str]], int]:
    """Store every turn, in chronological order, one ``add_batch`` request per ``MAX_BATCH``.

    Returns the turns stored under each memory id (one each, unless the server deduplicated
    identical contents into one memory: then that memory stands for all of them) and the
    number of turns deduplicated.
    """
    turns_of: dict[str, list[str]] = {}
    deduplicated = 0
    for batch in _batches(conversation.turns, MAX_BATCH):
        results = client.add_batch([memory_item(t, namespace) for t in batch])
        for turn, result in zip(batch, results, strict=True):
            turns_of.setdefault(result.id, []).append(turn.dia_id)
            deduplicated += result.deduped
    return turns_of, deduplicated


# ----------------------------------------------------------------------------- metrics


def recall_at(evidence: Sequence[str], retrieved: Sequence[str], k: int) -> float:
    """|evidence ∩ retrieved[:k]| / |evidence|."""
    wanted = set(evidence)
    return len(wanted & set(retrieved[:k])) / len(wanted)


def reciprocal_rank(evidence: Sequence[str], retrieved: Sequence[str]) -> float:
    """1 / the rank of the first evidence turn in ``retrieved``, 0 if there is none."""
    wanted = set(evidence)
    return next((1.0 / rank for rank, d in enumerate(retrieved, 1) if d in wanted), 0.0)


@dataclass(frozen=True)
class Scored:
    """One question's figures in one mode."""

    sample_id: str
    category: int
    recall: dict[int, float]
    rr: float


def score(sample_id: str, question: Question, retrieved: Sequence[str]) -> Scored:
    return Scored(sample_id=sample_id, category=question.category,
                  recall={k: recall_at(question.evidence, retrieved, k) for k in KS},
                  rr=reciprocal_rank(question.evidence, retrieved))


def averages(rows: Sequence[Scored]) -> dict[str, float]:
    """Mean recall@k and MRR over ``rows`` (``n`` questions; zeros when there are none)."""
    out: dict[str, float] = {"n": len(rows)}
    for k in KS:
        out[f"r@{k}"] = fmean(r.recall[k] for r in rows) if rows else 0.0
    out["mrr"] = fmean(r.rr for r in rows) if rows else 0.0
    return out


def summarise(rows: Sequence[Scored]) -> dict[str, Any]:
    """Averages overall (categories 1-4), per category (1-5) and per conversation (1-4)."""
    scored = [r for r in rows if r.category in SCORED_CATEGORIES]
    return {
        "overall": averages(scored),
        "categories": {str(c): averages([r for r in rows if r.category == c])
                       for c in CATEGORIES},
        "conversations": {sid: averages([r for r in scored if r.sample_id == sid])
                          for sid in dict.fromkeys(r.sample_id for r in rows)},
    }


# ----------------------------------------------------------------------------- queries


@dataclass
class Corpus:
    """The conversations as stored: each one's namespace and the turns of each memory id."""

    conversations: list[Conversation]
    namespaces: dict[str, str]
    turns_of: dict[str, dict[str, list[str]]]  # sample_id -> memory id -> dia_ids


def retrieved_turns(memories: Sequence[Any], turns_of: dict[str, list[str]]) -> list[str]:
    """The dia_ids of the memories returned, best first (a deduplicated memory stands for all
    its turns; a memory this run did not store falls back to its ``metadata``)."""
    ids: list[str] = []
    for m in memories:
        ids.extend(turns_of.get(m.id) or [str(m.metadata.get("dia_id", m.id))])
    return ids


def timed_query(
    client: AegisClient, query: str, namespace: str, mode: SearchMode, top_k: int
) -> tuple[list[Any], float]:
    """The memories one query returns and its client-side wall time in ms."""
    started = time.perf_counter()
    memories = client.query(query, agent_id=AGENT_ID, namespace=namespace, top_k=top_k,
                            mode=mode)
    return list(memories), (time.perf_counter() - started) * 1000


def warm_up(client: AegisClient, corpus: Corpus, mode: SearchMode, top_k: int) -> None:
    """``WARMUP_QUERIES`` uncounted queries (the first questions, cycled if there are few)."""
    asked = [(q.text, corpus.namespaces[c.sample_id])
             for c in corpus.conversations for q in c.questions][:WARMUP_QUERIES]
    for i in range(WARMUP_QUERIES if asked else 0):
        query, namespace = asked[i % len(asked)]
        timed_query(client, query, namespace, mode, top_k)


def run_mode(
    client: AegisClient, corpus: Corpus, mode: SearchMode, top_k: int
) -> dict[str, Any]:
    """Every question with evidence in one mode: its summary and query latency."""
    warm_up(client, corpus, mode, top_k)
    rows: list[Scored] = []
    latencies: list[float] = []
    for conversation in corpus.conversations:
        namespace = corpus.namespaces[conversation.sample_id]
        turns_of = corpus.turns_of[conversation.sample_id]
        for question in conversation.questions:
            memories, ms = timed_query(client, question.text, namespace, mode, top_k)
            latencies.append(ms)
            rows.append(score(conversation.sample_id, question,
                              retrieved_turns(memories, turns_of)))
    summary = summarise(rows)
    summary["latency_ms"] = percentiles(latencies) if latencies else {}
    return summary


# ----------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None
    target: str
    passed: bool


def _check(name: str, value: float, target: float, *, at_most: bool = False) -> Check:
    passed = value <= target if at_most else value >= target
    relation = "<=" if at_most else ">="
    return Check(name, round(value, 4), f"{relation} {round(target, 3):g}", passed)


def evaluate_targets(modes: dict[str, dict[str, Any]]) -> list[Check]:
    """Issue 9's targets for the hybrid row; the per-category one needs the text row too."""
    hybrid = modes.get("hybrid")
    if hybrid is None:
        return []
    checks = [
        _check("hybrid recall@10 (categories 1-4)", hybrid["overall"]["r@10"],
               TARGET_RECALL_AT_10),
        _check("hybrid MRR (categories 1-4)", hybrid["overall"]["mrr"], TARGET_MRR),
    ]
    if hybrid["latency_ms"]:
        checks.append(_check("hybrid query p50 ms (client side, embedding included)",
                             hybrid["latency_ms"]["p50"], TARGET_P50_MS, at_most=True))
    text = modes.get("text")
    if text is not None:
        for c in SCORED_CATEGORIES:
            mine, bm25 = (m["categories"][str(c)] for m in (hybrid, text))
            if mine["n"]:
                checks.append(_check(f"category {c} ({CATEGORIES[c]}) hybrid R@10 vs BM25",
                                     mine["r@10"], bm25["r@10"]))
    return checks


# ----------------------------------------------------------------------------- report


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                     for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    return "\n".join([_row(header, widths), rule, *(_row(r, widths) for r in rows)])


def mode_table(modes: dict[str, dict[str, Any]]) -> str:
    header = ["mode", "R@5", "R@10", "R@20", "MRR",
              *(f"c{c} R@10" for c in SCORED_CATEGORIES), "c5 R@10", "c5 MRR",
              "p50 ms", "p95 ms"]
    rows = []
    for mode, s in modes.items():
        overall, cats, lat = s["overall"], s["categories"], s["latency_ms"]
        rows.append([
            mode, *(f"{overall[f'r@{k}']:.3f}" for k in KS), f"{overall['mrr']:.3f}",
            *(f"{cats[str(c)]['r@10']:.3f}" for c in SCORED_CATEGORIES),
            f"{cats['5']['r@10']:.3f}", f"{cats['5']['mrr']:.3f}",
            f"{lat.get('p50', 0.0):.1f}", f"{lat.get('p95', 0.0):.1f}",
        ])
    return _table(header, rows)


def baseline_table() -> str:
    rows = [[name, *(f"{v:.3f}" for v in figures)]
            for name, figures in PUBLISHED_BASELINES.items()]
    return _table(["published baseline", "R@5", "R@10", "R@20", "MRR"], rows)


def conversation_table(modes: dict[str, dict[str, Any]]) -> str:
    """R@10 and MRR of each mode per conversation: the settings are the same for all, so
    a conversation where hybrid falls behind a single leg would show here."""
    names = list(modes)
    ids = list(next(iter(modes.values()))["conversations"]) if modes else []
    header = ["conversation", "n"] + [f"{m} {f}" for m in names for f in ("R@10", "MRR")]
    rows = []
    for sid in ids:
        cells = [sid, str(modes[names[0]]["conversations"][sid]["n"])]
        for m in names:
            figures = modes[m]["conversations"][sid]
            cells += [f"{figures['r@10']:.3f}", f"{figures['mrr']:.3f}"]
        rows.append(cells)
    return _table(header, rows)


def print_report(report: dict[str, Any]) -> None:
    ingest_ = report["ingest"]
    first = next(iter(report["modes"].values()), None)
    counts = "-" if first is None else ", ".join(
        f"c{c} {first['categories'][str(c)]['n']}" for c in CATEGORIES)
    print(f"\nLoCoMo retrieval: {len(report['conversations'])} conversations, "
          f"{ingest_['memories']} turns, {report['questions']} questions with evidence "
          f"({counts}); top_k {report['top_k']}; {report['target']}")
    print(f"ingest: {ingest_['memories']} memories in {ingest_['seconds']:.1f} s = "
          f"{ingest_['per_s']:.1f} memories/s (add_batch of {MAX_BATCH}, embedding included)"
          + (f"; {ingest_['deduplicated']} deduplicated" if ingest_["deduplicated"] else ""))
    if report["unknown_evidence_ids"]:
        print(f"evidence ids naming no turn (kept as the data has them, they count as missed): "
              f"{', '.join(report['unknown_evidence_ids'])}")
    print("\nMeasured (R@k and MRR over categories 1-4; c5 = adversarial, apart; latency per "
          f"query call, client side, after {WARMUP_QUERIES} warm-up queries):")
    print(mode_table(report["modes"]))
    print("\nPer conversation (categories 1-4):")
    print(conversation_table(report["modes"]))
    print("\nFor reference only, from the dataset README (all 10 conversations, not this run):")
    print(baseline_table())
    print("\nTargets (issue 9, default mode = hybrid):")
    if not report["targets"]:
        print("  (none: the hybrid mode was not run)")
    for check in report["targets"]:
        verdict = "PASS" if check["passed"] else "FAIL"
        print(f"  {verdict}  {check['name']}: {check['value']:.3f} (target {check['target']})")


# ----------------------------------------------------------------------------- main


@contextmanager
def open_client(url: str | None, api_key: str | None) -> Iterator[AegisClient]:
    """A client for ``url``, or an embedded server over a temporary data directory."""
    if url:
        with AegisClient(api_key=api_key, base_url=url, timeout=120) as client:
            yield client
        return
    with tempfile.TemporaryDirectory(prefix="aegis-locomo-") as tmp, \
            AegisClient.local(path=Path(tmp) / "data") as client:
        yield client


def ingest_all(
    client: AegisClient, conversations: list[Conversation], prefix: str
) -> tuple[Corpus, dict[str, Any]]:
    """Store every conversation; the corpus and the ingest figures (wall clock)."""
    corpus = Corpus(conversations, {}, {})
    deduplicated = 0
    started = time.perf_counter()
    for conversation in conversations:
        namespace = namespace_for(prefix, conversation)
        corpus.namespaces[conversation.sample_id] = namespace
        turns_of, dups = ingest(client, conversation, namespace)
        corpus.turns_of[conversation.sample_id] = turns_of
        deduplicated += dups
    seconds = time.perf_counter() - started
    memories = sum(len(c.turns) for c in conversations)
    return corpus, {"memories": memories, "seconds": round(seconds, 3),
                    "per_s": round(memories / seconds, 2) if seconds else 0.0,
                    "deduplicated": deduplicated}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The whole benchmark; the report (also what is written as JSON)."""
    conversations = load_conversations(args.data, args.conversations)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "data": str(args.data),
        "conversations": [c.sample_id for c in conversations],
        "questions": sum(len(c.questions) for c in conversations),
        "unknown_evidence_ids": [e for c in conversations for e in unknown_evidence(c)],
        "top_k": args.top_k,
        "target": f"server at {args.url}" if args.url else "local mode (embedded, temporary)",
    }
    with open_client(args.url, args.api_key) as client:
        report["server_version"] = client.health().version
        corpus, report["ingest"] = ingest_all(client, conversations, args.namespace_prefix)
        report["modes"] = {m: run_mode(client, corpus, m, args.top_k) for m in args.modes}
    report["targets"] = [asdict(c) for c in evaluate_targets(report["modes"])]
    report["published_baselines_all_10"] = {
        name: dict(zip(["r@5", "r@10", "r@20", "mrr"], figures, strict=True))
        for name, figures in PUBLISHED_BASELINES.items()
    }
    report["machine"] = machine()
    return report


def parse_modes(value: str) -> list[SearchMode]:
    modes = [m.strip() for m in value.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"modes are among {', '.join(MODES)}; got {value!r}")
    return [cast(SearchMode, m) for m in dict.fromkeys(modes)]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="the LoCoMo JSON file (default: the shared dev split)")
    parser.add_argument("--conversations", type=int, default=None, metavar="N",
                        help="only the first N conversations (a quick run)")
    parser.add_argument("--modes", type=parse_modes, default=list(MODES),
                        help="comma-separated search modes (default: hybrid,vector,text)")
    parser.add_argument("--top-k", type=int, default=20,
                        help="memories retrieved per question (R@k uses the first k of them)")
    parser.add_argument("--url", default=None, help="a running server (default: local mode)")
    parser.add_argument("--api-key", default=None, help="its API key (with --url)")
    parser.add_argument("--namespace-prefix", default="locomo",
                        help="namespaces are <prefix>-<sample_id>")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"no LoCoMo file at {args.data} (see --data)")
    if args.conversations is not None and args.conversations < 1:
        parser.error("--conversations must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    print_report(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
