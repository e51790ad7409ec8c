"""The Redis client the settings ask for: one server, or a Redis Cluster (docs/redis.md)."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import AskError, ClusterError, RedisClusterException, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.settings import Settings


class ClusterClient(RedisCluster):
    """redis-py's cluster client, which reads the slot map before it routes a command.

    redis-py picks a command's node before it reads a missing slot map (on first use, and after
    it dropped the map in a failover): the command then goes to a random node, comes back MOVED,
    and enough MOVEDs make the client close every connection, under commands still using them.
    """

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        await self.initialize()  # returns at once while the slot map is known
        return await super().execute_command(*args, **kwargs)


RedisClient = Redis | RedisCluster

# Errors that mean "Redis cannot serve this right now", which callers turn into a clear
# retry-later error: a lost connection or a timeout, and on a cluster a failover in progress
# (CLUSTERDOWN, TRYAGAIN, a slot moving, no reachable node, slots not covered).
UNREACHABLE: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterError,
    TryAgainError,
    AskError,
    RedisClusterException,
)


def open_redis(settings: Settings) -> RedisClient:
    """A client for `REDIS_URL`; nothing is connected until the first command."""
    if settings.redis_cluster_mode:
        # One pool per cluster node. redis-py's cluster client has no blocking pool: past
        # REDIS_MAX_CONNECTIONS on one node a command fails (and is reported as unavailable).
        return ClusterClient.from_url(
            settings.redis_client_url,
            max_connections=settings.redis_max_connections,
            socket_connect_timeout=5,
            health_check_interval=30,
        )
    # A blocking pool: under load a command waits for a free connection instead of failing.
    # A connection that broke while idle in the pool (Redis restarted) is replaced and the
    # command tried again, a few times with a short backoff, before an error is raised.
    pool = BlockingConnectionPool.from_url(
        settings.redis_client_url,
        max_connections=settings.redis_max_connections,
        timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return Redis(connection_pool=pool)
