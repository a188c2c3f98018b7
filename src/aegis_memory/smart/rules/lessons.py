"""Lessons: strategies and mistakes, from the user's words and from the assistant's reply.

The user's sentences that are not about the user are tried here first: a failure and its
cause ("the deploy failed because the migration locked the table"), an attempt that failed ("I
tried X, but it didn't work"), a fix ("the trick was to pin the version"), a rule, a limit or a
deadline. From the assistant's reply nothing else is
taken: a diagnosis of the problem the user described, a mistake, a labelled lesson ("Fix: ...")
or a rule ("always ...", "never ...", "X instead of Y"); once the reply has named a lesson, a
following plain imperative is its fix. The assistant's small talk is never a fact.
"""

from __future__ import annotations

import re

from aegis_memory.smart.rules._lexicon import _I, _TEMPORAL, _word_set
from aegis_memory.smart.rules._text import (
    _QUESTION_START,
    _TRAIL,
    MAX_SENTENCE_CHARS,
    _sentences,
    _third_person_rest,
)
from aegis_memory.smart.rules._turn import GENERAL, LESSON, _Turn

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
