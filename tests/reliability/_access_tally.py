"""Counting what the access property tests compared, and what disagreed with the oracle.

A *leak* is an id a read path returned (or a 200 for an id) that the oracle says the caller
may not have; a *miss* is an id the oracle says a complete path owed the caller and it did
not return. Any other disagreement (a wrong status, a wrong count, a 403 that was not) is a
*failure* too. The tests pass only with all three at zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.reliability._access_model import Caller

#: Failures kept verbatim per example (the rest are counted): enough to read, not a flood.
MAX_KEPT = 25


@dataclass
class Tally:
    checks: Counter[str] = field(default_factory=Counter)
    leaks: int = 0
    misses: int = 0
    failures: list[str] = field(default_factory=list)
    #: Disagreements recorded (a leak or a miss of several ids is one).
    failed: int = 0
    #: Those that were neither a leak nor a miss.
    others: int = 0

    def fail(self, path: str, caller: Caller, what: str, *, other: bool = True) -> None:
        self.failed += 1
        self.others += other
        if len(self.failures) < MAX_KEPT:
            self.failures.append(f"{path} [{caller.label}]: {what}")

    def same_set(self, path: str, caller: Caller, got: Iterable[str] | None, want: set[str],
                 *, complete: bool = True, limit: int | None = None) -> None:
        """``got`` must be ``want`` (``complete``) or a subset of it; with ``limit``, a
        subset of exactly ``min(limit, len(want))`` ids (a page of a longer list)."""
        self.checks[path] += 1
        if got is None:  # the request failed; already recorded
            return
        got = list(got)
        if len(got) != len(set(got)):
            self.fail(path, caller, f"duplicate ids in {sorted(got)}")
        leaked = set(got) - want
        if leaked:
            self.leaks += len(leaked)
            self.fail(path, caller, f"LEAK {sorted(leaked)} (allowed {sorted(want)})",
                      other=False)
        if limit is not None and len(want) > limit:
            if len(set(got)) != limit:
                self.fail(path, caller, f"{len(set(got))} rows, expected a full page of {limit}")
            return
        missing = want - set(got) if complete else set()
        if missing:
            self.misses += len(missing)
            self.fail(path, caller, f"MISSING {sorted(missing)} (got {sorted(got)})",
                      other=False)

    def one(self, path: str, caller: Caller, memory_id: str, found: bool, allowed: bool) -> None:
        """A single-id read: ``found`` (200) must equal ``allowed`` (else 404)."""
        self.checks[path] += 1
        if found and not allowed:
            self.leaks += 1
            self.fail(path, caller, f"LEAK: {memory_id} readable", other=False)
        elif allowed and not found:
            self.misses += 1
            self.fail(path, caller, f"MISSING: {memory_id} not found", other=False)

    def expect(self, path: str, caller: Caller, ok: bool, what: str) -> None:
        """Any other property (a status, a count, an error's wording)."""
        self.checks[path] += 1
        if not ok:
            self.fail(path, caller, what)

    def merge(self, other: Tally) -> None:
        self.checks.update(other.checks)
        self.leaks += other.leaks
        self.misses += other.misses
        self.failed += other.failed
        self.others += other.others
        self.failures.extend(other.failures[: max(0, MAX_KEPT - len(self.failures))])

    def summary(self) -> str:
        return (f"{sum(self.checks.values())} checks, {self.leaks} leaks, {self.misses} "
                f"missing, {self.failed} failures:\n  " + "\n  ".join(self.failures))
