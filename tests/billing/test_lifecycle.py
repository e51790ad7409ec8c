"""The subscription's life: renewal, cancel, refund, failures, notifications out of order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from bson import ObjectId

from core.billing import BillingService
from core.billing.jobs import expire_subscriptions, remind_failed_payments, remind_renewals
from core.billing.sandbox import SandboxGateway
from http_api.services import AppServices
from tests.billing.conftest import create_order, notify, pay, subscription_status
from tests.fakes.cloudpayments import next_transaction_id, payment_fields
from tests.helpers import drain, mail_text, mails_to, verified_user

TOKEN = "tk_6d1f5a0c9b8e4f2a"


def expires(status: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(status["expiresAt"])


def days_left(status: dict[str, Any]) -> float:
    return (expires(status) - datetime.now(UTC)) / timedelta(days=1)


async def subscribed(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> tuple[dict[str, Any], str]:
    """A paid month with auto-renewal set up; returns the Pay fields and the subscription id."""
    order_id = await create_order(client, user)
    fields = await pay(client, services, secret, user, order_id, token=TOKEN)
    gateway = billing.gateway
    assert isinstance(gateway, SandboxGateway)
    (subscription_id,) = gateway.subscriptions
    return fields, subscription_id


async def recurring_pay(
    client: httpx.AsyncClient, secret: bytes, user: dict[str, Any], subscription_id: str
) -> dict[str, Any]:
    fields = payment_fields(amount=990, account_id=user["id"], subscription_id=subscription_id)
    response = await notify(client, secret, "pay", fields)
    assert response.json() == {"code": 0, "success": True}
    return fields


async def refund(
    client: httpx.AsyncClient, secret: bytes, user: dict[str, Any], paid: dict[str, Any]
) -> None:
    fields = {
        "TransactionId": next_transaction_id(),
        "PaymentTransactionId": paid["TransactionId"],
        "Amount": paid["Amount"],
        "DateTime": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "InvoiceId": paid.get("InvoiceId", ""),
        "AccountId": user["id"],
    }
    response = await notify(client, secret, "refund", fields)
    assert response.json() == {"code": 0, "success": True}


async def recurrent(
    client: httpx.AsyncClient,
    secret: bytes,
    user: dict[str, Any],
    subscription_id: str,
    status: str,
    succeeded: int = 1,
    failed: int = 0,
) -> None:
    fields = {
        "Id": subscription_id,
        "AccountId": user["id"],
        "Description": "Interview Platform",
        "Email": user["email"],
        "Amount": "990.00",
        "Currency": "RUB",
        "RequireConfirmation": "0",
        "StartDate": "2030-01-01 00:00:00",
        "Interval": "Month",
        "Period": "1",
        "Status": status,
        "SuccessfulTransactionsNumber": str(succeeded),
        "FailedTransactionsNumber": str(failed),
        "NextTransactionDate": "2030-02-01 00:00:00",
    }
    response = await notify(client, secret, "recurrent", fields)
    assert response.json() == {"code": 0, "success": True}


# --- auto-renewal -----------------------------------------------------------------------------


async def test_pay_with_a_token_sets_up_renewal_from_the_end_of_access(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    _, subscription_id = await subscribed(client, services, billing, secret, user)
    status = await subscription_status(client, user)
    assert status["autoRenew"] is True
    assert isinstance(billing.gateway, SandboxGateway)
    request = billing.gateway.subscriptions[subscription_id]
    assert request.token == TOKEN
    assert request.start_date == expires(status)
    assert (request.amount, request.currency, request.interval, request.period) == (
        990,
        "RUB",
        "Month",
        1,
    )


async def test_card_token_and_subscription_id_are_encrypted_at_rest(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    _, subscription_id = await subscribed(client, services, billing, secret, user)
    raw = await services.infra.db["users"].find_one({"_id": ObjectId(user["id"])})
    assert raw is not None
    dumped = repr(raw)
    assert TOKEN not in dumped and subscription_id not in dumped
    sealed = raw["billing"]["cardToken"]
    assert set(sealed) == {"keyId", "data"}
    assert sealed["keyId"] == billing.cipher.current_key_id
    payments = await services.infra.db["payments"].find({}).to_list()
    assert TOKEN not in repr(payments)


async def test_a_recurring_pay_extends_the_subscription(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    _, subscription_id = await subscribed(client, services, billing, secret, user)
    await recurring_pay(client, secret, user, subscription_id)
    status = await subscription_status(client, user)
    assert status["active"] and status["autoRenew"]
    assert 59.9 < days_left(status) < 60.1


async def test_recurrent_status_changes_keep_auto_renewal_until_the_subscription_ends(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    _, subscription_id = await subscribed(client, services, billing, secret, user)
    await recurrent(client, secret, user, subscription_id, "PastDue", succeeded=0, failed=1)
    await recurrent(client, secret, user, subscription_id, "Active", succeeded=1, failed=1)
    assert (await subscription_status(client, user))["autoRenew"] is True
    await recurrent(client, secret, user, subscription_id, "Rejected", succeeded=1, failed=4)
    status = await subscription_status(client, user)
    assert status["autoRenew"] is False
    assert status["active"] is True  # what was paid for stays
    await drain(services)
    assert len(mails_to(services, user["email"], "subscription_cancelled")) == 1


async def test_a_late_active_for_a_cancelled_subscription_does_not_revive_it(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    _, subscription_id = await subscribed(client, services, billing, secret, user)
    await recurrent(client, secret, user, subscription_id, "Cancelled", succeeded=1)
    # Sent before the cancellation, delivered after it.
    await recurrent(client, secret, user, subscription_id, "Active", succeeded=1)
    await recurrent(client, secret, user, subscription_id, "Active", succeeded=2)
    status = await subscription_status(client, user)
    assert status["autoRenew"] is False
    raw = await services.infra.db["users"].find_one({"_id": ObjectId(user["id"])})
    assert raw is not None and raw["billing"]["subscriptionStatus"] == "Cancelled"


async def test_a_stale_past_due_does_not_overwrite_a_newer_active(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    _, subscription_id = await subscribed(client, services, billing, secret, user)
    await recurrent(client, secret, user, subscription_id, "Active", succeeded=2, failed=1)
    await recurrent(client, secret, user, subscription_id, "PastDue", succeeded=1, failed=1)
    raw = await services.infra.db["users"].find_one({"_id": ObjectId(user["id"])})
    assert raw is not None and raw["billing"]["subscriptionStatus"] == "Active"


# --- cancel ------------------------------------------------------------------------------------


async def test_cancel_turns_renewal_off_and_keeps_access_to_the_end(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    _, subscription_id = await subscribed(client, services, billing, secret, user)
    before = await subscription_status(client, user)
    response = await client.post("/api/v1/subscriptions/cancel", headers=user["headers"])
    assert response.status_code == 200, response.text
    after = response.json()
    assert after["autoRenew"] is False
    assert after["active"] is True
    assert after["expiresAt"] == before["expiresAt"]
    assert isinstance(billing.gateway, SandboxGateway)
    assert subscription_id in billing.gateway.cancelled
    again = await client.post("/api/v1/subscriptions/cancel", headers=user["headers"])
    assert again.status_code == 200
    await drain(services)
    assert len(mails_to(services, user["email"], "subscription_cancelled")) == 1


async def test_cancel_without_a_subscription_is_409(
    client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    response = await client.post("/api/v1/subscriptions/cancel", headers=user["headers"])
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_subscription"


async def test_a_cancel_notification_turns_renewal_off_and_keeps_access(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    paid, _ = await subscribed(client, services, billing, secret, user)
    before = await subscription_status(client, user)
    fields = {
        "TransactionId": paid["TransactionId"],
        "Amount": "990.00",
        "DateTime": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "InvoiceId": paid["InvoiceId"],
        "AccountId": user["id"],
    }
    for _ in range(2):
        assert (await notify(client, secret, "cancel", fields)).json()["code"] == 0
    after = await subscription_status(client, user)
    assert after["autoRenew"] is False
    assert after["active"] is True and after["expiresAt"] == before["expiresAt"]
    await drain(services)
    assert len(mails_to(services, user["email"], "subscription_cancelled")) == 1


async def test_a_renewal_set_up_after_the_user_cancelled_is_cancelled_again(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    order_id = await create_order(client, user)
    fields = payment_fields(amount=990, account_id=user["id"], invoice_id=order_id, token=TOKEN)
    await notify(client, secret, "pay", fields)
    # The user cancels before the background job has created the CloudPayments subscription.
    await billing.renewals.disable(ObjectId(user["id"]), notify=False)
    await billing.renewals.setup(
        {"userId": user["id"], "transactionId": str(fields["TransactionId"])}
    )
    await drain(services)
    assert isinstance(billing.gateway, SandboxGateway)
    created = set(billing.gateway.subscriptions)
    assert created <= billing.gateway.cancelled
    assert (await subscription_status(client, user))["autoRenew"] is False


# --- refunds -----------------------------------------------------------------------------------


async def test_a_refund_ends_access_and_marks_the_payment_refunded(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    paid, subscription_id = await subscribed(client, services, billing, secret, user)
    await refund(client, secret, user, paid)
    status = await subscription_status(client, user)
    assert status["active"] is False
    assert abs(expires(status) - datetime.now(UTC)) < timedelta(minutes=1)
    assert status["autoRenew"] is False
    assert isinstance(billing.gateway, SandboxGateway)
    assert subscription_id in billing.gateway.cancelled
    payment = await services.infra.db["payments"].find_one(
        {"externalPaymentId": str(paid["TransactionId"])}
    )
    assert payment is not None and payment["status"] == "refunded"
    await drain(services)
    assert len(mails_to(services, user["email"], "payment_refunded")) == 1


async def test_refunding_the_renewal_keeps_the_first_period(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    _, subscription_id = await subscribed(client, services, billing, secret, user)
    renewal = await recurring_pay(client, secret, user, subscription_id)
    assert 59.9 < days_left(await subscription_status(client, user)) < 60.1
    await refund(client, secret, user, renewal)
    status = await subscription_status(client, user)
    assert status["active"] is True
    assert 29.9 < days_left(status) < 30.1  # only the renewal's period went


async def test_refunding_the_first_payment_after_a_renewal_keeps_the_renewal(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    first, subscription_id = await subscribed(client, services, billing, secret, user)
    await recurring_pay(client, secret, user, subscription_id)
    await refund(client, secret, user, first)
    status = await subscription_status(client, user)
    assert status["active"] is True
    assert 29.9 < days_left(status) < 30.1  # the renewal's month, starting now


async def test_a_refund_delivered_before_its_pay_still_ends_up_refunded(
    client: httpx.AsyncClient,
    services: AppServices,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    order_id = await create_order(client, user)
    fields = payment_fields(amount=990, account_id=user["id"], invoice_id=order_id)
    await refund(client, secret, user, fields)
    await notify(client, secret, "pay", fields)
    status = await subscription_status(client, user)
    assert status["active"] is False
    payment = await services.infra.db["payments"].find_one(
        {"externalPaymentId": str(fields["TransactionId"])}
    )
    assert payment is not None and payment["status"] == "refunded"


async def test_a_partial_refund_is_recorded_without_ending_access(
    client: httpx.AsyncClient, services: AppServices, secret: bytes, user: dict[str, Any]
) -> None:
    order_id = await create_order(client, user)
    paid = await pay(client, services, secret, user, order_id)
    await refund(client, secret, user, {**paid, "Amount": "100.00"})
    assert (await subscription_status(client, user))["active"] is True
    response = await client.get("/api/v1/payments", headers=user["headers"])
    kinds = sorted((p["kind"], p["status"]) for p in response.json()["payments"])
    assert kinds == [("payment", "completed"), ("refund", "refunded")]


# --- failures ----------------------------------------------------------------------------------


async def test_a_fail_after_pay_does_not_deactivate(
    client: httpx.AsyncClient,
    services: AppServices,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    order_id = await create_order(client, user)
    await pay(client, services, secret, user, order_id)
    before = await subscription_status(client, user)
    failed = payment_fields(
        amount=990,
        account_id=user["id"],
        invoice_id=order_id,
        Reason="InsufficientFunds",
        ReasonCode="5051",
    )
    assert (await notify(client, secret, "fail", failed)).json()["code"] == 0
    after = await subscription_status(client, user)
    assert after["active"] is True and after["expiresAt"] == before["expiresAt"]
    order = await services.infra.db["orders"].find_one({"_id": order_id})
    assert order is not None and order["status"] == "paid"
    await drain(services)
    notice = mails_to(services, user["email"], "payment_failed")
    assert len(notice) == 1 and "InsufficientFunds" in mail_text(notice[0])


async def test_a_failed_renewal_is_mailed_then_reminded_once(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    order_id = await create_order(client, user)
    now = datetime.now(UTC)
    await pay(client, services, secret, user, order_id, token=TOKEN, when=now - timedelta(days=3))
    assert isinstance(billing.gateway, SandboxGateway)
    (subscription_id,) = billing.gateway.subscriptions
    failed = payment_fields(
        amount=990,
        account_id=user["id"],
        subscription_id=subscription_id,
        when=now - timedelta(days=2),
        Reason="InsufficientFunds",
        ReasonCode="5051",
    )
    assert (await notify(client, secret, "fail", failed)).json()["code"] == 0
    assert await remind_failed_payments(billing) == 1
    assert await remind_failed_payments(billing) == 0
    await drain(services)
    assert len(mails_to(services, user["email"], "payment_failed")) == 1
    assert len(mails_to(services, user["email"], "payment_failed_reminder")) == 1


# --- mails and jobs ----------------------------------------------------------------------------


async def test_the_receipt_is_mailed_in_the_users_language(
    client: httpx.AsyncClient,
    services: AppServices,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    order_id = await create_order(client, user)
    paid = await pay(client, services, secret, user, order_id)
    (receipt,) = mails_to(services, user["email"], "payment_receipt")
    text = mail_text(receipt)
    assert "990.00 RUB" in text and str(paid["TransactionId"]) in text
    assert "Месяц" in text  # registered without a language: Russian


async def test_the_expiry_job_deactivates_once_and_mails(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    order_id = await create_order(client, user, auto_renew=False)
    await pay(client, services, secret, user, order_id)
    assert await expire_subscriptions(billing) == 0
    await services.infra.db["users"].update_one(
        {"_id": ObjectId(user["id"])},
        {"$set": {"subscription.endDate": datetime.now(UTC) - timedelta(minutes=1)}},
    )
    assert await expire_subscriptions(billing) == 1
    assert await expire_subscriptions(billing) == 0
    raw = await services.infra.db["users"].find_one({"_id": ObjectId(user["id"])})
    assert raw is not None and raw["subscription"]["isActive"] is False
    assert (await subscription_status(client, user))["active"] is False
    await drain(services)
    assert len(mails_to(services, user["email"], "subscription_expired")) == 1


async def test_the_renewal_reminder_goes_once_per_period(
    client: httpx.AsyncClient,
    services: AppServices,
    billing: BillingService,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    await subscribed(client, services, billing, secret, user)
    assert await remind_renewals(billing) == 0  # 30 days ahead: too early
    await services.infra.db["users"].update_one(
        {"_id": ObjectId(user["id"])},
        {"$set": {"subscription.endDate": datetime.now(UTC) + timedelta(days=2)}},
    )
    assert await remind_renewals(billing) == 1
    assert await remind_renewals(billing) == 0
    await drain(services)
    assert len(mails_to(services, user["email"], "renewal_reminder")) == 1


async def test_payments_lists_only_the_users_own(
    client: httpx.AsyncClient,
    services: AppServices,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    order_id = await create_order(client, user)
    await pay(client, services, secret, user, order_id)
    mine = await client.get("/api/v1/payments", headers=user["headers"])
    assert mine.status_code == 200
    (item,) = mine.json()["payments"]
    assert item["amount"] == 990 and item["status"] == "completed" and item["plan"] == "month"
    assert item["cardLastFour"] == "1111"
    other = await verified_user(client, services)
    theirs = await client.get("/api/v1/payments", headers=other["headers"])
    assert theirs.json()["payments"] == []


# --- two-stage payments --------------------------------------------------------------------------


async def test_an_authorized_pay_grants_access_only_when_confirmed(
    client: httpx.AsyncClient, services: AppServices, secret: bytes, user: dict[str, Any]
) -> None:
    order_id = await create_order(client, user, auto_renew=False)
    fields = payment_fields(
        amount=990, account_id=user["id"], invoice_id=order_id, Status="Authorized"
    )
    assert (await notify(client, secret, "pay", fields)).json()["code"] == 0
    assert (await subscription_status(client, user))["active"] is False
    confirmed = {**fields, "Status": "Completed"}
    for _ in range(2):
        assert (await notify(client, secret, "confirm", confirmed)).json()["code"] == 0
    status = await subscription_status(client, user)
    assert status["active"] is True and 29.9 < days_left(status) < 30.1
    await drain(services)
    assert len(mails_to(services, user["email"], "payment_receipt")) == 1


async def test_a_voided_authorization_is_not_revived_by_a_late_confirm(
    client: httpx.AsyncClient, services: AppServices, secret: bytes, user: dict[str, Any]
) -> None:
    order_id = await create_order(client, user, auto_renew=False)
    fields = payment_fields(
        amount=990, account_id=user["id"], invoice_id=order_id, Status="Authorized"
    )
    await notify(client, secret, "pay", fields)
    cancel = {k: fields[k] for k in ("TransactionId", "Amount", "DateTime", "InvoiceId")}
    assert (await notify(client, secret, "cancel", {**cancel, "AccountId": user["id"]})).json()[
        "code"
    ] == 0
    await notify(client, secret, "confirm", {**fields, "Status": "Completed"})
    assert (await subscription_status(client, user))["active"] is False
    payment = await services.infra.db["payments"].find_one(
        {"externalPaymentId": str(fields["TransactionId"])}
    )
    assert payment is not None and payment["status"] == "failed"
