"""The figures the access property tests report (``benchmarks/results/reliability-access-
properties-<mode>.json``): how much was checked, per backend and per read path, and the
leaks found — which must be zero."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.reliability._access_model import World
from tests.reliability._access_tally import Tally


@dataclass
class Figures:
    seed: int | str
    examples: Counter[str] = field(default_factory=Counter)
    projects: int = 0
    memories: int = 0
    callers: int = 0
    seconds: Counter[str] = field(default_factory=Counter)
    totals: Tally = field(default_factory=Tally)
    local_worlds: Counter[str] = field(default_factory=Counter)

    def add(self, backend: str, world: World, tally: Tally, seconds: float) -> None:
        """One example on one backend (shrinking runs included: they are checks too)."""
        self.examples[backend] += 1
        self.projects += len(world.spec.projects)
        self.memories += len(world.memories)
        self.callers += len(world.callers)
        self.seconds[backend] += seconds
        self.totals.merge(tally)

    def add_local(self, backend: str, worlds: int, tally: Tally, seconds: float) -> None:
        self.local_worlds[backend] += worlds
        self.seconds[f"{backend} local mode"] += seconds
        self.totals.merge(tally)

    def as_dict(self) -> dict[str, Any]:
        checks = self.totals.checks
        return {
            "seed": self.seed,
            "examples": dict(self.examples),
            "projects": self.projects,
            "memories": self.memories,
            "callers": self.callers,
            "local_mode_worlds_rechecked": dict(self.local_worlds),
            "read_path_checks": sum(checks.values()),
            "checks_by_path": dict(sorted(checks.items())),
            "leaks": self.totals.leaks,
            "missing": self.totals.misses,
            "other_failures": self.totals.others,
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
        }
