"""What a Celery worker process holds: one event loop thread with the product's services.

Jobs are coroutines (they share the async clients with the web nodes' code), so each worker
process runs a private event loop in a thread and Celery tasks hand coroutines to it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from app_services import AppServices, open_services
from core.settings import Settings

log = logging.getLogger(__name__)


class WorkerRuntime:
    """Lazily opened per process; `run()` blocks the calling Celery thread until the job ends."""

    _instance: WorkerRuntime | None = None
    _guard = threading.Lock()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="jobs-loop", daemon=True)
        self._thread.start()
        self.services: AppServices | None = None
        asyncio.run_coroutine_threadsafe(self._open(), self.loop).result(timeout=120)

    async def _open(self) -> None:
        self.services = await open_services(self.settings)
        log.info("worker runtime ready", extra={"jobs": self.services.infra.jobs.names()})

    @classmethod
    def get(cls, settings_factory: Callable[[], Settings] = Settings) -> WorkerRuntime:
        with cls._guard:
            if cls._instance is None:
                cls._instance = cls(settings_factory())
            return cls._instance

    def run(self, name: str, payload: dict[str, object], timeout: float = 600.0) -> None:
        assert self.services is not None
        job = self.services.infra.jobs.get(name)

        async def run() -> None:
            await job(dict(payload))

        asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=timeout)

    @classmethod
    def shutdown(cls) -> None:
        with cls._guard:
            runtime, cls._instance = cls._instance, None
        if runtime is None:
            return
        if runtime.services is not None:
            services = runtime.services
            asyncio.run_coroutine_threadsafe(services.close(), runtime.loop).result(timeout=60)
        runtime.loop.call_soon_threadsafe(runtime.loop.stop)
        runtime._thread.join(timeout=10)
