"""The payments port: what billing asks of a payment provider, and the errors it can get."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol


class GatewayError(Exception):
    """The provider refused or could not be reached; `retryable` says whether to try again."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """An invoice with a payment link (CloudPayments `orders/create`)."""

    invoice_id: str
    account_id: str
    amount: Decimal
    currency: str
    description: str
    email: str
    success_url: str
    fail_url: str
    request_id: str


@dataclass(frozen=True, slots=True)
class CreatedOrder:
    id: str
    url: str


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    """A recurring charge on a saved card (CloudPayments `subscriptions/create`)."""

    token: str
    account_id: str
    amount: Decimal
    currency: str
    interval: str
    period: int
    start_date: datetime
    email: str
    description: str
    request_id: str


class PaymentGateway(Protocol):
    name: str

    async def create_order(self, order: OrderRequest) -> CreatedOrder:
        """Create the invoice; the same `request_id` gives the same order back."""
        ...

    async def create_subscription(self, request: SubscriptionRequest) -> str:
        """Start charging the card every period from `start_date`; return the subscription id."""
        ...

    async def cancel_subscription(self, subscription_id: str, request_id: str) -> None:
        """Stop the recurring charges."""
        ...

    async def close(self) -> None: ...


class PaymentsOff:
    """The gateway of a production run without CloudPayments credentials: nothing is charged.

    Billing checks for it before calling (`BillingService.payments_enabled`); a call that still
    arrives (a renewal job) is refused as a non-retryable provider error.
    """

    name = "off"

    async def create_order(self, order: OrderRequest) -> CreatedOrder:
        raise GatewayError("payments are off on this deployment", retryable=False)

    async def create_subscription(self, request: SubscriptionRequest) -> str:
        raise GatewayError("payments are off on this deployment", retryable=False)

    async def cancel_subscription(self, subscription_id: str, request_id: str) -> None:
        raise GatewayError("payments are off on this deployment", retryable=False)

    async def close(self) -> None:
        return None
