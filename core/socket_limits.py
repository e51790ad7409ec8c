"""How many sockets a user, and an address that has not said hello yet, may hold.

The port counts across nodes: in process for the embedded run, in Redis otherwise. A user's
sockets are one sorted set (one key: one cluster slot): members are `<opened ms>:<connection>`,
so that their order is their age, scored by when their node last vouched for them; a node that
died stops vouching and its sockets drop out of the count on their own.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Protocol

from core.kv import redis_reachable
from core.redis_client import RedisClient

# A node refreshes its sockets' entries this often; an entry lapses after three missed rounds.
HEARTBEAT_SEC = 20.0
LAPSE_SEC = 3 * HEARTBEAT_SEC
PENDING_TTL_SEC = 60  # a pending count outlives no node: it lapses when not touched


def member(opened_ms: int, connection_id: str) -> str:
    return f"{opened_ms:015d}:{connection_id}"


def connection_of(entry: str) -> str:
    return entry.partition(":")[2]


class SocketLimits(Protocol):
    async def open_pending(self, address: str, limit: int) -> bool:
        """Count a socket from `address` that has not said hello; False past `limit`."""
        ...

    async def close_pending(self, address: str) -> None: ...

    async def register(
        self, user_id: str, connection_id: str, opened_ms: int, limit: int
    ) -> list[str]:
        """Count a socket of the user; the connections (oldest first) that must go to stay
        within `limit`, the new one never among them."""
        ...

    async def unregister(self, user_id: str, connection_id: str, opened_ms: int) -> None: ...

    async def keep_alive(self, sockets: Iterable[tuple[str, str, int]]) -> None:
        """(user, connection, opened ms) of this node's open sockets: they still exist."""
        ...


class MemorySocketLimits:
    def __init__(self) -> None:
        self._pending: dict[str, int] = {}
        self._users: dict[str, set[str]] = {}

    async def open_pending(self, address: str, limit: int) -> bool:
        count = self._pending.get(address, 0)
        if count >= limit:
            return False
        self._pending[address] = count + 1
        return True

    async def close_pending(self, address: str) -> None:
        count = self._pending.get(address, 0) - 1
        if count > 0:
            self._pending[address] = count
        else:
            self._pending.pop(address, None)

    async def register(
        self, user_id: str, connection_id: str, opened_ms: int, limit: int
    ) -> list[str]:
        entries = self._users.setdefault(user_id, set())
        mine = member(opened_ms, connection_id)
        entries.add(mine)
        older = sorted(e for e in entries if e != mine)
        excess = len(entries) - limit
        return [connection_of(e) for e in older[:excess]] if excess > 0 else []

    async def unregister(self, user_id: str, connection_id: str, opened_ms: int) -> None:
        entries = self._users.get(user_id)
        if entries is not None:
            entries.discard(member(opened_ms, connection_id))
            if not entries:
                del self._users[user_id]

    async def keep_alive(self, sockets: Iterable[tuple[str, str, int]]) -> None:
        return None  # one process: nothing can lapse


# One round trip: drop lapsed entries, add this one, return the oldest beyond the limit.
_REGISTER = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
local entries = redis.call('ZRANGE', KEYS[1], 0, -1)
local excess = #entries - tonumber(ARGV[4])
if excess <= 0 then return {} end
table.sort(entries)
local out = {}
for _, entry in ipairs(entries) do
  if #out >= excess then break end
  if entry ~= ARGV[3] then out[#out + 1] = entry end
end
return out
"""

_OPEN_PENDING = """
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if count > tonumber(ARGV[1]) then
  redis.call('DECR', KEYS[1])
  return 0
end
return 1
"""

_CLOSE_PENDING = """
if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisSocketLimits:
    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._register = redis.register_script(_REGISTER)
        self._open = redis.register_script(_OPEN_PENDING)
        self._close = redis.register_script(_CLOSE_PENDING)

    def _user_key(self, user_id: str) -> str:
        return f"{self._prefix}ws:user:{{{user_id}}}"

    def _pending_key(self, address: str) -> str:
        return f"{self._prefix}ws:pending:{address}"

    async def open_pending(self, address: str, limit: int) -> bool:
        with redis_reachable():
            allowed = await self._open(
                keys=[self._pending_key(address)], args=[limit, PENDING_TTL_SEC]
            )
        return bool(allowed)

    async def close_pending(self, address: str) -> None:
        with redis_reachable():
            await self._close(keys=[self._pending_key(address)], args=[])

    async def register(
        self, user_id: str, connection_id: str, opened_ms: int, limit: int
    ) -> list[str]:
        now = time.time()
        args: list[str | int | float] = [
            now,
            now + LAPSE_SEC,
            member(opened_ms, connection_id),
            limit,
            int(LAPSE_SEC * 2),
        ]
        with redis_reachable():
            older = await self._register(keys=[self._user_key(user_id)], args=args)
        return [connection_of(e.decode() if isinstance(e, bytes) else e) for e in older]

    async def unregister(self, user_id: str, connection_id: str, opened_ms: int) -> None:
        with redis_reachable():
            await self._redis.zrem(self._user_key(user_id), member(opened_ms, connection_id))

    async def keep_alive(self, sockets: Iterable[tuple[str, str, int]]) -> None:
        lapse = time.time() + LAPSE_SEC
        async with self._redis.pipeline(transaction=False) as pipe:
            for user_id, connection_id, opened_ms in sockets:
                pipe.zadd(
                    self._user_key(user_id), {member(opened_ms, connection_id): lapse}, xx=True
                )
                pipe.expire(self._user_key(user_id), int(LAPSE_SEC * 2))
            with redis_reachable():
                await pipe.execute()
