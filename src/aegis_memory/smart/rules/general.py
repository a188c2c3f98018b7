"""The general first-person rewrite: a declarative clause with a known verb becomes a fact.

"I usually watch documentaries" → "User usually watches documentaries": the subject becomes
"User", the verb agrees, "my" becomes "their", and the verb (with what follows it) decides the
category: liking is a preference, "want to" a goal, "decided" a decision, "can't eat" a
constraint, a date makes a fact temporal. Also "my goal is ...", "our team uses ...", "I'd
rather X than Y" and "let's use X". Tried after the specific patterns, at a lower confidence;
a clause whose verb or object says nothing lasting ("I love it", "I have a question") is left.
"""

from __future__ import annotations

import re

from aegis_memory.smart.rules._categories import (
    _DURATION,
    _TASK_AT_HAND,
    _be_category,
    _deadline_or,
    _have_category,
    _modal_category,
    _temporal_or,
)
from aegis_memory.smart.rules._lexicon import (
    _ADVERBS,
    _I,
    _PREFERENCE_VERBS,
    _TEMPORAL,
    _word_set,
)
from aegis_memory.smart.rules._text import (
    _RIGHT_NOW,
    _TRANSIENT_PREDICATE,
    _third_person_rest,
    _third_person_verb,
)
from aegis_memory.smart.rules._turn import GENERAL, _Turn

# ----- the general first-person rewrite ------------------------------------------------

_LEISURE_VERBS = _word_set("watch listen read collect follow")
_HABIT_VERBS = _word_set(
    """speak watch play study teach write read use own drive cook run work live eat drink code
    program ride train practice practise volunteer attend listen collect follow support wear
    commute travel bike cycle swim hike lead manage maintain meditate sing paint knit garden
    rent go visit build develop host keep"""
)
_GOAL_VERBS = _word_set("want plan hope aim intend need mean")
_DECISION_VERBS = _word_set("decided chose picked selected settled agreed opted switched went")
_CONSTRAINT_AFTER_NOT = _word_set("eat drink use smoke consume touch")
_FACT_AFTER_NOT = _word_set("have own drive speak work live")
_CHITCHAT_OBJECT = re.compile(
    r"^(?:it(?!\s+when\b)|this|that|these|those|you|your|the\s+(?:idea|answer|solution|suggestion|"
    r"plan|approach|response|explanation|result|way|one)|how\s+you|what\s+you|it's)\b",
    _I,
)


def _rewrite_be(subject_text: str, predicate: str, *, perfect: bool = False) -> str:
    verb = "has been" if perfect else "is"
    return f"{subject_text} {verb} {_third_person_rest(predicate.strip())}"


_FIRST_PERSON = re.compile(
    rf"^(?P<subj>I|we)\s+(?P<advs>(?:{_ADVERBS}\s+)*)(?P<verb>[\w']+)(?P<rest>.*)$", _I
)


def _general(clause: str, turn: _Turn) -> bool:
    """ "I usually watch documentaries" → "User usually watches documentaries" (and friends)."""
    m = _FIRST_PERSON.match(clause)
    if not m:
        return _possessive(clause, turn)
    advs, verb, rest = m.group("advs"), m.group("verb"), m.group("rest")
    low = verb.lower()
    words = rest.split()
    nxt = words[0].lower() if words else ""
    text = _third_person_rest(rest)
    category: str | None = None
    out = ""

    if low in ("am", "are"):
        # "thinking about switching careers" is weighing a plan: "considering switching".
        rest = _THINKING_ABOUT.sub(" considering ", rest)
        category = _be_category(rest)
        out = _rewrite_be(f"User {advs}".strip(), rest)
    elif low == "have" and nxt == "been":
        category = _be_category(" ".join(words[1:]), perfect=True)
        out = _rewrite_be(f"User {advs}".strip(), " ".join(words[1:]), perfect=True)
    elif low == "have" and nxt == "to":
        category, out = _deadline_or("constraint", rest), f"User {advs}has{text}"
    elif low == "used" and nxt == "to":
        category, out = "personal_fact", f"User {advs}used{text}"
    elif low == "have" and nxt in _DECISION_VERBS:
        category, out = "decision", f"User {advs}has{text}"
    elif low == "have":
        obj = " ".join(words[1:]) if nxt == "got" else rest.strip()
        category = _have_category(obj)
        if category and re.search(r"\s+and\s+(?=(?:a|an|one|two|three|\d+)\s)", obj, _I):
            # "I have two kids and a dog named Biscuit": one fact per thing.
            for part in re.split(r"\s+and\s+(?=(?:a|an|one|two|three|\d+)\s)", obj, flags=_I):
                part_category = _have_category(part)
                if part_category:
                    turn.add(f"User {advs}has {_third_person_rest(part)}", part_category,
                             conf=GENERAL)
            return True
        out = f"User {advs}has {_third_person_rest(obj)}"
    elif low == "would":
        if re.match(r"^(?:like|love)\s+to\b", rest.strip(), _I) and not _TASK_AT_HAND.search(
            clause
        ):
            category = "goal"
        elif nxt == "prefer":
            category = "preference"
        out = f"User {advs}would{text}"
    elif low == "will":
        if re.match(r"^(?:use|go\s+with|stick\s+with|switch\s+to)\b", rest.strip(), _I):
            category = "decision"
        elif _TEMPORAL.search(rest) and _FUTURE_EVENT.match(rest.strip()):
            category = "temporal"
        out = f"User {advs}will{text}"
    elif low in ("can't", "cannot", "can", "must", "mustn't", "should", "shouldn't"):
        category = _modal_category(low, rest)
        out = f"User {advs}{verb}{text}"
    elif low in ("don't", "never") or (low == "do" and nxt == "not"):
        target = words[1].lower() if low == "do" and len(words) > 1 else nxt
        if target in _PREFERENCE_VERBS or target in ("mind", "care", "want"):
            category = "preference"
        elif target in _CONSTRAINT_AFTER_NOT:
            category = "constraint"
        elif target in _FACT_AFTER_NOT:
            category = "personal_fact"
        out = f"User {advs}{_third_person_verb(verb)}{text}"
    elif low in _PREFERENCE_VERBS:
        if not _CHITCHAT_OBJECT.match(rest.strip()) and rest.strip():
            category = "preference"
        out = f"User {advs}{_third_person_verb(verb)}{text}"
    elif low in _GOAL_VERBS:
        if nxt == "to" and not _TASK_AT_HAND.search(clause):
            category = _deadline_or("goal", rest) if low == "need" else "goal"
        out = f"User {advs}{_third_person_verb(verb)}{text}"
    elif low in _DECISION_VERBS:
        if low != "went" or nxt == "with":
            category = "decision"
        out = f"User {advs}{verb}{text}"
    elif low in ("started", "began", "graduated", "studied", "worked", "lived"):
        category = "personal_fact" if _DURATION.search(rest) or _TEMPORAL.search(rest) or \
            low == "graduated" else None
        out = f"User {advs}{verb}{text}"
    elif low in ("quit", "stopped") and rest.strip() and (
        _TEMPORAL.search(rest) or _AGO.search(rest)
    ):
        category, out = "personal_fact", f"User {advs}{verb}{text}"
    elif (low in _HABIT_VERBS or (low in _ROUTINE_VERBS and _FREQUENCY.search(rest))) and (
        rest.strip() and not _RIGHT_NOW.search(rest)
    ):
        # What someone always/usually/never picks is a preference (as in the rule filter).
        chooses = low in ("use", "pick", "choose") and re.search(
            r"\b(?:always|usually|never)\b", advs, _I
        )
        category = "preference" if low in _LEISURE_VERBS or chooses else "personal_fact"
        out = f"User {advs}{_third_person_verb(verb)}{text}"
    if category is None:
        return False
    turn.add(out, _temporal_or(category, rest), conf=GENERAL)
    return True


_AGO = re.compile(r"\b\w+\s+(?:days?|weeks?|months?|years?)\s+ago\b", _I)
#: Verbs that are a habit only with a frequency ("I take insulin daily", not "I take a break").
_ROUTINE_VERBS = _word_set("take do go have get make")
_FREQUENCY = re.compile(
    r"\b(?:daily|weekly|monthly|every\s+\w+|each\s+\w+|twice|once\s+a|regularly|"
    r"on\s+(?:weekends|weekdays|mondays|tuesdays|wednesdays|thursdays|fridays|saturdays|"
    r"sundays))\b",
    _I,
)
_FUTURE_EVENT = re.compile(
    r"^(?:be|start|join|move|fly|travel|visit|attend|leave|arrive|graduate|retire|present|speak|"
    r"host|begin|get\s+married|go|turn|finish\s+(?:school|university|college))\b",
    _I,
)
_THINKING_ABOUT = re.compile(r"\s+thinking\s+(?:about|of)\s+(?=\w+ing\b)", _I)


# ----- "my <thing> ...": goals, dates, what the user has -------------------------------

_POSSESSIVE = re.compile(r"^(?:my|our)\s+(?P<np>[\w'-]+(?:\s+[\w'-]+){0,3}?)\s+"
                         r"(?P<verb>is|are|was|starts|ends|begins|takes|uses|runs|sells|makes|"
                         r"builds|has|have|lives|works|needs|requires|allows|is\s+due|are\s+due|"
                         r"will\s+be|costs|got|has\s+been|was\s+moved|leaves|lands|"
                         r"departs)\b(?P<rest>.*)$", _I)
_GOAL_NOUN = re.compile(r"^(?:\w+\s+)?(?:goal|plan|dream|aim|objective|ambition|resolution|"
                        r"target|mission)s?\b", _I)
_OWN_NOUN = re.compile(
    r"^(?:team|company|startup|employer|org|organi[sz]ation|business|stack|house|apartment|"
    r"flat|car|dog|cat|pet|family|kids|children|school|university|college|project|product|"
    r"app|codebase|backend|frontend|service|website|blog|shop|store|office)s?$",
    _I,
)


def _possessive(clause: str, turn: _Turn) -> bool:
    """ "My goal is to ...", "My exam is on March 3rd", "Our team uses Jira"."""
    m = _POSSESSIVE.match(clause)
    if not m:
        return False
    np, rest = m.group("np"), m.group("verb") + m.group("rest")
    if _TRANSIENT_PREDICATE.match(rest) or re.search(
        r"\b(?:broken|down|slow|not\s+working|failing|acting\s+up|weird|messed\s+up)\b", rest, _I
    ):
        return False
    content = f"User's {np} {_third_person_rest(rest)}"
    if _GOAL_NOUN.match(np) and re.match(r"^(?:is|are)\s+to\b", rest, _I):
        turn.add(content, "goal", conf=GENERAL)
    elif _TEMPORAL.search(rest) and not _RIGHT_NOW.search(rest):
        turn.add(content, "temporal", conf=GENERAL)
    elif _OWN_NOUN.match(np):
        turn.add(content, "personal_fact", conf=GENERAL)
    else:
        return False
    return True


# ----- "I'd rather ...", "let's use ..." -----------------------------------------------

_RATHER = re.compile(
    r"^I\s+would\s+rather\s+(?:(?P<verb>use|have|get|eat|drink|go\s+with|work\s+with|"
    r"stick\s+with|pick|choose|read|watch)\s+)?(?P<this>.+?)\s+than\s+(?:(?P=verb)\s+)?"
    r"(?P<that>.+)$",
    _I,
)


def _rather(clause: str, turn: _Turn) -> bool:
    m = _RATHER.match(clause)
    if not m:
        return False
    this, that = _third_person_rest(m.group("this")), _third_person_rest(m.group("that"))
    if m.group("verb"):
        turn.add(f"User prefers {this} over {that}", "preference", conf=GENERAL)
    else:
        turn.add(f"User would rather {this} than {that}", "preference", conf=GENERAL)
    return True


_LETS = re.compile(
    r"^let(?:'s|\s+us)\s+(?:(?:just|definitely)\s+)?(?P<verb>use|go\s+with|stick\s+with|pick|"
    r"choose|switch\s+to|adopt|standardi[sz]e\s+on|settle\s+on)\s+(?P<what>.+)$",
    _I,
)


def _lets(clause: str, turn: _Turn) -> bool:
    m = _LETS.match(clause)
    if not m:
        return False
    verb = " ".join(m.group("verb").lower().split())
    verb = "use" if verb in ("go with", "pick", "choose", "adopt", "settle on") else verb
    turn.add(f"User decided to {verb} {_third_person_rest(m.group('what'))}", "decision",
             conf=GENERAL)
    return True
