"""Evaluation (SPEC §5): does what agents retrieve and vote on go with tasks that pass?

Definitions, over a window (24h, 7d, 30d or everything) and optionally one namespace:

- ``success_rate``: of the features with an outcome in the window (their latest
  ``passes`` true or false), the share that passed.
- ``retrieval_precision``: of the votes cast in the window, the share that were helpful.
- ``pollution_rate``: of the live memories, the share voted more harmful than helpful.
- ``mttr_seconds``: for features that failed and later passed in the window, the mean time
  from the first failure to the pass.
- correlation: each vote whose ``task_id`` names a feature with an outcome is one sample
  (helpful?, passed?); ``correlation_score`` is their phi coefficient (0 when undefined), with
  the conditional pass probabilities beside it.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from aegis_memory import schemas as s
from aegis_memory.service.access import Identity

if TYPE_CHECKING:
    from aegis_memory.service.engine import MemoryService

WINDOWS = {"24h": 86_400.0, "7d": 7 * 86_400.0, "30d": 30 * 86_400.0, "global": None}


def _since(window: str, now: float) -> float:
    span = WINDOWS[window]
    return 0.0 if span is None else now - span


def _ratio(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 6)


class EvalOperations:
    async def _eval_inputs(self: MemoryService, identity: Identity, window: str,
                           namespace: str | None) -> dict:
        await self.events.flush()  # count the queries answered a moment ago
        return await self.store.eval_inputs(
            identity.project_id, namespace, _since(window, time.time()))

    async def eval_metrics(self: MemoryService, identity: Identity, window: str = "global",
                           namespace: str | None = None) -> s.EvalMetrics:
        data = await self._eval_inputs(identity, window, namespace)
        latest: dict[str, tuple[bool, float]] = {}
        first_failure: dict[str, float] = {}
        repair_times: list[float] = []
        for payload, at in data["feature_events"]:
            passes, feature = payload.get("passes"), payload.get("feature_id")
            if passes is None or feature is None:
                continue
            latest[feature] = (bool(passes), at)
            if not passes:
                first_failure.setdefault(feature, at)
            elif feature in first_failure:
                repair_times.append(at - first_failure.pop(feature))
        passed = sum(1 for ok, _ in latest.values() if ok)
        helpful = sum(1 for _, vote, _ in data["votes"] if vote == "helpful")
        votes = len(data["votes"])
        return s.EvalMetrics(
            window=window,  # type: ignore[arg-type]
            namespace=namespace,
            success_rate=_ratio(passed, len(latest)),
            retrieval_precision=_ratio(helpful, votes),
            pollution_rate=_ratio(data["polluting"], data["memories"]),
            mttr_seconds=round(sum(repair_times) / len(repair_times), 3) if repair_times else None,
            totals=s.EvalTotals(
                queries=data["queries"], votes=votes, helpful_votes=helpful,
                harmful_votes=votes - helpful, features_evaluated=len(latest),
                features_passed=passed, features_failed=len(latest) - passed,
                memories=data["memories"],
            ),
        )

    async def eval_correlation(self: MemoryService, identity: Identity, window: str = "global",
                               namespace: str | None = None) -> s.EvalCorrelation:
        data = await self._eval_inputs(identity, window, namespace)
        outcome: dict[str, bool] = {}
        for feature_id, passes, status in data["features"]:
            if passes:
                outcome[feature_id] = True
            elif status == "failed":
                outcome[feature_id] = False
        pairs = [(vote == "helpful", outcome[task]) for task, vote, _ in data["votes"]
                 if task and task in outcome]
        n11 = sum(1 for h, p in pairs if h and p)
        n10 = sum(1 for h, p in pairs if h and not p)
        n01 = sum(1 for h, p in pairs if not h and p)
        n00 = sum(1 for h, p in pairs if not h and not p)
        denominator = math.sqrt((n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00))
        phi = (n11 * n00 - n10 * n01) / denominator if denominator else 0.0
        return s.EvalCorrelation(
            window=window,  # type: ignore[arg-type]
            namespace=namespace,
            correlation_score=round(phi, 6),
            prob_pass_given_helpful=_ratio(n11, n11 + n10),
            prob_pass_given_harmful=_ratio(n01, n01 + n00),
            sample_size=len(pairs), helpful_count=n11 + n10, harmful_count=n01 + n00,
        )
