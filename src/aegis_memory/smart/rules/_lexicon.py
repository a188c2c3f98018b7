"""Vocabulary of the offline extractor: word lists and the regex fragments rules share.

Why a module of its own: the same words drive several rules (a relative word in "my wife is
Sarah", "my wife and I ..." and "I live with my wife"; a date in a birthday, a deadline and a
plan), so each list is written once here, as plain words that are easy to read and extend.
Lists and patterns that a single rule needs stay beside that rule. Nothing here depends on the
rest of the package.
"""

from __future__ import annotations

import re

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


# --------------------------------------------------------------------------- shared fragments

#: A place or an organisation: capitalised words ("New York", "the Hague", "Acme"),
#: or for an organisation also "a startup"; a person's name: one to three capitalised words.
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

#: Verbs of liking: a preference whoever the subject is (the user, or a relative and them).
_PREFERENCE_VERBS = _word_set("like love enjoy hate dislike prefer adore detest despise loathe")
#: A count or an article: "I have two kids" / "with my two dogs" is something they have.
_DETERMINER = re.compile(
    r"^(?:a|an|one|two|three|four|five|six|seven|eight|nine|ten|\d+|no|some|several|many|"
    r"lots\s+of|a\s+lot\s+of|twin|twins)\b",
    _I,
)
#: A relative word anywhere in a phrase.
_HAS_RELATIVE = re.compile(rf"\b{_REL}\b", _I)
