"""What an extractor returns: atomic, third-person facts with a category and a confidence.

Both extractors (an LLM's JSON answer and the offline rules) produce `ExtractedFact`s, so
everything after extraction - the confidence threshold, dedup, superseding, storing - is the
same whichever one ran. The model is lenient where an LLM is loose (unknown category names are
mapped to the nearest known one, confidence given as a string or a percentage is read) and
strict where a mistake would store garbage (empty content, content that is not text).
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aegis_memory.schemas import MemoryType

Category = Literal[
    "preference",
    "personal_fact",
    "decision",
    "constraint",
    "goal",
    "strategy",
    "mistake",
    "temporal",
    "relationship",
]

CATEGORIES: tuple[str, ...] = get_args(Category)

#: Strategies and mistakes are stored as the ACE types, so playbooks find them.
MEMORY_TYPE_BY_CATEGORY: dict[str, MemoryType] = {"strategy": "strategy", "mistake": "reflection"}

#: Names an LLM tends to use for our categories.
_CATEGORY_SYNONYMS = {
    "preferences": "preference",
    "like": "preference",
    "dislike": "preference",
    "fact": "personal_fact",
    "personal": "personal_fact",
    "personal_info": "personal_fact",
    "profile": "personal_fact",
    "identity": "personal_fact",
    "location": "personal_fact",
    "profession": "personal_fact",
    "plan": "goal",
    "plans": "goal",
    "intention": "goal",
    "objective": "goal",
    "event": "temporal",
    "schedule": "temporal",
    "date": "temporal",
    "deadline": "temporal",
    "rule": "constraint",
    "requirement": "constraint",
    "restriction": "constraint",
    "lesson": "mistake",
    "reflection": "mistake",
    "error": "mistake",
    "failure": "mistake",
    "tactic": "strategy",
    "approach": "strategy",
    "best_practice": "strategy",
    "tip": "strategy",
    "choice": "decision",
    "relation": "relationship",
    "family": "relationship",
    "person": "relationship",
}

MAX_FACT_CHARS = 1000
_KEY_RE = re.compile(r"[^a-z0-9]+")


def normalize_category(value: Any) -> str:
    """A known category for whatever the extractor called it (``"Preferences"``, ``"plan"``)."""
    name = _KEY_RE.sub("_", str(value or "").strip().lower()).strip("_")
    if name in CATEGORIES:
        return name
    return _CATEGORY_SYNONYMS.get(name, "personal_fact")


def normalize_key(value: Any) -> str | None:
    """``"Home City"`` → ``"home_city"``; empty or missing → None."""
    if value is None:
        return None
    key = _KEY_RE.sub("_", str(value).strip().lower()).strip("_")
    return key[:64] or None


class ExtractedFact(BaseModel):
    """One thing worth remembering, written so it stands on its own ("User prefers dark mode").

    ``key`` names a single-valued attribute (``location``, ``name``, ``employer``): a newer
    fact with the same key *supersedes* the older one (the old memory is deprecated), so
    "I moved to Berlin" replaces "User is based in Manchester". Facts that accumulate (likes,
    decisions, lessons) have no key.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    content: str = Field(min_length=1, max_length=MAX_FACT_CHARS)
    category: Category = "personal_fact"
    confidence: float = Field(default=0.8, ge=0.0, le=1.0)
    key: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _clean_content(cls, value: Any) -> Any:
        if isinstance(value, str):
            return " ".join(value.split())
        return value

    @field_validator("category", mode="before")
    @classmethod
    def _known_category(cls, value: Any) -> str:
        return normalize_category(value)

    @field_validator("key", mode="before")
    @classmethod
    def _clean_key(cls, value: Any) -> str | None:
        return normalize_key(value)

    @field_validator("confidence", mode="before")
    @classmethod
    def _read_confidence(cls, value: Any) -> Any:
        """Accept ``0.9``, ``"0.9"``, ``"90%"`` and ``90`` (a percentage) alike."""
        if value is None:
            return 0.8
        if isinstance(value, str):
            text = value.strip().rstrip("%")
            try:
                number = float(text)
            except ValueError:
                return value  # pydantic reports it
            return number / 100 if value.strip().endswith("%") or number > 1 else number
        if isinstance(value, int | float) and not isinstance(value, bool) and 1 < value <= 100:
            return value / 100
        return value

    @property
    def memory_type(self) -> MemoryType:
        """The memory type it is stored as: ``strategy``, ``reflection`` or ``standard``."""
        return MEMORY_TYPE_BY_CATEGORY.get(self.category, "standard")
