"""The offline extractor of SmartMemory: atomic, third-person facts from a turn, by rules alone.

Why rules at all: without an LLM key SmartMemory must still remember the obvious things a
user says about themselves ("I'm John, a Python developer from Manchester") and the lessons an
agent states ("always wait for the health check before migrating"). Rules cannot understand a
conversation, so this package is built to be *precise first*: a clause becomes a fact only when
a pattern recognises it, and anything that looks like a question, a hypothetical, an opinion,
a passing state ("I'm tired") or chit-chat is dropped. A missed fact costs a memory; a wrong
one pollutes every later recall, so when in doubt a clause is skipped.

How it works:

1. The user's words are split into sentences, then into clauses at ``;``, ``, so``, ``, but``
   and before a new first-person subject (``..., and I live in Lisbon``).
2. Each clause is tried against *specific* patterns first (name, profession, location,
   employer, age, favourites, partners, ...) which give keyed facts at confidence 0.9; a
   ``key`` names a single-valued attribute so a newer fact supersedes the older one.
3. Otherwise a *general first-person rewrite* (confidence 0.7) turns a declarative clause with
   a recognised verb into a third-person fact ("I usually watch documentaries" → "User usually
   watches documentaries"), and the verb decides the category.
4. From the assistant's reply only strategies (imperatives such as "always ...", "never ...",
   "X instead of Y", "the fix was to ...") and mistakes ("X failed because Y") are taken: the
   assistant's small talk ("Nice to meet you, John!") is never a fact about the user.
5. Facts are deduplicated; two facts with the same key in one turn keep the later one
   ("I moved from Manchester to Berlin" → Berlin).

Where each part lives:

- :mod:`._lexicon`: word lists and shared regex fragments (relatives, role words, names that
  are not names, nationalities, dates and times, places and organisations);
- :mod:`._text`: sentences and clauses, ``I'm`` → ``I am``, first → third person and verb
  agreement, and the skip rules (questions, hedges, hypotheticals, passing states);
- :mod:`._turn`: the confidences, the collector of a turn's facts and the deduplication;
- :mod:`._categories`: the category of a predicate ("is ...", "has ...", "can't ...");
- :mod:`.personal`: name, profession, employer, location, age, favourites, attributes, birth;
- :mod:`.relatives`: the people in the user's life, and "she"/"he" right after one is named;
- :mod:`.general`: the general first-person rewrite (preferences, goals, decisions, ...);
- :mod:`.lessons`: strategies and mistakes, from the user's words or the assistant's reply;
- this module: the order in which they are tried, and :func:`extract_facts`.

Everything is pure and deterministic; all patterns are compiled at import.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from aegis_memory.smart.facts import ExtractedFact
from aegis_memory.smart.rules._text import (
    _LEADING_FILLER,
    _TRAIL,
    MAX_CLAUSE_CHARS,
    MAX_SENTENCE_CHARS,
    _clauses,
    _expand_subject,
    _sentences,
    _skipped,
)
from aegis_memory.smart.rules._turn import _deduplicated, _Turn
from aegis_memory.smart.rules.general import _general, _lets, _rather
from aegis_memory.smart.rules.lessons import _assistant_facts, _not_about_user
from aegis_memory.smart.rules.personal import (
    _age,
    _attribute,
    _born,
    _employer,
    _favorite,
    _location,
    _name,
    _profession,
)
from aegis_memory.smart.rules.relatives import _pronoun, _relatives

__all__ = ["extract_facts"]


# --------------------------------------------------------------------------- user side

_HANDLERS: tuple[Callable[[str, _Turn], bool], ...] = (
    _name,
    _age,
    _profession,
    _location,
    _employer,
    _favorite,
    _attribute,
    _born,
    _relatives,
    _pronoun,
    _rather,
    _lets,
    _general,
)


def _user_facts(user_input: str, turn: _Turn) -> None:
    for sentence in _sentences(user_input):
        sentence = _LEADING_FILLER.sub("", sentence).strip()
        if (
            not sentence
            or len(sentence) > MAX_SENTENCE_CHARS
            or sentence.rstrip().endswith("?")
            or _skipped(_expand_subject(sentence))
        ):
            continue
        if _not_about_user(_TRAIL.sub("", sentence), turn):
            continue
        for raw in _clauses(sentence):
            clause = _expand_subject(_TRAIL.sub("", _LEADING_FILLER.sub("", raw)).strip())
            if not clause or len(clause) > MAX_CLAUSE_CHARS or _skipped(clause):
                continue
            for handler in _HANDLERS:
                if handler(clause, turn):
                    break


# --------------------------------------------------------------------------- entry point

_LOWERCASE_I = re.compile(r"(?<![\w'])i(?:'m|m|\s+am)\b")


def extract_facts(user_input: str, ai_response: str = "") -> list[ExtractedFact]:
    """Facts worth remembering from one turn, without any LLM.

    Personal facts, preferences, goals, decisions, constraints and dates come from the user's
    words only; strategies and mistakes also from the assistant's reply. The result is
    deduplicated and a later fact with the same ``key`` replaces an earlier one.
    """
    turn = _Turn(lowercase_typing=bool(_LOWERCASE_I.search(user_input or "")))
    _user_facts(user_input or "", turn)
    _assistant_facts(ai_response or "", user_input or "", turn)
    return _deduplicated(turn.facts)
