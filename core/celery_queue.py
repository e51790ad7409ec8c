"""The Celery adapter of the task-queue port: jobs go to workers through the broker."""

from __future__ import annotations

import asyncio
from typing import Any

from celery import Celery

RUN_JOB_TASK = "workers.run_job"


class CeleryTaskQueue:
    def __init__(self, broker_url: str, queue: str = "celery") -> None:
        self._app = Celery("interview-platform", broker=broker_url)
        self._app.conf.update(
            task_serializer="json", accept_content=["json"], task_default_queue=queue
        )

    async def enqueue(self, name: str, payload: dict[str, Any]) -> None:
        # send_task talks to the broker synchronously; keep it off the event loop.
        await asyncio.to_thread(self._app.send_task, RUN_JOB_TASK, args=[name, payload], retry=True)

    async def close(self) -> None:
        await asyncio.to_thread(self._app.close)
