"""Plans, status, orders, the free tier and the sandbox checkout, through the REST API."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from core.errors import PaymentRequired
from http_api.services import AppServices
from tests.billing.conftest import create_order, pay, subscription_status
from tests.helpers import drain, mails_to


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"free_interviews_per_month": 2, "questions_per_interview": 3}


async def start(client: httpx.AsyncClient, user: dict[str, Any]) -> httpx.Response:
    return await client.post(
        "/api/v1/interviews/technical/start", json={"level": "junior"}, headers=user["headers"]
    )


async def test_plans_need_no_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/subscriptions/plans")
    assert response.status_code == 200
    body = response.json()
    assert [p["id"] for p in body["plans"]] == ["month", "quarter", "year"]
    assert body["plans"][0]["price"] == 990 and body["plans"][0]["currency"] == "RUB"
    assert body["freeInterviewsPerMonth"] == 2


async def test_status_of_a_new_user(client: httpx.AsyncClient, user: dict[str, Any]) -> None:
    status = await subscription_status(client, user)
    assert status["active"] is False and status["plan"] is None and status["expiresAt"] is None
    assert status["autoRenew"] is False
    assert status["freeInterviews"] == {"limit": 2, "used": 0, "remaining": 2}
    assert len(status["plans"]) == 3
    assert (await client.get("/api/v1/subscriptions/status")).status_code == 401


async def test_create_refuses_an_unknown_plan(
    client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    response = await client.post(
        "/api/v1/subscriptions/create", json={"plan": "lifetime"}, headers=user["headers"]
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_plan"


async def test_the_order_is_stored_with_the_plans_price(
    client: httpx.AsyncClient, services: AppServices, user: dict[str, Any]
) -> None:
    response = await client.post(
        "/api/v1/subscriptions/create",
        json={"plan": "quarter", "autoRenew": False},
        headers=user["headers"],
    )
    body = response.json()
    assert body["paymentUrl"] == f"http://testserver/billing/sandbox/{body['orderId']}"
    order = await services.infra.db["orders"].find_one({"_id": body["orderId"]})
    assert order is not None
    assert (order["plan"], order["amount"], order["currency"], order["status"]) == (
        "quarter",
        2490,
        "RUB",
        "created",
    )
    assert order["autoRenew"] is False and str(order["userId"]) == user["id"]


# --- the free tier ------------------------------------------------------------------------------


async def test_the_free_tier_then_402_then_a_subscription_lifts_it(
    client: httpx.AsyncClient,
    services: AppServices,
    secret: bytes,
    user: dict[str, Any],
) -> None:
    for _ in range(2):
        assert (await start(client, user)).status_code == 201
    refused = await start(client, user)
    assert refused.status_code == 402
    error = refused.json()["error"]
    assert error["code"] == "subscription_required"
    assert error["details"]["freeInterviewsPerMonth"] == 2
    status = await subscription_status(client, user)
    assert status["freeInterviews"] == {"limit": 2, "used": 2, "remaining": 0}
    # The engine itself refuses (the socket path uses the same call).
    with pytest.raises(PaymentRequired):
        await services.engine.service.start_interview(user["id"], "junior", None)

    await pay(client, services, secret, user, await create_order(client, user))
    assert (await start(client, user)).status_code == 201


async def test_two_simultaneous_starts_cannot_both_take_the_last_free_one(
    client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    assert (await start(client, user)).status_code == 201
    answers = await asyncio.gather(start(client, user), start(client, user))
    assert sorted(a.status_code for a in answers) == [201, 402]


# --- the sandbox checkout --------------------------------------------------------------------


async def test_sandbox_checkout_pays_through_the_signed_webhook(
    client: httpx.AsyncClient, services: AppServices, user: dict[str, Any]
) -> None:
    response = await client.post(
        "/api/v1/subscriptions/create", json={"plan": "month"}, headers=user["headers"]
    )
    url = response.json()["paymentUrl"]
    page = await client.get(url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text  # the app's CSP allows no inline script
    assert "default-src 'self'" in page.headers["content-security-policy"]
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None and 'value="pay"' in page.text

    paid = await client.post(action.group(1), data={"outcome": "pay"})
    assert paid.status_code == 303
    assert "Paid" in (await client.get(paid.headers["location"])).text
    status = await subscription_status(client, user)
    assert status["active"] is True and status["plan"] == "month" and status["autoRenew"]
    payments = (await client.get("/api/v1/payments", headers=user["headers"])).json()
    assert [p["status"] for p in payments["payments"]] == ["completed"]
    await drain(services)
    assert len(mails_to(services, user["email"], "payment_receipt")) == 1


async def test_sandbox_decline_records_the_failure(
    client: httpx.AsyncClient, services: AppServices, user: dict[str, Any]
) -> None:
    order_id = await create_order(client, user)
    declined = await client.post(f"/billing/sandbox/{order_id}", data={"outcome": "fail"})
    assert declined.status_code == 303
    assert "declined" in (await client.get(f"/billing/sandbox/{order_id}")).text
    assert (await subscription_status(client, user))["active"] is False
    await drain(services)
    assert len(mails_to(services, user["email"], "payment_failed")) == 1


async def test_sandbox_does_not_pay_an_order_twice(
    client: httpx.AsyncClient, user: dict[str, Any]
) -> None:
    order_id = await create_order(client, user)
    await client.post(f"/billing/sandbox/{order_id}", data={"outcome": "pay"})
    first = await subscription_status(client, user)
    again = await client.post(f"/billing/sandbox/{order_id}", data={"outcome": "pay"})
    assert again.status_code == 200 and "code 13" in again.text  # Check refuses a paid order
    assert (await subscription_status(client, user))["expiresAt"] == first["expiresAt"]


async def test_sandbox_unknown_order_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.get("/billing/sandbox/" + "0" * 24)).status_code == 404
    assert (await client.post("/billing/sandbox/x", data={"outcome": "pay"})).status_code == 404
