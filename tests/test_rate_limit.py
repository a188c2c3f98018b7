"""Per-key rate limits (SPEC §4): the buckets themselves, and a real server that answers 429
with ``Retry-After`` and reports ``X-RateLimit-*`` on what it counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aegis_memory.server.ratelimit import RateLimiter, limiter_for
from tests.conftest import ServerProcess, new_project


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_minute_bucket_allows_a_burst_then_one_request_per_interval() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=3, per_hour=0, clock=clock)
    first = [limiter.check("k") for _ in range(3)]
    assert [d.allowed for d in first] == [True, True, True]
    assert [d.remaining for d in first] == [2, 1, 0]
    refused = limiter.check("k")
    assert not refused.allowed and refused.retry_after == 20  # one token per 20 s
    assert (refused.limit, refused.period) == (3, "minute")
    assert limiter.check("other").allowed  # keys are counted apart
    clock.now += 19.5
    assert not limiter.check("k").allowed
    clock.now += 0.5
    assert limiter.check("k").allowed
    assert not limiter.check("k").allowed  # a refused request costs nothing, a passed one does


def test_hour_bucket_limits_a_key_that_respects_the_minute_one() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, per_hour=5, clock=clock)
    passed = 0
    for _ in range(20):
        passed += limiter.check("k").allowed
        clock.now += 1.0
    assert passed == 5
    refused = limiter.check("k")
    assert not refused.allowed
    assert 700 <= refused.retry_after <= 720  # 3600 / 5 s per token, 20 s of it gone
    assert refused.reset_seconds > refused.retry_after


def test_no_limiter_when_both_limits_are_zero() -> None:
    assert limiter_for(0, 0) is None
    with pytest.raises(ValueError):
        RateLimiter(0, 0)
    assert limiter_for(0, 10).period == "hour"


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("rate-limited") / "data"
    server = ServerProcess(data, env={"RATE_LIMIT_PER_MINUTE": "3"}).start()
    yield server
    server.stop()


def test_server_answers_429_with_retry_after_and_counts_each_key_apart(
    limited_server: ServerProcess,
) -> None:
    def client(key: str) -> httpx.Client:
        return httpx.Client(base_url=limited_server.base_url, timeout=30,
                            headers={"Authorization": f"Bearer {key}"})

    _, other_key = new_project(limited_server)
    with client("dev-key") as dev, client(other_key) as other:
        seen = []
        for _ in range(3):
            r = dev.post("/memories/query", json={"query": "anything", "agent_id": "a"})
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
        r = other.post("/memories/query", json={"query": "anything", "agent_id": "a"})
        assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == "2"
        health = dev.get("/health")
        assert health.status_code == 200 and "x-ratelimit-limit" not in health.headers
        # A bad key is answered 401, not counted against anyone.
        assert client("wrong").get("/memories/export").status_code == 401


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
