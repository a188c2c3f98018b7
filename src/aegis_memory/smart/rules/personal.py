"""Specific patterns for who the user is: keyed facts at the highest confidence.

Name, nationality, profession, employer, location and hometown, age, favourites, keyed
attributes ("my timezone is ...") and birth each have a pattern of their own. A ``key`` names a
single-valued attribute, so a newer fact ("I moved to Berlin") supersedes the older one. These
are tried before the general rewrite: "I'm John, a Python developer from Manchester" gives a
name, a profession and a location rather than one long "User is John, ..." fact.
"""

from __future__ import annotations

import re

from aegis_memory.smart.rules._lexicon import (
    _ADVERBS,
    _DETERMINER,
    _HAS_RELATIVE,
    _I,
    _NAME,
    _NATIONALITIES,
    _NOT_NAMES,
    _NOT_ROLES,
    _ORG,
    _PLACE,
    _ROLE_SUFFIX,
    _ROLE_WORDS,
    _TRAIT_MODIFIERS,
    _alt,
    _word_set,
)
from aegis_memory.smart.rules._text import _TRAIL, _third_person_rest
from aegis_memory.smart.rules._turn import GENERAL, SPECIFIC, _Turn


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


# ----- age, favourites, keyed attributes, birth ----------------------------------------

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
