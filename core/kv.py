"""Cache and rate-limit ports, each with a Redis adapter and an in-process one.

Every Redis key here is a key of its own (one command or a one-key script), so the adapters work
on one Redis server and on a Redis Cluster alike; `delete` of several keys is split by slot.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from core.errors import Unavailable
from core.redis_client import UNREACHABLE, RedisClient


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    retry_after: int


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl_sec: int) -> None: ...
    async def delete(self, *keys: str) -> None: ...

    async def incr(self, key: str, amount: int, ttl_sec: int) -> int:
        """Add `amount` to the integer at `key` atomically (0 when absent); the new value. A key
        created here lives `ttl_sec`; an existing one keeps its lifetime."""
        ...


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_sec: int) -> RateDecision:
        """Count one request against a fixed window; say whether it may go on."""
        ...


class MemoryCache:
    def __init__(self, max_items: int = 10_000) -> None:
        self._items: dict[str, tuple[float, bytes]] = {}
        self._max = max_items

    async def get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return item[1]

    async def set(self, key: str, value: bytes, ttl_sec: int) -> None:
        if len(self._items) >= self._max:
            now = time.monotonic()
            for stale in [k for k, (exp, _) in self._items.items() if exp < now]:
                del self._items[stale]
            if len(self._items) >= self._max:
                self._items.pop(next(iter(self._items)))
        self._items[key] = (time.monotonic() + ttl_sec, value)

    async def delete(self, *keys: str) -> None:
        for key in keys:
            self._items.pop(key, None)

    async def incr(self, key: str, amount: int, ttl_sec: int) -> int:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            item = (time.monotonic() + ttl_sec, b"0")
        value = int(item[1]) + amount
        self._items[key] = (item[0], str(value).encode())
        return value


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, limit: int, window_sec: int) -> RateDecision:
        now = time.monotonic()
        reset_at, count = self._windows.get(key, (now + window_sec, 0))
        if reset_at <= now:
            reset_at, count = now + window_sec, 0
        count += 1
        self._windows[key] = (reset_at, count)
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        if count > limit:
            return RateDecision(False, max(1, math.ceil(reset_at - now)))
        return RateDecision(True, 0)


@contextlib.contextmanager
def redis_reachable() -> Iterator[None]:
    try:
        yield
    except UNREACHABLE as exc:
        raise Unavailable("The cache is unreachable; retry shortly") from exc


class RedisCache:
    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix + "cache:"

    async def get(self, key: str) -> bytes | None:
        with redis_reachable():
            value = await self._redis.get(self._prefix + key)
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    async def set(self, key: str, value: bytes, ttl_sec: int) -> None:
        with redis_reachable():
            await self._redis.set(self._prefix + key, value, ex=ttl_sec)

    async def delete(self, *keys: str) -> None:
        if keys:
            with redis_reachable():
                await self._redis.delete(*(self._prefix + k for k in keys))

    async def incr(self, key: str, amount: int, ttl_sec: int) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(self._prefix + key, amount)
            pipe.expire(self._prefix + key, ttl_sec, nx=True)
            with redis_reachable():
                value, _ = await pipe.execute()
        return int(value)


# One round trip: count, start the window on the first hit, report the time left.
_HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


class RedisRateLimiter:
    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix + "rl:"
        self._script = redis.register_script(_HIT_SCRIPT)

    async def hit(self, key: str, limit: int, window_sec: int) -> RateDecision:
        with redis_reachable():
            count, ttl_ms = await self._script(keys=[self._prefix + key], args=[window_sec * 1000])
        if int(count) > limit:
            return RateDecision(False, max(1, math.ceil(int(ttl_ms) / 1000)))
        return RateDecision(True, 0)
