"""The task-queue port: named background jobs, run by Celery or inside this process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

Job = Callable[[dict[str, Any]], Awaitable[None]]


class RetryableJobError(Exception):
    """A job failed in a way that trying again later may fix."""


class JobRegistry:
    """Name -> coroutine function; the same registry serves Celery workers and the embedded run."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def register(self, name: str, job: Job) -> None:
        self._jobs[name] = job

    def get(self, name: str) -> Job:
        try:
            return self._jobs[name]
        except KeyError:
            raise LookupError(f"no job named {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self._jobs)


class TaskQueue(Protocol):
    async def enqueue(self, name: str, payload: dict[str, Any]) -> None:
        """Hand a job over; it runs later, retried with backoff when it fails."""
        ...

    async def close(self) -> None: ...


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter."""
    return float(random.uniform(0, min(cap, base * 2**attempt)))


class InProcessTaskQueue:
    """Runs jobs as asyncio tasks of this process, retrying retryable failures with backoff."""

    def __init__(
        self, registry: JobRegistry, max_attempts: int = 5, base_delay: float = 1.0
    ) -> None:
        self._registry = registry
        self._max_attempts = max_attempts
        self._base_delay = base_delay
        self._running: set[asyncio.Task[None]] = set()

    async def enqueue(self, name: str, payload: dict[str, Any]) -> None:
        job = self._registry.get(name)
        task = asyncio.create_task(self._run(name, job, payload), name=f"job:{name}")
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, name: str, job: Job, payload: dict[str, Any]) -> None:
        for attempt in range(self._max_attempts):
            try:
                await job(payload)
                return
            except asyncio.CancelledError:
                raise
            except RetryableJobError as exc:
                if attempt + 1 >= self._max_attempts:
                    log.error("job gave up", extra={"job": name, "error": str(exc)})
                    return
                delay = backoff_delay(attempt, self._base_delay)
                log.warning(
                    "job failed, retrying",
                    extra={"job": name, "attempt": attempt + 1, "delay": round(delay, 2)},
                )
                await asyncio.sleep(delay)
            except Exception:
                log.exception("job failed permanently", extra={"job": name})
                return

    async def drain(self, timeout: float = 30.0) -> None:
        """Wait until no job runs, including jobs that running jobs enqueue (tests, shutdown).

        Raises TimeoutError when jobs are still running after `timeout` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._running:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._running)} background jobs still running")
            await asyncio.wait(set(self._running), timeout=remaining)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            await self.drain(timeout=5.0)
        for task in list(self._running):
            task.cancel()


async def periodic(
    name: str,
    interval: float,
    job: Callable[[], Awaitable[object]],
    quiet: tuple[type[Exception], ...] = (),
    max_backoff: float = 5.0,
) -> None:
    """Run `job` every `interval` seconds forever; log failures with context, back off, go on.

    Exceptions in `quiet` are expected outages (e.g. Redis away): a warning, no traceback.
    """
    failures = 0
    while True:
        try:
            await job()
            failures = 0
            await asyncio.sleep(interval)
        except asyncio.CancelledError:
            raise
        except quiet as exc:
            failures += 1
            log.warning(
                "background loop waiting",
                extra={"loop": name, "failures": failures, "error": str(exc)},
            )
        except Exception:
            failures += 1
            log.exception("background loop failed", extra={"loop": name, "failures": failures})
        if failures:
            await asyncio.sleep(min(max_backoff, interval * 2**failures))
