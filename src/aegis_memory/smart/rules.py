"""The offline extractor of SmartMemory: atomic, third-person facts from a turn, by rules alone.

Why rules at all: without an LLM key SmartMemory must still remember the obvious things a
user says about themselves ("I'm John, a Python developer from Manchester") and the lessons an
agent states ("always wait for the health check before migrating"). Rules cannot understand a
conversation, so this module is built to be *precise first*: a clause becomes a fact only when
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

Everything is pure and deterministic; all patterns are compiled at import.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aegis_memory.smart.facts import MAX_FACT_CHARS, ExtractedFact

__all__ = ["extract_facts"]

#: Confidence of a fact from a specific pattern, of a general rewrite, of an assistant lesson.
SPECIFIC = 0.9
GENERAL = 0.7
LESSON = 0.75

#: A sentence or clause longer than this is pasted text (a log, code, an article), not a
#: statement about the user: skipping it keeps facts atomic and the regexes' work bounded.
MAX_SENTENCE_CHARS = 400
MAX_CLAUSE_CHARS = 250

_I = re.IGNORECASE


def _word_set(words: str) -> frozenset[str]:
    """A vocabulary written as whitespace-separated words (easier to read than a list)."""
    return frozenset(words.split())


def _alt(words: str) -> str:
    """``"a b|c d"`` → a non-capturing alternation with flexible spaces, longest first."""
    items = sorted(words.split("|"), key=len, reverse=True)
    return "(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in items) + ")"


# --------------------------------------------------------------------------- vocabulary

_ADVERBS = _alt(
    "also|really|usually|mostly|often|always|never|sometimes|generally|mainly|primarily|"
    "rarely|occasionally|still|only|just|currently|now|normally|typically|actually|"
    "absolutely|totally|definitely|regularly|frequently|especially|honestly|truly|"
    "recently|finally|even|basically|kind of|sort of|pretty much"
)
_REL_SINGLE = (
    "wife|husband|partner|boyfriend|girlfriend|fiance|fiancee|fiancé|fiancée|spouse|boss|"
    "manager|landlord|therapist|doctor|dentist|team lead|tech lead|supervisor|line manager|"
    "product manager|project manager|engineering manager|accountant|lawyer"
)
_REL_MULTI = (
    "son|daughter|kid|kids|child|children|brother|sister|mom|mother|mum|dad|father|parents|"
    "grandma|grandmother|grandpa|grandfather|grandparents|aunt|uncle|cousin|nephew|niece|"
    "colleague|coworker|co-worker|teammate|friend|best friend|roommate|flatmate|neighbour|"
    "neighbor|twin|family|in-laws|mentor|sons|daughters|brothers|sisters|siblings|friends|"
    "colleagues|cousins|grandchildren|grandkids|baby|twins|stepson|stepdaughter|co-founder|"
    "cofounder|business partner|coach|mentee|assistant"
)
_REL = _alt(_REL_SINGLE + "|" + _REL_MULTI)
_SINGLE_VALUED_REL = frozenset(_REL_SINGLE.split("|"))

#: Capitalised words that follow "I'm" without being a name.
_NOT_NAMES = _word_set(
    """sorry not so just also still really very fine good great ok okay here back done ready sure
    tired happy busy new going looking trying working currently always never from in at on a an
    the based living originally allergic vegan vegetarian married single retired glad afraid
    excited confused lost stuck home free available late early well alright actually basically
    honestly kinda kind literally totally pretty quite super bit interested into planning
    learning studying moving flying curious hungry bored sad angry frustrated worried nervous
    calm thinking wondering gonna about almost nearly over cold hot warm out up down off old
    young alone awake asleep aware right wrong cool tall short broke rich poor ill mad upset
    pregnant sick with by for to of this that it what too all no yes bad nice"""
)
_NATIONALITIES = _word_set(
    """american british english scottish welsh irish french german spanish italian portuguese dutch
    belgian swiss austrian swedish norwegian danish finnish icelandic polish czech slovak
    hungarian romanian bulgarian greek turkish russian ukrainian canadian mexican brazilian
    argentinian argentine chilean colombian peruvian venezuelan cuban australian chinese
    japanese korean vietnamese thai filipino indonesian malaysian singaporean indian pakistani
    bangladeshi nepali iranian iraqi israeli lebanese egyptian moroccan nigerian kenyan ghanaian
    ethiopian south african"""
)
_ROLE_WORDS = _word_set(
    """nurse chef doctor teacher student engineer developer designer lawyer manager consultant
    analyst architect scientist pilot writer artist cook barista dentist surgeon accountant
    intern founder cofounder co-founder cto ceo cfo coo vp freelancer programmer researcher
    professor lecturer journalist photographer musician farmer plumber electrician pharmacist
    vet veterinarian paramedic firefighter officer clerk cashier translator tutor coach trainer
    mechanic carpenter postdoc physician therapist psychologist economist editor entrepreneur
    administrator admin sysadmin devops sre tester lead principal director head contractor
    technician nanny carer caregiver waiter waitress bartender driver librarian secretary
    assistant producer illustrator animator actor actress dancer singer author blogger streamer
    marketer recruiter salesperson realtor broker banker trader investor auditor attorney
    paralegal judge soldier sailor midwife optician pm po statistician mathematician physicist
    chemist biologist geologist linguist historian"""
)
#: Nouns after "I'm a" that end like a role noun but are not a job.
_NOT_ROLES = _word_set(
    """fan member lover believer beginner customer user follower supporter speaker reader viewer
    subscriber number winner loser other mother father brother sister daughter son wife husband
    partner owner player person bit lot little big fan newbie noob rookie citizen resident
    native vegetarian vegan pescatarian morning night riser sleeper learner eater listener
    thinker talker drinker smoker dreamer perfectionist optimist pessimist realist idealist
    extrovert introvert procrastinator overthinker worrier gamer person"""
)
#: Modifiers that make "a <modifier> <noun>" a trait ("an early riser"), not a job.
_TRAIT_MODIFIERS = _word_set(
    """early late heavy light fast slow quick big good bad great terrible picky huge avid keen
    casual natural born total complete massive real true"""
)
_ROLE_SUFFIX = re.compile(r"(?:er|or|ist|ian|eer|ant|ent|ect|yst|ive)$", _I)

_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
)
_WEEKDAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
#: A date, a weekday or a relative time: what makes a clause a *temporal* fact.
_TEMPORAL = re.compile(
    rf"\b(?:(?:{_MONTHS})\b|(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\.?\s+\d"
    rf"|(?i:{_WEEKDAYS})\b|(?i:today|tonight|tomorrow|yesterday)\b"
    r"|(?i:(?:this|next|last)\s+(?:morning|afternoon|evening|night|week|weekend|month|year|"
    r"semester|term|quarter|spring|summer|autumn|fall|winter))\b"
    r"|(?i:in\s+(?:\d+|a|one|two|three|four|five|six|a\s+few)\s+(?:days?|weeks?|months?|years?))"
    r"|\d{1,2}(?:st|nd|rd|th)\b|\d{4}-\d{2}-\d{2}|\b\d{1,2}/\d{1,2}(?:/\d{2,4})?\b"
    r"|(?i:at\s+\d{1,2}(?::\d{2})?\s*(?:am|pm)\b)|(?i:(?:in|since)\s+(?:19|20)\d{2}\b)"
    r"|(?i:by\s+(?:the\s+)?end\s+of))"
)

# --------------------------------------------------------------------------- text helpers

_PLACE = (
    r"(?:the\s+)?[A-Z][\w'.&-]*(?:(?:\s+|-)(?:(?:de|da|do|del|dos|das|la|el|le)\s+)?"
    r"[A-Z][\w'.&-]*)*"
)
_ORG = (
    rf"(?:{_PLACE}|(?i:a|an|the)\s+(?!(?:moment|weekend|weekends|same|end|start|time)\b)"
    r"[a-z][\w-]*(?:\s+(?!(?:in|at|for|from|on|with|and|since|as|near|by|but|so)\b)"
    r"[a-z][\w-]*){0,3})"
)
_NAME = r"[A-Z][a-zA-Z'\-]+(?:\s+[A-Z][a-zA-Z'\-]+){0,2}"
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


# --------------------------------------------------------------------------- fact building


@dataclass
class _Turn:
    """Facts found so far in a turn, and the relative a following "she"/"he" refers to."""

    facts: list[ExtractedFact] = field(default_factory=list)
    referent: str | None = None
    #: The user writes "i'm" / "im" in lowercase, so a lowercase word may be their name.
    lowercase_typing: bool = False

    def add(self, content: str, category: str, key: str | None = None, *, conf: float) -> None:
        content = _finish(content)
        if content and len(content) <= MAX_FACT_CHARS:
            self.facts.append(
                ExtractedFact(content=content, category=category, confidence=conf, key=key)
            )


def _temporal_or(category: str, text: str) -> str:
    """A personal fact or a relationship that carries a date is a temporal fact."""
    if category in ("personal_fact", "relationship") and _TEMPORAL.search(text):
        return "temporal"
    return category


def _clean_place(place: str) -> str:
    return _TRAIL.sub("", place)


# ----- name ----------------------------------------------------------------------------

# Only the lead-in ignores case: the name itself must be capitalised ("Call me Jay", not
# "Call me tomorrow"); lowercase names go through the stricter _EXPLICIT_LOWER_NAME.
_NAME_IS = re.compile(
    r"^(?i:my\s+name\s+is|my\s+name's|(?:you\s+can\s+|please\s+|just\s+)?call\s+me|"
    rf"people\s+call\s+me|everyone\s+calls\s+me|the\s+name's)\s+(?P<name>{_NAME})\s*"
    r"(?P<rest>(?:,|\band\b|\bbut\b|$).*)$"
)
_I_AM_NAME = re.compile(rf"^I\s+am\s+(?P<name>{_NAME})(?P<rest>(?:\s*,|\s+from\b|\s*$).*)$")
#: "i'm sofia" from someone who types in lowercase: one word, alone in its clause.
_I_AM_LOWER_NAME = re.compile(r"^I\s+am\s+(?P<name>[a-z][a-z'-]{1,20})\s*$")
_EXPLICIT_LOWER_NAME = re.compile(
    r"^(?i:my\s+name\s+is|my\s+name's|call\s+me)\s+(?P<name>[a-z][a-z'-]{1,20}"
    r"(?:\s+[a-z][a-z'-]{1,20})?)\s*$"
)
_ADJECTIVE_ENDING = re.compile(r"(?:ed|ing|ful|ous|ive|ish|less|able|ible)$")
_LOWER_NOT_NAMES = _word_set(
    """human gay straight bi trans muslim hindu jewish christian catholic atheist agnostic deaf
    blind mute disabled alive dead sober drunk high lucky lonely crazy grumpy thirsty dizzy
    silly lazy healthy early ugly pretty guilty easy shy unhappy angry hangry sleepy funny moody
    nerdy geeky diabetic autistic dyslexic epileptic asthmatic allergic vegan veggie fluent
    native local remote new here there everywhere somewhere afk brb online offline done back
    home out away tomorrow today tonight later maybe sometime anytime soon now asap whenever
    again please"""
)


def _lowercase_name(clause: str, turn: _Turn) -> bool:
    """A name typed in lowercase; the word must not look like an adjective or a state.

    "I'm colorblind" from someone who capitalises "I" is not a name: "i'm sofia" is accepted
    only from a user who types the pronoun in lowercase.
    """
    m = _EXPLICIT_LOWER_NAME.match(clause) or (
        turn.lowercase_typing and _I_AM_LOWER_NAME.match(clause)
    )
    if not m:
        return False
    words = m.group("name").split()
    first = words[0]
    if (first in _NOT_NAMES or first in _LOWER_NOT_NAMES or first in _NATIONALITIES
            or first in _ROLE_WORDS or _ADJECTIVE_ENDING.search(first)):
        return False
    name = " ".join(w.capitalize() for w in words)
    turn.add(f"User's name is {name}", "personal_fact", "name", conf=0.8)
    return True


def _name(clause: str, turn: _Turn) -> bool:
    m = _NAME_IS.match(clause) or _I_AM_NAME.match(clause)
    if not m:
        return _lowercase_name(clause, turn)
    words = m.group("name").split()
    # Keep only the capitalised words that make up the name: "I'm John Smith" yes,
    # "I'm Sorry" or "I'm British" no.
    if words[0].lower() in _NOT_NAMES:
        return False
    if " ".join(words).lower() in _NATIONALITIES or words[0].lower() in _NATIONALITIES:
        turn.add(f"User is {' '.join(words)}", "personal_fact", "nationality", conf=SPECIFIC)
        return True
    if all(w.islower() for w in words):
        words = [w.capitalize() for w in words]  # "my name is alex": a name has capitals
    turn.add(f"User's name is {' '.join(words)}", "personal_fact", "name", conf=SPECIFIC)
    rest = m.group("rest").strip().lstrip(",").strip()
    if rest:
        # The appositive in "I'm John, a Python developer from Manchester".
        if re.match(r"^(?:an?|the)\s", rest, _I):
            _profession(f"I am {rest}", turn)
        elif re.match(r"^(?:from|based\s+in|originally\s+from)\b", rest, _I):
            _location(f"I am {rest}", turn)
    return True


# ----- profession, employer, location ---------------------------------------------------

_ROLE_STOP = (
    r"(?=\s+(?:from|in|at|for|with|who|and|based|working|living|since|by|on|of)\b|\s*,|\s*$)"
)
_PROFESSION = re.compile(
    rf"^I\s+(?:am|work\s+as|am\s+working\s+as|work\s+full[- ]time\s+as|work\s+part[- ]time\s+as)"
    rf"\s+(?:(?:{_ADVERBS})\s+)?(?P<art>an?|the)\s+(?P<role>[\w./+#&-]+(?:\s+[\w./+#&-]+){{0,4}}?)"
    rf"{_ROLE_STOP}(?P<rest>.*)$",
    _I,
)
# Not IGNORECASE: a place or an organisation is told apart by its capital letter.
_WHERE = re.compile(
    rf"(?P<prep>(?i:originally\s+from|from|based\s+in|in|at|for|of))\s+(?P<what>{_ORG})"
)


def _is_role(role: str) -> bool:
    words = role.lower().split()
    head = words[-1]
    if any(w in _NOT_ROLES for w in words) or words[0] in _TRAIT_MODIFIERS | {"bit", "lot"}:
        return False
    return head in _ROLE_WORDS or (bool(_ROLE_SUFFIX.search(head)) and len(head) > 4)


def _places_and_employers(rest: str, turn: _Turn) -> None:
    """``from X`` / ``in X`` → location, ``at X`` / ``for X`` → employer, in the order said."""
    for m in _WHERE.finditer(rest):
        prep = " ".join(m.group("prep").lower().split())
        what = _clean_place(m.group("what"))
        capitalised = what[:1].isupper() or (what.lower().startswith("the ") and " " in what)
        if prep in ("at", "for", "of"):
            if capitalised or re.match(r"^(?:a|an)\s", what, _I):
                turn.add(f"User works at {what}", "personal_fact", "employer", conf=SPECIFIC)
        elif not what[:1].isupper() and not what.lower().startswith("the "):
            continue
        elif prep == "originally from":
            turn.add(f"User is originally from {what}", "personal_fact", "hometown", conf=SPECIFIC)
        else:
            turn.add(f"User is based in {what}", "personal_fact", "location", conf=SPECIFIC)


#: "head of engineering", "professor of physics": the "of" belongs to the role.
_ROLE_OF = re.compile(
    r"^\s+of\s+(?P<field>[A-Za-z][\w-]*(?:\s+(?!(?:at|for|in|from|and|with)\b)[a-z][\w-]*){0,3})"
    r"(?P<rest>.*)$"
)
_ROLE_WITH_OF = _word_set("head director vp chief professor lecturer teacher president dean")


def _profession(clause: str, turn: _Turn) -> bool:
    m = _PROFESSION.match(clause)
    if not m or not _is_role(m.group("role")):
        return False
    role, rest = m.group("role"), m.group("rest")
    if role.split()[-1].lower() in _ROLE_WITH_OF and (of := _ROLE_OF.match(rest)):
        role, rest = f"{role} of {of.group('field')}", of.group("rest")
    turn.add(f"User is {m.group('art')} {role}", "personal_fact", "profession", conf=SPECIFIC)
    _places_and_employers(rest, turn)
    return True


_EMPLOYER = re.compile(
    rf"^(?:I|we)\s+(?:(?i:{_ADVERBS})\s+)?(?i:work|am\s+working)\s+(?i:at|for)\s+(?P<org>{_ORG})"
    r"(?P<rest>.*)$"
)
_JOINED = re.compile(
    rf"^I\s+(?:(?:{_ADVERBS})\s+)?(?:joined|started\s+(?:working\s+)?at|have\s+joined)\s+"
    rf"(?P<org>{_PLACE})(?P<rest>.*)$"
)


def _employer(clause: str, turn: _Turn) -> bool:
    m = _EMPLOYER.match(clause) or _JOINED.match(clause)
    if not m:
        return False
    org = _clean_place(m.group("org"))
    if not (org[:1].isupper() or re.match(r"^(?:a|an|the)\s", org, _I)):
        return False
    turn.add(f"User works at {org}", "personal_fact", "employer", conf=SPECIFIC)
    rest = m.group("rest")
    role = re.match(r"^\s+as\s+(?P<art>an?)\s+(?P<role>[\w\s./+#&-]+?)" + _ROLE_STOP, rest, _I)
    if role and _is_role(role.group("role")):
        turn.add(f"User is {role.group('art')} {role.group('role')}", "personal_fact",
                 "profession", conf=SPECIFIC)
        rest = rest[role.end():]
    _places_and_employers(rest, turn)
    return True


_MOVED = re.compile(
    rf"^(?:I|we)\s+(?:(?:{_ADVERBS})\s+)?(?:have\s+)?(?:(?:{_ADVERBS})\s+)?(?:moved|relocated)"
    rf"(?:\s+(?:back\s+)?(?:here\s+)?from\s+{_PLACE})?\s+(?:back\s+)?to\s+(?P<place>{_PLACE})"
)
_LIVE = re.compile(
    rf"^(?:I|we)\s+(?:(?:{_ADVERBS})\s+)?(?:live|reside)\s+in\s+(?P<place>{_PLACE})"
    rf"|^(?:I\s+am|we\s+are)\s+(?:(?:{_ADVERBS})\s+)?(?:based|living|located)\s+in\s+"
    rf"(?P<place2>{_PLACE})"
)
_LIVES_WITH = re.compile(r"\bwith\s+(?:my|our)\s+(?P<who>[\w' -]+?)\s*(?:$|,|\bnow\b)", _I)
_FROM = re.compile(
    rf"^(?:I\s+am|I\s+come|we\s+are)\s+(?P<orig>(?:originally\s+)?)from\s+(?P<place>{_PLACE})"
    r"(?P<rest>.*)$"
)
_GREW_UP = re.compile(rf"^I\s+(?:grew\s+up|was\s+raised)\s+in\s+(?P<place>{_PLACE})")
_FIX_CASE = re.compile(
    r"^(?:I|we)\s+(?:am\s+|are\s+|come\s+|live\s+|(?:\w+\s+)?(?:moved|relocated)\s+)", _I
)


def _location(clause: str, turn: _Turn) -> bool:
    # The place must be written with a capital; "i'm From" style casing of the verb part is
    # normalised so that only the place's own capitalisation counts.
    head = _FIX_CASE.match(clause)
    if head:
        clause = head.group(0).lower().replace("i ", "I ", 1) + clause[head.end():]
    if m := _MOVED.match(clause):
        place = _clean_place(m.group("place"))
        turn.add(f"User is based in {place}", "personal_fact", "location", conf=SPECIFIC)
        return True
    if m := _LIVE.match(clause):
        place = _clean_place(m.group("place") or m.group("place2"))
        turn.add(f"User is based in {place}", "personal_fact", "location", conf=SPECIFIC)
        if with_ := _LIVES_WITH.search(clause, m.end()):
            # "... with my two dogs" says the user has them; "... with my wife" who they live with.
            who = with_.group("who")
            category = "relationship" if _HAS_RELATIVE.search(who) else "personal_fact"
            if _DETERMINER.match(who):
                turn.add(f"User has {who}", category, conf=GENERAL)
            else:
                turn.add(f"User lives with their {who}", category, conf=GENERAL)
        return True
    if m := _FROM.match(clause):
        place = _clean_place(m.group("place"))
        if m.group("orig"):
            turn.add(f"User is originally from {place}", "personal_fact", "hometown",
                     conf=SPECIFIC)
        else:
            turn.add(f"User is based in {place}", "personal_fact", "location", conf=SPECIFIC)
        _places_and_employers(m.group("rest"), turn)
        return True
    if m := _GREW_UP.match(clause):
        place = _clean_place(m.group("place"))
        turn.add(f"User grew up in {place}", "personal_fact", "hometown", conf=SPECIFIC)
        return True
    return False


# ----- age, favourites, keyed attributes, relatives --------------------------------------

_AGE = re.compile(
    r"^(?:I\s+am|I\s+(?:just\s+)?turned|my\s+age\s+is)\s+(?P<age>\d{1,3})"
    r"(?:\s*(?:years?|yrs?)(?:\s+old)?|\s*y/?o)?\s*(?:$|now\b|this\s+year\b|last\s+\w+)",
    _I,
)


def _age(clause: str, turn: _Turn) -> bool:
    m = _AGE.match(clause)
    if not m or not 0 < int(m.group("age")) < 125:
        return False
    turn.add(f"User is {m.group('age')} years old", "personal_fact", "age", conf=SPECIFIC)
    return True


_FAVORITE = re.compile(
    r"^(?:my|our)\s+(?P<fav>(?:all[- ]time\s+)?favou?rite)\s+(?P<thing>[\w' -]+?)\s+"
    r"(?P<verb>is|are|has\s+always\s+been|would\s+be)\s+(?P<value>.+)$",
    _I,
)


def _favorite(clause: str, turn: _Turn) -> bool:
    m = _FAVORITE.match(clause)
    if not m:
        return False
    thing = m.group("thing")
    value = _third_person_rest(m.group("value"))
    content = f"User's {m.group('fav')} {thing} {m.group('verb')} {value}"
    turn.add(content, "preference", "favorite_" + thing, conf=SPECIFIC)
    return True


#: "my <attribute> is ..." → (key, category, force the category even with a date).
_ATTRIBUTES: dict[str, tuple[str, str]] = {
    "birthday": ("birthday", "personal_fact"),
    "birth date": ("birthday", "personal_fact"),
    "date of birth": ("birthday", "personal_fact"),
    "email": ("email", "personal_fact"),
    "email address": ("email", "personal_fact"),
    "phone number": ("phone", "personal_fact"),
    "number": ("phone", "personal_fact"),
    "timezone": ("timezone", "personal_fact"),
    "time zone": ("timezone", "personal_fact"),
    "native language": ("native_language", "personal_fact"),
    "first language": ("native_language", "personal_fact"),
    "mother tongue": ("native_language", "personal_fact"),
    "job": ("profession", "personal_fact"),
    "job title": ("profession", "personal_fact"),
    "role": ("profession", "personal_fact"),
    "title": ("profession", "personal_fact"),
    "budget": ("budget", "constraint"),
    "pronouns": ("pronouns", "personal_fact"),
    "username": ("username", "personal_fact"),
    "github username": ("github_username", "personal_fact"),
    "blood type": ("blood_type", "personal_fact"),
    "diet": ("diet", "constraint"),
}
_ATTRIBUTE = re.compile(
    rf"^(?:my|our)\s+(?P<attr>{_alt('|'.join(_ATTRIBUTES))})"
    r"(?P<scope>\s+(?:for|on|at|in)\s+[^,]+?)?\s+(?P<verb>is|are|'s)\s+(?P<value>.+)$",
    _I,
)


def _attribute(clause: str, turn: _Turn) -> bool:
    m = _ATTRIBUTE.match(clause)
    if not m:
        return False
    attr = " ".join(m.group("attr").lower().split())
    key, category = _ATTRIBUTES[attr]
    scope = _third_person_rest(m.group("scope") or "")
    value = _third_person_rest(m.group("value"))
    turn.add(f"User's {m.group('attr')}{scope} {m.group('verb')} {value}", category, key,
             conf=SPECIFIC)
    return True


_BORN = re.compile(r"^I\s+was\s+born\s+(?P<rest>(?:on|in)\s+.+)$", _I)


def _born(clause: str, turn: _Turn) -> bool:
    m = _BORN.match(clause)
    if not m:
        return False
    rest = m.group("rest")
    if rest.lower().startswith("on") or re.match(r"in\s+(?:19|20)\d\d\b", rest, _I):
        turn.add(f"User was born {rest}", "personal_fact", "birthday", conf=SPECIFIC)
    else:
        turn.add(f"User was born {rest}", "personal_fact", "birthplace", conf=SPECIFIC)
    return True


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
_TRANSIENT_PREDICATE = re.compile(
    rf"^(?:is|are|was|were|feels?)\s+(?:{_ADVERBS}\s+)?{_TRANSIENT_ADJ}\s*(?:$|today|now|right"
    r"\s+now|at\s+the\s+moment|,)|^(?:is|are)\s+(?:here|coming|calling|waiting|asking|"
    r"texting|on\s+the\s+phone)\b",
    _I,
)


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


# ----- the general first-person rewrite ------------------------------------------------

_PREFERENCE_VERBS = _word_set("like love enjoy hate dislike prefer adore detest despise loathe")
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
_DETERMINER = re.compile(
    r"^(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|\d+|no|some|several|many|"
    r"lots\s+of|a\s+lot\s+of|twin|twins)\b",
    _I,
)
_HAS_RELATIVE = re.compile(rf"\b{_REL}\b", _I)
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
_BY_DATE = re.compile(r"\bby\s+(?:the\s+)?(?:end\s+of\s+)?\S", _I)


def _deadline_or(category: str, rest: str) -> str:
    """A task "by Friday" is a dated fact; without a deadline it keeps its category."""
    by = _BY_DATE.search(rest)
    return "temporal" if by and _TEMPORAL.search(rest[by.start():]) else category


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


# ----- sentences that are not about the user: lessons, rules, deadlines -------------------

_FAILURE = (
    r"(?:failed|fails|broke|breaks|crashed|crashes|kept\s+failing|keeps\s+failing|"
    r"stopped\s+working|didn't\s+work|did\s+not\s+work|doesn't\s+work|was\s+flaky|"
    r"were\s+flaky|is\s+flaky|are\s+flaky|was\s+failing|were\s+failing|timed\s+out|"
    r"went\s+down|was\s+broken|were\s+broken|errored(?:\s+out)?|hung|leaked|was\s+slow|"
    r"were\s+slow|ran\s+out\s+of\s+\w+|got\s+corrupted|was\s+corrupted)"
)
_MISTAKE = re.compile(
    rf"^(?!(?:I|we)\b)(?P<what>[\w\"'`(].*?)\s+{_FAILURE}(?:\s+[\w'-]+){{0,4}}?\s+(?:because|"
    r"since|due\s+to|after|when)\s+\S.*$"
    r"|^(?:the\s+)?(?:bug|problem|issue|error|crash|failure|outage|root\s+cause)\s+(?:was|is)\s+"
    r"(?:caused\s+by|due\s+to|that)\s+\S.*$"
    r"|^.+\s+(?:was|were)\s+caused\s+by\s+\S.*$",
    _I,
)
_TRIED = re.compile(
    r"^(?:I|we)\s+(?:first\s+)?tried\s+(?P<what>.+?),?\s+but\s+(?:it|that|this)\s+"
    r"(?P<fail>didn't\s+work|did\s+not\s+work|failed|broke\s+\w+|didn't\s+help|did\s+not\s+help|"
    r"made\s+(?:it|things)\s+worse|was\s+too\s+slow|caused\s+\w.*?)"
    r"(?P<why>\s+(?:because|since|as|due\s+to)\s+.+)?$",
    _I,
)
_RULE = re.compile(
    r"^(?!(?:I|we|my|our)\b)(?:all\s+|every\s+|each\s+|the\s+|any\s+)?[\w.-]+(?:\s+[\w.-]+){0,5}"
    r"\s+(?:must|mustn't|must\s+not|should\s+never|should\s+always|has\s+to|have\s+to|"
    r"needs?\s+to\s+be|is\s+not\s+allowed|are\s+not\s+allowed|is\s+required|are\s+required|"
    r"cannot|can't|may\s+not|can\s+only)\b.+$",
    _I,
)
_LIMIT = re.compile(
    r"^(?!(?:I|we|my|our|you|it|this|that)\b)(?:the\s+)?[\w-]+(?:\s+[\w-]+){0,3}?\s+"
    r"(?:limit|quota|cap|maximum|minimum|max|min|budget|allowance|timeout|sla|ceiling)\s+"
    r"(?:is|are)\s+(?:\w+\s+){0,2}?[$\u20ac\u00a3]?\d",
    _I,
)
_DEADLINE = re.compile(
    r"^(?!(?:I|we)\b)(?:the\s+|our\s+|my\s+)?[\w-]*\s*(?:deadline|due\s+date|launch|release|"
    r"demo|meeting|exam|interview|presentation|review|wedding|conference)\b.*\b(?:is|are|was\s+"
    r"moved\s+to|starts|ends|is\s+due|happens)\b",
    _I,
)
_USER_RULE = re.compile(
    r"^(?:please\s+)?(?:(?:always|never)\s+(?!mind\b)\w+\s+\w|make\s+sure\s+(?:to|that|you)\b|"
    r"don't\s+ever\b|do\s+not\s+ever\b|(?:don't|do\s+not|stop)\s+(?!(?:worry|bother|mind|"
    r"forget|hesitate|apologi[sz]e|be\s+sorry|be\s+silly|panic|rush|stress|do\s+that|do\s+it|"
    r"know|think|get|care|see|understand)\b)\w+\s+(?!(?:it|that|this|them)\s*$)\w)",
    _I,
)
_LESSON_INTRO = re.compile(
    r"^(?:the\s+)?(?:trick|key|fix|solution|workaround|answer|secret)\s+(?:is|was)\s+"
    r"(?:to\s+|that\s+(?:you\s+)?)?(?P<what>\w.*)$"
    r"|^what\s+(?:works|worked)(?:\s+best)?(?:\s+(?:is|was))?\s*:?\s*(?:to\s+)?(?P<what2>\w.*)$"
    r"|^(?:I|we)\s+(?:solved|fixed)\s+(?:it|this|that)\s+by\s+(?P<what3>\w+ing\b.*)$",
    _I,
)


def _not_about_user(sentence: str, turn: _Turn) -> bool:
    """User sentences with another subject: a failure and its cause, a rule, a deadline."""
    if m := _TRIED.match(sentence):
        what = re.sub(r"^to\s+", "trying to ", m.group("what"), flags=_I)
        content = f"{_third_person_rest(what)} {m.group('fail')}{m.group('why') or ''}"
        turn.add(content, "mistake", conf=GENERAL)
        return True
    if m := _LESSON_INTRO.match(sentence):
        what = m.group("what") or m.group("what2") or m.group("what3")
        what = re.sub(r"^(\w+)ing\b", lambda g: g.group(1), what) if m.group("what3") else what
        turn.add(_third_person_rest(what), "strategy", conf=GENERAL)
        return True
    if _MISTAKE.match(sentence):
        turn.add(_third_person_rest(sentence), "mistake", conf=GENERAL)
        return True
    if _USER_RULE.match(sentence):
        text = re.sub(r"^please\s+", "", sentence, flags=_I)
        turn.add(_third_person_rest(text), "constraint", conf=GENERAL)
        return True
    if _RULE.match(sentence) and not re.match(r"^(?:you|it|this|that|there)\b", sentence, _I):
        turn.add(_possessive_to_user(sentence), "constraint", conf=GENERAL)
        return True
    if _LIMIT.match(sentence):
        turn.add(sentence, "constraint", conf=GENERAL)
        return True
    if _DEADLINE.match(sentence) and _TEMPORAL.search(sentence):
        turn.add(_possessive_to_user(sentence), "temporal", conf=GENERAL)
        return True
    return False


def _possessive_to_user(text: str) -> str:
    """Without "User" before it, "my"/"our" can only be "User's"."""
    text = re.sub(r"^(?:my|our)\b", "User's", text, flags=_I)
    return re.sub(r"\b(?:my|our)\b", "the user's", text)


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


# --------------------------------------------------------------------------- assistant side

_LABEL = re.compile(
    r"^(?:fixed|fix|solution|tip|pro\s+tip|lesson(?:\s+learned)?|takeaway|rule\s+of\s+thumb|"
    r"note|key\s+insight|best\s+practice|what\s+worked|recommendation|(?:for\s+)?next\s+time|"
    r"in\s+(?:the\s+)?future|going\s+forward|from\s+now\s+on)\s*[:\-\u2013\u2014]\s*",
    _I,
)
#: "when pip fails to build wheels, upgrade pip first": a rule with its condition in front.
_CONDITIONAL_RULE = re.compile(
    r"^(?:when|whenever|if|before|after|once)\s+[^,]{3,80},\s+(?P<then>\w+)\b", _I
)
#: Rules on their own: "always/never <verb>", "make sure ...", "avoid ...", "prefer X over Y".
_STRATEGY_START = re.compile(
    r"^(?:(?:always|never)\s+(?P<verb>[\w-]+)|make\s+sure\s+(?!(?:that\s+)?you(?:'re|\s+are|\s+"
    r"understand|\s+know|\s+feel|\s+enjoy|\s+have\s+fun|\s+take\s+care|\s+rest|\s+get\s+some)"
    r"\b)|avoid\s+\w|prefer\s+.+\s+over\s|(?:don't|do\s+not)\s+(?!(?:worry|hesitate|be\s+afraid|"
    r"mention|forget|apologi[sz]e|feel|stress|panic)\b)\w+)",
    _I,
)
#: Softer reminders that are a rule only inside a lesson ("Remember to drink water!" is not).
_SOFT_START = re.compile(
    r"^(?:remember\s+to|don't\s+forget\s+to|be\s+sure\s+to|ensure|try\s+to)\b", _I
)
_YOU_SHOULD = re.compile(r"^(?:you\s+should|you\s+must|you'll\s+want\s+to|it's\s+best\s+to)\s+",
                         _I)
_IMPERATIVE_VERBS = _word_set(
    """add use run set pin wait retry call put keep give check enable disable increase decrease
    lower raise switch move install upgrade downgrade rotate cache split batch wrap close
    restart clear delete remove store validate log test mock lock respect limit throttle write
    create start stop update commit push pull deploy build configure define pass return handle
    catch escape sanitize sanitise index migrate back save load fetch send verify review
    document measure profile stick pick choose try bump reduce roll drop skip run seed reset
    flush purge isolate separate share hold trust assume hardcode expose ignore mix rely merge
    rebase force leave overwrite edit change touch print parse compare ship release tag sign
    encrypt hash expire refresh reuse block await poll sleep spawn kill bind open free allocate
    copy clone fork watch monitor alert notify ask tell answer reply respond get let make do go
    take bring include exclude specify declare import export name prefix quote vendor debounce
    throw swallow lint format benchmark time plan estimate communicate explain confirm
    double-check follow prefer avoid cap chunk stream paginate vacuum analyze truncate archive
    backup restore snapshot revert sync uninstall toggle reboot compile bundle minify squash
    label wait apply commit rerun regenerate rebuild invalidate cancel schedule split keep mark
    pass rename"""
)
_STRATEGY_MARKER = re.compile(
    r"\b(?:instead\s+of|rather\s+than|before|after|first|so\s+that|to\s+avoid|to\s+prevent|"
    r"whenever|every\s+time|at\s+least|at\s+most|only\s+when|when|unless)\b",
    _I,
)
_TRAILING_ALSO = re.compile(r"\s+(?:as\s+well|too|also)\s*$", _I)
#: "... and never hold a lock": a second rule inside one sentence.
_AND_RULE = re.compile(
    r"\s*(?:,\s*|\s+)and\s+(?=(?:always|never|make\s+sure|be\s+sure|don't|do\s+not|avoid)\b)",
    _I,
)
#: "That usually happens when X": the assistant explains the problem the user described.
_DIAGNOSIS = re.compile(
    r"^(?:that|this|it)\s+(?:\w+ly\s+)?(?:happens|happened|occurs|occurred)\s+"
    r"(?P<why>(?:when|because|if)\s+.+)$"
    r"|^(?:that|this|it)(?:'s|\s+is|\s+was)\s+(?:\w+ly\s+)?(?:because\s+(?P<because>.+)|"
    r"(?:caused\s+by|due\s+to)\s+(?P<cause>.+))$",
    _I,
)
#: What a user's report of a problem looks like ("Deploys keep timing out").
_PROBLEM = re.compile(
    r"\b(?:keeps?|kept)\s+\w+ing\b|\b(?:is|are|was|were)\s+(?:failing|crashing|timing\s+out|"
    r"hanging|broken|flaky|down|leaking)\b|\b(?:fails|failed|crashes|crashed|hangs|times\s+out|"
    r"timed\s+out|broke|won't\s+start|doesn't\s+start)\b|\bgetting\s+(?:blocked|rejected|"
    r"throttled|killed)\b",
    _I,
)


def _imperative(text: str) -> bool:
    first = text.split(maxsplit=1)[0].lower() if text.split() else ""
    return first in _IMPERATIVE_VERBS


def _rule_start(text: str) -> bool:
    """ "Always wait for ..." yes; "Always happy to help" no: a verb must follow."""
    m = _STRATEGY_START.match(text)
    return bool(m) and (m.group("verb") is None or m.group("verb").lower() in _IMPERATIVE_VERBS)


def _user_problem(user_input: str) -> str | None:
    """The user's own statement of a problem, if they made one (not a question)."""
    for sentence in _sentences(user_input):
        sentence = _TRAIL.sub("", sentence)
        if (
            sentence
            and len(sentence) <= MAX_SENTENCE_CHARS
            and not sentence.endswith("?")
            and _PROBLEM.search(sentence)
            and not _QUESTION_START.match(sentence)
        ):
            return _third_person_rest(sentence)
    return None


def _assistant_facts(ai_response: str, user_input: str, turn: _Turn) -> None:
    """Only lessons: strategies and mistakes. The assistant's small talk is not a fact.

    Once the reply has named a lesson (a diagnosis, a mistake, a "Fix:" label or a rule), a
    following plain imperative ("Increase the timeout to 60 seconds") is the fix, hence a
    strategy; without that context an imperative is just an instruction for the moment.
    """
    in_lesson = False
    for sentence in _sentences(ai_response):
        if sentence.rstrip().endswith("?") or len(sentence) > MAX_SENTENCE_CHARS:
            continue
        sentence = _TRAIL.sub("", sentence)
        if _LABEL.match(sentence):
            in_lesson = True
        for raw in re.split(r"\s*;\s*", sentence):
            for part in _AND_RULE.split(_YOU_SHOULD.sub("", _LABEL.sub("", raw.strip()))):
                part = _TRAIL.sub("", part.strip())
                if not part:
                    continue
                if m := _LESSON_INTRO.match(part):
                    what = m.group("what") or m.group("what2") or m.group("what3") or ""
                    if m.group("what3"):
                        what = re.sub(r"^(\w+)ing\b", lambda g: g.group(1), what)
                    turn.add(_TRAILING_ALSO.sub("", what), "strategy", conf=LESSON)
                    in_lesson = True
                elif _MISTAKE.match(part):
                    turn.add(part, "mistake", conf=LESSON)
                    in_lesson = True
                elif (m := _DIAGNOSIS.match(part)) and (problem := _user_problem(user_input)):
                    if m.group("why"):
                        turn.add(f"{problem} {m.group('why')}", "mistake", conf=LESSON)
                    elif m.group("because"):
                        turn.add(f"{problem} because {m.group('because')}", "mistake",
                                 conf=LESSON)
                    else:
                        turn.add(f"{problem} because of {m.group('cause')}", "mistake",
                                 conf=LESSON)
                    in_lesson = True
                elif (
                    _rule_start(part)
                    or (_imperative(part) and _STRATEGY_MARKER.search(part))
                    or (in_lesson and (_imperative(part) or _SOFT_START.match(part)))
                    or ((c := _CONDITIONAL_RULE.match(part)) and _imperative(c.group("then")))
                ):
                    turn.add(_TRAILING_ALSO.sub("", part), "strategy", conf=LESSON)
                    in_lesson = True


# --------------------------------------------------------------------------- entry point

_NORMAL = re.compile(r"[^a-z0-9]+")
_LOWERCASE_I = re.compile(r"(?<![\w'])i(?:'m|m|\s+am)\b")


def _deduplicated(facts: list[ExtractedFact]) -> list[ExtractedFact]:
    """Drop repeats; of two facts with the same key the later one wins (it was said last)."""
    last_with_key = {f.key: i for i, f in enumerate(facts) if f.key}
    seen: set[str] = set()
    kept: list[ExtractedFact] = []
    for i, fact in enumerate(facts):
        if fact.key and last_with_key[fact.key] != i:
            continue
        norm = _NORMAL.sub(" ", fact.content.lower()).strip()
        if norm in seen:
            continue
        seen.add(norm)
        kept.append(fact)
    return kept


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
