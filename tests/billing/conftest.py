"""Billing fixtures and helpers: the billing service, the webhook secret, signed notifications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from core.billing import BillingService, webhook_secret
from core.settings import Settings
from http_api.services import AppServices
from tests.fakes.cloudpayments import payment_fields, signed_notification
from tests.helpers import drain, verified_user


@pytest.fixture
def billing(app: Starlette) -> BillingService:
    service: BillingService = app.state.services.billing
    return service


@pytest.fixture
def secret(settings: Settings) -> bytes:
    return webhook_secret(settings)


@pytest.fixture
async def user(client: httpx.AsyncClient, services: AppServices) -> dict[str, Any]:
    body = await verified_user(client, services)
    body["id"] = body["user"]["id"]
    return body


async def create_order(
    client: httpx.AsyncClient, user: dict[str, Any], plan: str = "month", auto_renew: bool = True
) -> str:
    response = await client.post(
        "/api/v1/subscriptions/create",
        json={"plan": plan, "autoRenew": auto_renew},
        headers=user["headers"],
    )
    assert response.status_code == 201, response.text
    order_id: str = response.json()["orderId"]
    return order_id


async def notify(
    client: httpx.AsyncClient,
    secret: bytes,
    kind: str,
    fields: dict[str, Any],
    *,
    as_json: bool = False,
) -> httpx.Response:
    body, headers = signed_notification(secret, fields, as_json=as_json)
    return await client.post(f"/api/v1/subscriptions/webhook/{kind}", content=body, headers=headers)


async def pay(
    client: httpx.AsyncClient,
    services: AppServices,
    secret: bytes,
    user: dict[str, Any],
    order_id: str,
    *,
    amount: int = 990,
    token: str | None = None,
    when: datetime | None = None,
) -> dict[str, Any]:
    """Post a Pay for the order; returns the fields sent."""
    fields = payment_fields(
        amount=amount, account_id=user["id"], invoice_id=order_id, token=token, when=when
    )
    response = await notify(client, secret, "pay", fields)
    assert response.status_code == 200, response.text
    assert response.json() == {"code": 0, "success": True}
    await drain(services)
    return fields


async def subscription_status(client: httpx.AsyncClient, user: dict[str, Any]) -> dict[str, Any]:
    response = await client.get("/api/v1/subscriptions/status", headers=user["headers"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
