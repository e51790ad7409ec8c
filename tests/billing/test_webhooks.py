"""CloudPayments notifications through the app: signatures, exactly-once, Check codes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from core.billing import BillingService
from http_api.services import AppServices
from tests.billing.conftest import create_order, notify, pay, subscription_status
from tests.fakes.cloudpayments import hmac_header, payment_fields, signed_notification
from tests.helpers import drain, mails_to


async def payments_of(billing: BillingService, user: dict[str, Any]) -> list[dict[str, Any]]:
    docs, _ = await billing.payments(user["id"], 0, 100)
    return docs


# --- signatures -----------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
async def test_a_signed_pay_activates_the_subscription(
    client: httpx.AsyncClient,
    services: AppServices,
    secret: bytes,
    user: dict[str, Any],
    as_json: bool,
) -> None:
    order_id = await create_order(client, user)
    assert not (await subscription_status(client, user))["active"]
    fields = payment_fields(amount=990, account_id=user["id"], invoice_id=order_id)
    response = await notify(client, secret, "pay", fields, as_json=as_json)
    assert response.status_code == 200
    assert response.json() == {"code": 0, "success": True}
    status = await subscription_status(client, user)
    assert status["active"] is True
    assert status["plan"] == "month"
    expires = datetime.fromisoformat(status["expiresAt"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-HMAC": "AAAA"},
        {"Content-HMAC": hmac_header(b"some other secret", b"x")},
    ],
    ids=["unsigned", "garbage", "wrong-key"],
)
async def test_an_unsigned_or_wrongly_signed_notification_is_refused_and_changes_nothing(
    client: httpx.AsyncClient,
    billing: BillingService,
    user: dict[str, Any],
    headers: dict[str, str],
) -> None:
    order_id = await create_order(client, user)
    body, _ = signed_notification(
        b"unused", payment_fields(amount=990, account_id=user["id"], invoice_id=order_id)
    )
    response = await client.post(
        "/api/v1/subscriptions/webhook/pay",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not (await subscription_status(client, user))["active"]
    assert await payments_of(billing, user) == []


async def test_a_tampered_body_is_refused(
    client: httpx.AsyncClient, billing: BillingService, secret: bytes, user: dict[str, Any]
) -> None:
    order_id = await create_order(client, user)
    body, headers = signed_notification(
        secret, payment_fields(amount=990, account_id=user["id"], invoice_id=order_id)
    )
    tampered = body.replace(b"Amount=990.00", b"Amount=9.00")
    assert tampered != body
    response = await client.post(
        "/api/v1/subscriptions/webhook/pay", content=tampered, headers=headers
    )
    assert response.status_code == 401
    assert not (await subscription_status(client, user))["active"]
    assert await payments_of(billing, user) == []


async def test_x_content_hmac_is_accepted_over_the_raw_body(
    client: httpx.AsyncClient, secret: bytes, user: dict[str, Any]
) -> None:
    order_id = await create_order(client, user)
    fields = payment_fields(amount=990, account_id=user["id"], invoice_id=order_id)
    body, headers = signed_notification(secret, fields, header="X-Content-HMAC")
    response = await client.post("/api/v1/subscriptions/webhook/pay", content=body, headers=headers)
    assert response.json() == {"code": 0, "success": True}
    assert (await subscription_status(client, user))["active"]


async def test_a_wrong_content_hmac_is_not_rescued_by_x_content_hmac(
    client: httpx.AsyncClient, secret: bytes, user: dict[str, Any]
) -> None:
    order_id = await create_order(client, user)
    body, headers = signed_notification(
        secret, payment_fields(amount=990, account_id=user["id"], invoice_id=order_id)
    )
    headers["X-Content-HMAC"] = headers["Content-HMAC"]
    headers["Content-HMAC"] = hmac_header(secret, b"another body")
    response = await client.post("/api/v1/subscriptions/webhook/pay", content=body, headers=headers)
    assert response.status_code == 401


async def test_a_repeated_form_field_is_refused(
    client: httpx.AsyncClient, secret: bytes, user: dict[str, Any]
) -> None:
    order_id = await create_order(client, user)
    body, headers = signed_notification(
        secret, payment_fields(amount=990, account_id=user["id"], invoice_id=order_id)
    )
    spliced = body + b"&Amount=1.00"
    headers["Content-HMAC"] = hmac_header(secret, spliced)
    response = await client.post(
        "/api/v1/subscriptions/webhook/pay", content=spliced, headers=headers
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_notification"
    assert not (await subscription_status(client, user))["active"]


async def test_the_kind_comes_from_the_query_or_the_fields(
    client: httpx.AsyncClient, secret: bytes, user: dict[str, Any]
) -> None:
    order_id = await create_order(client, user)
    fields = payment_fields(amount=990, account_id=user["id"], invoice_id=order_id)
    body, headers = signed_notification(secret, fields)
    ambiguous = await client.post("/api/v1/subscriptions/webhook", content=body, headers=headers)
    assert ambiguous.status_code == 400  # Check and Pay carry the same fields
    response = await client.post(
        "/api/v1/subscriptions/webhook?kind=pay", content=body, headers=headers
    )
    assert response.json() == {"code": 0, "success": True}
    refund, refund_headers = signed_notification(
        secret,
        {
            "TransactionId": fields["TransactionId"] + 1,
            "PaymentTransactionId": fields["TransactionId"],
            "Amount": "990.00",
            "DateTime": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "AccountId": user["id"],
        },
    )
    detected = await client.post(
        "/api/v1/subscriptions/webhook", content=refund, headers=refund_headers
    )
    assert detected.json() == {"code": 0, "success": True}
    assert not (await subscription_status(client, user))["active"]


async def test_an_unknown_kind_is_404(client: httpx.AsyncClient, secret: bytes) -> None:
    body, headers = signed_notification(secret, {"TransactionId": 1})
    response = await client.post(
        "/api/v1/subscriptions/webhook/chargeback", content=body, headers=headers
    )
    assert response.status_code == 404


# --- exactly once ----------------------------------------------------------------------------


async def test_a_replayed_pay_is_recorded_and_applied_once(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    order_id = await create_order(client, user)
    fields = payment_fields(amount=990, account_id=user["id"], invoice_id=order_id)
    first = await notify(client, secret, "pay", fields)
    ends = (await subscription_status(client, user))["expiresAt"]
    again = await notify(client, secret, "pay", fields)
    assert first.json() == again.json() == {"code": 0, "success": True}
    assert (await subscription_status(client, user))["expiresAt"] == ends
    assert len(await payments_of(billing, user)) == 1
    await drain(services)
    assert len(mails_to(services, user["email"], "payment_receipt")) == 1


async def test_two_identical_pays_at_the_same_moment_apply_once(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    order_id = await create_order(client, user)
    fields = payment_fields(amount=990, account_id=user["id"], invoice_id=order_id)
    answers = await asyncio.gather(*(notify(client, secret, "pay", fields) for _ in range(2)))
    assert [a.json() for a in answers] == [{"code": 0, "success": True}] * 2
    status = await subscription_status(client, user)
    expires = datetime.fromisoformat(status["expiresAt"])
    assert expires - datetime.now(UTC) < timedelta(days=31)  # not extended twice
    assert len(await payments_of(billing, user)) == 1
    await drain(services)
    assert len(mails_to(services, user["email"], "payment_receipt")) == 1


# --- Check ------------------------------------------------------------------------------------


async def check(client: httpx.AsyncClient, secret: bytes, **fields: Any) -> dict[str, Any]:
    response = await notify(client, secret, "check", payment_fields(**fields))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_check_accepts_a_matching_order(
    client: httpx.AsyncClient, secret: bytes, user: dict[str, Any]
) -> None:
    order_id = await create_order(client, user)
    answer = await check(client, secret, amount=990, account_id=user["id"], invoice_id=order_id)
    assert answer == {"code": 0, "success": True}
    assert not (await subscription_status(client, user))["active"]  # Check grants nothing


async def test_check_refusal_codes(
    client: httpx.AsyncClient,
    services: AppServices,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    order_id = await create_order(client, user)
    uid = user["id"]
    assert (await check(client, secret, amount=990, account_id=uid, invoice_id="nope"))[
        "code"
    ] == 10
    assert (await check(client, secret, amount=990, account_id=uid))["code"] == 10
    other = "0123456789abcdef01234567"
    assert (await check(client, secret, amount=990, account_id=other, invoice_id=order_id))[
        "code"
    ] == 11
    assert (await check(client, secret, amount=99, account_id=uid, invoice_id=order_id))[
        "code"
    ] == 12
    wrong_currency = await check(
        client, secret, amount=990, currency="USD", account_id=uid, invoice_id=order_id
    )
    assert wrong_currency == {"code": 12, "success": False}
    await services.infra.db["orders"].update_one(
        {"_id": order_id}, {"$set": {"expiresAt": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    assert (await check(client, secret, amount=990, account_id=uid, invoice_id=order_id))[
        "code"
    ] == 20
    paid_order = await create_order(client, user)
    await pay(client, services, secret, user, paid_order)
    assert (await check(client, secret, amount=990, account_id=uid, invoice_id=paid_order))[
        "code"
    ] == 13


async def test_a_pay_that_does_not_match_its_order_is_recorded_but_grants_nothing(
    client: httpx.AsyncClient, billing: BillingService, secret: bytes, user: dict[str, Any]
) -> None:
    order_id = await create_order(client, user)
    for fields in (
        payment_fields(amount=99, account_id=user["id"], invoice_id=order_id),
        payment_fields(amount=990, currency="EUR", account_id=user["id"], invoice_id=order_id),
    ):
        response = await notify(client, secret, "pay", fields)
        assert response.json() == {"code": 0, "success": True}  # money moved: stop retrying
    assert not (await subscription_status(client, user))["active"]
    recorded = await payments_of(billing, user)
    assert len(recorded) == 2
    assert all(p["metadata"]["anomaly"] == "wrong_amount" for p in recorded)


async def test_the_legacy_path_works_and_is_marked_deprecated(
    client: httpx.AsyncClient, secret: bytes, user: dict[str, Any]
) -> None:
    order_id = await create_order(client, user)
    body, headers = signed_notification(
        secret, payment_fields(amount=990, account_id=user["id"], invoice_id=order_id)
    )
    response = await client.post("/api/subscriptions/webhook/pay", content=body, headers=headers)
    assert response.json() == {"code": 0, "success": True}
    assert response.headers["Deprecation"] == "true"
