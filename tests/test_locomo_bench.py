"""``benchmarks/locomo_recall.py`` on a tiny conversation in LoCoMo's JSON shape, in local mode.

The metric functions are checked on fixed rankings worked out by hand; the pipeline (parse,
ingest through the SDK in chronological order, query every mode, summarise, write JSON) on a
two-session, eight-turn conversation whose questions have an unambiguous answer turn.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "locomo_recall.py"


def _load_bench() -> ModuleType:
    """The benchmark module itself, so the test checks the code the benchmark runs."""
    spec = importlib.util.spec_from_file_location("locomo_recall", BENCH_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


pytest.importorskip("fastapi")  # local mode runs the server in-process
bench = _load_bench()

DAY_1 = "1:56 pm on 8 May, 2023"
DAY_2 = "10:04 am on 20 June, 2023"

#: Session 2 comes first in the JSON on purpose: turns must still be stored session 1 first.
SAMPLE: dict[str, Any] = {
    "sample_id": "conv-t1",
    "conversation": {
        "speaker_a": "Alice",
        "speaker_b": "Bob",
        "session_2_date_time": DAY_2,
        "session_2": [
            {"speaker": "Alice", "dia_id": "D2:1", "text": "I played my first cello recital "
             "yesterday, the hall was packed."},
            {"speaker": "Bob", "dia_id": "D2:2", "text": "Congratulations! Zephyrine barked "
             "when I told her."},
            {"speaker": "Alice", "dia_id": "D2:3", "text": "Ha! How is work going for you?"},
            {"speaker": "Bob", "dia_id": "D2:4", "text": "I was promoted to lighthouse keeper "
             "on the northern cliffs."},
        ],
        "session_1_date_time": DAY_1,
        "session_1": [
            {"speaker": "Alice", "dia_id": "D1:1", "text": "Hi Bob! How was your weekend?"},
            {"speaker": "Bob", "dia_id": "D1:2", "text": "Great, I adopted a greyhound and "
             "called her Zephyrine."},
            {"speaker": "Alice", "dia_id": "D1:3", "text": "Lovely! I started cello lessons "
             "last month."},
            {"speaker": "Bob", "dia_id": "D1:4", "text": "Here she is on the sofa.",
             "blip_caption": "a photo of a grey dog lying on a sofa", "img_url": ["x"]},
        ],
    },
    "qa": [
        {"question": "Which greyhound did Bob adopt?", "answer": "Zephyrine",
         "evidence": ["D1:2"], "category": 4},
        {"question": "When did Alice play her cello recital?", "answer": "19 June 2023",
         "evidence": ["D2:1"], "category": 2},
        {"question": "What is Bob's job and his dog's name?", "answer": "lighthouse keeper",
         "evidence": ["D2:4", "D1:2"], "category": 1},
        {"question": "Which greyhound did Alice adopt?", "evidence": ["D1:2"], "category": 5,
         "adversarial_answer": "Zephyrine"},
        {"question": "Is Bob a morning person?", "answer": "unknown", "evidence": [],
         "category": 3},
    ],
}


@pytest.fixture
def data_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in os.environ:
        if name.startswith(("AEGIS_", "DATABASE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AEGIS_CONFIG_DIR", str(tmp_path / "aegis-config"))
    monkeypatch.chdir(tmp_path)  # no stray .env is read by the embedded server's settings
    path = tmp_path / "locomo-tiny.json"
    path.write_text(json.dumps([SAMPLE]), encoding="utf-8")
    return path


@pytest.fixture
def local_client(data_file: Path) -> Iterator[Any]:
    with bench.open_client(None, None) as client:
        yield client


# ----------------------------------------------------------------------------- pure functions


def test_recall_and_reciprocal_rank_on_a_fixed_ranking() -> None:
    ranking = ["D1:3", "D2:1", "D1:2", "D1:1", "D1:4", "D2:2", "D2:3", "D2:4"]
    two = ["D1:2", "D2:4"]  # ranks 3 and 8
    assert bench.recall_at(two, ranking, 2) == 0.0
    assert bench.recall_at(two, ranking, 5) == 0.5
    assert bench.recall_at(two, ranking, 10) == 1.0
    assert bench.reciprocal_rank(two, ranking) == pytest.approx(1 / 3)
    assert bench.reciprocal_rank(["D1:3"], ranking) == 1.0
    assert bench.reciprocal_rank(["D9:9"], ranking) == 0.0
    assert bench.recall_at(["D9:9", "D1:3"], ranking, 5) == 0.5  # an id no turn has counts
    assert bench.recall_at(two, [], 5) == 0.0


def test_summary_averages_per_category_and_leaves_category_5_out_of_overall() -> None:
    def row(category: int, r10: float, rr: float) -> Any:
        return bench.Scored("c", category, {5: r10, 10: r10, 20: r10}, rr)

    summary = bench.summarise([row(1, 1.0, 1.0), row(1, 0.0, 0.0), row(4, 0.5, 0.5),
                               row(5, 0.0, 0.0)])
    assert summary["overall"]["n"] == 3
    assert summary["overall"]["r@10"] == pytest.approx(0.5)
    assert summary["overall"]["mrr"] == pytest.approx(0.5)
    assert summary["categories"]["1"]["r@10"] == 0.5
    assert summary["categories"]["5"] == {"n": 1, "r@5": 0.0, "r@10": 0.0, "r@20": 0.0,
                                          "mrr": 0.0}
    assert summary["categories"]["3"]["n"] == 0
    # Per conversation: categories 1-4 only, like the overall figure.
    assert summary["conversations"] == {"c": summary["overall"]}


def test_parse_orders_sessions_and_builds_the_content(data_file: Path) -> None:
    (conversation,) = bench.load_conversations(data_file)
    assert [t.dia_id for t in conversation.turns] == [
        "D1:1", "D1:2", "D1:3", "D1:4", "D2:1", "D2:2", "D2:3", "D2:4"]
    assert len(conversation.questions) == 4  # the one without evidence is left out
    photo = conversation.turns[3]
    assert bench.memory_content(photo) == (
        f"[{DAY_1}] Bob: Here she is on the sofa. [shares a photo of a grey dog lying on a sofa]")
    assert bench.memory_content(conversation.turns[4]).startswith(f"[{DAY_2}] Alice: I played")
    assert bench.memory_item(photo, "ns")["metadata"] == {
        "dia_id": "D1:4", "speaker": "Bob", "session": 1, "session_date": DAY_1}


def test_targets_compare_each_category_with_bm25() -> None:
    def mode(r10: float, mrr: float, p50: float) -> dict[str, Any]:
        cat = {"n": 1, "r@5": r10, "r@10": r10, "r@20": r10, "mrr": mrr}
        return {"overall": cat, "categories": {str(c): cat for c in range(1, 6)},
                "latency_ms": {"p50": p50}}

    checks = bench.evaluate_targets({"hybrid": mode(0.7, 0.4, 9.0),
                                     "text": mode(0.75, 0.4, 3.0)})
    assert [c.passed for c in checks] == [True, False, True, False, False, False, False]
    assert bench.evaluate_targets({"text": mode(0.7, 0.5, 1.0)}) == []


# ----------------------------------------------------------------------------- through the SDK


def test_ingest_and_query_every_mode_in_local_mode(data_file: Path, local_client: Any) -> None:
    conversations = bench.load_conversations(data_file)
    corpus, ingest = bench.ingest_all(local_client, conversations, "t")
    assert ingest["memories"] == 8 and ingest["deduplicated"] == 0 and ingest["per_s"] > 0

    # Every turn is one memory, with its identity in metadata.
    stored = local_client.query("cello recital", agent_id=bench.AGENT_ID,
                                namespace="t-conv-t1", top_k=20, mode="vector")
    assert len(stored) == 8
    recital = next(m for m in stored if m.metadata["dia_id"] == "D2:1")
    assert recital.metadata == {"dia_id": "D2:1", "speaker": "Alice", "session": 2,
                                "session_date": DAY_2}
    assert recital.content.startswith(f"[{DAY_2}] Alice: ")

    results = {m: bench.run_mode(local_client, corpus, m, 20) for m in bench.MODES}
    text = results["text"]["categories"]
    # "greyhound" occurs in the evidence turn alone: BM25 ranks it first.
    assert text["4"] == {"n": 1, "r@5": 1.0, "r@10": 1.0, "r@20": 1.0, "mrr": 1.0}
    assert text["5"]["mrr"] == 1.0
    for summary in results.values():
        assert summary["overall"]["n"] == 3 and summary["categories"]["5"]["n"] == 1
        assert summary["latency_ms"]["n"] == 4  # warm-up queries are not counted
    # Eight memories and a top 20: the vector leg returns every turn, so recall@20 is 1.
    assert results["vector"]["overall"]["r@20"] == 1.0
    assert results["hybrid"]["categories"]["4"]["r@5"] == 1.0


def test_main_writes_the_report_and_exits_0(
    data_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "locomo.json"
    assert bench.main(["--data", str(data_file), "--json", str(out), "--modes", "text"]) == 0
    report = json.loads(out.read_text())
    assert report["conversations"] == ["conv-t1"] and report["questions"] == 4
    assert list(report["modes"]) == ["text"] and report["targets"] == []
    assert report["machine"]["cores"] >= 1
    printed = capsys.readouterr().out
    assert "published baseline" in printed and "hybrid mode was not run" in printed
    assert "Per conversation" in printed and "conv-t1" in printed
