"""Request limits (SPEC §4): ``RATE_LIMIT_PER_MINUTE`` / ``_PER_HOUR`` / ``_BURST`` per API key,
and ``AUTH_FAILURES_PER_MINUTE`` per client address.

Each key has token buckets. The minute bucket holds ``RATE_LIMIT_BURST`` tokens (the minute's
allowance when 0) and refills at ``per_minute / 60`` a second, so a key may send a burst at
once and then one request every ``60 / per_minute`` seconds; the hour bucket holds ``per_hour``
and refills over an hour. A request takes one token from each; when either is empty the answer
is 429 with ``Retry-After`` (whole seconds until both hold a token again). Buckets rather than
fixed windows, so that no boundary lets a key send two windows' worth at once.

Without ``REDIS_URL`` the buckets live in this process, so each worker counts on its own. With
it they live in Redis and one Lua script reads, refills and spends them atomically, on the
Redis server's clock: every worker and replica shares one allowance per key however skewed
their own clocks are.

Failed sign-ins (a wrong, expired or revoked key) are counted the same way, per client address;
past the limit such requests are answered 429 instead of 401, which slows key guessing without
locking out the valid keys used from the same address.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aegis_memory.server.middleware import WatchedSend, set_headers

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from aegis_memory.config import Settings

log = logging.getLogger("aegis_memory.server.ratelimit")

#: Every Redis key of the limiter starts with this.
REDIS_PREFIX = "aegis:rl:"


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


class Limiter(Protocol):
    """What the request path needs of a limiter, wherever its buckets live. ``check`` is
    async so that the Redis one awaits its round trip on the event loop (no thread hop)."""

    limit: int
    period: str

    async def check(self, key: str, cost: int = 1) -> Decision:
        """Spend ``cost`` tokens of ``key``'s buckets if every one holds that many."""
        ...


@dataclass(frozen=True)
class _Spec:
    name: str
    capacity: int
    #: Tokens added a second.
    rate: float


class _Allowance:
    """The buckets the settings ask for, and the decision built from their levels: shared by
    both stores so that they answer alike."""

    def __init__(self, per_minute: int, per_hour: int, burst: int = 0) -> None:
        if per_minute <= 0 and per_hour <= 0:
            raise ValueError("a rate limiter needs a per-minute or a per-hour limit")
        if burst < 0:
            raise ValueError("the burst cannot be negative")
        self.specs: list[_Spec] = []
        if per_minute > 0:
            self.specs.append(_Spec("minute", burst or per_minute, per_minute / 60.0))
        if per_hour > 0:
            self.specs.append(_Spec("hour", per_hour, per_hour / 3600.0))
        self.limit = per_minute if per_minute > 0 else per_hour
        self.period = "minute" if per_minute > 0 else "hour"

    def decision(self, allowed: bool, fewest: float, wait: float, until_full: float) -> Decision:
        return Decision(
            allowed=allowed,
            limit=self.limit,
            period=self.period,
            remaining=max(0, math.floor(fewest)),
            reset_seconds=max(0, math.ceil(until_full)),
            retry_after=0 if allowed else max(1, math.ceil(wait)),
        )

    def unknown(self) -> Decision:
        """Passed without being counted (the store is out of reach): a full allowance."""
        return Decision(True, self.limit, self.period,
                        remaining=min(s.capacity for s in self.specs), reset_seconds=0,
                        retry_after=0)


class _Bucket:
    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, spec: _Spec, now: float) -> None:
        self.capacity = float(spec.capacity)
        self.rate = spec.rate
        self.tokens = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = now

    def full_at(self, now: float) -> bool:
        return self.tokens + max(0.0, now - self.updated) * self.rate >= self.capacity

    def wait_for(self, cost: int) -> float:
        return max(0.0, (cost - self.tokens) / self.rate)

    def until_full(self) -> float:
        return (self.capacity - self.tokens) / self.rate


class RateLimiter(_Allowance):
    """Token buckets per key in this process; ``per_minute`` or ``per_hour`` of 0 leaves that
    bucket out."""

    #: Seconds between sweeps that forget buckets which have filled up again: a full bucket
    #: is the same as none, and without the sweep every address ever seen would stay.
    SWEEP_EVERY = 60.0

    def __init__(
        self, per_minute: int, per_hour: int, burst: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(per_minute, per_hour, burst)
        self._clock = clock
        self._buckets: dict[str, list[_Bucket]] = {}
        self._lock = threading.Lock()  # the SDK's local mode may share an app across threads
        self._swept = clock()

    async def check(self, key: str, cost: int = 1) -> Decision:
        return self.take(key, cost)

    def take(self, key: str, cost: int = 1) -> Decision:
        """``check`` without the coroutine."""
        now = self._clock()
        with self._lock:
            if now - self._swept >= self.SWEEP_EVERY:
                self._sweep(now)
            buckets = self._buckets.get(key)
            if buckets is None:
                buckets = self._buckets[key] = [_Bucket(s, now) for s in self.specs]
            for bucket in buckets:
                bucket.refill(now)
            allowed = all(b.tokens >= cost for b in buckets)
            if allowed:
                for bucket in buckets:
                    bucket.tokens -= cost
            return self.decision(
                allowed,
                fewest=min(b.tokens for b in buckets),
                wait=0.0 if allowed else max(b.wait_for(cost) for b in buckets),
                until_full=max(b.until_full() for b in buckets),
            )

    def _sweep(self, now: float) -> None:
        self._swept = now
        for key in [k for k, bs in self._buckets.items() if all(b.full_at(now) for b in bs)]:
            del self._buckets[key]


# KEYS: one hash per bucket. ARGV: the cost, then each bucket's capacity and refill rate
# (tokens a second). The clock is the Redis server's, so every client agrees on it. A hash
# expires when its bucket would be full again (a missing hash is a full bucket). The numbers
# come back as strings: Redis would truncate Lua numbers to integers.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cost = tonumber(ARGV[1])
local level, capacity, rate = {}, {}, {}
local allowed = true
for i, key in ipairs(KEYS) do
  capacity[i] = tonumber(ARGV[2 * i])
  rate[i] = tonumber(ARGV[2 * i + 1])
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens, ts = tonumber(state[1]), tonumber(state[2])
  if tokens == nil or ts == nil then
    level[i] = capacity[i]
  else
    level[i] = math.min(capacity[i], tokens + math.max(0, now - ts) * rate[i])
  end
  if level[i] < cost then allowed = false end
end
local fewest, wait, full = math.huge, 0, 0
for i, key in ipairs(KEYS) do
  if allowed then
    level[i] = level[i] - cost
    redis.call('HSET', key, 'tokens', string.format('%.17g', level[i]),
               'ts', string.format('%.17g', now))
    local ttl = math.ceil((capacity[i] - level[i]) / rate[i] * 1000)
    redis.call('PEXPIRE', key, math.max(1, ttl))
  else
    wait = math.max(wait, (cost - level[i]) / rate[i])
  end
  fewest = math.min(fewest, level[i])
  full = math.max(full, (capacity[i] - level[i]) / rate[i])
end
return {allowed and 1 or 0, string.format('%.17g', fewest), string.format('%.17g', wait),
        string.format('%.17g', full)}
"""


class RedisRateLimiter(_Allowance):
    """The same buckets in Redis, shared by every process that uses the same server.

    When Redis cannot be reached, requests pass uncounted (fail open) and a warning is
    logged at most every ``WARN_EVERY`` seconds: a limiter protects the service, and
    refusing every request because the limiter's store is down would turn a Redis outage
    into an Aegis outage. For ``BACKOFF`` seconds after a failure Redis is not asked at all,
    so that an unreachable server does not add a connect timeout to every request.
    """

    WARN_EVERY = 30.0
    BACKOFF = 5.0

    def __init__(
        self, client: Redis, per_minute: int, per_hour: int, burst: int = 0, *,
        scope: str = "key", prefix: str = REDIS_PREFIX,
    ) -> None:
        from redis.exceptions import RedisError

        super().__init__(per_minute, per_hour, burst)
        self._script = client.register_script(_SCRIPT)
        self._args: list[int | str] = []
        for spec in self.specs:
            self._args += [spec.capacity, repr(spec.rate)]
        # A {hash tag}: a key's buckets share a Redis Cluster slot, as one script requires.
        self._prefix = f"{prefix}{{{scope}:"
        self._errors = (RedisError, OSError)
        self._skip_until = -math.inf
        self._warned = -math.inf

    def keys(self, key: str) -> list[str]:
        """The Redis keys of ``key``'s buckets."""
        return [f"{self._prefix}{key}}}:{spec.name}" for spec in self.specs]

    async def check(self, key: str, cost: int = 1) -> Decision:
        now = time.monotonic()
        if now < self._skip_until:
            return self.unknown()
        try:
            allowed, fewest, wait, full = await self._script(
                keys=self.keys(key), args=[cost, *self._args])
        except self._errors as exc:
            self._skip_until = now + self.BACKOFF
            if now - self._warned >= self.WARN_EVERY:
                self._warned = now
                log.warning("Rate limits are not enforced: Redis cannot be reached (%s); "
                            "requests pass uncounted until it can.", exc)
            return self.unknown()
        return self.decision(bool(int(allowed)), float(fewest), float(wait), float(full))


def limiter_for(
    per_minute: int, per_hour: int, burst: int = 0, *, redis: Redis | None = None,
    scope: str = "key",
) -> Limiter | None:
    """The limiter the settings ask for (in Redis when a client is given), or None when both
    limits are 0."""
    if per_minute <= 0 and per_hour <= 0:
        return None
    if redis is not None:
        return RedisRateLimiter(redis, per_minute, per_hour, burst, scope=scope)
    return RateLimiter(per_minute, per_hour, burst)


def redis_client(url: str) -> Redis:
    """A client for the limiter: short timeouts and one immediate retry (a stale pooled
    connection after a Redis restart), because every counted request waits on it."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    try:
        return Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0,
                              retry=Retry(NoBackoff(), 1))
    except ValueError as exc:
        raise ValueError(f"REDIS_URL is not a Redis URL ({exc})") from exc


@dataclass
class Limits:
    """The server's limiters: per API key (``requests``) and per address for failed sign-ins
    (``auth_failures``), either None when off, and the Redis client they share, if any."""

    requests: Limiter | None = None
    auth_failures: Limiter | None = None
    redis: Redis | None = None

    async def start(self) -> None:
        """Say so at start-up when Redis is out of reach. The server starts anyway (counting
        resumes when Redis answers): one missing dependency of the limits should not keep
        the whole service down."""
        if self.redis is None:
            return
        try:
            await self.redis.ping()
        except Exception as exc:
            kwargs = self.redis.connection_pool.connection_kwargs
            where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
            log.warning("REDIS_URL is set but Redis at %s cannot be reached (%s); the server "
                        "starts, and rate limits pass requests uncounted until it can.",
                        where, exc)

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def limits_for(settings: Settings) -> Limits:
    """The limiters ``settings`` ask for, in Redis when ``REDIS_URL`` is set."""
    wanted = (settings.rate_limit_per_minute or settings.rate_limit_per_hour
              or settings.auth_failures_per_minute)
    redis = redis_client(settings.redis_url) if settings.redis_url and wanted else None
    return Limits(
        requests=limiter_for(settings.rate_limit_per_minute, settings.rate_limit_per_hour,
                             settings.rate_limit_burst, redis=redis, scope="key"),
        auth_failures=limiter_for(settings.auth_failures_per_minute, 0, redis=redis,
                                  scope="auth"),
        redis=redis,
    )


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
    """Raised by the authentication dependency when a limiter refuses the request (429)."""

    def __init__(self, decision: Decision, detail: str | None = None) -> None:
        self.decision = decision
        self.detail = detail or (
            f"Too many requests for this API key (the limit is {decision.limit} a "
            f"{decision.period}). Retry in {decision.retry_after} s.")
        super().__init__(self.detail)


class TooManyFailedSignIns(RateLimitExceeded):
    """Too many wrong, expired or revoked keys from one address (429 instead of 401)."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(decision, (
            f"Too many failed sign-ins from this address (the limit is {decision.limit} a "
            f"{decision.period}). Retry in {decision.retry_after} s."))


class RateLimitHeadersMiddleware:
    """Adds the ``X-RateLimit-*`` headers (and ``Retry-After`` on a 429) to the response of
    every request the limiter counted (``scope["state"]["rate_limit"]``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        def _add_headers(message: Message) -> None:
            decision = scope.get("state", {}).get("rate_limit")
            if decision is not None:
                set_headers(message, headers(decision), drop=[b"retry-after"])

        await self.app(scope, receive, WatchedSend(send, _add_headers))
