"""The session bus's fan-out: one pub/sub connection per Redis server, read by one task and shared
by every subscriber on this node. On a single Redis there is one, with SUBSCRIBE; on a Redis
Cluster one per master that serves a subscribed interview, with sharded pub/sub (SSUBSCRIBE).

A listener outlives its connection: it reconnects with backoff, resubscribes, and hands each
channel what it missed from the interview's stream. On a cluster it first reads the slot map
again, and channels whose slot another master now serves (a failover, a resharding) move to that
master's listener, which subscribes them and catches them up the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import ConnectionPool
from redis.asyncio.client import PubSub

from core.redis_client import UNREACHABLE
from engine.bus.base import BusUnavailable, Replay, Stamped
from engine.bus.redis_keys import reachable, text

log = logging.getLogger(__name__)

SUBSCRIBE_TIMEOUT_SEC = 5.0
POLL_SEC = 1.0
BACKOFF_FIRST_SEC = 0.1
BACKOFF_MAX_SEC = 5.0


class SlotMoved(BusUnavailable):
    """The cluster unsubscribed a channel of ours: its slot is served elsewhere now."""


def pending() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


def fail(future: asyncio.Future[None], error: BaseException | None = None) -> bool:
    """Fail a pending future, marked retrieved (no warning if nobody awaits it); False if done."""
    if future.done():
        return False
    future.set_exception(error or BusUnavailable("the pub/sub connection was lost"))
    future.exception()
    return True


def failed() -> asyncio.Future[None]:
    future = pending()
    fail(future)
    return future


class RedisSubscription:
    """One local subscriber; its events come from its channel's listener."""

    def __init__(self, bus: Router, channel: str) -> None:
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
        await self._bus.release(self)
        self.queue.put_nowait(None)


@dataclass(eq=False)
class Channel:
    interview_id: str
    cursor: int  # the last seq handed out, or the head when the channel was subscribed
    epoch: str | None
    listener: Listener
    subs: set[RedisSubscription] = field(default_factory=set)
    ready: asyncio.Future[None] = field(default_factory=pending)  # SUBSCRIBE confirmed


class Router(Protocol):
    """What a listener needs from its bus."""

    channels: dict[str, Channel]
    closed: bool

    def end(self, name: str) -> None:
        """End a channel's subscriptions (their iterators finish)."""
        ...

    async def replay(self, interview_id: str, after_seq: int) -> Replay: ...

    async def reroute(self, listener: Listener) -> None:
        """Read the slot map again and move the listener's channels served elsewhere."""
        ...

    async def release(self, sub: RedisSubscription) -> None: ...


class Listener:
    """One pub/sub connection to one Redis server and the task that reads it."""

    def __init__(self, bus: Router, pool: ConnectionPool, *, sharded: bool, name: str) -> None:
        self._bus = bus
        self.pool = pool  # without retries: a silent resubscribe would lose events unnoticed
        self.sharded = sharded
        self.name = name
        self._ack_kind = "ssubscribe" if sharded else "subscribe"
        self._message_kind = "smessage" if sharded else "message"
        self.pubsub: PubSub | None = None
        self.reader: asyncio.Task[None] | None = None
        self._acks: dict[str, deque[asyncio.Future[None]]] = {}
        self._leaving: Counter[str] = Counter()  # SUNSUBSCRIBEs sent, not yet confirmed
        self._resyncing: set[str] = set()
        self.ended: set[str] = set()  # ended channels, to unsubscribe
        self.adopted: set[str] = set()  # channels moved here from another master's listener
        self._lock = asyncio.Lock()  # orders SUBSCRIBE/UNSUBSCRIBE on the connection

    def _names(self) -> list[str]:
        return [name for name, ch in self._bus.channels.items() if ch.listener is self]

    def _mine(self, name: str) -> Channel | None:
        channel = self._bus.channels.get(name)
        return channel if channel is not None and channel.listener is self else None

    def start(self) -> None:
        """Run the reader, which connects and subscribes this listener's channels."""
        if self.reader is None:
            self.reader = asyncio.create_task(self._read_loop(), name=f"redis-bus {self.name}")

    async def subscribe(self, name: str, channel: Channel) -> None:
        """Subscribe a new channel; its `ready` completes when the server confirms."""
        try:
            async with self._lock:
                if self._bus.closed:
                    raise BusUnavailable("the session bus is closed")
                if self._bus.channels.get(name) is not channel or channel.listener is not self:
                    return  # every subscriber left while this waited, or the channel moved
                if self.pubsub is None:
                    if self.reader is not None:
                        raise BusUnavailable("the pub/sub connection is being re-established")
                    with reachable():
                        self.pubsub = await self._connect()
                    self.start()
                self._expect_ack(name, channel.ready)
                with reachable():
                    await self._send_subscribe(self.pubsub, [name])
        except BaseException as exc:
            fail(channel.ready, exc if isinstance(exc, BusUnavailable) else None)
            raise

    async def unsubscribe(self, name: str) -> None:
        async with self._lock:
            if self._mine(name) is not None or self.pubsub is None:
                return  # subscribed again meanwhile, or the next connection leaves it out
            try:
                if self.sharded:
                    self._leaving[name] += 1
                    await self.pubsub.sunsubscribe(name)
                else:
                    await self.pubsub.unsubscribe(name)
            except UNREACHABLE:
                log.info("unsubscribe failed; the reader reconnects", extra={"channel": name})

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
            self.reader = None
        await self.drop()
        await self.pool.aclose()

    # --- the connection ----------------------------------------------------------------------

    def _expect_ack(self, name: str, ack: asyncio.Future[None]) -> None:
        # Confirmations come in the order the SUBSCRIBEs went out, so a FIFO per channel pairs them.
        self._acks.setdefault(name, deque()).append(ack)

    async def _send_subscribe(self, pubsub: PubSub, names: Sequence[str]) -> None:
        if not self.sharded:
            await pubsub.subscribe(*names)
            return
        for name in names:  # one SSUBSCRIBE holds channels of one slot only
            await pubsub.ssubscribe(name)

    async def _connect(self) -> PubSub:
        pubsub = PubSub(self.pool)
        try:
            await pubsub.connect()  # type: ignore[no-untyped-call]
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        return pubsub

    async def drop(self) -> None:
        pubsub, self.pubsub = self.pubsub, None
        for acks in self._acks.values():
            for ack in acks:
                fail(ack)
        self._acks.clear()
        self._leaving.clear()
        for channel in self._bus.channels.values():
            if channel.listener is self and not fail(channel.ready):
                channel.ready = failed()  # later subscribers learn the connection is down
        self._resyncing.clear()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read_loop(self) -> None:
        failures = 0
        while True:
            try:
                pubsub = self.pubsub
                if pubsub is None:
                    pubsub = await self._resync()
                    if pubsub is None:
                        break  # a cluster listener left without channels waits to be needed
                message = await pubsub.get_message(timeout=POLL_SEC)
                failures = 0
                if message is not None:
                    self._handle(message)
                while self.ended:
                    await self.unsubscribe(self.ended.pop())
                if self.adopted:
                    await self._adopt(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                lost = isinstance(exc, UNREACHABLE) or isinstance(exc, BusUnavailable)
                log.warning(
                    "session bus pub/sub failed; reconnecting",
                    exc_info=not lost,  # a lost connection needs no traceback
                    extra={
                        "redis": self.name,
                        "channels": len(self._names()),
                        "failures": failures,
                        "error": repr(exc),
                    },
                )
                await self.drop()
                await asyncio.sleep(min(BACKOFF_MAX_SEC, BACKOFF_FIRST_SEC * 2 ** (failures - 1)))
        self.reader = None

    async def _resync(self) -> PubSub | None:
        """Reconnect, resubscribe every channel, then hand each what it missed meanwhile."""
        if self.sharded:
            await self._bus.reroute(self)
        async with self._lock:
            names = self._names()
            if self.sharded and not names:
                return None
            self.adopted.difference_update(names)
            pubsub = await self._connect()
            self.pubsub = pubsub
            acks = await self._resubscribe(pubsub, names)
        await self._catch_up(pubsub, names, acks)
        log.info(
            "session bus pub/sub reconnected", extra={"redis": self.name, "channels": len(names)}
        )
        return pubsub

    async def _adopt(self, pubsub: PubSub) -> None:
        """Subscribe and catch up the channels another listener handed over."""
        async with self._lock:
            names = [name for name in self.adopted if self._mine(name) is not None]
            self.adopted.clear()
            acks = await self._resubscribe(pubsub, names)
        await self._catch_up(pubsub, names, acks)
        log.info(
            "channels moved to this master", extra={"redis": self.name, "channels": len(names)}
        )

    async def _resubscribe(self, pubsub: PubSub, names: list[str]) -> list[asyncio.Future[None]]:
        acks = []
        for name in names:
            channel = self._bus.channels[name]
            if channel.ready.done():
                channel.ready = pending()
            acks.append(channel.ready)
            self._expect_ack(name, channel.ready)
        # Until the catch-up, these channels' messages are also in the stream it reads.
        self._resyncing.update(names)
        if names:
            await self._send_subscribe(pubsub, names)
        return acks

    async def _catch_up(
        self, pubsub: PubSub, names: list[str], acks: list[asyncio.Future[None]]
    ) -> None:
        async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SEC):
            while not all(ack.done() for ack in acks):
                message = await pubsub.get_message(timeout=POLL_SEC)
                if message is not None:
                    self._handle(message)
        for name in names:
            channel = self._mine(name)
            if channel is None:
                continue
            replay = await self._bus.replay(channel.interview_id, channel.cursor)
            if channel is not self._mine(name):
                continue
            self._resyncing.discard(name)
            if not replay.complete or channel.epoch not in (None, replay.epoch):
                log.info("history gone after reconnect; ending", extra={"channel": name})
                self._bus.end(name)
                continue
            channel.epoch = replay.epoch
            for event in replay.events:
                deliver(channel, event)
        self._resyncing.difference_update(names)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind not in (self._ack_kind, self._message_kind, "sunsubscribe"):
            return
        name = text(message["channel"])
        if kind == self._ack_kind:
            acks = self._acks.get(name)
            if acks:
                ack = acks.popleft()
                if not ack.done():
                    ack.set_result(None)
                if not acks:
                    del self._acks[name]
        elif kind == "sunsubscribe":
            if self._leaving[name] > 0:
                self._leaving[name] -= 1
                if not self._leaving[name]:
                    del self._leaving[name]
            elif self._mine(name) is not None:
                raise SlotMoved(f"{name} is no longer served by {self.name}")
        elif name not in self._resyncing:
            channel = self._mine(name)
            if channel is None:
                return
            try:
                head, epoch, *frames = text(message["data"]).split("\n")
                first = int(head)
            except (ValueError, TypeError):
                log.warning("malformed session bus message", extra={"channel": name})
                return
            if channel.epoch is None:
                channel.epoch = epoch
            elif channel.epoch != epoch:
                # The history restarted under these subscribers: they must resync from a snapshot.
                log.info("history epoch changed; ending subscriptions", extra={"channel": name})
                self._bus.end(name)
                return
            for offset, frame in enumerate(frames):
                deliver(channel, Stamped(first + offset, frame))


def deliver(channel: Channel, event: Stamped) -> None:
    if event.seq <= channel.cursor:
        return  # already handed out by a catch-up
    channel.cursor = event.seq
    for sub in channel.subs:
        sub.queue.put_nowait(event)
