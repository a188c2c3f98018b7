"""The cheap first stage of SmartMemory: no LLM call for turns that hold nothing to remember.

Most conversational turns are greetings, thanks, "ok" or filler; sending each to an LLM costs
money and latency for nothing. This stage drops those outright and, for the rest, looks for
*memory signals* (a preference, a personal fact, a decision...) with word patterns. How many
signals a turn needs depends on the sensitivity:

* ``high``: any turn that is not noise goes on (signals are still reported);
* ``balanced``: at least one signal;
* ``low``: at least two different signals, or one strong one (a preference, a personal fact,
  a decision, a constraint or a mistake).

The patterns are deliberately broad: a false positive costs one extraction call, a false
negative loses a memory. ``force_extract`` in SmartMemory skips this stage entirely.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Sensitivity = Literal["low", "balanced", "high"]

_I = re.IGNORECASE


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b", _I)


#: Signal name → pattern. Names are the extractor's categories.
SIGNALS: dict[str, re.Pattern[str]] = {
    "preference": _words(
        r"i (?:really )?(?:prefer|like|love|enjoy|hate|dislike|can't stand|cannot stand)",
        r"my favou?rite", r"i'd rather", r"i would rather", r"i'm (?:a )?fan of",
        r"i (?:always|usually|never) (?:use|want|pick|choose|go with)", r"prefers?",
        r"i (?:\w+ )?(?:prefer|like|love|enjoy|hate|dislike|adore|detest)",
        r"i (?:don't|do not) (?:like|enjoy|want|care for)", r"i'd love", r"from now on",
    ),
    "personal_fact": _words(
        r"i'm", r"i am", r"my name is", r"call me", r"i work", r"i live", r"i'm from",
        r"i am from", r"i was born", r"i (?:just )?moved", r"i'm moving", r"i am moving",
        r"i relocated", r"i have (?:a|an|two|three|\d+)", r"my (?:wife|husband|"
        r"partner|son|daughter|kids?|children|job|role|company|team|age|birthday|email|"
        r"phone|address|home)", r"years old", r"i(?:'ve| have)? been", r"i used to",
        r"i (?:speak|own|teach|play|drive|study|studied|graduated|drink|eat|watch|read|run|"
        r"cook|use|write|build|manage|lead|grew up|quit)",
        r"i (?:usually|often|always|normally|sometimes|rarely|mostly)",
        r"our (?:team|company|client|customer|manager|lead|product|stack|app|service|sprint|"
        r"cto|ceo|office|startup)", r"we(?:'re| are) using", r"we use",
        r"i(?:'ve| have) got", r"we (?:host|run|deploy|keep|store|ship)",
        r"our \w+ (?:is|are|runs?|uses?|lives?)",
    ),
    "decision": _words(
        r"we (?:decided|chose|agreed|will use|are going with|went with)",
        r"i (?:decided|chose|will use|am going with|went with)", r"let's (?:use|go with)",
        r"decision", r"we'll use", r"going forward",
        r"(?:we|i)(?:'ve| have)? (?:decided|chosen|switched|migrated|agreed|settled|dropped)",
        r"switched (?:from|to)",
    ),
    "constraint": _words(
        r"must(?:n't| not)?", r"never", r"always", r"can't", r"cannot", r"not allowed",
        r"required?", r"only (?:use|allow)", r"allergic", r"budget", r"deadline", r"at most",
        r"at least", r"no more than", r"only", r"(?:don't|do not) (?:eat|drink|use)",
        r"limit", r"by (?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|"
        r"the end)", r"please (?:don't|do not|always|never|use|avoid)",
    ),
    "goal": _words(
        r"i want to", r"i'd like to", r"i would like to", r"i'm trying to", r"i am trying to",
        r"my goal", r"i plan to", r"i'm planning", r"i am planning", r"i hope to",
        r"i need to", r"we need to", r"aim(?:ing)? to",
    ),
    "strategy": _words(
        r"the trick is", r"what works", r"best (?:way|practice)", r"works better",
        r"(?:use|try) .{1,40} instead", r"the fix (?:is|was)", r"solved (?:it|this) by",
        r"the solution (?:is|was)", r"approach", r"fixed (?:it|this|the \w+) (?:by|with)",
        r"\w+ fixed it", r"worked (?:well|great|for (?:me|us))", r"make sure to",
    ),
    "mistake": _words(
        r"mistake", r"didn't work", r"did not work", r"fail(?:ed|ing|s)", r"broke(?:n)?",
        r"bug", r"crash(?:ed|es|ing)?", r"overloaded", r"caused by", r"tim(?:ed|ing) out",
        r"flaky", r"because", r"too slow",
        r"wrong", r"don't do", r"do not do", r"avoid", r"lesson", r"should have",
    ),
    "temporal": _words(
        r"tomorrow", r"yesterday", r"next (?:week|month|year|monday|tuesday|wednesday|"
        r"thursday|friday|saturday|sunday)", r"last (?:week|month|year)", r"on (?:monday|"
        r"tuesday|wednesday|thursday|friday|saturday|sunday)", r"in \d+ (?:days|weeks|months)",
        r"since \d{4}", r"\d{4}-\d{2}-\d{2}", r"(?:january|february|march|april|may|june|july|"
        r"august|september|october|november|december)", r"moved to", r"starting",
        r"(?:ends?|starts?|due) (?:on|at|by)", r"on the \d{1,2}(?:st|nd|rd|th)",
        r"weekdays?", r"weekends?", r"someday", r"every (?:day|week|month|morning|evening|night|"
        r"monday|tuesday|wednesday|thursday|friday|saturday|sunday)",
        r"in the (?:morning|evening)", r"\d{1,2} ?(?:am|pm)", r"\d+ (?:years?|months?) ago",
        r"(?:last|next|this) quarter",
    ),
    "relationship": _words(
        r"my (?:wife|husband|partner|boss|manager|colleague|friend|brother|sister|mother|"
        r"father|mom|dad|son|daughter|cousin|teammate)", r"works with", r"reports to",
        r"married", r"dating",
    ),
}

#: Signals that are enough on their own even at ``low``.
_STRONG = frozenset({"preference", "personal_fact", "decision", "constraint", "mistake"})

_NOISE = re.compile(
    r"^(?:hi|hello|hey|yo|hiya|good (?:morning|afternoon|evening|night)|bye|goodbye|"
    r"see you|see ya|later|thanks?|thank you(?: so much| very much)?|thx|ty|cheers|ok(?:ay)?|"
    r"k|sure|yes|yeah|yep|yup|no|nope|nah|cool|nice|great|awesome|perfect|got it|"
    r"understood|sounds good|makes sense|alright|all right|fine|lol|(?:ha){2,}h?|hmm+|uh+|um+|"
    r"wow|right|exactly|indeed|agreed|np|no problem|you're welcome|welcome|done|"
    r"please|go on|continue|next|sure thing|of course|will do)"
    r"(?:[\s,]+(?:thanks|thank you|so much|a lot|again|there|everyone|all|man|buddy|"
    r"friend|mate|!+))*$",
    _I,
)
_STRIP = re.compile(r"[\s!.?,;:~*_\-\"()\[\]]+|[\U0001F300-\U0001FAFF\u2600-\u27BF]+")

#: Below this many words a turn without any signal is treated as noise.
MIN_WORDS = 3


@dataclass(frozen=True, slots=True)
class FilterDecision:
    """Whether a turn goes on to extraction, and why."""

    worth_extracting: bool
    signals: tuple[str, ...]
    #: Set when the turn is dropped: ``empty``, ``noise``, ``too_short`` or ``no_signal``.
    skipped_reason: str | None = None


def _normalise(text: str) -> str:
    return " ".join(_STRIP.sub(" ", text).split()).lower()


def signals_in(text: str) -> tuple[str, ...]:
    """The memory signals found in ``text``, in :data:`SIGNALS` order."""
    return tuple(name for name, pattern in SIGNALS.items() if pattern.search(text))


def assess(
    user_input: str, ai_response: str = "", *, sensitivity: Sensitivity = "balanced"
) -> FilterDecision:
    """Decide, without any LLM call, whether a turn may hold something worth remembering.

    Only the user's words decide whether the turn is noise; the assistant's answer can add
    signals (a strategy or a mistake it states).
    """
    if sensitivity not in ("low", "balanced", "high"):
        raise ValueError(f"sensitivity must be low, balanced or high, not {sensitivity!r}")
    said = _normalise(user_input)
    extra = [s for s in signals_in(ai_response) if s in ("strategy", "mistake")]
    if not said and not extra:
        return FilterDecision(False, (), "empty")
    if said and _NOISE.fullmatch(said) and not extra:
        return FilterDecision(False, (), "noise")
    found = tuple(dict.fromkeys([*signals_in(user_input), *extra]))
    if not found and len(said.split()) < MIN_WORDS:
        return FilterDecision(False, (), "too_short")
    if sensitivity == "high":
        return FilterDecision(True, found)
    if sensitivity == "balanced":
        return FilterDecision(bool(found), found, None if found else "no_signal")
    enough = len(found) >= 2 or bool(_STRONG.intersection(found))
    return FilterDecision(enough, found, None if enough else "no_signal")
