"""Helpers the tests share: read the outbox, make verified users, talk to the socket."""

from __future__ import annotations

import asyncio
import email
import json
import re
from email.message import Message
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from http_api.services import AppServices

PASSWORD = "correct horse battery"


async def drain(services: AppServices) -> None:
    """Wait until queued background jobs (mail) have run."""
    queue = services.infra.queue
    drain_fn = getattr(queue, "drain", None)
    if drain_fn is not None:
        await drain_fn()


def outbox(services: AppServices) -> list[Message]:
    folder = Path(services.settings.data_dir) / "outbox"
    if not folder.exists():
        return []
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(folder.glob("*.eml"))]


def mail_text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no text part")


def mails_to(services: AppServices, address: str, tag: str | None = None) -> list[Message]:
    return [
        m
        for m in outbox(services)
        if address in str(m["To"]) and (tag is None or m["X-Mail-Tag"] == tag)
    ]


def link_token(message: Message) -> str:
    found = re.search(r"token=([A-Za-z0-9_-]+)", mail_text(message))
    assert found, "no token link in the mail"
    return found.group(1)


async def register(
    client: httpx.AsyncClient, services: AppServices, address: str, **extra: Any
) -> httpx.Response:
    body = {"email": address, "password": PASSWORD, "gender": "female", "age": 27, **extra}
    response = await client.post("/api/v1/auth/register", json=body)
    await drain(services)
    return response


async def verified_user(
    client: httpx.AsyncClient, services: AppServices, address: str | None = None, **extra: Any
) -> dict[str, Any]:
    """Register, verify through the mailed link, log in; returns the login body plus headers."""
    address = address or f"user{id(extra)}{len(outbox(services))}@example.ru"
    assert (await register(client, services, address, **extra)).status_code == 201
    token = link_token(mails_to(services, address, "verify_email")[-1])
    assert (
        await client.post("/api/v1/auth/verify-email", json={"token": token})
    ).status_code == 200
    login = await client.post("/api/v1/auth/login", json={"email": address, "password": PASSWORD})
    assert login.status_code == 200, login.text
    body: dict[str, Any] = login.json()
    body["headers"] = {"Authorization": f"Bearer {body['token']}"}
    body["email"] = address
    await drain(services)
    return body


async def recv(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return data


async def recv_until(
    ws: ClientConnection, frame_type: str, timeout: float = 15.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Frames up to and including the first of `frame_type`."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await recv(ws, timeout)
            seen.append(frame)
            if frame["type"] == frame_type:
                return frame, seen
