"""The embedded payments adapter, for runs without CloudPayments credentials.

`SandboxGateway` answers like CloudPayments' API; its payment links open a local checkout page
whose "Pay" button makes `SandboxCheckout` send the notifications CloudPayments would (Check,
then Pay or Fail), form-encoded and signed, through the same verification and processing code
as the real webhook.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment

from core.billing.gateway import CreatedOrder, OrderRequest, SubscriptionRequest
from core.billing.webhooks import Code, Kind, sign
from core.db import Doc

SANDBOX_PATH = "/billing/sandbox"

Deliver = Callable[[Kind | None, bytes, Mapping[str, str], str], Awaitable[Code]]


@dataclass
class SandboxGateway:
    """Creates orders whose links point at the local checkout; remembers subscriptions."""

    base_url: str
    name: str = "sandbox"
    subscriptions: dict[str, SubscriptionRequest] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)

    async def create_order(self, order: OrderRequest) -> CreatedOrder:
        url = f"{self.base_url.rstrip('/')}{SANDBOX_PATH}/{order.invoice_id}"
        return CreatedOrder(id=f"sandbox-{order.invoice_id}", url=url)

    async def create_subscription(self, request: SubscriptionRequest) -> str:
        # Same request id, same subscription: the idempotency CloudPayments gives.
        subscription_id = "sc_" + hashlib.sha256(request.request_id.encode()).hexdigest()[:24]
        self.subscriptions[subscription_id] = request
        return subscription_id

    async def cancel_subscription(self, subscription_id: str, request_id: str) -> None:
        self.cancelled.add(subscription_id)

    async def close(self) -> None:
        return None


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sandbox checkout</title></head>
<body style="font-family: Arial, sans-serif; max-width: 480px; margin: 40px auto; color: #1b1f24;">
<p style="background: #fff4ce; padding: 8px 12px;">Sandbox checkout: no real money moves.
Тестовая оплата: деньги не списываются.</p>
<h1>{{ title }}</h1>
<p>{{ amount }} {{ currency }}{% if auto_renew %} · renews automatically{% endif %}</p>
<p>{{ email }}</p>
{% if message %}<p><strong>{{ message }}</strong></p>{% endif %}
{% if status == "paid" %}
<p><strong>Paid. Оплачено.</strong></p>
<p><a href="{{ return_url }}">Back to the app</a></p>
{% else %}
{% if status == "failed" %}<p><strong>The last attempt was declined.</strong></p>{% endif %}
<form method="post" action="{{ action }}">
<button type="submit" name="outcome" value="pay">Pay {{ amount }} {{ currency }}</button>
<button type="submit" name="outcome" value="fail">Decline the card</button>
</form>
<p><a href="{{ return_url }}">Cancel and go back</a></p>
{% endif %}
</body></html>"""


@cache
def _page_template() -> Any:
    return Environment(autoescape=True).from_string(PAGE)


class SandboxCheckout:
    """The checkout page and what its buttons do."""

    def __init__(
        self,
        secret: bytes,
        deliver: Deliver,
        find_order: Callable[[str], Awaitable[Doc | None]],
        plan_title: Callable[[str, str], str],
        base_url: str,
    ) -> None:
        self._secret = secret
        self._deliver = deliver
        self._find_order = find_order
        self._plan_title = plan_title
        self._base_url = base_url.rstrip("/")

    async def order(self, order_id: str) -> Doc | None:
        if len(order_id) > 64:
            return None
        return await self._find_order(order_id)

    def render(self, order: Doc, message: str = "") -> str:
        language = str(order.get("language") or "en")
        return str(
            _page_template().render(
                title=self._plan_title(str(order["plan"]), language),
                amount=f"{order['amount']:.2f}",
                currency=order["currency"],
                auto_renew=bool(order.get("autoRenew")),
                email=order.get("email", ""),
                status=order["status"],
                message=message,
                action=f"{SANDBOX_PATH}/{order['_id']}",
                return_url=f"{self._base_url}/?payment="
                + ("success" if order["status"] == "paid" else "cancelled"),
            )
        )

    async def submit(self, order: Doc, pay: bool) -> Code:
        """Send Check, then Pay (or Fail) for the order, as CloudPayments would."""
        now = datetime.now(UTC)
        fields: dict[str, str] = {
            "TransactionId": str(secrets.randbelow(9 * 10**14) + 10**14),
            "Amount": f"{order['amount']:.2f}",
            "Currency": str(order["currency"]),
            "PaymentAmount": f"{order['amount']:.2f}",
            "PaymentCurrency": str(order["currency"]),
            "DateTime": now.strftime("%Y-%m-%d %H:%M:%S"),
            "CardFirstSix": "424242",
            "CardLastFour": "4242",
            "CardType": "Visa",
            "CardExpDate": "12/30",
            "TestMode": "1",
            "Status": "Completed",
            "OperationType": "Payment",
            "InvoiceId": str(order["_id"]),
            "AccountId": str(order["userId"]),
            "Email": str(order.get("email", "")),
            "Description": "Sandbox payment",
        }
        code = await self._send(Kind.CHECK, fields)
        if code is not Code.OK:
            return code
        if pay:
            if order.get("autoRenew"):
                fields["Token"] = "tk_sandbox_" + secrets.token_hex(16)
            return await self._send(Kind.PAY, fields)
        fields.update({"Reason": "InsufficientFunds", "ReasonCode": "5051"})
        return await self._send(Kind.FAIL, fields)

    async def _send(self, kind: Kind, fields: dict[str, str]) -> Code:
        body = urlencode(fields).encode("utf-8")
        headers = {"Content-HMAC": sign(self._secret, body)}
        return await self._deliver(kind, body, headers, "application/x-www-form-urlencoded")
