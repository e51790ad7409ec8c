"""Daily token usage of the model, counted atomically in the cache port (Redis across nodes).

Before a call, the evaluation reserves the tokens it may spend; the reservation fails when it
would take the day past the budget, so calls in flight on any node cannot overshoot it. After
the call the reservation is settled with what was really spent. A cache that cannot be reached
lets the call go (the budget guards against runaway cost; an outage of the cache should not stop
grading) and the figure is caught up when the cache answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from core.kv import Cache

log = logging.getLogger(__name__)

KEY_PREFIX = "openai:usage:"
KEY_TTL_SEC = 3 * 24 * 3600
CACHE_TIMEOUT_SEC = 1.0


def _utc_today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


@dataclass
class Reservation:
    """Tokens set aside for one evaluation on `day`; `counted` is False when the cache failed."""

    day: str
    tokens: int
    counted: bool


class DailyUsage:
    """Tokens used per UTC date; alerts once past `alert_ratio * budget`. A budget <= 0: no cap."""

    def __init__(
        self,
        cache: Cache,
        budget: int,
        alert_ratio: float,
        today: Callable[[], str] = _utc_today,
    ) -> None:
        self._cache = cache
        self.budget = budget
        self._alert_at = budget * alert_ratio
        self._today = today
        self._alerted_on: str | None = None
        self._last: tuple[str, int] = ("", 0)

    async def usage_today(self) -> int:
        """Tokens used (or set aside for calls in flight) today, UTC; the last known figure when
        the cache is unreachable."""
        day = self._today()
        try:
            async with asyncio.timeout(CACHE_TIMEOUT_SEC):
                raw = await self._cache.get(KEY_PREFIX + day)
        except Exception:
            log.warning("token usage unreadable", exc_info=True)
            return self._last[1] if self._last[0] == day else 0
        value = int(raw) if raw else 0
        self._last = (day, value)
        return value

    async def _add(self, day: str, tokens: int) -> int | None:
        try:
            async with asyncio.timeout(CACHE_TIMEOUT_SEC):
                total = await self._cache.incr(KEY_PREFIX + day, tokens, KEY_TTL_SEC)
        except Exception:
            log.warning("token usage not recorded", extra={"usage": tokens}, exc_info=True)
            return None
        self._last = (day, total)
        return total

    async def reserve(self, tokens: int) -> Reservation | None:
        """Set `tokens` aside for a call; None when that would pass today's budget."""
        day = self._today()
        total = await self._add(day, tokens)
        if total is None:
            return Reservation(day, 0, counted=False)
        if self.budget > 0 and total > self.budget:
            await self._add(day, -tokens)
            return None
        return Reservation(day, tokens, counted=True)

    async def extend(self, reservation: Reservation, tokens: int) -> bool:
        """Set more aside for another attempt of the same call; False past the budget."""
        more = await self.reserve(tokens)
        if more is None:
            return False
        reservation.tokens += more.tokens
        return True

    async def settle(self, reservation: Reservation, spent: int) -> None:
        """Replace what was set aside with what the call really spent."""
        total = await self._add(reservation.day, spent - reservation.tokens)
        if total is not None:
            self._alert(reservation.day, total)

    async def add(self, tokens: int) -> None:
        """Count tokens spent outside a reservation."""
        if tokens > 0:
            day = self._today()
            total = await self._add(day, tokens)
            if total is not None:
                self._alert(day, total)

    def _alert(self, day: str, total: int) -> None:
        if self.budget > 0 and total >= self._alert_at and self._alerted_on != day:
            self._alerted_on = day
            log.warning(
                "openai daily token budget nearly spent",
                extra={
                    "alert": "openai_budget",
                    "usedToday": total,  # not "tokens...": the log scrubber hides keys with "token"
                    "budget": self.budget,
                    "ratio": round(total / self.budget, 3),
                },
            )
