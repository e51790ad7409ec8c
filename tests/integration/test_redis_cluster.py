"""Choosing a Redis Cluster in the settings, and the cache and rate limits on one (the session
bus and live store on a cluster are in test_redis_bus.py)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from redis.asyncio import Redis

from core.container import Infrastructure, open_infrastructure
from core.kv import RedisCache, RedisRateLimiter
from core.redis_client import ClusterClient
from core.settings import Settings
from load.harness import RedisClusterServers
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def test_a_cluster_url_or_redis_cluster_selects_the_cluster() -> None:
    by_scheme = Settings(_env_file=None, redis_url="redis+cluster://10.0.0.5:7000/0")
    by_flag = Settings(_env_file=None, redis_url="redis://10.0.0.5:7000/0", redis_cluster=True)
    tls = Settings(_env_file=None, redis_url="rediss+cluster://:secret@redis.example:7000")
    single = Settings(_env_file=None, redis_url="redis://10.0.0.5:6379/0")

    assert by_scheme.redis_cluster_mode and by_flag.redis_cluster_mode and tls.redis_cluster_mode
    assert by_scheme.redis_client_url == "redis://10.0.0.5:7000/0"
    assert by_flag.redis_client_url == "redis://10.0.0.5:7000/0"
    assert tls.redis_client_url == "rediss://:secret@redis.example:7000"
    assert not single.redis_cluster_mode
    assert single.redis_client_url == "redis://10.0.0.5:6379/0"
    assert not Settings(_env_file=None, redis_url="").redis_cluster_mode


def test_redis_cluster_without_an_address_is_refused() -> None:
    with pytest.raises(ValidationError, match="REDIS_CLUSTER=1 needs REDIS_URL"):
        Settings(_env_file=None, redis_url="", redis_cluster=True)


@pytest.fixture
async def infra(
    mongo_url: str, tmp_path: Path, redis_cluster: RedisClusterServers
) -> AsyncIterator[Infrastructure]:
    settings = make_settings(mongo_url, tmp_path, redis_url=redis_cluster.url)
    opened = await open_infrastructure(settings, in_process_jobs=True)
    yield opened
    await opened.db.client.drop_database(settings.mongodb_db)
    await opened.close()


async def test_the_product_opens_a_cluster_client_and_says_so(infra: Infrastructure) -> None:
    assert isinstance(infra.redis, ClusterClient)
    assert infra.components["redis"] == "redis cluster"
    assert await infra.redis.ping()


async def test_the_cache_works_across_the_masters(
    infra: Infrastructure, redis_cluster: RedisClusterServers
) -> None:
    cache = infra.cache
    assert isinstance(cache, RedisCache)
    keys = [f"key-{i}" for i in range(30)]
    for i, key in enumerate(keys):
        await cache.set(key, f"value {i}".encode(), 60)

    masters = {
        redis_cluster.master_of(f"{infra.settings.redis_key_prefix}cache:{k}").port for k in keys
    }
    assert len(masters) == redis_cluster.masters  # the keys are spread, not pinned to one slot
    assert [await cache.get(key) for key in keys[:3]] == [b"value 0", b"value 1", b"value 2"]
    await cache.delete(*keys)  # one call, keys of many slots
    assert [await cache.get(key) for key in keys] == [None] * len(keys)


async def test_rate_limits_count_on_the_cluster_as_on_one_redis(infra: Infrastructure) -> None:
    limiter = infra.limiter
    assert isinstance(limiter, RedisRateLimiter)
    key = f"ip:{uuid.uuid4().hex}"
    decisions = [await limiter.hit(key, 3, 60) for _ in range(5)]

    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert 1 <= decisions[-1].retry_after <= 60
    assert (await limiter.hit(f"{key}:other", 3, 60)).allowed


async def test_a_plain_redis_url_still_opens_one_server(mongo_url: str, tmp_path: Path) -> None:
    settings = make_settings(mongo_url, tmp_path, redis_url=REDIS_URL)
    opened = await open_infrastructure(settings, in_process_jobs=True)
    try:
        assert type(opened.redis) is Redis
        assert opened.components["redis"] == "redis"
    finally:
        await opened.db.client.drop_database(settings.mongodb_db)
        await opened.close()
