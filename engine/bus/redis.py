"""The Redis adapters of the session ports: the same semantics as `engine.bus.memory`, across
nodes, on one Redis server or on a Redis Cluster. The keys and the slot plan are in
`engine.bus.redis_keys` and docs/redis.md; the fan-out side is `engine.bus.redis_pubsub`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from redis.asyncio import ConnectionPool
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.redis_client import RedisClient
from engine.bus.base import BusUnavailable, Replay, Stamped
from engine.bus.redis_keys import interview_key, reachable, text
from engine.bus.redis_pubsub import SUBSCRIBE_TIMEOUT_SEC, Channel, Listener, RedisSubscription
from engine.bus.redis_store import WEEK_SEC, RedisLiveStore
from protocol.v1.messages import Event
from protocol.v1.wire import encode, number

__all__ = ["RedisBus", "RedisLiveStore", "RedisSubscription"]

# One round trip per append. A fresh counter with entries still in the stream means the counter
# was lost: those entries are another history, so they go and the epoch changes. Each event comes
# as its wire text with `"seq":0` (protocol.v1.wire): the script writes the number in.
_APPEND = """
if redis.call('HGET', KEYS[1], 'batch') == ARGV[5] then
  return tonumber(redis.call('HGET', KEYS[1], 'first'))
end
local n = #ARGV - 5
local head = redis.call('HINCRBY', KEYS[1], 'head', n)
local first = head - n + 1
if first == 1 then
  if redis.call('DEL', KEYS[2]) == 1 then redis.call('HSET', KEYS[1], 'epoch', ARGV[4]) end
elseif redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[4])
end
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[4])
redis.call('HSET', KEYS[1], 'batch', ARGV[5], 'first', first)
local epoch = redis.call('HGET', KEYS[1], 'epoch')
local lines = {first, epoch}
for i = 1, n do
  local body = ARGV[5 + i]
  local at = string.find(body, '"seq":0', 1, true)
  local frame = string.sub(body, 1, at + 5) .. (first + i - 1) .. string.sub(body, at + 7)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], (first + i - 1) .. '-0', 'e', frame)
  lines[i + 2] = frame
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[1], table.concat(lines, '\\n'))
return first
"""

# On a cluster the batch goes out with SPUBLISH, to the subscribers of the interview's shard only.
_APPEND_SHARDED = _APPEND.replace("'PUBLISH'", "'SPUBLISH'")

# The replay as one script on a cluster: what the MULTI/EXEC does on one Redis, atomically too,
# for a tenth of the client's CPU (redis-py's cluster transactions are costly in Python).
_REPLAY = """
redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2], 'NX')
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'head')
return {meta[1], meta[2], redis.call('XRANGE', KEYS[2], ARGV[3], '+')}
"""


def _new_epoch() -> str:
    return uuid.uuid4().hex[:12]


def _no_retries(connection_class: type[Any], kwargs: dict[str, Any]) -> ConnectionPool:
    """A pub/sub pool: redis-py would otherwise reconnect and resubscribe silently, and the
    events published meanwhile would be lost without the reader knowing."""
    return ConnectionPool(
        connection_class=connection_class, **{**kwargs, "retry": Retry(NoBackoff(), 0)}
    )


class RedisBus:
    """Event histories in Redis streams, fanned out over pub/sub: one connection per node on a
    single Redis, one per master on a Redis Cluster (sharded pub/sub).

    Subscriptions outlive a lost pub/sub connection: the reader reconnects with backoff,
    resubscribes, and hands each channel what it missed from the stream (on a cluster, after a
    failover, from the master that serves the slot now). Where that history is gone (trimmed,
    the interview's history restarted, or writes lost in a failover) the channel's subscriptions
    end, so the client reconnects and resumes from its lastSeq, getting a snapshot when a replay
    cannot cover the gap. Appends and replays fail with `BusUnavailable` while Redis is away.
    """

    def __init__(
        self,
        redis: RedisClient,
        prefix: str,
        history_limit: int = 10_000,
        history_ttl_sec: int = WEEK_SEC,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._history_limit = history_limit
        self._ttl = history_ttl_sec
        self.channels: dict[str, Channel] = {}
        self.closed = False
        self._listeners: dict[str, Listener] = {}
        self._cluster: RedisCluster | None = None
        self._single: Listener | None = None
        if isinstance(redis, RedisCluster):
            self._cluster = redis
            self._append = redis.register_script(_APPEND_SHARDED)
            self._replay = redis.register_script(_REPLAY)
        else:
            self._append = redis.register_script(_APPEND)
            source = redis.connection_pool
            pool = _no_retries(source.connection_class, source.connection_kwargs)
            self._single = Listener(self, pool, sharded=False, name="redis")
            self._listeners[""] = self._single

    def _key(self, interview_id: str, part: str) -> str:
        return interview_key(self._prefix, interview_id, part)

    async def append(self, interview_id: str, events: Sequence[Event]) -> list[Stamped]:
        """Give each event the next `seq`, store it in the interview's history, fan it out."""
        if not events:
            return []
        bodies = [encode(event) for event in events]
        args: list[str | int] = [
            self._key(interview_id, "events"),
            self._history_limit,
            self._ttl,
            _new_epoch(),
            uuid.uuid4().hex,
            *bodies,
        ]
        keys = [self._key(interview_id, "meta"), self._key(interview_id, "stream")]
        with reachable():
            first = int(await self._append(keys=keys, args=args))
        return [
            Stamped(first + offset, number(body, first + offset))
            for offset, body in enumerate(bodies)
        ]

    async def replay(self, interview_id: str, after_seq: int) -> Replay:
        """The history after `after_seq`, in order, with the epoch and head read atomically."""
        meta = self._key(interview_id, "meta")
        stream = self._key(interview_id, "stream")
        start = f"{max(after_seq + 1, 0)}-0"
        # An unknown interview gets its epoch now, as the embedded bus does, so the first append
        # keeps the epoch a client was already told.
        if self._cluster is not None:
            with reachable():
                raw = await self._replay(keys=[meta, stream], args=[_new_epoch(), self._ttl, start])
            epoch, raw_head, raw_entries = raw
            entries = [(entry_id, {fields[0]: fields[1]}) for entry_id, fields in raw_entries]
        else:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hsetnx(meta, "epoch", _new_epoch())
                pipe.expire(meta, self._ttl, nx=True)
                pipe.hmget(meta, ["epoch", "head"])
                pipe.xrange(stream, min=start)
                with reachable():
                    _, _, (epoch, raw_head), entries = await pipe.execute()
        head = int(raw_head or 0)
        events: list[Stamped] = []
        for entry_id, fields in entries:
            seq = int(text(entry_id).partition("-")[0])
            if seq <= head:  # entries above the head are left over from a lost counter
                events.append(Stamped(seq, text(fields[b"e" if b"e" in fields else "e"])))
        continuous = after_seq == head or (bool(events) and events[0].seq == after_seq + 1)
        return Replay(text(epoch), head, events, after_seq <= head and continuous)

    async def subscribe(self, interview_id: str) -> RedisSubscription:
        """Live events from now on; the server has the subscription when this returns."""
        if self.closed:
            raise BusUnavailable("the session bus is closed")
        name = self._key(interview_id, "events")
        sub = RedisSubscription(self, name)
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SEC):
                channel = self.channels.get(name)
                if channel is None:
                    channel = await self._open_channel(interview_id, name, sub)
                channel.subs.add(sub)
                await asyncio.shield(channel.ready)
        except BaseException as exc:
            await sub.close()
            if isinstance(exc, TimeoutError):
                raise BusUnavailable("Redis did not confirm the subscription") from exc
            raise
        return sub

    async def _open_channel(self, interview_id: str, name: str, sub: RedisSubscription) -> Channel:
        listener = self._single or await self._route(name)
        # The head is read before SUBSCRIBE, so everything published to this node comes after it.
        meta = self._key(interview_id, "meta")
        with reachable():
            epoch, head = await self._redis.hmget(meta, ["epoch", "head"])
        channel = self.channels.get(name)  # another subscriber may have opened it meanwhile
        if channel is None:
            channel = Channel(
                interview_id, int(head or 0), text(epoch) if epoch else None, listener
            )
            self.channels[name] = channel
            channel.subs.add(sub)
            await listener.subscribe(name, channel)
        return channel

    async def close(self) -> None:
        """Stop the readers and end every subscription."""
        self.closed = True
        for listener in list(self._listeners.values()):
            await listener.close()
        for name in list(self.channels):
            self.end(name)

    # --- what the listeners use ----------------------------------------------------------------

    def end(self, name: str) -> None:
        """End a channel's subscriptions (their iterators finish); its listener unsubscribes it."""
        channel = self.channels.pop(name, None)
        if channel is not None:
            channel.listener.ended.add(name)
            for sub in channel.subs:
                sub.queue.put_nowait(None)

    async def release(self, sub: RedisSubscription) -> None:
        channel = self.channels.get(sub.channel)
        if channel is None or sub not in channel.subs:
            return
        channel.subs.discard(sub)
        if not channel.subs:
            del self.channels[sub.channel]
            await channel.listener.unsubscribe(sub.channel)

    async def reroute(self, listener: Listener) -> None:
        """Read the cluster's slot map again; hand the listener's channels whose slot another
        master serves now to that master's listener."""
        if self._cluster is None:
            return
        cluster = self._cluster
        with reachable():
            await cluster.nodes_manager.initialize()
            owners = {
                name: _primary(cluster, name)
                for name, channel in self.channels.items()
                if channel.listener is listener
            }
        for name, node in owners.items():
            channel = self.channels.get(name)
            target = self._listener_at(node)
            if channel is None or channel.listener is not listener or target is listener:
                continue
            channel.listener = target
            target.adopted.add(name)
            target.start()

    # --- the cluster's masters -------------------------------------------------------------------

    async def _route(self, name: str) -> Listener:
        """The listener of the master that serves the channel's slot."""
        assert self._cluster is not None
        with reachable():
            await self._cluster.initialize()  # reads the slot map once, then returns at once
            node = _primary(self._cluster, name)
        return self._listener_at(node)

    def _listener_at(self, node: ClusterNode) -> Listener:
        listener = self._listeners.get(node.name)
        if listener is None:
            pool = _no_retries(node.connection_class, node.connection_kwargs)
            listener = Listener(self, pool, sharded=True, name=node.name)
            self._listeners[node.name] = listener
        return listener


def _primary(cluster: RedisCluster, channel: str) -> ClusterNode:
    node = cluster.get_node_from_key(channel)
    if node is None:
        raise BusUnavailable(f"no master serves {channel} now")
    return node
