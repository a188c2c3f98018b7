"""Benchmark of SmartMemory's offline extractor against a hand-annotated table of turns.

Why: the rule-based extractor is what runs when no LLM key is configured, so its precision (a
wrong fact pollutes every later recall) and its recall (a missed fact is a lost memory) are
what users get. The table, ``tests/data/smart_turns.json``, is annotated the way a careful
human would, and about a third of its turns must give no fact at all (questions, passing
states, hypotheticals, the assistant's small talk). It was written in four batches, each
annotated before the extractor ever saw it: turns 1-76 before any rule existed; 77-116 and
117-149 were measured blind (F1 0.71, then 0.84) before the rules were generalised further;
150-179 were measured blind (F1 0.82) and kept as unseen data (only one bug they exposed, a
lowercase-name rule taking "I'm colorblind" for a name, was fixed). Annotations were never
changed to suit the extractor, so the misses that remain are real.

Matching (:func:`match_facts`, shared with ``tests/test_smart_rules.py``): an extracted fact
matches a still-unmatched expected fact when

* their normalised contents are equal: lowercase, punctuation and apostrophes dropped, "the
  user" read as "user", and the contractions of "is" ("she's", "it's"...) and "n't"
  expanded; or
* the Jaccard similarity of their *content words* (normalised words minus a short list of
  function words) is at least 0.6 - and both say "not", or neither does. That polarity check
  is the one addition to plain Jaccard: "User can't eat gluten" and "User can eat gluten"
  share 3 of 4 words but state opposite facts. It can only make matching stricter.

Exact matches are paired first, then the remaining pairs best-similarity first, each fact used
once. The category does not decide a match, it is reported as *category accuracy* (the share
of matched pairs whose categories agree). Per category, a pair counts only when both sides
have that category: precision over the facts extracted with it, recall over those expected
with it.

Run::

    .venv/bin/python benchmarks/smart_extraction_bench.py
    .venv/bin/python benchmarks/smart_extraction_bench.py --show-errors   # list every miss

(``--repeat N`` sets the timing passes, ``--table PATH`` another table of the same shape.)
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from aegis_memory.smart.rules import extract_facts
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from aegis_memory.smart.rules import extract_facts

REPO_ROOT = Path(__file__).resolve().parents[1]
TABLE = REPO_ROOT / "tests" / "data" / "smart_turns.json"
JACCARD_MIN = 0.6


def _word_set(words: str) -> frozenset[str]:
    """A vocabulary written as whitespace-separated words (easier to read than a list)."""
    return frozenset(words.split())

_STOPWORDS = _word_set(
    """a an the is are was were be been am to of in on at for with and or but as by it its this
    that their them they from so very too also well does do did has have had will would can
    could"""
)
_IS_CONTRACTION = re.compile(
    r"\b(he|she|it|that|there|what|who|where|here|how|this|user)'s\b(?=\s+(?:a|an|the|not|\w+ing|"
    r"on|in|at|based|from|my|their|his|her|very|so|also|still|going|been|\d))"
)
_NOT = re.compile(r"\b(can)'t\b|\b(won)'t\b|n't\b")
_PUNCT = re.compile(r"[^a-z0-9\s]+")


def normalize(text: str) -> str:
    """Lowercase, "is"/"not" contractions expanded, punctuation dropped, "the user" → "user"."""
    text = text.lower().replace("\u2019", "'")
    text = _IS_CONTRACTION.sub(r"\1 is", text)
    text = _NOT.sub(lambda m: "can not" if m.group(1) else "will not" if m.group(2) else " not",
                    text)
    text = _PUNCT.sub(lambda m: "" if m.group(0) == "'" else " ", text)
    return " ".join(text.replace("the user", "user").split())


def content_words(text: str) -> frozenset[str]:
    return frozenset(w for w in normalize(text).split() if w not in _STOPWORDS)


def similarity(a: str, b: str) -> float:
    """Jaccard similarity of the content words of two facts; 0 when only one is negated."""
    if normalize(a) == normalize(b):
        return 1.0
    wa, wb = content_words(a), content_words(b)
    if not wa or not wb or ("not" in wa) != ("not" in wb):
        return 0.0  # nothing to compare, or one fact is the negation of the other
    return len(wa & wb) / len(wa | wb)


def _content(fact: Any) -> str:
    return fact["content"] if isinstance(fact, dict) else fact.content


def match_facts(expected: Sequence[Any], extracted: Sequence[Any]) -> list[tuple[int, int]]:
    """Pairs ``(expected index, extracted index)``: exact matches first, then by similarity.

    Facts are dicts with a ``content`` key or objects with a ``content`` attribute; each
    fact is used at most once, and a pair needs a similarity of at least ``JACCARD_MIN``.
    """
    pairs: list[tuple[int, int]] = []
    used_e: set[int] = set()
    used_x: set[int] = set()
    exp_norm = [normalize(_content(f)) for f in expected]
    ext_norm = [normalize(_content(f)) for f in extracted]
    for j, x in enumerate(ext_norm):
        for i, e in enumerate(exp_norm):
            if i not in used_e and e == x:
                pairs.append((i, j))
                used_e.add(i)
                used_x.add(j)
                break
    scored = sorted(
        (
            (similarity(_content(expected[i]), _content(extracted[j])), i, j)
            for i in range(len(expected))
            for j in range(len(extracted))
            if i not in used_e and j not in used_x
        ),
        key=lambda t: (-t[0], t[1], t[2]),
    )
    for score, i, j in scored:
        if score < JACCARD_MIN:
            break
        if i in used_e or j in used_x:
            continue
        pairs.append((i, j))
        used_e.add(i)
        used_x.add(j)
    return sorted(pairs)


@dataclass
class Score:
    """Counts over a table; the ratios are computed from them."""

    turns: int = 0
    expected: int = 0
    extracted: int = 0
    matched: int = 0
    category_correct: int = 0
    #: Facts expected / extracted with each category, and pairs where both sides have it.
    exp_by_cat: Counter[str] = field(default_factory=Counter)
    ext_by_cat: Counter[str] = field(default_factory=Counter)
    tp_by_cat: Counter[str] = field(default_factory=Counter)

    @staticmethod
    def ratio(num: int, den: int) -> float:
        return num / den if den else 1.0

    @property
    def precision(self) -> float:
        return self.ratio(self.matched, self.extracted)

    @property
    def recall(self) -> float:
        return self.ratio(self.matched, self.expected)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def category_accuracy(self) -> float:
        return self.ratio(self.category_correct, self.matched)


def load_table(path: Path = TABLE) -> list[dict[str, Any]]:
    return json.loads(path.read_text())


def score_table(
    table: Sequence[dict[str, Any]], errors: list[str] | None = None
) -> Score:
    """Run the extractor over every turn and count matches (misses go to ``errors``)."""
    score = Score()
    for row in table:
        expected = row["expected"]
        extracted = extract_facts(row["user_input"], row.get("ai_response", ""))
        pairs = match_facts(expected, extracted)
        score.turns += 1
        score.expected += len(expected)
        score.extracted += len(extracted)
        score.matched += len(pairs)
        score.exp_by_cat.update(e["category"] for e in expected)
        score.ext_by_cat.update(x.category for x in extracted)
        for i, j in pairs:
            if expected[i]["category"] == extracted[j].category:
                score.category_correct += 1
                score.tp_by_cat[extracted[j].category] += 1
        if errors is not None:
            matched_e = {i for i, _ in pairs}
            matched_x = {j for _, j in pairs}
            for i, e in enumerate(expected):
                if i not in matched_e:
                    errors.append(f"MISSED   {e['content']!r} ({e['category']})  <- "
                                  f"{row['user_input']!r}")
            for j, x in enumerate(extracted):
                if j not in matched_x:
                    errors.append(f"SPURIOUS {x.content!r} ({x.category})  <- "
                                  f"{row['user_input']!r}")
            for i, j in pairs:
                if expected[i]["category"] != extracted[j].category:
                    errors.append(f"CATEGORY {extracted[j].content!r}: {extracted[j].category}"
                                  f" != {expected[i]['category']}")
    return score


def time_per_turn(table: Sequence[dict[str, Any]], repeat: int) -> float:
    """Median over ``repeat`` passes of the mean time per turn, in microseconds."""
    means = []
    for _ in range(repeat):
        start = time.perf_counter()
        for row in table:
            extract_facts(row["user_input"], row.get("ai_response", ""))
        means.append((time.perf_counter() - start) / len(table) * 1e6)
    return statistics.median(means)


def report(score: Score, micros: float) -> str:
    lines = [
        f"turns: {score.turns}   expected facts: {score.expected}   extracted facts: "
        f"{score.extracted}   matched: {score.matched}",
        f"mean time per turn: {micros:.1f} us",
        "",
        f"{'category':<14} {'expected':>8} {'extracted':>9} {'correct':>7} {'precision':>9} "
        f"{'recall':>7} {'F1':>6}",
        "-" * 66,
    ]
    cats = sorted(set(score.exp_by_cat) | set(score.ext_by_cat))
    for cat in cats:
        tp, ne, nx = score.tp_by_cat[cat], score.exp_by_cat[cat], score.ext_by_cat[cat]
        p, r = Score.ratio(tp, nx), Score.ratio(tp, ne)
        f = 2 * p * r / (p + r) if p + r else 0.0
        lines.append(f"{cat:<14} {ne:>8} {nx:>9} {tp:>7} {p:>9.3f} {r:>7.3f} {f:>6.3f}")
    lines += [
        "-" * 66,
        f"{'overall':<14} {score.expected:>8} {score.extracted:>9} {score.matched:>7} "
        f"{score.precision:>9.3f} {score.recall:>7.3f} {score.f1:>6.3f}",
        f"category accuracy of matched facts: {score.category_accuracy:.3f} "
        f"({score.category_correct}/{score.matched})",
    ]
    return "\n".join(lines)


def filter_report(table: Sequence[dict[str, Any]]) -> str:
    """What the rule filter in front of the extractor does to the same table.

    A turn the filter drops never reaches any extractor, so its facts are lost whatever the
    model; an empty turn it lets through costs one extraction (an LLM call). Per sensitivity:
    expected facts lost, and fact-free turns sent on.
    """
    from aegis_memory.smart.filter import assess

    total_facts = sum(len(turn["expected"]) for turn in table)
    empty_turns = sum(1 for turn in table if not turn["expected"])
    lines = ["", "rule filter     facts lost   fact-free turns sent to the extractor"]
    for sensitivity in ("low", "balanced", "high"):
        lost = sent = 0
        for turn in table:
            decision = assess(turn["user_input"], turn.get("ai_response", ""),
                              sensitivity=sensitivity)  # type: ignore[arg-type]
            if turn["expected"] and not decision.worth_extracting:
                lost += len(turn["expected"])
            if not turn["expected"] and decision.worth_extracting:
                sent += 1
        lines.append(f"{sensitivity:<15} {lost:>3} / {total_facts:<6} {sent:>3} / {empty_turns}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--repeat", type=int, default=50, help="timing passes over the table")
    parser.add_argument("--show-errors", action="store_true", help="list misses and extras")
    args = parser.parse_args(argv)
    table = load_table(args.table)
    errors: list[str] = []
    score = score_table(table, errors)
    print(report(score, time_per_turn(table, args.repeat)))
    print(filter_report(table))
    if args.show_errors and errors:
        print("\n" + "\n".join(errors))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
