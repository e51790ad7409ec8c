"""The production payments adapter: CloudPayments' API over httpx.

HTTP Basic with the Public ID and the API secret, JSON bodies, and one `X-Request-ID` per
logical request, reused on every retry so CloudPayments applies the request once. Every answer
is `{Success, Message, Model}`; a refusal becomes a `CloudPaymentsError`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx

from core.billing.gateway import (
    CreatedOrder,
    GatewayError,
    OrderRequest,
    SubscriptionRequest,
)
from core.tasks import backoff_delay

log = logging.getLogger(__name__)


class CloudPaymentsError(GatewayError):
    """CloudPayments answered `Success: false`, an HTTP error, or not at all."""


def _amount(value: Decimal) -> float:
    # CloudPayments takes amounts as JSON numbers with at most two decimals.
    return float(value.quantize(Decimal("0.01")))


class CloudPaymentsClient:
    """One method per API call used by billing; each returns the answer's `Model`."""

    def __init__(
        self,
        *,
        api_url: str,
        public_id: str,
        api_secret: str,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        max_attempts: int = 3,
        retry_base_delay: float = 0.5,
    ) -> None:
        self._api_url = api_url.rstrip("/")
        self._auth = httpx.BasicAuth(public_id, api_secret)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=timeout)
        self._max_attempts = max_attempts
        self._retry_base_delay = retry_base_delay

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def call(self, path: str, payload: dict[str, Any], request_id: str) -> Any:
        """POST `payload` to `path`; retry transient failures with the same request id."""
        for attempt in range(self._max_attempts):
            try:
                return await self._call_once(path, payload, request_id)
            except CloudPaymentsError as exc:
                if not exc.retryable or attempt + 1 >= self._max_attempts:
                    raise
                log.warning(
                    "cloudpayments call failed, retrying",
                    extra={"path": path, "attempt": attempt + 1, "error": exc.message},
                )
                await asyncio.sleep(backoff_delay(attempt, self._retry_base_delay, 5.0))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _call_once(self, path: str, payload: dict[str, Any], request_id: str) -> Any:
        try:
            response = await self._http.post(
                f"{self._api_url}/{path.lstrip('/')}",
                json=payload,
                auth=self._auth,
                headers={"X-Request-ID": request_id},
            )
        except httpx.TransportError as exc:
            raise CloudPaymentsError(f"{path}: {type(exc).__name__}", retryable=True) from exc
        if response.status_code in (401, 403):
            raise CloudPaymentsError(
                f"{path}: the Public ID or API secret was refused", retryable=False
            )
        if response.status_code == 429 or response.status_code >= 500:
            raise CloudPaymentsError(f"{path}: HTTP {response.status_code}", retryable=True)
        if response.status_code != 200:
            raise CloudPaymentsError(f"{path}: HTTP {response.status_code}", retryable=False)
        try:
            body = response.json()
        except ValueError:
            raise CloudPaymentsError(f"{path}: the answer is not JSON", retryable=True) from None
        if not isinstance(body, dict) or "Success" not in body:
            raise CloudPaymentsError(f"{path}: unexpected answer", retryable=False)
        if body["Success"] is not True:
            message = body.get("Message") or "refused"
            raise CloudPaymentsError(f"{path}: {message}", retryable=False)
        return body.get("Model")

    async def create_order(
        self,
        *,
        amount: Decimal,
        currency: str,
        description: str,
        email: str,
        account_id: str,
        invoice_id: str,
        success_url: str,
        fail_url: str,
        request_id: str,
    ) -> CreatedOrder:
        """`orders/create`: an invoice whose `Url` is the payment page."""
        model = await self.call(
            "orders/create",
            {
                "Amount": _amount(amount),
                "Currency": currency,
                "Description": description,
                "Email": email,
                "AccountId": account_id,
                "InvoiceId": invoice_id,
                "RequireConfirmation": False,
                "SendEmail": False,
                "SuccessRedirectUrl": success_url,
                "FailRedirectUrl": fail_url,
            },
            request_id,
        )
        if not isinstance(model, dict) or not model.get("Url") or not model.get("Id"):
            raise CloudPaymentsError("orders/create: no Url or Id in the answer", retryable=False)
        return CreatedOrder(id=str(model["Id"]), url=str(model["Url"]))

    async def create_subscription(
        self,
        *,
        token: str,
        account_id: str,
        amount: Decimal,
        currency: str,
        interval: str,
        period: int,
        start_date: datetime,
        email: str,
        description: str,
        request_id: str,
    ) -> str:
        """`subscriptions/create`: charge the saved card every `period` `interval`s."""
        start = start_date.astimezone(UTC).replace(microsecond=0, tzinfo=None)
        model = await self.call(
            "subscriptions/create",
            {
                "Token": token,
                "AccountId": account_id,
                "Description": description,
                "Email": email,
                "Amount": _amount(amount),
                "Currency": currency,
                "RequireConfirmation": False,
                "StartDate": start.isoformat() + "Z",
                "Interval": interval,
                "Period": period,
            },
            request_id,
        )
        if not isinstance(model, dict) or not model.get("Id"):
            raise CloudPaymentsError("subscriptions/create: no Id in the answer", retryable=False)
        return str(model["Id"])

    async def cancel_subscription(self, subscription_id: str, request_id: str) -> None:
        """`subscriptions/cancel`."""
        await self.call("subscriptions/cancel", {"Id": subscription_id}, request_id)


class CloudPaymentsGateway:
    """The `PaymentGateway` port over `CloudPaymentsClient`."""

    name = "cloudpayments"

    def __init__(self, client: CloudPaymentsClient) -> None:
        self.client = client

    async def create_order(self, order: OrderRequest) -> CreatedOrder:
        return await self.client.create_order(
            amount=order.amount,
            currency=order.currency,
            description=order.description,
            email=order.email,
            account_id=order.account_id,
            invoice_id=order.invoice_id,
            success_url=order.success_url,
            fail_url=order.fail_url,
            request_id=order.request_id,
        )

    async def create_subscription(self, request: SubscriptionRequest) -> str:
        return await self.client.create_subscription(
            token=request.token,
            account_id=request.account_id,
            amount=request.amount,
            currency=request.currency,
            interval=request.interval,
            period=request.period,
            start_date=request.start_date,
            email=request.email,
            description=request.description,
            request_id=request.request_id,
        )

    async def cancel_subscription(self, subscription_id: str, request_id: str) -> None:
        await self.client.cancel_subscription(subscription_id, request_id)

    async def close(self) -> None:
        await self.client.close()
