"""The facts of one turn as they are found: confidences, the collector, deduplication.

Every rule adds to a :class:`_Turn`, which finishes the wording and drops over-long facts, and
remembers the relative a later "she"/"he" refers to; :func:`_deduplicated` then drops repeats
and keeps the last of the facts that share a key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from aegis_memory.smart.facts import MAX_FACT_CHARS, ExtractedFact
from aegis_memory.smart.rules._text import _finish

#: Confidence of a fact from a specific pattern, of a general rewrite, of an assistant lesson.
SPECIFIC = 0.9
GENERAL = 0.7
LESSON = 0.75


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


_NORMAL = re.compile(r"[^a-z0-9]+")


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
