"""A circuit breaker: after enough consecutive failures, stop calling a failing API for a while.

Closed: every call goes through. `failures` consecutive failures open it: calls are refused for
`cooldown_sec`. Then it is half-open: one trial call goes through while the others are still
refused; the trial's success closes the breaker, its failure opens it for another cooldown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one call; report its outcome with `success`, `failure` or `release`."""

    trial: bool


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        failures: int,
        cooldown_sec: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._threshold = max(1, failures)
        self._cooldown = cooldown_sec
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self._cooldown:
            return "open"
        return "half-open"

    def allow(self) -> Permit | None:
        """A permit for one call, or None while the breaker refuses calls."""
        state = self.state
        if state == "closed":
            return Permit(trial=False)
        if state == "open" or self._trial_running:
            return None
        self._trial_running = True
        return Permit(trial=True)

    def success(self, permit: Permit) -> None:
        if permit.trial:
            self._trial_running = False
            log.info("circuit closed", extra={"breaker": self.name})
        elif self._opened_at is not None:
            return  # a call that started before the breaker opened proves little
        self._failures = 0
        self._opened_at = None

    def failure(self, permit: Permit) -> None:
        if permit.trial:
            self._trial_running = False
            self._opened_at = self._clock()
            log.warning("circuit re-opened after a failed trial", extra={"breaker": self.name})
            return
        if self._opened_at is not None:
            return  # a call that started before the breaker opened; it is open already
        self._failures += 1
        if self._failures >= self._threshold:
            self._opened_at = self._clock()
            log.warning(
                "circuit opened",
                extra={
                    "breaker": self.name,
                    "failures": self._failures,
                    "cooldownSec": self._cooldown,
                },
            )

    def release(self, permit: Permit) -> None:
        """The call ended with no verdict (cancelled): let another trial run."""
        if permit.trial:
            self._trial_running = False
