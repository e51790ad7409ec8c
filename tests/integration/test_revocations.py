"""The revocation feed, in process and over Redis: every listener hears each ended session."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from core.redis_client import RedisClient, open_redis
from core.revocations import MemoryRevocations, RedisRevocations, Revocation, Revocations
from core.settings import Settings

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=["memory", "redis", "cluster"])
async def feeds(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Revocations, Revocations]]:
    """Two nodes' feeds: the same object in process, two clients on one Redis."""
    if request.param == "memory":
        feed = MemoryRevocations()
        yield feed, feed
        return
    prefix = f"test:{uuid.uuid4().hex}:"
    if request.param == "cluster":
        url = request.getfixturevalue("redis_cluster").url
        settings = Settings(_env_file=None, redis_url=url)
        clients: list[RedisClient] = [open_redis(settings), open_redis(settings)]
    else:
        clients = [Redis.from_url(REDIS_URL), Redis.from_url(REDIS_URL)]
    a, b = (RedisRevocations(c, prefix) for c in clients)
    yield a, b
    for feed in (a, b):
        await feed.close()
    for client in clients:
        await client.aclose()


async def heard(received: list[Revocation], count: int) -> None:
    async with asyncio.timeout(5):
        while len(received) < count:
            await asyncio.sleep(0.01)


async def test_a_revocation_reaches_every_node(feeds: tuple[Revocations, Revocations]) -> None:
    a, b = feeds
    on_a: list[Revocation] = []
    on_b: list[Revocation] = []
    stop_a = a.listen(on_a.append)
    b.listen(on_b.append)
    for feed in (a, b):
        if isinstance(feed, RedisRevocations):
            await feed.wait_subscribed()
    await a.publish(Revocation("user-1", "session-9"))
    await b.publish(Revocation("user-2"))
    await heard(on_a, 2)
    await heard(on_b, 2)
    assert on_a == on_b == [Revocation("user-1", "session-9"), Revocation("user-2")]
    stop_a()
    await b.publish(Revocation("user-3"))
    await heard(on_b, 3)
    assert len(on_a) == 2, "a listener that stopped hears nothing more"


def test_a_revocation_covers_its_sessions() -> None:
    one, every = Revocation("u", "s1"), Revocation("u")
    assert one.covers("u", "s1") and not one.covers("u", "s2") and not one.covers("v", "s1")
    assert every.covers("u", "s1") and every.covers("u", None) and not every.covers("v", None)
