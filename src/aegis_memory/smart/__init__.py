"""SmartMemory: decide what in a conversation is worth remembering (SPEC §7).

`SmartMemory` / `AsyncSmartMemory` run a turn through the rule filter
(:mod:`~aegis_memory.smart.filter`), an extractor (an LLM provider from
:mod:`~aegis_memory.smart.llm`, or the offline rules of :mod:`~aegis_memory.smart.rules`) and
store the resulting facts (:mod:`~aegis_memory.smart.memory`).
"""

from aegis_memory.smart.facts import CATEGORIES, Category, ExtractedFact
from aegis_memory.smart.filter import SIGNALS, FilterDecision, Sensitivity, assess
from aegis_memory.smart.llm import LLMConnectionError, LLMError, LLMTimeoutError
from aegis_memory.smart.memory import (
    AsyncSmartMemory,
    ContextResult,
    SmartMemory,
    SmartStats,
    TurnResult,
)

__all__ = [
    "CATEGORIES",
    "SIGNALS",
    "AsyncSmartMemory",
    "Category",
    "ContextResult",
    "ExtractedFact",
    "FilterDecision",
    "LLMConnectionError",
    "LLMError",
    "LLMTimeoutError",
    "Sensitivity",
    "SmartMemory",
    "SmartStats",
    "TurnResult",
    "assess",
]
