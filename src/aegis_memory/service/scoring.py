"""Derived scores: one definition each, used by every path that reports or filters on them."""

from __future__ import annotations


def effectiveness(helpful: int, harmful: int) -> float:
    """SPEC §3: (helpful - harmful) / (helpful + harmful + 1), in (-1, 1).

    The +1 keeps a single vote from reading as certainty.
    """
    return (helpful - harmful) / (helpful + harmful + 1)
