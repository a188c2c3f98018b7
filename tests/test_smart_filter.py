"""SmartMemory's rule filter: noise is dropped without any LLM call, signals are found, and the
sensitivity decides how many are needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aegis_memory.smart import assess
from aegis_memory.smart.filter import signals_in

NOISE = [
    "Hi!", "hello there", "Hey", "good morning", "thanks", "Thank you so much!", "thx", "ok",
    "Okay.", "ok 👍", "sure", "yes", "nope", "cool", "great, thanks!", "got it", "sounds good",
    "makes sense", "lol", "hahaha", "hmm", "bye", "see you", "no problem", "you're welcome",
]


@pytest.mark.parametrize("turn", NOISE)
@pytest.mark.parametrize("sensitivity", ["low", "balanced", "high"])
def test_greetings_acknowledgements_and_filler_are_dropped(turn, sensitivity):
    decision = assess(turn, sensitivity=sensitivity)
    assert not decision.worth_extracting
    assert decision.skipped_reason == "noise"


@pytest.mark.parametrize(("turn", "expected"), [
    ("I'm John, a Python developer from Manchester. I prefer dark mode.",
     {"preference", "personal_fact"}),
    ("We decided to use Postgres for the audit log", {"decision"}),
    ("My goal is to ship the beta before the conference", {"goal"}),
    ("I'm allergic to peanuts", {"personal_fact", "constraint"}),
    ("I moved to Berlin last month", {"personal_fact", "temporal"}),
    ("My sister Anna works with me at Acme", {"relationship"}),
    ("The trick is to retry with exponential backoff", {"strategy"}),
    ("That migration failed because we forgot the index, lesson learned", {"mistake"}),
])
def test_signals_are_found_in_varied_turns(turn, expected):
    assert expected <= set(signals_in(turn))
    assert assess(turn).worth_extracting


def test_sensitivity_sets_how_much_evidence_a_turn_needs():
    plain = "Can you summarise this article for me"  # no signal, not noise
    goal_only = "I want to learn Rust this year"  # one ordinary signal
    strong = "I prefer tabs over spaces"  # one strong signal
    assert [assess(plain, sensitivity=s).worth_extracting
            for s in ("low", "balanced", "high")] == [False, False, True]
    assert [assess(goal_only, sensitivity=s).worth_extracting
            for s in ("low", "balanced", "high")] == [False, True, True]
    assert all(assess(strong, sensitivity=s).worth_extracting
               for s in ("low", "balanced", "high"))
    assert assess(plain).skipped_reason == "no_signal"


def test_short_turns_without_signal_and_empty_turns_are_dropped():
    assert assess("blue one").skipped_reason == "too_short"
    assert assess("   ").skipped_reason == "empty"
    assert assess("I prefer tea").worth_extracting  # short, but it says something


def test_the_assistant_can_contribute_a_strategy_but_not_make_noise_count():
    decision = assess("how did you fix it?", "The fix was to pin the driver version.")
    assert decision.worth_extracting and "strategy" in decision.signals
    assert assess("thanks", "You're welcome!").skipped_reason == "noise"


def test_unknown_sensitivity_is_refused():
    with pytest.raises(ValueError, match="sensitivity"):
        assess("I prefer tea", sensitivity="extreme")  # type: ignore[arg-type]


def test_balanced_keeps_every_turn_of_the_annotated_table_that_holds_a_fact() -> None:
    """The filter sits in front of every extractor: a turn it drops loses its facts whatever
    the model. On the extractor's annotated table (tests/data/smart_turns.json) the default
    sensitivity drops none of them, and still stops most fact-free turns."""
    table = json.loads((Path(__file__).parent / "data" / "smart_turns.json").read_text())
    dropped = [turn["user_input"] for turn in table if turn["expected"]
               and not assess(turn["user_input"], turn.get("ai_response", "")).worth_extracting]
    assert dropped == []
    empty = [turn for turn in table if not turn["expected"]]
    sent_on = [turn for turn in empty
               if assess(turn["user_input"], turn.get("ai_response", "")).worth_extracting]
    assert len(sent_on) <= len(empty) // 2
