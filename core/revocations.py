"""Ended sessions, told to every node at once: the port, an in-process adapter and Redis pub/sub.

A password change, a reset, a logout or a detected refresh-token reuse ends sessions; the
accounts service publishes that here, and every node closes the sockets that belonged to them.
The durable record (the user's token watermark, the session's revocation in MongoDB) is what
REST checks; this feed is only how open sockets learn of it within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster

from core.redis_client import RedisClient

log = logging.getLogger(__name__)

BACKOFF_FIRST_SEC = 0.1
BACKOFF_MAX_SEC = 5.0


@dataclass(frozen=True, slots=True)
class Revocation:
    """Sessions of `user_id` that ended: one (`session_id`), or all of them (None); or, with
    `connection_id`, one socket that must go (its user opened too many)."""

    user_id: str
    session_id: str | None = None
    connection_id: str | None = None

    def covers(self, user_id: str, session_id: str | None, connection_id: str = "") -> bool:
        if user_id != self.user_id:
            return False
        if self.connection_id is not None:
            return self.connection_id == connection_id
        return self.session_id in (None, session_id)


Listener = Callable[[Revocation], None]


class Revocations(Protocol):
    async def publish(self, revocation: Revocation) -> None:
        """Tell every node (this one included) that these sessions ended."""
        ...

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` for each revocation heard on this node; returns the way to stop."""
        ...

    async def close(self) -> None: ...


class _Listeners:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def listen(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def dispatch(self, revocation: Revocation) -> None:
        for listener in list(self._listeners):
            try:
                listener(revocation)
            except Exception:
                log.exception("revocation listener failed")


class MemoryRevocations(_Listeners):
    """One process: a revocation reaches the listeners before `publish` returns."""

    async def publish(self, revocation: Revocation) -> None:
        self.dispatch(revocation)

    async def close(self) -> None:
        return None


class RedisRevocations(_Listeners):
    """Every node subscribes to one channel; a lost connection is re-established with backoff."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        super().__init__()
        self._redis = redis
        self._channel = f"{prefix}revocations"
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def publish(self, revocation: Revocation) -> None:
        message = json.dumps(
            {
                "user": revocation.user_id,
                "session": revocation.session_id,
                "connection": revocation.connection_id,
            }
        )
        await self._redis.publish(self._channel, message)

    def listen(self, listener: Listener) -> Callable[[], None]:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read_loop(), name="revocations-reader")
        return super().listen(listener)

    async def wait_subscribed(self, timeout: float = 5.0) -> None:
        """Until the channel is subscribed (tests; a node does not need to wait)."""
        async with asyncio.timeout(timeout):
            await self._subscribed.wait()

    async def _read_loop(self) -> None:
        failures = 0
        while True:
            pubsub: PubSub | None = None
            try:
                pubsub = await self._pubsub()
                await pubsub.subscribe(self._channel)
                self._subscribed.set()
                failures = 0
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._handle(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                self._subscribed.clear()
                log.warning(
                    "revocation feed lost; reconnecting",
                    extra={"failures": failures, "error": repr(exc)},
                )
                await asyncio.sleep(min(BACKOFF_MAX_SEC, BACKOFF_FIRST_SEC * 2 ** (failures - 1)))
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _pubsub(self) -> PubSub:
        if isinstance(self._redis, RedisCluster):
            # A cluster delivers a plain PUBLISH to the subscribers of every node: one node's
            # connection hears every revocation, whichever node it was published on.
            await self._redis.initialize()
            return self._redis.pubsub(
                node=self._redis.get_default_node(), ignore_subscribe_messages=True
            )
        return self._redis.pubsub(ignore_subscribe_messages=True)

    def _handle(self, data: bytes | str) -> None:
        try:
            body = json.loads(data)
            revocation = Revocation(str(body["user"]), body.get("session"), body.get("connection"))
        except (ValueError, KeyError, TypeError):
            log.warning("malformed revocation message")
            return
        self.dispatch(revocation)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None
