"""CloudPayments notifications: the signature over the raw body, parsing, typed fields.

CloudPayments posts each notification form-urlencoded (or JSON when chosen in the merchant
settings) and signs the exact bytes it sends: `Content-HMAC` = base64(HMAC-SHA256(API secret,
body)). `X-Content-HMAC` is accepted only when `Content-HMAC` is absent and only over the same
raw bytes: a signature over the URL-decoded text (as some handlers describe it) would not bind
the field boundaries, so a body re-encoded with the same decoded text would verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any, Literal
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_pascal


class Kind(StrEnum):
    CHECK = "check"
    PAY = "pay"
    FAIL = "fail"
    CONFIRM = "confirm"
    REFUND = "refund"
    RECURRENT = "recurrent"
    CANCEL = "cancel"


class Code(IntEnum):
    """The answer codes CloudPayments documents; anything but 0 refuses a Check."""

    OK = 0
    UNKNOWN_ORDER = 10
    WRONG_ACCOUNT = 11
    WRONG_AMOUNT = 12
    NOT_ACCEPTED = 13
    EXPIRED = 20


class BadSignature(Exception):
    """The notification is unsigned or its signature does not match the body."""


class InvalidNotification(Exception):
    """The body cannot be read as a notification of the expected kind."""


def sign(secret: bytes, body: bytes) -> str:
    """The value CloudPayments puts in `Content-HMAC` for `body`."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode("ascii")


def verify_signature(secret: bytes, body: bytes, headers: Mapping[str, str]) -> None:
    """Raise `BadSignature` unless the body carries a valid signature (constant-time check)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    received = lowered.get("content-hmac")
    if received is None:
        received = lowered.get("x-content-hmac")
    if not received:
        raise BadSignature("the notification is not signed")
    expected = sign(secret, body).encode("ascii")
    if not hmac.compare_digest(expected, received.strip().encode("utf-8", "replace")):
        raise BadSignature("the signature does not match the body")


def parse_fields(body: bytes, content_type: str) -> dict[str, Any]:
    """The notification's fields from a form-urlencoded or JSON body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidNotification("the body is not UTF-8") from None
    if not text.strip():
        raise InvalidNotification("the body is empty")
    if "json" in content_type.lower() or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            raise InvalidNotification("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise InvalidNotification("the body must be a JSON object")
        return data
    fields: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key in fields:
            # One meaning per field: a repeated one is how a spliced body would look.
            raise InvalidNotification(f"the field {key!r} is repeated")
        fields[key] = value
    if not fields:
        raise InvalidNotification("the body has no fields")
    return fields


def detect_kind(fields: Mapping[str, Any]) -> Kind | None:
    """The kind when the fields alone tell it; Check, Pay, Confirm and Cancel look alike."""
    if "PaymentTransactionId" in fields:
        return Kind.REFUND
    if "TransactionId" not in fields and "Id" in fields and "Status" in fields:
        return Kind.RECURRENT
    if "ReasonCode" in fields or "Reason" in fields:
        return Kind.FAIL
    return None


def _utc(value: datetime) -> datetime:
    # CloudPayments sends "yyyy-MM-dd HH:mm:ss" in UTC without an offset.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Notification(BaseModel):
    model_config = ConfigDict(alias_generator=to_pascal, extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_missing(cls, data: Any) -> Any:
        # Form bodies send absent optional fields as empty strings.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v != "" and v is not None}
        return data


class PaymentNotification(_Notification):
    """Check, Pay and Confirm (and the payment fields of Fail)."""

    transaction_id: int = Field(gt=0)
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    currency: str = Field(min_length=3, max_length=3)
    date_time: datetime
    invoice_id: str | None = Field(default=None, max_length=64)
    account_id: str | None = Field(default=None, max_length=64)
    subscription_id: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    card_last_four: str | None = Field(default=None, max_length=4)
    card_type: str | None = Field(default=None, max_length=32)
    test_mode: bool = False
    status: str | None = Field(default=None, max_length=32)
    token: str | None = Field(default=None, max_length=512)

    @field_validator("date_time")
    @classmethod
    def _utc_date(cls, value: datetime) -> datetime:
        return _utc(value)


class FailNotification(PaymentNotification):
    reason: str | None = Field(default=None, max_length=256)
    reason_code: int | None = None


class CancelNotification(_Notification):
    transaction_id: int = Field(gt=0)
    amount: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)
    date_time: datetime | None = None
    invoice_id: str | None = Field(default=None, max_length=64)
    account_id: str | None = Field(default=None, max_length=64)

    @field_validator("date_time")
    @classmethod
    def _utc_date(cls, value: datetime | None) -> datetime | None:
        return _utc(value) if value is not None else None


class RefundNotification(_Notification):
    transaction_id: int = Field(gt=0)
    payment_transaction_id: int = Field(gt=0)
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2)
    date_time: datetime
    invoice_id: str | None = Field(default=None, max_length=64)
    account_id: str | None = Field(default=None, max_length=64)

    @field_validator("date_time")
    @classmethod
    def _utc_date(cls, value: datetime) -> datetime:
        return _utc(value)


SubscriptionStatus = Literal["Active", "PastDue", "Cancelled", "Rejected", "Expired"]
TERMINAL_STATUSES = ("Cancelled", "Rejected", "Expired")


class RecurrentNotification(_Notification):
    """A change in a recurring subscription's status (the charges come as Pay and Fail)."""

    id: str = Field(min_length=1, max_length=64)
    account_id: str | None = Field(default=None, max_length=64)
    status: SubscriptionStatus
    successful_transactions_number: int = Field(default=0, ge=0)
    failed_transactions_number: int = Field(default=0, ge=0)
    next_transaction_date: datetime | None = None

    @property
    def counter(self) -> int:
        """Grows with every charge attempt: orders status changes of one subscription."""
        return self.successful_transactions_number + self.failed_transactions_number
