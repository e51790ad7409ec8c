"""SocketLimits: counting sockets per account and pending ones per address, in process and in
Redis alike."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from core.socket_limits import MemorySocketLimits, RedisSocketLimits, SocketLimits
from tests.contracts.conftest import ADAPTERS


@pytest.fixture(params=[*ADAPTERS, "cluster"])
def limits(request: pytest.FixtureRequest, redis: Redis, prefix: str) -> SocketLimits:
    if request.param == "embedded":
        return MemorySocketLimits()
    if request.param == "cluster":
        return RedisSocketLimits(request.getfixturevalue("cluster_client"), prefix)
    return RedisSocketLimits(redis, prefix)


async def test_pending_sockets_are_counted_per_address(limits: SocketLimits) -> None:
    assert [await limits.open_pending("10.0.0.1", 2) for _ in range(3)] == [True, True, False]
    assert await limits.open_pending("10.0.0.2", 2)
    await limits.close_pending("10.0.0.1")
    assert await limits.open_pending("10.0.0.1", 2)


async def test_the_oldest_sockets_of_a_user_are_named_past_the_limit(limits: SocketLimits) -> None:
    assert await limits.register("u1", "c1", 1000, 2) == []
    assert await limits.register("u1", "c2", 2000, 2) == []
    assert await limits.register("u2", "other", 1500, 2) == []
    assert await limits.register("u1", "c3", 3000, 2) == ["c1"]
    await limits.unregister("u1", "c1", 1000)
    await limits.keep_alive([("u1", "c2", 2000), ("u1", "c3", 3000)])
    assert await limits.register("u1", "c4", 4000, 2) == ["c2"]
