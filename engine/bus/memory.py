"""The embedded, single-process adapters of the session ports."""

from __future__ import annotations

import asyncio
import heapq
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from engine.bus.base import Replay, Stamped
from protocol.v1.messages import Event, InterviewAbandoned, InterviewCompleted
from protocol.v1.wire import encode, number

HISTORY_LIMIT = 10_000
# A finished interview's history is kept this long for clients that reconnect, then dropped; a
# client that comes back later gets a snapshot instead of a replay.
FINISHED_RETENTION_SEC = 3600.0


class _History:
    def __init__(self) -> None:
        self.epoch = uuid.uuid4().hex[:12]
        self.head = 0
        self.events: deque[Stamped] = deque(maxlen=HISTORY_LIMIT)


class MemorySubscription:
    def __init__(self, bus: MemoryBus, interview_id: str) -> None:
        self._bus = bus
        self._id = interview_id
        self.queue: asyncio.Queue[Stamped | None] = asyncio.Queue()

    async def __aiter__(self) -> AsyncIterator[Stamped]:
        while True:
            item = await self.queue.get()
            if item is None:
                return
            yield item

    async def close(self) -> None:
        subs = self._bus._subscribers.get(self._id)
        if subs is not None:
            subs.discard(self)
            if not subs:
                del self._bus._subscribers[self._id]
        self.queue.put_nowait(None)


class MemoryBus:
    def __init__(self, finished_retention_sec: float = FINISHED_RETENTION_SEC) -> None:
        self._histories: dict[str, _History] = {}
        self._subscribers: dict[str, set[MemorySubscription]] = {}
        self._retention = finished_retention_sec
        self._expiries: dict[str, asyncio.TimerHandle] = {}

    async def append(self, interview_id: str, events: Sequence[Event]) -> list[Stamped]:
        history = self._histories.setdefault(interview_id, _History())
        stamped = []
        for event in events:
            history.head += 1
            item = Stamped(history.head, number(encode(event), history.head))
            history.events.append(item)
            stamped.append(item)
        for sub in list(self._subscribers.get(interview_id, ())):
            for item in stamped:
                sub.queue.put_nowait(item)
        if any(isinstance(e, InterviewCompleted | InterviewAbandoned) for e in events):
            self._forget_later(interview_id)
        return stamped

    async def replay(self, interview_id: str, after_seq: int) -> Replay:
        history = self._histories.setdefault(interview_id, _History())
        events = [e for e in history.events if e.seq > after_seq]
        oldest = history.events[0].seq if history.events else history.head + 1
        complete = after_seq >= oldest - 1 and after_seq <= history.head
        return Replay(history.epoch, history.head, events, complete)

    async def subscribe(self, interview_id: str) -> MemorySubscription:
        sub = MemorySubscription(self, interview_id)
        self._subscribers.setdefault(interview_id, set()).add(sub)
        return sub

    def _forget_later(self, interview_id: str) -> None:
        if interview_id not in self._expiries:
            loop = asyncio.get_running_loop()
            self._expiries[interview_id] = loop.call_later(
                self._retention, self._forget, interview_id
            )

    def _forget(self, interview_id: str) -> None:
        """Drop a finished interview's history once nobody is subscribed to it."""
        del self._expiries[interview_id]
        if interview_id in self._subscribers:
            self._forget_later(interview_id)
        else:
            self._histories.pop(interview_id, None)

    @property
    def histories(self) -> int:
        return len(self._histories)

    async def close(self) -> None:
        for handle in self._expiries.values():
            handle.cancel()
        self._expiries.clear()
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                await sub.close()


class MemoryLiveStore:
    def __init__(self) -> None:
        self._states: dict[str, bytes] = {}
        self._deadlines: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._leases: dict[str, tuple[str, float]] = {}

    async def load(self, interview_id: str) -> dict[str, Any] | None:
        raw = self._states.get(interview_id)
        return None if raw is None else dict(orjson.loads(raw))

    async def save(self, interview_id: str, state: dict[str, Any], expected_version: int) -> bool:
        raw = self._states.get(interview_id)
        current = orjson.loads(raw)["version"] if raw is not None else None
        if current is not None and current != expected_version:
            return False
        # Stored serialized, as Redis would: no caller can mutate the stored copy.
        self._states[interview_id] = orjson.dumps(state)
        return True

    async def schedule(self, interview_id: str, at: float) -> None:
        self._deadlines[interview_id] = at
        heapq.heappush(self._heap, (at, interview_id))

    async def cancel(self, interview_id: str) -> None:
        self._deadlines.pop(interview_id, None)

    async def claim_due(self, now: float, limit: int = 100) -> list[str]:
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now and len(due) < limit:
            at, interview_id = heapq.heappop(self._heap)
            if self._deadlines.get(interview_id) == at:
                del self._deadlines[interview_id]
                due.append(interview_id)
        return due

    async def acquire_lease(self, key: str, owner: str, ttl_sec: float) -> bool:
        now = time.monotonic()
        held = self._leases.get(key)
        if held is not None and held[1] > now and held[0] != owner:
            return False
        self._leases[key] = (owner, now + ttl_sec)
        return True

    async def renew_lease(self, key: str, owner: str, ttl_sec: float) -> bool:
        held = self._leases.get(key)
        if held is None or held[0] != owner:
            return False
        self._leases[key] = (owner, time.monotonic() + ttl_sec)
        return True

    async def release_lease(self, key: str, owner: str) -> None:
        if self._leases.get(key, ("",))[0] == owner:
            del self._leases[key]

    async def close(self) -> None:
        return None
