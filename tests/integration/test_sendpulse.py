"""The SendPulse adapter over real HTTP against a local fake of SendPulse's API."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from core.mail.base import MailDeliveryError, MailMessage
from core.mail.sendpulse import SendPulseMailSender
from tests.fakes.sendpulse import FakeSendPulse

pytestmark = pytest.mark.integration

MESSAGE = MailMessage(
    to_email="anna@example.com",
    to_name="Анна Петрова",
    subject="Сброс пароля",
    text="Ссылка: https://example.com/reset/abc",
    html="<p>Ссылка: <a href='https://example.com/reset/abc'>сбросить</a></p>",
    tag="password-reset",
)


def make_sender(fake: FakeSendPulse, **overrides: Any) -> SendPulseMailSender:
    options: dict[str, Any] = {
        "api_url": fake.url,
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "from_email": "noreply@interview.example",
        "from_name": "Interview Practice",
    }
    options.update(overrides)
    return SendPulseMailSender(**options)


@pytest.fixture
def fake() -> Iterator[FakeSendPulse]:
    with FakeSendPulse() as server:
        yield server


@pytest.fixture
async def sender(fake: FakeSendPulse) -> AsyncIterator[SendPulseMailSender]:
    mail = make_sender(fake)
    yield mail
    await mail.close()


async def test_send_delivers_the_message(fake: FakeSendPulse, sender: SendPulseMailSender) -> None:
    message_id = await sender.send(MESSAGE)

    [email] = fake.emails
    assert message_id == email.id
    assert email.subject == MESSAGE.subject
    assert email.html == MESSAGE.html
    assert email.text == MESSAGE.text
    assert email.to == [(MESSAGE.to_name, MESSAGE.to_email)]
    assert (email.from_name, email.from_email) == (
        "Interview Practice",
        "noreply@interview.example",
    )


async def test_one_token_serves_several_sends(
    fake: FakeSendPulse, sender: SendPulseMailSender
) -> None:
    for _ in range(3):
        await sender.send(MESSAGE)

    assert len(fake.token_requests) == 1
    assert len({email.token for email in fake.emails}) == 1
    assert len(fake.emails) == 3


async def test_concurrent_sends_fetch_one_token(
    fake: FakeSendPulse, sender: SendPulseMailSender
) -> None:
    ids = await asyncio.gather(*(sender.send(MESSAGE) for _ in range(10)))

    assert len(fake.token_requests) == 1
    assert len(set(ids)) == 10
    assert len(fake.emails) == 10


async def test_token_inside_the_refresh_margin_is_renewed_before_use() -> None:
    # expires_in below the margin makes every token stale as soon as it is cached.
    with FakeSendPulse(expires_in=30) as fake:
        mail = make_sender(fake, refresh_margin=60)
        try:
            await mail.send(MESSAGE)
            await mail.send(MESSAGE)
        finally:
            await mail.close()

    assert len(fake.token_requests) == 2
    first, second = fake.emails
    assert first.token != second.token
    assert fake.unauthorized_sends == 0  # renewed ahead of time, not after a rejection


async def test_rejected_token_is_replaced_and_the_send_retried(
    fake: FakeSendPulse, sender: SendPulseMailSender
) -> None:
    await sender.send(MESSAGE)
    fake.invalidate_tokens()

    message_id = await sender.send(MESSAGE)

    assert fake.unauthorized_sends == 1
    assert len(fake.token_requests) == 2
    first, second = fake.emails
    assert second.id == message_id
    assert second.token != first.token


async def test_second_401_is_not_retried_again(
    fake: FakeSendPulse, sender: SendPulseMailSender
) -> None:
    fake.fail_next_sends(2, 401, {"error": "invalid_token", "message": "denied"})

    with pytest.raises(MailDeliveryError) as caught:
        await sender.send(MESSAGE)

    assert caught.value.retryable is False
    assert fake.send_attempts == 2
    assert len(fake.token_requests) == 2
    assert fake.emails == []


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_rate_limit_and_server_errors_are_retryable(
    fake: FakeSendPulse, sender: SendPulseMailSender, status: int
) -> None:
    fake.fail_next_sends(1, status)

    with pytest.raises(MailDeliveryError) as caught:
        await sender.send(MESSAGE)

    assert caught.value.retryable is True
    assert str(status) in str(caught.value)
    assert fake.emails == []
    # The adapter reports and leaves retrying to its caller; the next send goes through.
    await sender.send(MESSAGE)
    assert len(fake.emails) == 1


async def test_client_error_body_is_not_retryable_and_names_the_code(
    fake: FakeSendPulse, sender: SendPulseMailSender
) -> None:
    fake.fail_next_sends(1, 400, {"error_code": 213, "message": "Sender is not verified"})

    with pytest.raises(MailDeliveryError) as caught:
        await sender.send(MESSAGE)

    assert caught.value.retryable is False
    assert "213" in str(caught.value)
    assert "Sender is not verified" in str(caught.value)


async def test_result_false_is_not_retryable(
    fake: FakeSendPulse, sender: SendPulseMailSender
) -> None:
    fake.fail_next_sends(1, 200, {"result": False, "error_code": 8, "message": "Quota exceeded"})

    with pytest.raises(MailDeliveryError) as caught:
        await sender.send(MESSAGE)

    assert caught.value.retryable is False
    assert "8" in str(caught.value)
    assert "Quota exceeded" in str(caught.value)


async def test_bad_credentials_are_not_retryable(fake: FakeSendPulse) -> None:
    mail = make_sender(fake, client_secret="wrong-secret-value")
    try:
        with pytest.raises(MailDeliveryError) as caught:
            await mail.send(MESSAGE)
    finally:
        await mail.close()

    assert caught.value.retryable is False
    assert "401" in str(caught.value)
    assert "wrong-secret-value" not in str(caught.value)
    assert fake.token_requests[0].granted is False
    assert fake.send_attempts == 0


async def test_secret_and_token_echoed_by_the_server_are_redacted(
    fake: FakeSendPulse, sender: SendPulseMailSender
) -> None:
    await sender.send(MESSAGE)
    token = fake.emails[0].token
    echo = f"bad request from {fake.client_secret} with {token}"
    fake.fail_next_sends(1, 400, {"error_code": 1, "message": echo})

    with pytest.raises(MailDeliveryError) as caught:
        await sender.send(MESSAGE)

    assert "bad request from" in str(caught.value)
    assert fake.client_secret not in str(caught.value)
    assert token not in str(caught.value)


async def test_token_endpoint_outage_is_retryable(
    fake: FakeSendPulse, sender: SendPulseMailSender
) -> None:
    fake.fail_next_token_requests(1, 503)

    with pytest.raises(MailDeliveryError) as caught:
        await sender.send(MESSAGE)

    assert caught.value.retryable is True
    await sender.send(MESSAGE)
    assert len(fake.emails) == 1


async def test_timeout_is_retryable(fake: FakeSendPulse) -> None:
    fake.delay_sends(0.5)
    mail = make_sender(fake, timeout=0.1)
    try:
        with pytest.raises(MailDeliveryError) as caught:
            await mail.send(MESSAGE)
    finally:
        await mail.close()

    assert caught.value.retryable is True
    assert fake.client_secret not in str(caught.value)


async def test_unreachable_server_is_retryable() -> None:
    # A port that was just free and now has nobody listening refuses the connection.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mail = SendPulseMailSender(
        api_url=f"http://127.0.0.1:{port}",
        client_id="id",
        client_secret="unreachable-secret",
        from_email="noreply@interview.example",
        from_name="Interview Practice",
    )
    try:
        with pytest.raises(MailDeliveryError) as caught:
            await mail.send(MESSAGE)
    finally:
        await mail.close()

    assert caught.value.retryable is True
    assert "unreachable-secret" not in str(caught.value)


async def test_close_leaves_a_client_passed_in_open(fake: FakeSendPulse) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        mail = make_sender(fake, http=http)
        await mail.send(MESSAGE)
        await mail.close()

        assert not http.is_closed
        assert len(fake.emails) == 1
