"""Celery: the worker runs named jobs from the shared registry; beat schedules the periodic ones.

celery -A workers.celery_app:celery_app worker
celery -A workers.celery_app:celery_app beat
"""

from __future__ import annotations

import asyncio
from typing import Any

from celery import Celery, Task
from celery.signals import (
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)

from app_services import open_services
from core.backup import BACKUP_JOB
from core.billing.jobs import EXPIRE_JOB, REMIND_FAILED_JOB, REMIND_RENEWAL_JOB
from core.campaigns import RUN_DUE_JOB
from core.celery_queue import RUN_JOB_TASK
from core.settings import Settings
from core.tasks import RetryableJobError, backoff_delay
from engine.container import ABANDON_JOB
from workers.runtime import WorkerRuntime

MAX_RETRIES = 8

# Periodic jobs: name -> (job, seconds between runs).
BEAT_JOBS: dict[str, tuple[str, float]] = {
    "abandon-stale-interviews": (ABANDON_JOB, 300.0),
    "send-due-campaigns": (RUN_DUE_JOB, 60.0),
    "billing-expire": (EXPIRE_JOB, 600.0),
    "billing-renewal-reminders": (REMIND_RENEWAL_JOB, 3600.0),
    "billing-failed-reminders": (REMIND_FAILED_JOB, 3600.0),
}


def create_celery(settings: Settings) -> Celery:
    """The Celery app object; it opens no connection until a worker or a sender uses it."""
    app = Celery("interview-platform", broker=settings.celery_broker_url or "memory://")
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        timezone="UTC",
        task_default_queue=settings.celery_queue,
        beat_schedule={
            key: {"task": RUN_JOB_TASK, "schedule": every, "args": [job, {}]}
            for key, (job, every) in BEAT_JOBS.items()
        },
    )
    if settings.backup_interval_sec:
        app.conf.beat_schedule["backup"] = {
            "task": RUN_JOB_TASK,
            "schedule": float(settings.backup_interval_sec),
            "args": [BACKUP_JOB, {}],
        }

    @app.task(name=RUN_JOB_TASK, bind=True, max_retries=MAX_RETRIES, shared=False)  # type: ignore[untyped-decorator]
    def run_job(self: Task, name: str, payload: dict[str, Any]) -> None:
        try:
            WorkerRuntime.get().run(name, payload)
        except RetryableJobError as exc:
            raise self.retry(exc=exc, countdown=backoff_delay(self.request.retries)) from exc

    return app


celery_app = create_celery(Settings())


def _check_services(**_: Any) -> None:
    """Before the worker takes a job: open and close every service once, so that settings that
    cannot run the product stop the worker at start instead of failing each job later."""

    async def check() -> None:
        services = await open_services(Settings())
        await services.close()

    asyncio.run(check())


def _open_runtime(**_: Any) -> None:
    WorkerRuntime.get()


def _close_runtime(**_: Any) -> None:
    WorkerRuntime.shutdown()


worker_init.connect(_check_services)
worker_process_init.connect(_open_runtime)
worker_process_shutdown.connect(_close_runtime)
worker_shutdown.connect(_close_runtime)
