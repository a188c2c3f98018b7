"""Text handling of the offline extractor: clauses, person and verb agreement, skipping.

What is here works on the wording and decides nothing about categories: splitting a message
into sentences and clauses (each with its own subject, an elided "I" put back), expanding
"I'm" so a pattern covers both spellings, turning first-person words into third-person ones
("my" → "their", "prefer" → "prefers"), and the skip rules that drop questions, hedges,
hypotheticals and passing states ("I'm tired") before any pattern is tried.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from aegis_memory.smart.rules._lexicon import _ADVERBS, _I, _REL, _word_set

#: A sentence or clause longer than this is pasted text (a log, code, an article), not a
#: statement about the user: skipping it keeps facts atomic and the regexes' work bounded.
MAX_SENTENCE_CHARS = 400
MAX_CLAUSE_CHARS = 250


# --------------------------------------------------------------------------- text helpers

_TRAIL = re.compile(r"[\s.,;:!]+$")
_SPACES = re.compile(r"\s+")
_ABBREVIATION = re.compile(
    r"(?:\b(?:St|Dr|Mr|Mrs|Ms|Prof|Jr|Sr|vs|etc|approx|No|Inc|Ltd|Co|Mt|Ave|e\.g|i\.e)\.|"
    r"\b[A-Z]\.)$"
)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})


def _finish(text: str) -> str:
    """Fact wording: single spaces, no trailing punctuation, a capital first letter."""
    text = _TRAIL.sub("", _SPACES.sub(" ", text).strip())
    return text[:1].upper() + text[1:]


def _sentences(text: str) -> Iterator[str]:
    """Sentences of ``text``; a full stop after "St" or "Dr" does not end one."""
    pending = ""
    for piece in _SENTENCE_BREAK.split(text.translate(_QUOTES)):
        pending = f"{pending} {piece}" if pending else piece
        if _ABBREVIATION.search(pending):
            continue
        if pending.strip():
            yield pending.strip()
        pending = ""
    if pending.strip():
        yield pending.strip()


_SUBJECT_AHEAD = r"(?=(?:I|i|I'm|I've|I'd|I'll|i'm|we|We|we're|we've|my|My|our|Our)\b)"
_CLAUSE_BREAK = re.compile(
    r"\s*;\s*|,\s+(?:so|but|although|though|whereas)\s+"
    rf"|,?\s+(?:and|but|so)\s+(?:(?=(?:she|he|she's|he's)\b)|{_SUBJECT_AHEAD})"
    rf"|,\s+(?=let's\b)|,\s+{_SUBJECT_AHEAD}"
)


#: "I was born in Lagos but grew up in London": a second verb that shares the subject.
_ELIDED_SUBJECT = re.compile(
    r"\s+(?:and|but)\s+(?=(?:also\s+|now\s+|then\s+|later\s+)?(?:grew|moved|relocated|live|"
    r"lived|work|worked|study|studied|teach|taught|speak|love|like|hate|enjoy|prefer|play|"
    r"write|own|drive|cook|watch|volunteer|started|graduated|was\s+raised)\b)"
)
_INFINITIVE_BEFORE = re.compile(
    r"\b(?:to|will|would|can|can't|cannot|could|should|must|might|may)\s+\w+", _I
)


_JOINT_SUBJECT = re.compile(rf"(?i:me|I|myself|(?:my|our)\s+{_REL})")


def _clauses(sentence: str) -> list[str]:
    """Clauses of a sentence, each with its own subject (an elided "I" is put back)."""
    out: list[str] = []
    pieces = [c.strip() for c in _CLAUSE_BREAK.split(sentence) if c and c.strip()]
    if pieces and _JOINT_SUBJECT.fullmatch(pieces[0]):
        pieces = [sentence]  # "Me and my wife love hiking": one subject, not two clauses
    for clause in pieces:
        subject = re.match(r"^(I|we)\b", clause, _I)
        parts = _ELIDED_SUBJECT.split(clause) if subject else [clause]
        if len(parts) > 1 and _INFINITIVE_BEFORE.search(parts[0]):
            parts = [clause]  # "I want to learn Rust and play guitar" is one goal
        out.append(parts[0])
        out.extend(f"{subject.group(1)} {part}" for part in parts[1:] if subject)
    return out


_LEADING_FILLER = re.compile(
    r"^(?:(?:so|well|also|actually|btw|by the way|oh|and|but|anyway|anyways|plus|fyi|"
    r"just so you know|for context|for the record|honestly|basically|ok so|okay so|"
    r"alright|right|yeah|yes|hey|hi|hello|oh and|please|(?:please\s+)?(?:remember|note|"
    r"keep in mind|don't forget|bear in mind)(?:\s+that)?|(?:just\s+)?so you know|"
    r"for your information)\b[\s,:-]*)+",
    _I,
)
_EXPAND = re.compile(r"^(I|we)'?(m|re|ve|d|ll)\b", _I)
_EXPANSIONS = {"m": "am", "re": "are", "ve": "have", "d": "would", "ll": "will"}


def _expand_subject(clause: str) -> str:
    """``I'm`` → ``I am`` (only the subject), so one pattern covers both spellings."""

    def repl(m: re.Match[str]) -> str:
        subject = "I" if m.group(1).lower() == "i" else m.group(1)
        return f"{subject} {_EXPANSIONS[m.group(2).lower()]}"

    if re.match(r"^im\b", clause, _I) and not re.match(r"^im[a-z]", clause, _I):
        clause = "I am" + clause[2:]
    clause = _EXPAND.sub(repl, clause, count=1)
    return re.sub(r"^i\b", "I", clause)


_PRONOUNS = {
    "my": "their",
    "me": "them",
    "myself": "themselves",
    "mine": "theirs",
    "our": "their",
    "us": "them",
    "ours": "theirs",
    "ourselves": "themselves",
    "we": "they",
    "i": "they",
}
_PRONOUN_RE = re.compile(r"\b(my|me|myself|mine|our|us|ours|ourselves|we|I)\b")


def _third_person_rest(text: str) -> str:
    """First-person words after the subject: "my" → "their", "me" → "them" ("US" stays)."""
    return _PRONOUN_RE.sub(lambda m: _PRONOUNS[m.group(1).lower()], text)


_IRREGULAR_3SG = {"have": "has", "do": "does", "go": "goes", "be": "is", "don't": "doesn't"}
_MODALS = _word_set(
    "can can't cannot could couldn't will won't would wouldn't should shouldn't must mustn't "
    "may might shall"
)
_NOT_PAST = _word_set("need feed seed proceed succeed exceed embed speed breed bleed heed")
_IRREGULAR_PAST = _word_set(
    """was were had did went chose got made took left bought began came saw ran wrote taught grew
    met became found spent sold told thought knew built kept lost won gave paid said sent felt
    brought drove flew ate drank"""
)


def _is_past(verb: str) -> bool:
    low = verb.lower()
    return low in _IRREGULAR_PAST or (low.endswith("ed") and low not in _NOT_PAST)


def _third_person_verb(verb: str) -> str:
    """``prefer`` → ``prefers``, ``watch`` → ``watches``, ``study`` → ``studies``."""
    low = verb.lower()
    if low in _IRREGULAR_3SG:
        return _IRREGULAR_3SG[low]
    if low in _MODALS or _is_past(low) or low.endswith("n't"):
        return verb
    if re.search(r"(?:s|sh|ch|x|z|o)$", low):
        return verb + "es"
    if re.search(r"[^aeiou]y$", low):
        return verb[:-1] + "ies"
    return verb + "s"


# --------------------------------------------------------------------------- skip rules

_QUESTION_START = re.compile(
    r"^(?:what|what's|whats|why|how|when|where|who|whom|whose|which|"
    r"(?:can|could|would|will|do|does|did|is|are|was|were|should|shall|may|might|have|has|am|"
    r"isn't|aren't|don't|doesn't|didn't|won't|wouldn't|can't|couldn't)\s+"
    r"(?:you|i|we|it|they|he|she|there|this|that|my|your|the|a|an|any|anyone|someone))\b",
    _I,
)
_HEDGE = re.compile(
    r"^(?:I\s+(?:think|guess|suppose|believe|wonder|reckon|bet|doubt|assume|imagine|feel\s+like|"
    r"hope\s+(?!to\b)|expect|fear|figure)|maybe|perhaps|probably|possibly|hmm+|not\s+sure|"
    r"i\s+am\s+not\s+sure|if|unless|suppose|imagine|what\s+if|in\s+case|assuming|let\s+me|"
    r"seems?|apparently|i\s+wish|i\s+would\s+(?!(?:rather|like|love|prefer)\b)|"
    r"i\s+could\s+|i\s+might\s+|i\s+may\s+)\b",
    _I,
)
_HYPOTHETICAL = re.compile(r"\bif\s+(?:I|we)\s+(?:were|had|was|could|would)\b|\bI\s+wish\b", _I)
_TRANSIENT_ADJ = (
    r"(?:tired|exhausted|sleepy|fine|good|great|ok|okay|alright|busy|sure|unsure|confused|"
    r"lost|stuck|back|here|ready|done|finished|sorry|happy|sad|bored|hungry|thirsty|sick|ill|"
    r"stressed|excited|nervous|worried|frustrated|annoyed|glad|curious|free|available|late|"
    r"early|away|online|offline|afk|awake|home|at\s+home|at\s+work|in\s+a\s+meeting|"
    r"on\s+my\s+way|almost\s+done|not\s+sure|not\s+feeling\s+well|feeling\s+\w+|"
    r"so\s+\w+|a\s+bit\s+\w+|a\s+little\s+\w+|kind\s+of\s+\w+|pretty\s+\w+|very\s+\w+|"
    r"really\s+\w+|quite\s+\w+|super\s+\w+|totally\s+\w+|just\s+\w+|still\s+\w+|"
    r"about\s+to\b.*|going\s+to\s+(?:check|try|look|see|test|run|go|grab|do)\b.*|"
    r"in\s+the\s+middle\s+of\b.*|on\s+it|on\s+break|confident|impressed|surprised|"
    r"disappointed|amazed|relieved|thankful|grateful|fine\s+now|good\s+now|back\s+now)"
)
_TRANSIENT = re.compile(
    rf"^(?:I|we)\s+(?:am|are|have\s+been|feel|was|were)\s+(?:{_ADVERBS}\s+)?{_TRANSIENT_ADJ}"
    r"\s*(?:$|today|now|right\s+now|tonight|at\s+the\s+moment|by\b|about\b|with\b|because\b|"
    r"of\b|for\s+(?:now|a\s+bit|a\s+moment|a\s+minute|today)|again|,|lol|haha|though)",
    _I,
)
_RIGHT_NOW = re.compile(
    r"\b(?:right\s+now|at\s+the\s+moment|just\s+now|for\s+now|this\s+(?:morning|afternoon)"
    r"\s*$|today\s*$|now\s*$|currently)\b",
    _I,
)


def _skipped(clause: str) -> bool:
    """Questions, hedges and opinions, hypotheticals and passing states hold no fact."""
    return bool(
        clause.rstrip().endswith("?")
        or _QUESTION_START.match(clause)
        or _HEDGE.match(clause)
        or _HYPOTHETICAL.search(clause)
        or _TRANSIENT.match(clause)
    )


#: A relative's or a thing's passing state ("my wife is at work"), not a fact about it.
_TRANSIENT_PREDICATE = re.compile(
    rf"^(?:is|are|was|were|feels?)\s+(?:{_ADVERBS}\s+)?{_TRANSIENT_ADJ}\s*(?:$|today|now|right"
    r"\s+now|at\s+the\s+moment|,)|^(?:is|are)\s+(?:here|coming|calling|waiting|asking|"
    r"texting|on\s+the\s+phone)\b",
    _I,
)
