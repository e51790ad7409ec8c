"""The CloudPayments adapter against a local server that speaks CloudPayments' API, alone and
inside the app (orders, renewal with the card token, cancellation)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from core.billing.cloudpayments import CloudPaymentsClient, CloudPaymentsError
from http_api.services import AppServices
from tests.billing.conftest import create_order, pay, subscription_status
from tests.fakes.cloudpayments import FakeCloudPayments

pytestmark = pytest.mark.integration


@pytest.fixture
def fake() -> Iterator[FakeCloudPayments]:
    with FakeCloudPayments() as server:
        yield server


@pytest.fixture
async def cp(fake: FakeCloudPayments) -> AsyncIterator[CloudPaymentsClient]:
    client = CloudPaymentsClient(
        api_url=fake.url,
        public_id=fake.public_id,
        api_secret=fake.api_secret,
        retry_base_delay=0.01,
    )
    yield client
    await client.close()


async def order(cp: CloudPaymentsClient, request_id: str = "order-1") -> Any:
    return await cp.create_order(
        amount=Decimal(990),
        currency="RUB",
        description="Interview Platform: Month",
        email="buyer@example.ru",
        account_id="user-1",
        invoice_id="inv-1",
        success_url="http://app/?payment=success",
        fail_url="http://app/?payment=failed",
        request_id=request_id,
    )


async def test_create_order_sends_basic_auth_and_the_request_id_and_reads_the_url(
    cp: CloudPaymentsClient, fake: FakeCloudPayments
) -> None:
    created = await order(cp)
    assert created.url.startswith("https://orders.cloudpayments.example/d/")
    (call,) = fake.calls("orders/create")
    assert call.authorized and call.request_id == "order-1"
    assert call.body is not None
    assert call.body["Amount"] == 990.0 and call.body["InvoiceId"] == "inv-1"
    assert call.body["AccountId"] == "user-1" and call.body["RequireConfirmation"] is False
    assert created.id == created.url.rsplit("/", 1)[1]


async def test_the_same_request_id_gets_the_same_order(
    cp: CloudPaymentsClient, fake: FakeCloudPayments
) -> None:
    first = await order(cp, "order-7")
    again = await order(cp, "order-7")
    other = await order(cp, "order-8")
    assert first == again and other != first
    assert [c.replayed for c in fake.calls("orders/create")] == [False, True, False]


async def test_a_transient_failure_is_retried_with_the_same_request_id(
    cp: CloudPaymentsClient, fake: FakeCloudPayments
) -> None:
    fake.fail_next(2, status=503)
    created = await order(cp, "order-retry")
    calls = fake.calls("orders/create")
    assert len(calls) == 3 and {c.request_id for c in calls} == {"order-retry"}
    assert created.url


async def test_refused_credentials_are_not_retried(fake: FakeCloudPayments) -> None:
    client = CloudPaymentsClient(api_url=fake.url, public_id=fake.public_id, api_secret="wrong")
    with pytest.raises(CloudPaymentsError) as caught:
        await order(client)
    await client.close()
    assert caught.value.retryable is False
    assert len(fake.requests) == 1 and not fake.requests[0].authorized


async def test_success_false_becomes_a_typed_error_with_the_message(
    cp: CloudPaymentsClient,
) -> None:
    with pytest.raises(CloudPaymentsError) as caught:
        await cp.cancel_subscription("sc_unknown", "cancel-1")
    assert "not found" in caught.value.message and caught.value.retryable is False


async def test_unreachable_is_retryable() -> None:
    client = CloudPaymentsClient(
        api_url="http://127.0.0.1:9", public_id="p", api_secret="s", max_attempts=1
    )
    with pytest.raises(CloudPaymentsError) as caught:
        await order(client)
    await client.close()
    assert caught.value.retryable is True


async def test_subscriptions_create_and_cancel(
    cp: CloudPaymentsClient, fake: FakeCloudPayments
) -> None:
    start = datetime(2030, 5, 1, 12, 30, tzinfo=UTC)
    subscription_id = await cp.create_subscription(
        token="tk_1",
        account_id="user-1",
        amount=Decimal(2490),
        currency="RUB",
        interval="Month",
        period=3,
        start_date=start,
        email="buyer@example.ru",
        description="Quarter",
        request_id="subscription-1",
    )
    (call,) = fake.calls("subscriptions/create")
    assert call.body is not None
    assert call.body["Token"] == "tk_1" and call.body["StartDate"] == "2030-05-01T12:30:00Z"
    assert (call.body["Interval"], call.body["Period"]) == ("Month", 3)
    assert call.body["RequireConfirmation"] is False
    await cp.cancel_subscription(subscription_id, "cancel-1")
    assert fake.subscriptions[subscription_id]["Status"] == "Cancelled"


# --- inside the app -------------------------------------------------------------------------


class TestInTheApp:
    @pytest.fixture
    def settings_overrides(self, fake: FakeCloudPayments) -> dict[str, Any]:
        return {
            "cloudpayments_public_id": fake.public_id,
            "cloudpayments_api_secret": fake.api_secret,
            "cloudpayments_api_url": fake.url,
        }

    @pytest.fixture
    def secret(self, fake: FakeCloudPayments) -> bytes:
        return fake.api_secret.encode()

    async def test_subscribe_renew_and_cancel_through_cloudpayments(
        self,
        client: httpx.AsyncClient,
        services: AppServices,
        fake: FakeCloudPayments,
        secret: bytes,
        user: dict[str, Any],
    ) -> None:
        response = await client.post(
            "/api/v1/subscriptions/create", json={"plan": "month"}, headers=user["headers"]
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["paymentUrl"].startswith("https://orders.cloudpayments.example/d/")
        (call,) = fake.calls("orders/create")
        assert call.body is not None and call.body["InvoiceId"] == body["orderId"]
        assert call.body["AccountId"] == user["id"]
        assert call.request_id == f"order-{body['orderId']}"

        await pay(client, services, secret, user, body["orderId"], token="tk_card_42")
        (created,) = fake.calls("subscriptions/create")
        assert created.body is not None and created.body["Token"] == "tk_card_42"
        assert created.body["AccountId"] == user["id"] and created.body["Amount"] == 990.0
        status = await subscription_status(client, user)
        assert status["active"] and status["autoRenew"]
        start = datetime.fromisoformat(created.body["StartDate"].replace("Z", "+00:00"))
        assert abs(start - datetime.fromisoformat(status["expiresAt"])) < timedelta(seconds=1)

        cancelled = await client.post("/api/v1/subscriptions/cancel", headers=user["headers"])
        assert cancelled.json()["autoRenew"] is False
        (subscription,) = fake.subscriptions.values()
        assert subscription["Status"] == "Cancelled"

    async def test_a_provider_outage_answers_503(
        self, client: httpx.AsyncClient, fake: FakeCloudPayments, user: dict[str, Any]
    ) -> None:
        fake.fail_next(10, status=503)
        response = await client.post(
            "/api/v1/subscriptions/create", json={"plan": "month"}, headers=user["headers"]
        )
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "payment_provider_unavailable"

    async def test_there_is_no_sandbox_with_real_credentials(
        self, client: httpx.AsyncClient, user: dict[str, Any]
    ) -> None:
        order_id = await create_order(client, user)
        assert (await client.get(f"/billing/sandbox/{order_id}")).status_code == 404
