"""Facts about the people in the user's life: partners, family, colleagues, friends.

"My wife is Sarah" gives a relationship (keyed for single-valued relatives such as a wife or a
boss, so a new one replaces the old); "my sister Anna lives in Rome" also what is said of her;
"my partner and I are getting married in June" a fact about both. The relative named last is
remembered, so a following "she's a teacher" becomes "User's wife Sarah is a teacher".
"""

from __future__ import annotations

import re

from aegis_memory.smart.rules._categories import _be_category, _temporal_or
from aegis_memory.smart.rules._lexicon import (
    _I,
    _NAME,
    _NOT_NAMES,
    _PREFERENCE_VERBS,
    _REL,
    _SINGLE_VALUED_REL,
)
from aegis_memory.smart.rules._text import _HEDGE, _TRANSIENT_PREDICATE, _third_person_rest
from aegis_memory.smart.rules._turn import GENERAL, SPECIFIC, _Turn

_RELATIVE_IS = re.compile(
    rf"^(?i:my|our)\s+(?P<rel>(?i:{_REL}))(?:'s\s+name\s+is|\s+is\s+called|\s+is\s+named|\s+is)\s+"
    rf"(?P<name>{_NAME})\s*$"
)
_RELATIVE_NAMED = re.compile(
    rf"^(?i:my|our)\s+(?P<rel>(?i:{_REL})),?\s+(?P<name>{_NAME}),?\s+(?P<rest>[a-z].+)$"
)
_RELATIVE_DOES = re.compile(rf"^(?:my|our)\s+(?P<rel>{_REL})\s+(?P<rest>[a-z].+)$", _I)
_PRONOUN_CLAUSE = re.compile(r"^(?:she|he)\s+(?P<rest>.+)$", _I)
_CONTRACTED_BE = re.compile(r"^(?:she|he)'s\s+", _I)


def _relative_key(rel: str) -> str | None:
    rel = rel.lower()
    return rel if rel in _SINGLE_VALUED_REL else None


def _relatives(clause: str, turn: _Turn) -> bool:
    if m := _WITH_RELATIVE.match(clause):
        # "My partner and I are getting married in June": both are the subject.
        rel, verb, rest = m.group("rel") or m.group("rel2"), m.group("verb"), m.group("rest")
        if verb.lower() == "are":
            category = _be_category(rest)
        elif verb.lower() in _PREFERENCE_VERBS:
            category = "preference"
        else:
            category = "relationship"
        if category is None:
            return True
        turn.add(f"User and their {rel} {verb} {_third_person_rest(rest)}",
                 _temporal_or(category, rest), conf=GENERAL)
        return True
    if m := _RELATIVE_IS.match(clause):
        rel, name = m.group("rel"), m.group("name")
        if name.split()[0].lower() in _NOT_NAMES:
            return False
        turn.add(f"User's {rel} is {name}", "relationship", _relative_key(rel), conf=SPECIFIC)
        turn.referent = f"User's {rel} {name}"
        return True
    if m := _RELATIVE_NAMED.match(clause):
        rel, name = m.group("rel"), m.group("name")
        if name.split()[0].lower() in _NOT_NAMES:
            return False
        turn.add(f"User's {rel} is {name}", "relationship", _relative_key(rel), conf=SPECIFIC)
        turn.referent = f"User's {rel} {name}"
        rest = m.group("rest")
        if not _TRANSIENT_PREDICATE.match(rest):
            content = f"User's {rel} {name} {_third_person_rest(rest)}"
            turn.add(content, _temporal_or("relationship", rest), conf=GENERAL)
        return True
    if m := _RELATIVE_DOES.match(clause):
        rel, rest = m.group("rel"), m.group("rest")
        turn.referent = f"User's {rel}"
        if _TRANSIENT_PREDICATE.match(rest) or _HEDGE.match(rest):
            return True
        turn.add(f"User's {rel} {_third_person_rest(rest)}", _relative_category(rest),
                 conf=GENERAL)
        return True
    return False


_WITH_RELATIVE = re.compile(
    rf"^(?:(?:my|our)\s+(?P<rel>{_REL})\s+and\s+(?:I|me)|(?:I|me)\s+and\s+(?:my|our)\s+"
    rf"(?P<rel2>{_REL}))\s+(?P<verb>are|have|live|work|met|moved|were|got|own|run|started|bought|"
    r"love|like|enjoy|hate|prefer|adore)\s+(?P<rest>.+)$",
    _I,
)


def _relative_category(rest: str) -> str:
    """ "is allergic to shellfish" makes a relative's fact a constraint, a date temporal."""
    be = re.match(r"^(?:is|are)\s+(?P<pred>.+)$", rest, _I)
    if be and _be_category(be.group("pred")) == "constraint":
        return "constraint"
    return _temporal_or("relationship", rest)


def _pronoun(clause: str, turn: _Turn) -> bool:
    """ "she's a teacher" right after "my wife is Sarah" → "User's wife Sarah is a teacher"."""
    if turn.referent is None:
        return False
    clause = _CONTRACTED_BE.sub(lambda m: m.group(0)[:-3] + " is ", clause)
    m = _PRONOUN_CLAUSE.match(clause)
    if not m or _TRANSIENT_PREDICATE.match(m.group("rest")):
        return False
    rest = m.group("rest")
    if not re.match(r"^(?:is|works|lives|has|teaches|studies|runs|owns|was|loves|likes|hates|"
                    r"prefers|speaks|plays|goes|moved|got|just)\b", rest, _I):
        return False
    turn.add(f"{turn.referent} {_third_person_rest(rest)}", _temporal_or("relationship", rest),
             conf=GENERAL)
    return True
