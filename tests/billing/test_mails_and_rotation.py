"""Every billing email renders in both languages; payment references survive a key rotation."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, get_args

import httpx
import pytest
from bson import ObjectId

from core.billing import build_billing
from core.billing.jobs import reencrypt_references
from core.billing.mails import TEMPLATES, BillingMails
from core.billing.renewals import token_context
from core.billing.webhooks import Kind
from core.mail.render import render
from core.settings import Settings
from core.tasks import JobRegistry
from http_api.routes.billing import KindName
from http_api.services import AppServices
from tests.billing.conftest import create_order, pay

NOW = datetime(2030, 1, 15, tzinfo=UTC)


class CapturingMailer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    async def send(
        self, template: str, to_email: str, language: str, context: dict[str, Any]
    ) -> None:
        self.sent.append((template, language, context))


@pytest.mark.parametrize("language", ["ru", "en"])
async def test_every_billing_mail_renders(settings: Settings, language: str) -> None:
    mailer = CapturingMailer()
    mails = BillingMails(settings, mailer)  # type: ignore[arg-type]
    user = {
        "_id": ObjectId(),
        "email": "a@example.ru",
        "language": language,
        "subscription": {"endDate": NOW, "plan": "month"},
    }
    money = {"amount": Decimal("990"), "currency": "RUB"}
    await mails.receipt(
        user, plan="month", paid_at=NOW, ends=NOW, transaction_id="1", auto_renew=True, **money
    )
    await mails.failed(user, reason="Insufficient <funds>", recurring=True, **money)
    await mails.failed_reminder(user)
    await mails.cancelled(user, NOW)
    await mails.refunded(user, active=False, ends=None, **money)
    await mails.renewal_reminder(user, plan="month", ends=NOW)
    await mails.expired(user)
    assert sorted(t for t, _, _ in mailer.sent) == sorted(TEMPLATES)
    for template, lang, context in mailer.sent:
        message = render(template, lang, "a@example.ru", context)
        assert message.subject and message.text.strip()
        assert "{{" not in message.html
    failed = next(c for t, _, c in mailer.sent if t == "payment_failed")
    html = render("payment_failed", language, "a@example.ru", failed).html
    assert "Insufficient &lt;funds&gt;" in html  # autoescaped


def test_the_webhook_kind_query_lists_every_kind() -> None:
    assert set(get_args(KindName)) == {k.value for k in Kind}


async def test_rotation_reseals_old_references_and_keeps_them_readable(
    client: httpx.AsyncClient,
    services: AppServices,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    await pay(client, services, secret, user, await create_order(client, user), token="tk_rot")
    users = services.infra.db["users"]
    before = await users.find_one({"_id": ObjectId(user["id"])})
    assert before is not None
    old_key_id = before["billing"]["cardToken"]["keyId"]

    old_secret = services.settings.payment_reference_key.get_secret_value()
    rotated_settings = services.settings.model_copy(
        update={
            "payment_reference_key": type(services.settings.payment_reference_key)("n" * 40),
            "payment_reference_old_keys": type(services.settings.payment_reference_key)(old_secret),
        }
    )
    rotated = build_billing(
        dataclasses.replace(services.infra, settings=rotated_settings, jobs=JobRegistry())
    )
    try:
        assert rotated.cipher.current_key_id != old_key_id
        assert await reencrypt_references(rotated) == 2  # card token and subscription id
        assert await reencrypt_references(rotated) == 0
        after = await users.find_one({"_id": ObjectId(user["id"])})
        assert after is not None
        sealed = after["billing"]["cardToken"]
        assert sealed["keyId"] == rotated.cipher.current_key_id
        assert rotated.cipher.decrypt(sealed, token_context(user["id"])) == "tk_rot"
        assert rotated.renewals.current_subscription_id(after) is not None
    finally:
        await rotated.close()
