"""The Redis adapters of the session ports: the same semantics as `engine.bus.memory`, across nodes.

Keys, all under the prefix (`{id}` is a hash tag: one interview's keys share a cluster slot):
  iv:{id}:meta    hash: `head` (the last seq given) and `epoch` (names this history); kept in one
                  key so a lost counter always comes with a new epoch; `batch`/`first` name the
                  last append, so that a command retried after a lost reply does not append twice
  iv:{id}:stream  the history: entry id `<seq>-0`, the event's wire text in field `e`
  iv:{id}:state   hash: `v` (the state's version) and `s` (the state JSON)
  deadlines       sorted set of interview ids scored by their deadline (epoch seconds)
  lease:<key>     the lease's owner, expiring with the lease
Channel `iv:{id}:events` carries each appended batch as lines: the first seq, the epoch, then
one event's wire text per line (JSON text never holds a raw newline), so that subscribers hand the
frames on without parsing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.bus.base import BusUnavailable, Replay, Stamped
from protocol.v1.messages import Event
from protocol.v1.wire import encode, number

log = logging.getLogger(__name__)

WEEK_SEC = 7 * 24 * 3600
SUBSCRIBE_TIMEOUT_SEC = 5.0
POLL_SEC = 1.0
BACKOFF_FIRST_SEC = 0.1
BACKOFF_MAX_SEC = 5.0

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


@contextlib.contextmanager
def _reachable() -> Iterator[None]:
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError) as exc:
        raise BusUnavailable("Redis is unreachable") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _new_epoch() -> str:
    return uuid.uuid4().hex[:12]


def _pending() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


def _fail(future: asyncio.Future[None], error: BaseException | None = None) -> bool:
    """Fail a pending future, marked retrieved (no warning if nobody awaits it); False if done."""
    if future.done():
        return False
    future.set_exception(error or BusUnavailable("the pub/sub connection was lost"))
    future.exception()
    return True


def _failed() -> asyncio.Future[None]:
    future = _pending()
    _fail(future)
    return future


def _interview_key(prefix: str, interview_id: str, part: str) -> str:
    return f"{prefix}iv:{{{interview_id}}}:{part}"


class RedisSubscription:
    """One local subscriber; its events come from the bus's shared pub/sub reader."""

    def __init__(self, bus: RedisBus, channel: str) -> None:
        self._bus = bus
        self.channel = channel
        self.queue: asyncio.Queue[Stamped | None] = asyncio.Queue()

    async def __aiter__(self) -> AsyncIterator[Stamped]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item

    async def close(self) -> None:
        await self._bus._release(self)
        self.queue.put_nowait(None)


@dataclass(eq=False)
class _Channel:
    interview_id: str
    cursor: int  # the last seq handed out, or the head when the channel was subscribed
    epoch: str | None
    subs: set[RedisSubscription] = field(default_factory=set)
    ready: asyncio.Future[None] = field(default_factory=_pending)  # SUBSCRIBE confirmed


class RedisBus:
    """Event histories in Redis streams, fanned out over one pub/sub connection per node.

    Subscriptions outlive a lost pub/sub connection: the reader reconnects with backoff,
    resubscribes, and hands each channel what it missed from the stream. Where that history is
    gone (trimmed, or the interview's history restarted) the channel's subscriptions end, so the
    client reconnects and resumes from its lastSeq, getting a snapshot when a replay cannot cover
    the gap. Appends and replays fail with `BusUnavailable` while Redis is away.
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        history_limit: int = 10_000,
        history_ttl_sec: int = WEEK_SEC,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._history_limit = history_limit
        self._ttl = history_ttl_sec
        self._append = redis.register_script(_APPEND)
        # Its own pool without retries: redis-py would otherwise reconnect and resubscribe
        # silently, and the events published meanwhile would be lost without the reader knowing.
        source = redis.connection_pool
        self._pubsub_pool = ConnectionPool(
            connection_class=source.connection_class,
            **{**source.connection_kwargs, "retry": Retry(NoBackoff(), 0)},
        )
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._channels: dict[str, _Channel] = {}
        self._acks: dict[str, deque[asyncio.Future[None]]] = {}
        self._resyncing: set[str] = set()
        self._ended: set[str] = set()
        self._lock = asyncio.Lock()  # orders SUBSCRIBE/UNSUBSCRIBE on the shared connection
        self._closed = False

    def _key(self, interview_id: str, part: str) -> str:
        return _interview_key(self._prefix, interview_id, part)

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
        with _reachable():
            first = int(await self._append(keys=keys, args=args))
        return [
            Stamped(first + offset, number(body, first + offset))
            for offset, body in enumerate(bodies)
        ]

    async def replay(self, interview_id: str, after_seq: int) -> Replay:
        """The history after `after_seq`, in order, with the epoch and head read atomically."""
        meta = self._key(interview_id, "meta")
        async with self._redis.pipeline(transaction=True) as pipe:
            # An unknown interview gets its epoch now, as the embedded bus does, so the first
            # append keeps the epoch a client was already told.
            pipe.hsetnx(meta, "epoch", _new_epoch())
            pipe.expire(meta, self._ttl, nx=True)
            pipe.hmget(meta, ["epoch", "head"])
            pipe.xrange(self._key(interview_id, "stream"), min=f"{max(after_seq + 1, 0)}-0")
            with _reachable():
                _, _, (epoch, raw_head), entries = await pipe.execute()
        head = int(raw_head or 0)
        events: list[Stamped] = []
        for entry_id, fields in entries:
            seq = int(_text(entry_id).partition("-")[0])
            if seq <= head:  # entries above the head are left over from a lost counter
                events.append(Stamped(seq, _text(fields[b"e" if b"e" in fields else "e"])))
        continuous = after_seq == head or (bool(events) and events[0].seq == after_seq + 1)
        return Replay(_text(epoch), head, events, after_seq <= head and continuous)

    async def subscribe(self, interview_id: str) -> RedisSubscription:
        """Live events from now on; the server has the subscription when this returns."""
        if self._closed:
            raise BusUnavailable("the session bus is closed")
        name = self._key(interview_id, "events")
        sub = RedisSubscription(self, name)
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SEC):
                channel = self._channels.get(name)
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

    async def _open_channel(self, interview_id: str, name: str, sub: RedisSubscription) -> _Channel:
        # The head is read before SUBSCRIBE, so everything published to this node comes after it.
        meta = self._key(interview_id, "meta")
        with _reachable():
            epoch, head = await self._redis.hmget(meta, ["epoch", "head"])
        channel = self._channels.get(name)  # another subscriber may have opened it meanwhile
        if channel is None:
            channel = _Channel(interview_id, int(head or 0), _text(epoch) if epoch else None)
            self._channels[name] = channel
            channel.subs.add(sub)
            await self._send_subscribe(name, channel)
        return channel

    async def close(self) -> None:
        """Stop the reader and end every subscription."""
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        await self._drop()
        await self._pubsub_pool.aclose()
        for name in list(self._channels):
            self._end(name)

    # --- the shared pub/sub connection ---------------------------------------------------------

    def _expect_ack(self, name: str, ack: asyncio.Future[None]) -> None:
        # Confirmations come in the order the SUBSCRIBEs went out, so a FIFO per channel pairs them.
        self._acks.setdefault(name, deque()).append(ack)

    async def _send_subscribe(self, name: str, channel: _Channel) -> None:
        try:
            async with self._lock:
                if self._closed:
                    raise BusUnavailable("the session bus is closed")
                if self._channels.get(name) is not channel:
                    return  # every subscriber left while this waited
                if self._pubsub is None:
                    if self._reader is not None:
                        raise BusUnavailable("the pub/sub connection is being re-established")
                    with _reachable():
                        self._pubsub = await self._connect()
                    self._reader = asyncio.create_task(self._read_loop(), name="redis-bus-reader")
                self._expect_ack(name, channel.ready)
                with _reachable():
                    await self._pubsub.subscribe(name)
        except BaseException as exc:
            _fail(channel.ready, exc if isinstance(exc, BusUnavailable) else None)
            raise

    async def _connect(self) -> PubSub:
        pubsub = PubSub(self._pubsub_pool)
        try:
            await pubsub.connect()  # type: ignore[no-untyped-call]
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        return pubsub

    async def _release(self, sub: RedisSubscription) -> None:
        channel = self._channels.get(sub.channel)
        if channel is None or sub not in channel.subs:
            return
        channel.subs.discard(sub)
        if not channel.subs:
            del self._channels[sub.channel]
            await self._unsubscribe(sub.channel)

    async def _unsubscribe(self, name: str) -> None:
        async with self._lock:
            if name in self._channels or self._pubsub is None:
                return  # subscribed again meanwhile, or the next connection leaves it out
            try:
                await self._pubsub.unsubscribe(name)
            except (RedisConnectionError, RedisTimeoutError):
                log.info("unsubscribe failed; the reader reconnects", extra={"channel": name})

    def _end(self, name: str) -> None:
        """End a channel's subscriptions (their iterators finish); the reader unsubscribes it."""
        channel = self._channels.pop(name, None)
        if channel is not None:
            self._ended.add(name)
            for sub in channel.subs:
                sub.queue.put_nowait(None)

    async def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        for acks in self._acks.values():
            for ack in acks:
                _fail(ack)
        self._acks.clear()
        for channel in self._channels.values():
            if not _fail(channel.ready):
                channel.ready = _failed()  # later subscribers learn the connection is down
        self._resyncing.clear()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read_loop(self) -> None:
        failures = 0
        while True:
            try:
                pubsub = self._pubsub or await self._resync()
                message = await pubsub.get_message(timeout=POLL_SEC)
                failures = 0
                if message is not None:
                    self._handle(message)
                while self._ended:
                    await self._unsubscribe(self._ended.pop())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                lost = isinstance(exc, RedisConnectionError | RedisTimeoutError | BusUnavailable)
                log.warning(
                    "session bus pub/sub failed; reconnecting",
                    exc_info=not lost,  # a lost connection needs no traceback
                    extra={
                        "channels": len(self._channels),
                        "failures": failures,
                        "error": repr(exc),
                    },
                )
                await self._drop()
                await asyncio.sleep(min(BACKOFF_MAX_SEC, BACKOFF_FIRST_SEC * 2 ** (failures - 1)))

    async def _resync(self) -> PubSub:
        """Reconnect, resubscribe every channel, then hand each what it missed meanwhile."""
        async with self._lock:
            pubsub = await self._connect()
            names = list(self._channels)
            acks = [_pending() for _ in names]
            for name, ack in zip(names, acks, strict=True):
                self._channels[name].ready = ack
                self._expect_ack(name, ack)
            self._pubsub = pubsub
            # Until the catch-up below, these channels' messages are also in the stream it reads.
            self._resyncing = set(names)
            if names:
                await pubsub.subscribe(*names)
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SEC):
            while not all(ack.done() for ack in acks):
                message = await pubsub.get_message(timeout=POLL_SEC)
                if message is not None:
                    self._handle(message)
        for name in names:
            channel = self._channels.get(name)
            if channel is None:
                continue
            replay = await self.replay(channel.interview_id, channel.cursor)
            if channel is not self._channels.get(name):
                continue
            self._resyncing.discard(name)
            if not replay.complete or channel.epoch not in (None, replay.epoch):
                log.info("history gone after reconnect; ending", extra={"channel": name})
                self._end(name)
                continue
            channel.epoch = replay.epoch
            for event in replay.events:
                self._deliver(channel, event)
        self._resyncing.clear()
        log.info("session bus pub/sub reconnected", extra={"channels": len(names)})
        return pubsub

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind not in ("subscribe", "message"):
            return
        name = _text(message["channel"])
        if kind == "subscribe":
            acks = self._acks.get(name)
            if acks:
                ack = acks.popleft()
                if not ack.done():
                    ack.set_result(None)
                if not acks:
                    del self._acks[name]
        elif kind == "message" and name not in self._resyncing:
            channel = self._channels.get(name)
            if channel is None:
                return
            try:
                head, epoch, *frames = _text(message["data"]).split("\n")
                first = int(head)
            except (ValueError, TypeError):
                log.warning("malformed session bus message", extra={"channel": name})
                return
            if channel.epoch is None:
                channel.epoch = epoch
            elif channel.epoch != epoch:
                # The history restarted under these subscribers: they must resync from a snapshot.
                log.info("history epoch changed; ending subscriptions", extra={"channel": name})
                self._end(name)
                return
            for offset, frame in enumerate(frames):
                self._deliver(channel, Stamped(first + offset, frame))

    @staticmethod
    def _deliver(channel: _Channel, event: Stamped) -> None:
        if event.seq <= channel.cursor:
            return  # already handed out by a catch-up
        channel.cursor = event.seq
        for sub in channel.subs:
            sub.queue.put_nowait(event)


class RedisLiveStore:
    """Live interview states, deadlines and leases in Redis, shared by every node."""

    def __init__(self, redis: Redis, prefix: str, state_ttl_sec: int = WEEK_SEC) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = state_ttl_sec
        self._deadlines = f"{prefix}deadlines"
        self._save = redis.register_script(_SAVE)
        self._claim_due = redis.register_script(_CLAIM_DUE)
        self._acquire = redis.register_script(_ACQUIRE)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def _state_key(self, interview_id: str) -> str:
        return _interview_key(self._prefix, interview_id, "state")

    def _lease_key(self, key: str) -> str:
        return f"{self._prefix}lease:{key}"

    async def load(self, interview_id: str) -> dict[str, Any] | None:
        with _reachable():
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
        with _reachable():
            return bool(await self._save(keys=[self._state_key(interview_id)], args=args))

    async def schedule(self, interview_id: str, at: float) -> None:
        with _reachable():
            await self._redis.zadd(self._deadlines, {interview_id: at})

    async def cancel(self, interview_id: str) -> None:
        with _reachable():
            await self._redis.zrem(self._deadlines, interview_id)

    async def claim_due(self, now: float, limit: int = 100) -> list[str]:
        """Interviews whose deadline has passed; each is handed to exactly one caller."""
        with _reachable():
            due = await self._claim_due(keys=[self._deadlines], args=[repr(now), limit])
        return [_text(member) for member in due]

    async def acquire_lease(self, key: str, owner: str, ttl_sec: float) -> bool:
        """Take the lease when it is free or already ours (then its TTL starts over)."""
        args: list[str | int] = [owner, _millis(ttl_sec)]
        with _reachable():
            return bool(await self._acquire(keys=[self._lease_key(key)], args=args))

    async def renew_lease(self, key: str, owner: str, ttl_sec: float) -> bool:
        args: list[str | int] = [owner, _millis(ttl_sec)]
        with _reachable():
            return bool(await self._renew(keys=[self._lease_key(key)], args=args))

    async def release_lease(self, key: str, owner: str) -> None:
        with _reachable():
            await self._release(keys=[self._lease_key(key)], args=[owner])

    async def close(self) -> None:
        return None  # the client belongs to the infrastructure, which closes it


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))
