"""SmartMemory: decide what in a conversation is worth remembering (SPEC §7).

This release has the first stage, the rule filter (:mod:`aegis_memory.smart.filter`); the
extractors and the ``SmartMemory`` client build on it.
"""

from aegis_memory.smart.filter import SIGNALS, FilterDecision, Sensitivity, assess

__all__ = ["SIGNALS", "FilterDecision", "Sensitivity", "assess"]
