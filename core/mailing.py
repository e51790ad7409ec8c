"""Transactional mail: render a template in the user's language and send it as a background job."""

from __future__ import annotations

import logging
from typing import Any

from core.mail.base import MailDeliveryError, MailSender
from core.mail.render import render
from core.tasks import RetryableJobError, TaskQueue

log = logging.getLogger(__name__)

SEND_MAIL_JOB = "mail.send"


class Mailer:
    """What the rest of the product calls: `send()` returns once the job is queued."""

    def __init__(self, queue: TaskQueue) -> None:
        self._queue = queue

    async def send(
        self, template: str, to_email: str, language: str, context: dict[str, Any]
    ) -> None:
        await self._queue.enqueue(
            SEND_MAIL_JOB,
            {"template": template, "to": to_email, "language": language, "context": context},
        )


def make_send_mail_job(sender: MailSender) -> Any:
    """The job behind `Mailer.send`: render, then deliver through the mail port."""

    async def send_mail(payload: dict[str, Any]) -> None:
        message = render(
            payload["template"], payload["language"], payload["to"], payload["context"]
        )
        try:
            await sender.send(message)
        except MailDeliveryError as exc:
            if exc.retryable:
                raise RetryableJobError(str(exc)) from exc
            raise
        log.info("mail sent", extra={"template": payload["template"]})

    return send_mail
