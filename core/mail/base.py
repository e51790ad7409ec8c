"""The mail port: a rendered message and whatever sends it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class MailDeliveryError(Exception):
    """The message was not accepted; `retryable` says whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class MailMessage:
    to_email: str
    subject: str
    text: str
    html: str
    to_name: str = ""
    tag: str = ""


class MailSender(Protocol):
    async def send(self, message: MailMessage) -> str:
        """Deliver the message; return the provider's id for it."""
        ...

    async def close(self) -> None: ...
