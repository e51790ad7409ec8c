"""What a Celery worker process holds: one event loop thread with the product's services.

Jobs are coroutines (they share the async clients with the web nodes' code), so each worker
process runs a private event loop in a thread and Celery tasks hand coroutines to it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from core.container import Infrastructure, open_infrastructure
from core.settings import Settings
from engine.container import Engine, build_engine

log = logging.getLogger(__name__)

# Feature modules add their jobs here: (infra, engine) -> None, registering on infra.jobs.
JobInstaller = Callable[[Infrastructure, Engine], Coroutine[Any, Any, None]]
_installers: list[JobInstaller] = []


def job_installer(fn: JobInstaller) -> JobInstaller:
    _installers.append(fn)
    return fn


async def install_jobs(infra: Infrastructure, engine: Engine) -> None:
    for install in _installers:
        await install(infra, engine)


class WorkerRuntime:
    """Lazily opened per process; `run()` blocks the calling Celery thread until the job ends."""

    _instance: WorkerRuntime | None = None
    _guard = threading.Lock()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="jobs-loop", daemon=True)
        self._thread.start()
        self.infra: Infrastructure | None = None
        self.engine: Engine | None = None
        asyncio.run_coroutine_threadsafe(self._open(), self.loop).result(timeout=120)

    async def _open(self) -> None:
        self.infra = await open_infrastructure(self.settings)
        self.engine = build_engine(self.infra)
        await install_jobs(self.infra, self.engine)
        log.info("worker runtime ready", extra={"jobs": self.infra.jobs.names()})

    @classmethod
    def get(cls, settings_factory: Callable[[], Settings] = Settings) -> WorkerRuntime:
        with cls._guard:
            if cls._instance is None:
                cls._instance = cls(settings_factory())
            return cls._instance

    def run(self, name: str, payload: dict[str, Any], timeout: float = 600.0) -> None:
        assert self.infra is not None
        job = self.infra.jobs.get(name)

        async def run() -> None:
            await job(payload)

        asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=timeout)

    @classmethod
    def shutdown(cls) -> None:
        with cls._guard:
            runtime, cls._instance = cls._instance, None
        if runtime is None:
            return

        async def close() -> None:
            if runtime.engine is not None:
                await runtime.engine.close()
            if runtime.infra is not None:
                await runtime.infra.close()

        asyncio.run_coroutine_threadsafe(close(), runtime.loop).result(timeout=60)
        runtime.loop.call_soon_threadsafe(runtime.loop.stop)
        runtime._thread.join(timeout=10)
