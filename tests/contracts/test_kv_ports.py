"""Cache and RateLimiter: in process and in Redis alike."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from core.kv import Cache, MemoryCache, MemoryRateLimiter, RateLimiter, RedisCache, RedisRateLimiter
from tests.contracts.conftest import ADAPTERS


@pytest.fixture(params=ADAPTERS)
def cache(request: pytest.FixtureRequest, redis: Redis, prefix: str) -> Cache:
    return MemoryCache() if request.param == "embedded" else RedisCache(redis, prefix)


@pytest.fixture(params=ADAPTERS)
def limiter(request: pytest.FixtureRequest, redis: Redis, prefix: str) -> RateLimiter:
    return MemoryRateLimiter() if request.param == "embedded" else RedisRateLimiter(redis, prefix)


async def test_the_cache_keeps_a_value_for_its_lifetime(cache: Cache) -> None:
    assert await cache.get("k") is None
    await cache.set("k", "значение".encode(), 60)
    await cache.set("short", b"x", 1)
    assert await cache.get("k") == "значение".encode()
    await cache.delete("k", "missing")
    assert await cache.get("k") is None
    async with asyncio.timeout(5):
        while await cache.get("short") is not None:  # gone once its second is over
            await asyncio.sleep(0.05)


async def test_the_limiter_counts_a_window_and_says_when_to_retry(limiter: RateLimiter) -> None:
    decisions = [await limiter.hit("login:1.2.3.4", 3, 60) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert all(0 < d.retry_after <= 60 for d in decisions[3:])
    assert (await limiter.hit("login:5.6.7.8", 3, 60)).allowed, "each key counts on its own"
    concurrent = await asyncio.gather(*(limiter.hit("burst", 10, 60) for _ in range(25)))
    assert sum(d.allowed for d in concurrent) == 10
