"""The embedded, single-process adapters of the session ports."""

from __future__ import annotations

import asyncio
import copy
import heapq
import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from engine.bus.base import Event, Replay

HISTORY_LIMIT = 10_000


class _History:
    def __init__(self) -> None:
        self.epoch = uuid.uuid4().hex[:12]
        self.head = 0
        self.events: deque[Event] = deque(maxlen=HISTORY_LIMIT)


class MemorySubscription:
    def __init__(self, bus: MemoryBus, interview_id: str) -> None:
        self._bus = bus
        self._id = interview_id
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()

    async def __aiter__(self) -> AsyncIterator[Event]:
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
    def __init__(self) -> None:
        self._histories: dict[str, _History] = {}
        self._subscribers: dict[str, set[MemorySubscription]] = {}

    async def append(self, interview_id: str, events: list[Event]) -> list[Event]:
        history = self._histories.setdefault(interview_id, _History())
        stamped = []
        for event in events:
            history.head += 1
            item = {**event, "seq": history.head}
            history.events.append(item)
            stamped.append(item)
        for sub in list(self._subscribers.get(interview_id, ())):
            for item in stamped:
                sub.queue.put_nowait(item)
        return stamped

    async def replay(self, interview_id: str, after_seq: int) -> Replay:
        history = self._histories.setdefault(interview_id, _History())
        events = [e for e in history.events if e["seq"] > after_seq]
        oldest = history.events[0]["seq"] if history.events else history.head + 1
        complete = after_seq >= oldest - 1 and after_seq <= history.head
        return Replay(history.epoch, history.head, events, complete)

    async def subscribe(self, interview_id: str) -> MemorySubscription:
        sub = MemorySubscription(self, interview_id)
        self._subscribers.setdefault(interview_id, set()).add(sub)
        return sub

    def forget(self, interview_id: str) -> None:
        """Drop an interview's history (it is finished and its subscribers are gone)."""
        if interview_id not in self._subscribers:
            self._histories.pop(interview_id, None)

    async def close(self) -> None:
        for subs in list(self._subscribers.values()):
            for sub in list(subs):
                await sub.close()


class MemoryLiveStore:
    def __init__(self) -> None:
        self._states: dict[str, str] = {}
        self._deadlines: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self._leases: dict[str, tuple[str, float]] = {}

    async def load(self, interview_id: str) -> dict[str, Any] | None:
        raw = self._states.get(interview_id)
        return None if raw is None else dict(json.loads(raw))

    async def save(self, interview_id: str, state: dict[str, Any], expected_version: int) -> bool:
        raw = self._states.get(interview_id)
        current = json.loads(raw)["version"] if raw is not None else None
        if current is not None and current != expected_version:
            return False
        # Stored serialized, as Redis would: no caller can mutate the stored copy.
        self._states[interview_id] = json.dumps(copy.deepcopy(state))
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
