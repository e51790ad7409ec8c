"""Jobs through a real Celery worker and a real broker (this machine's Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from core.celery_queue import CeleryTaskQueue
from core.mailing import SEND_MAIL_JOB
from core.settings import Settings
from tests.conftest import make_settings
from workers.celery_app import create_celery
from workers.runtime import WorkerRuntime

pytestmark = pytest.mark.integration


@pytest.fixture
def worker_settings(mongo_url: str, redis_url: str, tmp_path: Path) -> Settings:
    broker = redis_url.rsplit("/", 1)[0] + "/15"
    return make_settings(mongo_url, tmp_path, celery_broker_url=broker)


@pytest.fixture
def celery_worker(worker_settings: Settings) -> Iterator[Celery]:
    app = create_celery(worker_settings)
    app.conf.task_default_queue = f"test-{uuid.uuid4().hex}"
    WorkerRuntime._instance = WorkerRuntime(worker_settings)
    try:
        with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False):
            yield app
    finally:
        WorkerRuntime.shutdown()


async def test_mail_job_runs_on_the_worker(
    celery_worker: Celery, worker_settings: Settings
) -> None:
    queue = CeleryTaskQueue(worker_settings.celery_broker_url)
    queue._app.conf.task_default_queue = celery_worker.conf.task_default_queue
    await queue.enqueue(
        SEND_MAIL_JOB,
        {
            "template": "welcome",
            "to": "worker@example.ru",
            "language": "en",
            "context": {"link": "http://testserver/"},
        },
    )
    outbox = Path(worker_settings.data_dir) / "outbox"
    for _ in range(100):
        files = list(outbox.glob("*.eml")) if outbox.exists() else []
        if files:
            break
        await asyncio.sleep(0.1)
    await queue.close()
    assert len(files) == 1
    text = files[0].read_text()
    assert "worker@example.ru" in text and "Welcome" in text


def test_beat_schedules_the_abandon_sweep(worker_settings: Settings) -> None:
    app = create_celery(worker_settings)
    entry = app.conf.beat_schedule["abandon-stale-interviews"]
    assert entry["task"] == "workers.run_job"
    assert entry["args"][0] == "interviews.abandon_stale"
