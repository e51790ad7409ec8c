"""A local HTTP server that speaks the slice of CloudPayments' API billing uses, and signed
notifications shaped like the ones CloudPayments posts."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.server import ThreadedServer


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    request_id: str | None
    body: dict[str, Any] | None
    authorized: bool
    replayed: bool


@dataclass
class _State:
    requests: list[RecordedRequest] = field(default_factory=list)
    answers: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: deque[int] = field(default_factory=deque)


def _answer(
    model: Any = None, *, success: bool = True, message: str | None = None
) -> dict[str, Any]:
    return {"Success": success, "Message": message, "Model": model}


class FakeCloudPayments:
    """Run with `with FakeCloudPayments() as fake:`; point the adapter at `fake.url`."""

    def __init__(self, public_id: str = "pk_fake", api_secret: str = "fake-api-secret") -> None:
        self.public_id = public_id
        self.api_secret = api_secret
        self._state = _State()
        self._lock = threading.Lock()
        self._runner: ThreadedServer | None = None
        self.url = ""

    # --- arming and inspecting ----------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next `count` authorised calls with HTTP `status` (before applying them)."""
        with self._lock:
            self._state.failures.extend([status] * count)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.requests)

    def calls(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    @property
    def subscriptions(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._state.subscriptions.items()}

    # --- the API --------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            login, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(login, self.public_id) and hmac.compare_digest(
            password, self.api_secret
        )

    async def _endpoint(self, request: Request) -> JSONResponse:
        path = request.url.path.strip("/")
        request_id = request.headers.get("x-request-id")
        try:
            body = await request.json()
        except ValueError:
            body = None
        authorized = self._authorized(request)
        with self._lock:
            key = (path, request_id or "")
            replayed = request_id is not None and key in self._state.answers
            self._state.requests.append(
                RecordedRequest(path, request_id, body, authorized, replayed)
            )
            if not authorized:
                return JSONResponse({"Message": "Authorization has been denied"}, 401)
            if self._state.failures:
                return JSONResponse({"Message": "unavailable"}, self._state.failures.popleft())
            if replayed:
                status, answer = self._state.answers[key]
                return JSONResponse(answer, status)
            answer = self._apply(path, body if isinstance(body, dict) else {})
            if request_id is not None:
                self._state.answers[key] = (200, answer)
            return JSONResponse(answer)

    def _apply(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if path == "test":
            return _answer(message="fake")
        if path == "orders/create":
            amount = body.get("Amount")
            if not isinstance(amount, int | float) or amount <= 0 or not body.get("Currency"):
                return _answer(success=False, message="Amount and Currency are required")
            order_id = secrets.token_hex(8)
            order = {
                "Id": order_id,
                "Number": len(self._state.orders) + 1,
                "Amount": amount,
                "Currency": body["Currency"],
                "InvoiceId": body.get("InvoiceId"),
                "AccountId": body.get("AccountId"),
                "Email": body.get("Email"),
                "Url": f"https://orders.cloudpayments.example/d/{order_id}",
            }
            self._state.orders[order_id] = order
            return _answer(order)
        if path == "subscriptions/create":
            missing = [
                name
                for name in ("Token", "AccountId", "Amount", "Currency", "Interval", "Period")
                if not body.get(name)
            ]
            if missing or body.get("Interval") not in ("Day", "Week", "Month"):
                return _answer(success=False, message=f"Invalid: {missing or 'Interval'}")
            try:
                datetime.fromisoformat(str(body.get("StartDate")).replace("Z", "+00:00"))
            except ValueError:
                return _answer(success=False, message="StartDate is invalid")
            sub_id = "sc_" + secrets.token_hex(12)
            subscription = {**body, "Id": sub_id, "Status": "Active"}
            self._state.subscriptions[sub_id] = subscription
            return _answer({k: v for k, v in subscription.items() if k != "Token"})
        if path == "subscriptions/cancel":
            found = self._state.subscriptions.get(str(body.get("Id")))
            if found is None:
                return _answer(success=False, message="Subscription is not found")
            found["Status"] = "Cancelled"
            return _answer()
        return _answer(success=False, message=f"unknown method {path}")

    # --- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> FakeCloudPayments:
        paths = ("/test", "/orders/create", "/subscriptions/create", "/subscriptions/cancel")
        app = Starlette(routes=[Route(p, self._endpoint, methods=["POST"]) for p in paths])
        self._runner = ThreadedServer(app, "fake-cloudpayments")
        self.url = self._runner.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()
            self._runner = None


# --- notifications ------------------------------------------------------------------------------


def hmac_header(secret: bytes, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def signed_notification(
    secret: bytes, fields: dict[str, Any], *, as_json: bool = False, header: str = "Content-HMAC"
) -> tuple[bytes, dict[str, str]]:
    """The body and headers CloudPayments would post: form-encoded (default) or JSON."""
    if as_json:
        body = json.dumps(fields, ensure_ascii=False).encode()
        content_type = "application/json"
    else:
        body = urlencode({k: str(v) for k, v in fields.items()}).encode()
        content_type = "application/x-www-form-urlencoded"
    return body, {"Content-Type": content_type, header: hmac_header(secret, body)}


def next_transaction_id() -> int:
    return 10**12 + secrets.randbelow(10**12)


def payment_fields(
    *,
    amount: int | str,
    account_id: str,
    invoice_id: str | None = None,
    subscription_id: str | None = None,
    transaction_id: int | None = None,
    currency: str = "RUB",
    when: datetime | None = None,
    token: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Fields of a Check / Pay / Confirm (and Fail, with Reason and ReasonCode in `extra`)."""
    moment = when or datetime.now(UTC)
    fields: dict[str, Any] = {
        "TransactionId": transaction_id or next_transaction_id(),
        "Amount": f"{float(amount):.2f}",
        "Currency": currency,
        "PaymentAmount": f"{float(amount):.2f}",
        "PaymentCurrency": currency,
        "DateTime": moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "CardFirstSix": "411111",
        "CardLastFour": "1111",
        "CardType": "Visa",
        "CardExpDate": "10/29",
        "TestMode": "0",
        "Status": "Completed",
        "OperationType": "Payment",
        "AccountId": account_id,
        "Email": "",
        "Data": "",
    }
    if invoice_id is not None:
        fields["InvoiceId"] = invoice_id
    if subscription_id is not None:
        fields["SubscriptionId"] = subscription_id
    if token is not None:
        fields["Token"] = token
    fields.update(extra)
    return fields
