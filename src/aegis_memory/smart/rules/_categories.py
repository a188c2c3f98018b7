"""Which category a first-person predicate gives, or none when it is no lasting fact.

"User is <x>", "User has <x>", "User can't <x>" are the shapes most facts take, and the same
predicate must get the same category whoever says it (the user alone, or "my partner and I"):
these helpers are shared by the general rewrite and the rules about relatives. ``None`` means
the predicate is a passing state or the task at hand ("trying to fix this"), so no fact.
"""

from __future__ import annotations

import re

from aegis_memory.smart.rules._lexicon import (
    _ADVERBS,
    _DETERMINER,
    _HAS_RELATIVE,
    _I,
    _TEMPORAL,
    _word_set,
)
from aegis_memory.smart.rules._text import _RIGHT_NOW


def _temporal_or(category: str, text: str) -> str:
    """A personal fact or a relationship that carries a date is a temporal fact."""
    if category in ("personal_fact", "relationship") and _TEMPORAL.search(text):
        return "temporal"
    return category


# ----- "User is ..." --------------------------------------------------------------------

_BE_PREDICATE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(?:allergic|intolerant|celiac|coeliac)\b|^(?:lactose|gluten)[- ]intolerant",
                _I), "constraint"),
    (re.compile(r"^not\s+allowed\s+to\b|^only\s+allowed\b|^required\s+to\b", _I),
     "constraint"),
    (re.compile(r"^(?:not\s+)?(?:a\s+)?(?:big\s+|huge\s+|massive\s+)?fan\s+of\b|^(?:really\s+)?"
                r"(?:into|interested\s+in|passionate\s+about|fond\s+of|keen\s+on|obsessed\s+with"
                r"|crazy\s+about|a\s+lover\s+of|a\s+sucker\s+for|a\s+(?:big\s+|firm\s+|huge\s+)?"
                r"believer\s+in)\b", _I), "preference"),
    (re.compile(r"^(?:married|engaged|divorced|separated|widowed)\b|^(?:a\s+)?single\s+"
                r"(?:mom|mum|dad|parent|father|mother)\b", _I), "relationship"),
    (re.compile(r"^(?:an?\s+)?(?:vegetarian|vegan|pescatarian|left-handed|right-handed|"
                r"colou?r-?blind|deaf|blind|diabetic|single|retired|pregnant|self-employed|"
                r"unemployed|bilingual|trilingual|sober|native|fluent\s+in|new\s+to|good\s+at|"
                r"bad\s+at|experienced\s+(?:in|with)|responsible\s+for|in\s+charge\s+of|"
                r"dyslexic|autistic|introverted|extroverted|an?\s+introvert|an?\s+extrovert)\b",
                _I), "personal_fact"),
]
_GOAL_PROGRESSIVE = re.compile(
    r"^(?:planning|trying|hoping|aiming|studying|learning|training|saving|preparing|considering|"
    r"working\s+towards?|building|writing|looking\s+to|intending|going\s+to\s+(?:learn|start|"
    r"build|study|train|become|switch|write|run|launch|apply))\b",
    _I,
)
#: Progressives that are a future event when a date comes with them ("flying to Tokyo on
#: the 12th", "switching to Linux next week"), and a passing activity otherwise.
_EVENT_PROGRESSIVE = re.compile(
    r"^(?:moving|relocating|flying|travell?ing|going|visiting|leaving|heading|starting|taking|"
    r"attending|getting\s+married|meeting|having|presenting|giving|driving|coming|switching|"
    r"changing|upgrading|migrating|joining|graduating|retiring|returning|launching|beginning|"
    r"running|hosting|speaking)\b",
    _I,
)
_DURATION = re.compile(r"\b(?:for\s+(?:\w+\s+)?(?:years?|months?|decades?|ages)|since\s+\w+)\b",
                       _I)


#: Infinitives after "trying to", "want to", "need to" that name the task at hand, not a goal.
_TASK_AT_HAND = re.compile(
    r"\b(?:trying|want|wants|wanted|need|needs|like|love|going)\s+to\s+(?:figure|fix|debug|find|"
    r"understand|get(?!\s+(?:better|into|fit|promoted|certified|married|a\s+(?:job|degree|dog|cat"
    r"|house)|in\s+shape))|solve|run|install|reproduce|make\s+(?:it|this|sure)|work\s+out|see|load|"
    r"open|connect|compile|access|log|remember|decide|set\s+up|configure|know|ask|check|hear|"
    r"talk|discuss|chat|confirm|clarify|mention|say|add|change|go\s+back|try|test|look|read\s+"
    r"(?:it|this|that|the)|send|share|show|paste|upload|download|print|copy|rename|delete|"
    r"remove|update|push|merge|deploy\s+(?:it|this))\b",
    _I,
)


def _be_category(predicate: str, *, perfect: bool = False) -> str | None:
    """The category of "User is <predicate>", or None for a passing state."""
    pred = re.sub(rf"^(?:{_ADVERBS}\s+)+", "", predicate.strip(), flags=_I)
    if _TASK_AT_HAND.search(pred):
        return None
    negated = pred.lower().startswith("not ")
    core = pred[4:] if negated else pred
    for pattern, category in _BE_PREDICATE:
        if pattern.match(pred) or pattern.match(core):
            return category
    if m := re.match(r"^(\w+ing)\b", core, _I):
        if _RIGHT_NOW.search(pred):
            return None
        if _GOAL_PROGRESSIVE.match(core):
            return "goal"
        if _EVENT_PROGRESSIVE.match(core) and _TEMPORAL.search(core):
            return "temporal"
        if re.match(r"^using\s+[A-Z]", core):
            return "personal_fact"  # "we're using Kubernetes on GCP": the stack, not a moment
        if perfect and _DURATION.search(core) and m.group(1).lower() in (
            "using", "playing", "learning", "living", "working", "doing", "practicing",
            "practising", "coding", "writing", "running", "teaching", "studying", "cooking",
        ):
            return "personal_fact"
        return None
    if re.match(r"^(?:an?)\s+(?!(?:bit|little|lot)\b)\w", core, _I):
        if negated and not _TRAIT_HEAD.search(core):
            return None  # "I'm not a robot" is a joke, "not a morning person" a trait
        return "relationship" if _HAS_RELATIVE.search(core) else "personal_fact"
    return None


_TRAIT_HEAD = re.compile(
    r"\b(?:person|people|type|fan|drinker|smoker|eater|reader|speaker|user|lover|gamer|runner|"
    r"cook|riser|sleeper|learner|fan\s+of)\b",
    _I,
)


# ----- "User has ..." -------------------------------------------------------------------

_HAVE_NOT_FACT = re.compile(
    r"^(?:a|an|one|some|a\s+few|few|two|another|no|quick)?\s*(?:\w+\s+)?"
    r"(?:questions?|idea|ideas|problems?|issues?|errors?|bugs?|doubts?|suggestions?|requests?|"
    r"favou?r|feeling|headache|cold|fever|hangover|look|minute|second|moment|go|try|clue|"
    r"thought|thoughts|follow-up|concern|concerns|update|point|typo)\b",
    _I,
)
_EVENT_NOUN = re.compile(
    r"\b(?:meeting|appointment|exam|interview|flight|call|deadline|date|party|wedding|trip|"
    r"vacation|holiday|surgery|presentation|talk|demo|launch|class|lesson|shift|test|game|"
    r"match|concert|dinner|lunch|conference|checkup|check-up|review|standup|stand-up)s?\b",
    _I,
)


def _have_category(obj: str) -> str | None:
    obj = obj.strip()
    if not obj or _HAVE_NOT_FACT.match(obj):
        return None
    if _EVENT_NOUN.search(obj):
        return "temporal" if _TEMPORAL.search(obj) else None
    if re.match(r"^never\s+\w+", obj, _I):
        return "personal_fact"
    if not _DETERMINER.match(obj):
        return None
    return "relationship" if _HAS_RELATIVE.search(obj.split(" named ")[0]) else "personal_fact"


# ----- modals and deadlines ------------------------------------------------------------

_CAN_CONSTRAINT = _word_set(
    """eat drink have use work travel attend afford drive tolerate digest spend take be do run
    share commit meet install deploy access lift sit walk fly exceed go"""
)
_CAN_ABILITY = _word_set("speak read write code play drive cook swim sing dance type")


def _modal_category(modal: str, rest: str) -> str | None:
    words = rest.split()
    nxt = words[0].lower() if words else ""
    if modal in ("can't", "cannot"):
        if nxt == "stand":
            return "preference"
        target = words[1].lower() if nxt in ("really", "ever", "even") and len(words) > 1 else nxt
        if target in ("make", "come", "join", "attend", "be", "do") and _TEMPORAL.search(rest):
            return "temporal"  # "can't make it to the meeting tomorrow"
        return "constraint" if target in _CAN_CONSTRAINT else None
    if modal == "can":
        if nxt == "only":
            return "constraint"
        return "personal_fact" if nxt in _CAN_ABILITY else None
    if modal in ("must", "mustn't"):
        if re.match(r"^(?:have\s+\w+|say|admit|confess|be\s+(?:tired|missing|mistaken|"
                    r"doing))\b", rest.strip(), _I):
            return None  # a guess or a turn of phrase, not a rule
        return "constraint"
    if nxt in ("always", "never"):
        return "constraint"
    return None


_BY_DATE = re.compile(r"\bby\s+(?:the\s+)?(?:end\s+of\s+)?\S", _I)


def _deadline_or(category: str, rest: str) -> str:
    """A task "by Friday" is a dated fact; without a deadline it keeps its category."""
    by = _BY_DATE.search(rest)
    return "temporal" if by and _TEMPORAL.search(rest[by.start():]) else category
