"""MailSender and TaskQueue: the embedded adapters (an .eml outbox, jobs in process) and the
production ones (SendPulse's API, here a local server speaking it; a Celery worker on a real
broker) deliver the same things."""

from __future__ import annotations

import asyncio
import email
import email.policy
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker

from core.celery_queue import CeleryTaskQueue
from core.mail.base import MailMessage, MailSender
from core.mail.outbox import OutboxMailSender
from core.mail.sendpulse import SendPulseMailSender
from core.mailing import SEND_MAIL_JOB, make_send_mail_job
from core.settings import Settings
from core.tasks import InProcessTaskQueue, JobRegistry, TaskQueue
from tests.conftest import make_settings
from tests.contracts.conftest import REDIS_URL
from tests.fakes.sendpulse import FakeSendPulse
from workers.celery_app import create_celery
from workers.runtime import WorkerRuntime

MESSAGE = MailMessage(
    to_email="anna@example.ru",
    to_name="Анна",
    subject="Сброс пароля",
    text="Ссылка: https://example.ru/reset?token=abc",
    html="<p>Ссылка: <a href='https://example.ru/reset?token=abc'>сбросить</a></p>",
    tag="password_reset",
)


@dataclass(frozen=True)
class Delivered:
    to: str
    subject: str
    text: str
    html: str


@pytest.fixture(params=["outbox", "sendpulse"])
def mail(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[MailSender, Callable[[], list[Delivered]]]]:
    """A sender and a way to read back what it delivered."""
    if request.param == "outbox":
        folder = tmp_path / "outbox"

        def read_outbox() -> list[Delivered]:
            out = []
            for path in sorted(folder.glob("*.eml")):
                message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
                body = message.get_body(("plain",))
                html = message.get_body(("html",))
                assert body is not None and html is not None
                out.append(
                    Delivered(
                        str(message["To"]),
                        str(message["Subject"]),
                        body.get_content().strip(),
                        html.get_content().strip(),
                    )
                )
            return out

        yield OutboxMailSender(folder, "no-reply@example.ru", "Interview Platform"), read_outbox
        return
    with FakeSendPulse() as fake:

        def read_fake() -> list[Delivered]:
            return [
                Delivered(f"{e.to[0][0]} <{e.to[0][1]}>", e.subject, e.text.strip(), e.html.strip())
                for e in fake.emails
            ]

        sender = SendPulseMailSender(
            api_url=fake.url,
            client_id=fake.client_id,
            client_secret=fake.client_secret,
            from_email="no-reply@example.ru",
            from_name="Interview Platform",
        )
        yield sender, read_fake


async def test_a_message_is_delivered_as_written(
    mail: tuple[MailSender, Callable[[], list[Delivered]]],
) -> None:
    sender, delivered = mail
    ids = {await sender.send(MESSAGE) for _ in range(2)}
    await sender.close()
    assert len(ids) == 2, "every message gets its own id"
    assert (
        delivered()
        == [Delivered("Анна <anna@example.ru>", MESSAGE.subject, MESSAGE.text, MESSAGE.html)] * 2
    )


@pytest.fixture(params=["in-process", "celery"])
async def queue(
    request: pytest.FixtureRequest, mongo_url: str, tmp_path: Path
) -> AsyncIterator[tuple[TaskQueue, Path]]:
    """A queue whose jobs include the product's mail job, and the outbox it writes to."""
    broker = REDIS_URL.rsplit("/", 1)[0] + "/15"
    settings: Settings = make_settings(mongo_url, tmp_path, celery_broker_url=broker)
    outbox = Path(settings.data_dir) / "outbox"
    if request.param == "in-process":
        registry = JobRegistry()
        sender = OutboxMailSender(outbox, settings.mail_from_email, settings.mail_from_name)
        registry.register(SEND_MAIL_JOB, make_send_mail_job(sender))
        in_process = InProcessTaskQueue(registry)
        yield in_process, outbox
        await in_process.close()
        return
    app = create_celery(settings)
    app.conf.task_default_queue = f"contract-{uuid.uuid4().hex}"
    WorkerRuntime._instance = WorkerRuntime(settings)
    try:
        with start_worker(app, pool="threads", concurrency=2, perform_ping_check=False):
            celery = CeleryTaskQueue(broker)
            celery._app.conf.task_default_queue = app.conf.task_default_queue
            yield celery, outbox
            await celery.close()
    finally:
        WorkerRuntime.shutdown()


async def test_an_enqueued_job_runs_with_its_payload(queue: tuple[TaskQueue, Path]) -> None:
    jobs, outbox = queue
    await jobs.enqueue(
        SEND_MAIL_JOB,
        {
            "template": "welcome",
            "to": "contract@example.ru",
            "language": "en",
            "context": {"link": "http://testserver/"},
        },
    )
    async with asyncio.timeout(30):
        while not (outbox.exists() and list(outbox.glob("*.eml"))):
            await asyncio.sleep(0.05)
    [path] = outbox.glob("*.eml")
    text = path.read_text()
    assert "contract@example.ru" in text and "Welcome" in text
