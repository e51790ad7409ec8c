"""Daily token usage of the model, kept in the cache port (shared through Redis across nodes).

The count is a read-modify-write: serialised per process, it can lose an increment when two nodes
add at the same instant. That is an accepted error for a budget that guards against runaway cost,
not for billing: the per-interview token counts are exact.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from core.kv import Cache

log = logging.getLogger(__name__)

KEY_PREFIX = "openai:usage:"
KEY_TTL_SEC = 3 * 24 * 3600
CACHE_TIMEOUT_SEC = 1.0


def _utc_today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


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
        self._lock = asyncio.Lock()
        self._alerted_on: str | None = None
        self._last: tuple[str, int] = ("", 0)

    async def usage_today(self) -> int:
        """Tokens used so far today (UTC); the last known figure when the cache is unreachable."""
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

    async def exhausted(self) -> bool:
        return self.budget > 0 and await self.usage_today() >= self.budget

    async def add(self, tokens: int) -> None:
        if tokens <= 0:
            return
        day = self._today()
        try:
            # Bounded as a whole: behind a slow cache the queue for the lock must not grow.
            async with asyncio.timeout(3 * CACHE_TIMEOUT_SEC), self._lock:
                total = await self.usage_today() + tokens
                self._last = (day, total)
                await self._cache.set(KEY_PREFIX + day, str(total).encode(), KEY_TTL_SEC)
        except Exception:
            log.warning("token usage not recorded", extra={"usage": tokens}, exc_info=True)
            return
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
