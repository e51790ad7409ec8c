"""The embedded mail adapter: each message becomes one RFC 822 `.eml` file in a folder."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path

from core.mail.base import MailMessage


class OutboxMailSender:
    def __init__(self, folder: Path, from_email: str, from_name: str) -> None:
        self._folder = folder
        self._from = formataddr((from_name, from_email))

    def _write(self, message: MailMessage) -> str:
        self._folder.mkdir(parents=True, exist_ok=True)
        email = EmailMessage()
        email["From"] = self._from
        email["To"] = formataddr((message.to_name, message.to_email))
        email["Subject"] = message.subject
        email["Date"] = format_datetime(datetime.now(UTC))
        message_id = make_msgid(domain="interview-platform.local")
        email["Message-ID"] = message_id
        if message.tag:
            email["X-Mail-Tag"] = message.tag
        email.set_content(message.text)
        email.add_alternative(message.html, subtype="html")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"{stamp}-{message.tag or 'mail'}-{uuid.uuid4().hex[:8]}.eml"
        tmp = self._folder / (name + ".tmp")
        tmp.write_bytes(bytes(email))
        tmp.rename(self._folder / name)  # a reader never sees a half-written file
        return message_id

    async def send(self, message: MailMessage) -> str:
        return await asyncio.to_thread(self._write, message)

    async def close(self) -> None:
        return None
