"""Per-key request limits (SPEC §4): ``RATE_LIMIT_PER_MINUTE`` and ``RATE_LIMIT_PER_HOUR``.

Each API key has two token buckets. The minute bucket holds ``per_minute`` tokens and refills
at ``per_minute / 60`` a second, so a key may send its whole minute's allowance at once (the
burst) and then one request every ``60 / per_minute`` seconds; the hour bucket does the same
over an hour. A request takes one token from each; when either is empty the answer is 429
with ``Retry-After`` (whole seconds until both hold a token again). Buckets rather than fixed
windows, so that no boundary lets a key send two windows' worth at once.

The state lives in this process: with several workers or replicas each counts on its own (a
Redis-backed store for ``REDIS_URL`` is not built yet). Unauthenticated requests are not
counted here: they carry no key to count against.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True)
class Decision:
    """One request's verdict, and what the ``X-RateLimit-*`` headers report."""

    allowed: bool
    #: The tighter allowance: requests per minute, or per hour when only that is set.
    limit: int
    #: "minute" or "hour": what ``limit`` counts.
    period: str
    #: Requests the key may still send at once.
    remaining: int
    #: Seconds until the key's allowance is whole again.
    reset_seconds: int
    #: Whole seconds to wait before the next request can pass: at least 1 when this one
    #: was refused, 0 when it passed.
    retry_after: int


class _Bucket:
    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, capacity: int, period_seconds: float, now: float) -> None:
        self.capacity = float(capacity)
        self.rate = capacity / period_seconds
        self.tokens = float(capacity)
        self.updated = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for_one(self) -> float:
        return max(0.0, (1.0 - self.tokens) / self.rate)

    def until_full(self) -> float:
        return (self.capacity - self.tokens) / self.rate


class RateLimiter:
    """Token buckets per key; ``per_minute`` or ``per_hour`` of 0 leaves that one out."""

    def __init__(
        self, per_minute: int, per_hour: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute <= 0 and per_hour <= 0:
            raise ValueError("a rate limiter needs a per-minute or a per-hour limit")
        self._periods = [(n, seconds) for n, seconds in ((per_minute, 60.0), (per_hour, 3600.0))
                         if n > 0]
        self.limit = self._periods[0][0]
        self.period = "minute" if per_minute > 0 else "hour"
        self._clock = clock
        self._buckets: dict[str, list[_Bucket]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> Decision:
        """Count one request of ``key``, if its buckets allow it."""
        now = self._clock()
        with self._lock:
            buckets = self._buckets.get(key)
            if buckets is None:
                buckets = self._buckets[key] = [
                    _Bucket(n, seconds, now) for n, seconds in self._periods]
            for bucket in buckets:
                bucket.refill(now)
            allowed = all(b.tokens >= 1.0 for b in buckets)
            if allowed:
                for bucket in buckets:
                    bucket.tokens -= 1.0
            wait = 0.0 if allowed else max(b.wait_for_one() for b in buckets)
            return Decision(
                allowed=allowed,
                limit=self.limit,
                period=self.period,
                remaining=max(0, math.floor(min(b.tokens for b in buckets))),
                reset_seconds=math.ceil(max(b.until_full() for b in buckets)),
                retry_after=0 if allowed else max(1, math.ceil(wait)),
            )


def limiter_for(per_minute: int, per_hour: int) -> RateLimiter | None:
    """The limiter the settings ask for, or None when both limits are 0 (the default)."""
    if per_minute <= 0 and per_hour <= 0:
        return None
    return RateLimiter(per_minute, per_hour)


def headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    """The ``X-RateLimit-*`` headers (and ``Retry-After`` when refused) of a decision."""
    out = [
        (b"x-ratelimit-limit", str(decision.limit).encode()),
        (b"x-ratelimit-remaining", str(decision.remaining).encode()),
        (b"x-ratelimit-reset", str(decision.reset_seconds).encode()),
    ]
    if not decision.allowed:
        out.append((b"retry-after", str(decision.retry_after).encode()))
    return out


class RateLimitExceeded(Exception):
    """Raised by the authentication dependency when the key's buckets are empty (429)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(f"rate limited, retry after {decision.retry_after} s")
        self.decision = decision


class RateLimitHeadersMiddleware:
    """Adds the ``X-RateLimit-*`` headers (and ``Retry-After`` on a 429) to the response of
    every request the limiter counted (``scope["state"]["rate_limit"]``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = scope.get("state", {}).get("rate_limit")
                if decision is not None:
                    names = {b"retry-after"} | {name for name, _ in headers(decision)}
                    message["headers"] = [
                        (k, v) for k, v in message.get("headers", []) if k not in names
                    ] + headers(decision)
            await send(message)

        await self.app(scope, receive, _send)
