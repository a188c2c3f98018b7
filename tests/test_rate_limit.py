"""Rate limits (SPEC §4): the buckets themselves, in this process and in a real Redis; real
servers that answer 429 with ``Retry-After`` and report ``X-RateLimit-*`` on what they counted,
two of them sharing one allowance through Redis; and failed sign-ins counted per address."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio

from aegis_memory.server.ratelimit import (
    REDIS_PREFIX,
    Limits,
    RateLimiter,
    RedisRateLimiter,
    limiter_for,
    redis_client,
)
from tests.conftest import ServerProcess, free_port, new_project

QUERY = {"query": "anything", "agent_id": "a"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ----------------------------------------------------------------------------- in this process


async def test_minute_bucket_allows_a_burst_then_one_request_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=3, per_hour=0, clock=clock)
    first = [await limiter.check("k") for _ in range(3)]
    assert [d.allowed for d in first] == [True, True, True]
    assert [d.remaining for d in first] == [2, 1, 0]
    refused = await limiter.check("k")
    assert not refused.allowed and refused.retry_after == 20  # one token per 20 s
    assert (refused.limit, refused.period) == (3, "minute")
    assert (await limiter.check("other")).allowed  # keys are counted apart
    clock.now += 19.5
    assert not (await limiter.check("k")).allowed
    clock.now += 0.5
    assert (await limiter.check("k")).allowed
    # A refused request costs nothing, a passed one does.
    assert not (await limiter.check("k")).allowed


async def test_hour_bucket_limits_a_key_that_respects_the_minute_one() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, per_hour=5, clock=clock)
    passed = 0
    for _ in range(20):
        passed += (await limiter.check("k")).allowed
        clock.now += 1.0
    assert passed == 5
    refused = await limiter.check("k")
    assert not refused.allowed
    assert 700 <= refused.retry_after <= 720  # 3600 / 5 s per token, 20 s of it gone
    assert refused.reset_seconds > refused.retry_after


async def test_a_burst_smaller_than_the_minute_limit_smooths_it() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, per_hour=0, burst=5, clock=clock)
    first = [await limiter.check("k") for _ in range(6)]
    assert [d.allowed for d in first] == [True] * 5 + [False]
    assert [d.remaining for d in first[:5]] == [4, 3, 2, 1, 0]
    assert first[5].retry_after == 1  # the refill rate stays 60 a minute
    assert (first[5].limit, first[5].period) == (60, "minute")
    clock.now += 60.0  # a quiet minute refills the burst, not the minute's allowance
    assert [(await limiter.check("k")).allowed for _ in range(6)] == [True] * 5 + [False]


async def test_a_burst_larger_than_the_minute_limit_allows_more_at_once() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=2, per_hour=0, burst=5, clock=clock)
    first = [await limiter.check("k") for _ in range(6)]
    assert [d.allowed for d in first] == [True] * 5 + [False]
    assert first[0].remaining == 4 and first[0].reset_seconds == 30
    assert first[5].retry_after == 30 and first[5].reset_seconds == 150  # 5 tokens at 2/min
    clock.now += 30.0
    assert (await limiter.check("k")).allowed
    assert not (await limiter.check("k")).allowed


def test_no_limiter_when_both_limits_are_zero() -> None:
    assert limiter_for(0, 0) is None
    with pytest.raises(ValueError):
        RateLimiter(0, 0)
    assert limiter_for(0, 10).period == "hour"


async def test_buckets_that_filled_up_again_are_forgotten() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=6, per_hour=0, clock=clock)
    for n in range(100):
        await limiter.check(f"10.0.0.{n}")
    clock.now += RateLimiter.SWEEP_EVERY
    assert (await limiter.check("k")).allowed
    assert list(limiter._buckets) == ["k"]  # memory stays bounded by the active callers


# ----------------------------------------------------------------------------- in Redis


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway ``redis-server`` on a free loopback port. Skipped only where it is not
    installed and this is not CI: CI installs it (.ci/run), so there a missing one fails."""
    exe = shutil.which("redis-server")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not on PATH; CI must test the limits shared in Redis")
        pytest.skip("redis-server is not installed")
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    with (workdir / "redis.log").open("ab") as log:
        proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError((workdir / "redis.log").read_text()[-2000:])
            try:
                with redis.Redis(port=port, socket_connect_timeout=1) as probe:
                    probe.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def unique() -> str:
    return uuid.uuid4().hex


async def test_redis_limiter_allows_a_burst_then_refuses(redis_url: str) -> None:
    client = redis_client(redis_url)
    try:
        limiter = RedisRateLimiter(client, per_minute=60, per_hour=0, burst=3)
        key = unique()
        first = [await limiter.check(key) for _ in range(4)]
        assert [d.allowed for d in first] == [True, True, True, False]
        assert [d.remaining for d in first] == [2, 1, 0, 0]
        assert (first[3].limit, first[3].period, first[3].retry_after) == (60, "minute", 1)
        assert 1 <= first[2].reset_seconds <= 3
        (stored,) = limiter.keys(key)
        assert stored.startswith(REDIS_PREFIX)
        assert 0 < await client.pttl(stored) <= 3000  # gone once the bucket is full again
        await asyncio.sleep(1.05)  # one token a second
        assert (await limiter.check(key)).allowed
        assert not (await limiter.check(key)).allowed  # the refusal above cost nothing
    finally:
        await client.aclose()


async def test_redis_hour_bucket_and_expiry(redis_url: str) -> None:
    client = redis_client(redis_url)
    try:
        limiter = RedisRateLimiter(client, per_minute=60, per_hour=2)
        key = unique()
        assert [(await limiter.check(key)).allowed for _ in range(3)] == [True, True, False]
        refused = await limiter.check(key)
        assert 1700 <= refused.retry_after <= 1800  # one hour token per 30 minutes
        assert refused.reset_seconds > refused.retry_after

        fast = RedisRateLimiter(client, per_minute=600, per_hour=0, burst=1, scope="fast")
        other = unique()
        assert (await fast.check(other)).allowed
        (stored,) = fast.keys(other)
        assert await client.exists(stored)
        await asyncio.sleep(0.3)  # full again after 0.1 s: the key has expired
        assert not await client.exists(stored)
    finally:
        await client.aclose()


async def test_two_workers_share_one_allowance(redis_url: str) -> None:
    clients = [redis_client(redis_url), redis_client(redis_url)]  # two pools, as two processes
    try:
        workers = [RedisRateLimiter(c, per_minute=3, per_hour=0) for c in clients]
        key = unique()
        decisions = [await workers[n % 2].check(key) for n in range(5)]
        assert [d.allowed for d in decisions] == [True, True, True, False, False]
        assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
        assert all(1 <= d.retry_after <= 20 for d in decisions[3:])
    finally:
        for client in clients:
            await client.aclose()


async def test_unreachable_redis_fails_open_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = redis_client(f"redis://127.0.0.1:{free_port()}")  # nothing listens there
    limits = Limits(requests=RedisRateLimiter(client, per_minute=1, per_hour=0), redis=client)
    caplog.set_level(logging.WARNING, logger="aegis_memory.server.ratelimit")
    try:
        await limits.start()  # warns, does not raise
        assert "cannot be reached" in caplog.text
        caplog.clear()
        started = time.monotonic()
        decisions = [await limits.requests.check("k") for _ in range(3)]
        assert all(d.allowed for d in decisions)
        assert time.monotonic() - started < 3
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "not enforced" in warnings[0].getMessage()
    finally:
        await limits.aclose()


# ----------------------------------------------------------------------------- real servers


def client_for(server: ServerProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30,
                        headers={"Authorization": f"Bearer {key}"})


def export_with(server: ServerProcess, key: str) -> httpx.Response:
    """One authenticated request with ``key`` (a guess, in the sign-in tests)."""
    with client_for(server, key) as client:
        return client.get("/memories/export")


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("rate-limited") / "data"
    server = ServerProcess(data, env={"RATE_LIMIT_PER_MINUTE": "3"}).start()
    yield server
    server.stop()


def test_server_answers_429_with_retry_after_and_counts_each_key_apart(
    limited_server: ServerProcess,
) -> None:
    _, other_key = new_project(limited_server)
    with client_for(limited_server, "dev-key") as dev, \
            client_for(limited_server, other_key) as other:
        seen = []
        for _ in range(3):
            r = dev.post("/memories/query", json=QUERY)
            assert r.status_code == 200, r.text
            assert r.headers["x-ratelimit-limit"] == "3"
            seen.append(int(r.headers["x-ratelimit-remaining"]))
        assert seen == [2, 1, 0]
        refused = dev.post("/memories/add", json={"content": "one more", "agent_id": "a"})
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "rate_limited"
        assert "3 a minute" in refused.json()["detail"]
        assert 1 <= int(refused.headers["retry-after"]) <= 20
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert refused.headers["x-request-id"]
        # Another key has its own allowance; liveness is never limited.
        r = other.post("/memories/query", json=QUERY)
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == "2"
        health = dev.get("/health")
        assert health.status_code == 200 and "x-ratelimit-limit" not in health.headers
        # A bad key is answered 401, not counted against anyone.
        assert export_with(limited_server, "wrong").status_code == 401


def test_sdk_raises_a_rate_limit_error_that_says_how_long_to_wait(tmp_path: Path) -> None:
    from aegis_memory import AegisClient
    from aegis_memory.client.errors import AegisRateLimitError

    server = ServerProcess(tmp_path / "data", env={"RATE_LIMIT_PER_HOUR": "2"}).start()
    try:
        with AegisClient(api_key="dev-key", base_url=server.base_url) as client:
            client.add("Deploys happen on Tuesdays", agent_id="ops")
            assert client.query("deploys", agent_id="ops")[0].content.startswith("Deploys")
            with pytest.raises(AegisRateLimitError) as raised:
                client.add("One too many", agent_id="ops")
            assert 1700 <= raised.value.retry_after <= 1800  # one token per 30 minutes
    finally:
        server.stop()


def test_failed_sign_ins_from_one_address_are_answered_429(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env={"AUTH_FAILURES_PER_MINUTE": "3"}).start()
    try:
        with client_for(server, "dev-key") as dev:
            for n in range(3):
                r = export_with(server, f"guess-{n}")
                assert r.status_code == 401, r.text
            refused = export_with(server, "guess-3")
            assert refused.status_code == 429, refused.text
            assert refused.json()["code"] == "rate_limited"
            assert "failed sign-ins" in refused.json()["detail"]
            assert 1 <= int(refused.headers["retry-after"]) <= 20  # one more per 20 s
            assert dev.post("/memories/query", json=QUERY).status_code == 200
            # No key at all guesses nothing: still the plain 401.
            assert httpx.get(server.base_url + "/memories/export").status_code == 401
    finally:
        server.stop()


@pytest.fixture(scope="module")
def replicas(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    """Two servers over separate data, sharing one Redis (its database 1, apart from the
    tests above): as two replicas behind a load balancer."""
    env = {"REDIS_URL": redis_url + "/1", "RATE_LIMIT_PER_MINUTE": "3",
           "AUTH_FAILURES_PER_MINUTE": "3"}
    with redis.Redis.from_url(redis_url + "/1") as r:
        r.flushdb()
    servers: list[ServerProcess] = []
    try:
        for name in ("a", "b"):
            data = tmp_path_factory.mktemp(f"replica-{name}") / "data"
            servers.append(ServerProcess(data, env=env).start())
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_limits_hold_across_replicas(replicas: list[ServerProcess]) -> None:
    answers = []
    for n in range(4):
        with client_for(replicas[n % 2], "dev-key") as dev:
            answers.append(dev.post("/memories/query", json=QUERY))
    assert [r.status_code for r in answers] == [200, 200, 200, 429], answers[-1].text
    assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert 1 <= int(answers[3].headers["retry-after"]) <= 20


def test_failed_sign_ins_are_counted_across_replicas(replicas: list[ServerProcess]) -> None:
    statuses = [export_with(replicas[n % 2], f"guess-{n}").status_code for n in range(4)]
    assert statuses == [401, 401, 401, 429]
    _, key = new_project(replicas[0])
    with client_for(replicas[0], key) as valid:
        assert valid.post("/memories/query", json=QUERY).status_code == 200


def test_server_starts_and_serves_when_redis_is_unreachable(tmp_path: Path) -> None:
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}", "RATE_LIMIT_PER_MINUTE": "1"}
    server = ServerProcess(tmp_path / "data", env=env).start()
    try:
        with client_for(server, "dev-key") as dev:
            assert [dev.post("/memories/query", json=QUERY).status_code
                    for _ in range(3)] == [200, 200, 200]  # fail open
    finally:
        server.stop()
    assert server.log_path is not None
    assert "Redis at 127.0.0.1" in server.log_path.read_text()
