"""The extraction prompt and the reading of an LLM's answer.

Templating uses `string.Template` (``$name`` placeholders), never ``str.format``: the prompt
contains a JSON example full of braces, and user text may contain braces or ``$`` too.
Substitution is a single pass, so nothing the user wrote is ever expanded a second time.

The answer is read leniently (code fences, prose around the JSON, a bare list instead of the
``{"facts": [...]}`` object, odd category names) and strictly where it matters: if no fact
list can be read at all, `parse_facts` raises `MalformedOutput` with a reason, which the
caller turns into one retry and then a reported failure - never a silently empty turn.
"""

from __future__ import annotations

import json
import re
from string import Template
from typing import Any, Literal

from pydantic import ValidationError

from aegis_memory.smart.facts import CATEGORIES, ExtractedFact

UseCase = Literal["general", "assistant", "agent", "coding", "support"]

SYSTEM_PROMPT = """\
You extract long-term memories from one turn of a conversation between a user and an AI \
assistant. A memory is a short, atomic fact worth knowing in a future conversation.

Rules:
- One fact per item; split compound sentences ("I'm John, a developer" is two facts).
- Write each fact in the third person about "User" ("User prefers dark mode", \
"User's name is John"), so it stands on its own without the conversation.
- Only facts stated or clearly implied by the user, plus strategies that worked and \
mistakes to avoid from either side. Ignore greetings, thanks, small talk, questions, \
hypotheticals and passing states ("I'm tired").
- category is one of: $categories.
  Use "strategy" for an approach that worked and should be reused, written as advice \
("Always run migrations after the database health check"); use "mistake" for what went wrong \
and why.
- key: for a fact that has one current value and replaces an older one (name, location, \
employer, profession, age, birthday, favorite_<thing>), a short snake_case attribute name; \
otherwise null.
- confidence: 0.0-1.0, how sure you are the user meant it as a lasting fact.
- Focus: $focus

Answer with JSON only, no prose, in exactly this shape:
{"facts": [{"content": "User prefers dark mode", "category": "preference", "key": null, \
"confidence": 0.95}]}
If there is nothing worth remembering, answer {"facts": []}."""

USER_TEMPLATE = Template(
    """\
User said:
<<<
$user_input
>>>
Assistant replied:
<<<
$ai_response
>>>"""
)

RETRY_MESSAGE = (
    "Your previous answer could not be used: $reason. Answer again with only the JSON object "
    '{"facts": [...]} described above.'
)

_FOCUS = {
    "general": "personal facts, preferences, plans, decisions and constraints.",
    "assistant": "the user's identity, preferences, relationships, schedule and goals.",
    "agent": "task decisions, constraints, strategies that worked and mistakes to avoid.",
    "coding": "the user's stack, tools, conventions, decisions, and fixes that worked or failed.",
    "support": "the customer's account details, product setup, problems and resolutions.",
}


def system_prompt(use_case: UseCase = "general") -> str:
    """The instructions, tuned by ``use_case`` (which facts to focus on)."""
    return Template(SYSTEM_PROMPT).substitute(
        categories=", ".join(CATEGORIES), focus=_FOCUS.get(use_case, _FOCUS["general"])
    )


def user_prompt(user_input: str, ai_response: str = "") -> str:
    """The turn, quoted; braces and ``$`` in the text are left exactly as written."""
    return USER_TEMPLATE.substitute(user_input=user_input, ai_response=ai_response or "(none)")


def retry_prompt(reason: str) -> str:
    """The follow-up message after an unusable answer."""
    return Template(RETRY_MESSAGE).substitute(reason=reason)


class MalformedOutput(ValueError):
    """The LLM's answer holds no readable fact list; ``reason`` says what was wrong."""

    def __init__(self, reason: str, raw: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def _json_candidates(text: str) -> list[str]:
    """The answer itself, then fenced blocks, then the outermost ``{...}`` / ``[...]`` span."""
    candidates = [text.strip()]
    candidates.extend(block.strip() for block in _FENCE.findall(text))
    for opener, closer in ("{}", "[]"):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    return candidates


def _fact_items(data: Any) -> list[Any] | None:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for name in ("facts", "memories", "items", "results"):
            if isinstance(data.get(name), list):
                return data[name]  # type: ignore[no-any-return]
        if "content" in data:
            return [data]
    return None


def parse_facts(text: str) -> list[ExtractedFact]:
    """The facts in an LLM answer; raises `MalformedOutput` when there is no readable list.

    One unusable item (no content) is a malformed answer too: dropping it quietly would lose
    a memory the model meant to give.
    """
    if not isinstance(text, str) or not text.strip():
        raise MalformedOutput("the answer was empty", str(text or ""))
    items: list[Any] | None = None
    for candidate in _json_candidates(text):
        try:
            items = _fact_items(json.loads(candidate))
        except ValueError:
            continue
        if items is not None:
            break
    if items is None:
        raise MalformedOutput('the answer was not JSON with a "facts" list', text)
    facts: list[ExtractedFact] = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            item = {"content": item}
        try:
            facts.append(ExtractedFact.model_validate(item))
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in problem.get("loc", ())) or "item"
            raise MalformedOutput(
                f"facts[{index}].{where}: {problem.get('msg', 'invalid')}", text
            ) from None
    return facts
