"""Contract suites: each port's behaviour, run against its production adapter and its embedded
one alike, so that the embedded run proves what production will do."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from core.redis_client import RedisClient, open_redis
from core.settings import Settings
from load.harness import RedisClusterServers

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
ADAPTERS = ["embedded", "redis"]


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    """A client on this machine's Redis; the test's keys (under `prefix`) are removed after."""
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(redis: Redis) -> AsyncIterator[str]:
    value = f"contract:{uuid.uuid4().hex}:"
    yield value
    keys = [key async for key in redis.scan_iter(match=f"{value}*", count=1000)]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def cluster_client(redis_cluster: RedisClusterServers) -> AsyncIterator[RedisClient]:
    """A client on the private Redis Cluster, built as the product builds it."""
    client = open_redis(Settings(_env_file=None, redis_url=redis_cluster.url))
    yield client
    await client.aclose()
