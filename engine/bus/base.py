"""Ports for live sessions: the event log with fan-out, and the live state with timers and leases.

Embedded: `engine.bus.memory` (one process). Across nodes: `engine.bus.redis`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from protocol.v1.messages import Event


class BusUnavailable(Exception):
    """The shared bus cannot be reached right now; the caller tells the client to retry."""


@dataclass(frozen=True, slots=True)
class Stamped:
    """One event of an interview's history: its number and its wire text, serialized once."""

    seq: int
    frame: str


@dataclass(frozen=True, slots=True)
class Replay:
    """Events after a client's position; `complete` is False when part of that history is gone."""

    epoch: str
    head: int
    events: list[Stamped]
    complete: bool


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[Stamped]: ...
    async def close(self) -> None: ...


class SessionBus(Protocol):
    async def append(self, interview_id: str, events: Sequence[Event]) -> list[Stamped]:
        """Give each event the next `seq`, store it in the interview's history, fan it out."""
        ...

    async def replay(self, interview_id: str, after_seq: int) -> Replay:
        """The history after `after_seq`, in order."""
        ...

    async def subscribe(self, interview_id: str) -> Subscription:
        """Live events of one interview from now on (may repeat ones a replay also returns)."""
        ...

    async def close(self) -> None: ...


class LiveStore(Protocol):
    async def load(self, interview_id: str) -> dict[str, Any] | None: ...

    async def save(self, interview_id: str, state: dict[str, Any], expected_version: int) -> bool:
        """Compare-and-set on `version`: False when someone else saved first."""
        ...

    async def schedule(self, interview_id: str, at: float) -> None: ...
    async def cancel(self, interview_id: str) -> None: ...

    async def claim_due(self, now: float, limit: int = 100) -> list[str]:
        """Interviews whose deadline has passed; each is handed to exactly one caller."""
        ...

    async def acquire_lease(self, key: str, owner: str, ttl_sec: float) -> bool: ...
    async def renew_lease(self, key: str, owner: str, ttl_sec: float) -> bool: ...
    async def release_lease(self, key: str, owner: str) -> None: ...
    async def close(self) -> None: ...
