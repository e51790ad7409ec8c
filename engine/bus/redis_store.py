"""The live store in Redis: interview states, deadlines and leases, shared by every node."""

from __future__ import annotations

import json
from typing import Any

import orjson
from redis.asyncio.cluster import RedisCluster

from core.redis_client import RedisClient
from engine.bus.redis_keys import (
    deadline_keys,
    deadline_shard,
    interview_key,
    lease_key,
    reachable,
    text,
)

WEEK_SEC = 7 * 24 * 3600

_SAVE = """
local current = redis.call('HGET', KEYS[1], 'v')
if current and current ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 's', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do redis.call('ZREM', KEYS[1], member) end
return due
"""

_ACQUIRE = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class RedisLiveStore:
    """Live interview states, deadlines and leases in Redis, shared by every node.

    On a Redis Cluster the deadlines are spread over `DEADLINE_SHARDS` sorted sets with hash
    tags of their own, so that they live on every master; a claim visits every shard.
    """

    def __init__(self, redis: RedisClient, prefix: str, state_ttl_sec: int = WEEK_SEC) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = state_ttl_sec
        self._cluster = redis if isinstance(redis, RedisCluster) else None
        self._deadlines = deadline_keys(prefix, sharded=self._cluster is not None)
        self._save = redis.register_script(_SAVE)
        self._claim_due = redis.register_script(_CLAIM_DUE)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _state_key(self, interview_id: str) -> str:
        return interview_key(self._prefix, interview_id, "state")

    def _deadline_key(self, interview_id: str) -> str:
        keys = self._deadlines
        return keys[0] if len(keys) == 1 else keys[deadline_shard(interview_id, len(keys))]

    async def load(self, interview_id: str) -> dict[str, Any] | None:
        with reachable():
            raw = await self._redis.hget(self._state_key(interview_id), "s")
        return None if raw is None else dict(orjson.loads(raw))

    async def save(self, interview_id: str, state: dict[str, Any], expected_version: int) -> bool:
        """Compare-and-set on `version`: False when someone else saved first."""
        version = _dumps(state.get("version"))
        args: list[str | bytes | int] = [
            _dumps(expected_version),
            version,
            orjson.dumps(state),
            self._ttl,
        ]
        with reachable():
            return bool(await self._save(keys=[self._state_key(interview_id)], args=args))

    async def schedule(self, interview_id: str, at: float) -> None:
        with reachable():
            await self._redis.zadd(self._deadline_key(interview_id), {interview_id: at})

    async def cancel(self, interview_id: str) -> None:
        with reachable():
            await self._redis.zrem(self._deadline_key(interview_id), interview_id)

    async def claim_due(self, now: float, limit: int = 100) -> list[str]:
        """Interviews whose deadline has passed; each is handed to exactly one caller.

        On a cluster every shard gives at most its share of `limit` (rounded up), so one call
        returns at most `limit` plus a few; what a shard keeps waits for the next call.
        """
        if self._cluster is None:
            with reachable():
                due = await self._claim_due(keys=self._deadlines, args=[repr(now), limit])
            return [text(member) for member in due]
        share = -(-limit // len(self._deadlines))
        with reachable():
            # One pipeline: each master gets its shards' claims in one round trip, all at once.
            # EVAL, since a pipeline cannot load a script a master does not have yet; Redis
            # keeps the compiled script after the first call. A reply lost in a failover loses
            # that shard's claims; `rearm_deadlines` schedules them again from the database.
            async with self._cluster.pipeline(transaction=False) as pipe:
                for key in self._deadlines:
                    pipe.eval(_CLAIM_DUE, 1, key, repr(now), share)
                claims = await pipe.execute()
        return [text(member) for due in claims for member in due]

    async def acquire_lease(self, key: str, owner: str, ttl_sec: float) -> bool:
        """Take the lease when it is free or already ours (then its TTL starts over)."""
        args: list[str | int] = [owner, _millis(ttl_sec)]
        with reachable():
            return bool(await self._acquire(keys=[lease_key(self._prefix, key)], args=args))

    async def renew_lease(self, key: str, owner: str, ttl_sec: float) -> bool:
        args: list[str | int] = [owner, _millis(ttl_sec)]
        with reachable():
            return bool(await self._renew(keys=[lease_key(self._prefix, key)], args=args))

    async def release_lease(self, key: str, owner: str) -> None:
        with reachable():
            await self._release(keys=[lease_key(self._prefix, key)], args=[owner])

    async def close(self) -> None:
        return None  # the client belongs to the infrastructure, which closes it


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))
