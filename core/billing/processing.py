"""Applies CloudPayments notifications: verify, parse, record once, then change the state.

Every handler records first (the unique TransactionId makes a second delivery, or a concurrent
one, a no-op) and changes users only through conditional updates, then answers `Code.OK`.
Pay and Refund cannot be refused (the money has moved), so a Pay that does not match its order
is recorded with an `anomaly` and grants nothing; only Check answers refusal codes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from bson import ObjectId
from pydantic import BaseModel, ValidationError

from core.billing.ledger import (
    COMPLETED,
    FAILED,
    KIND_FAILURE,
    KIND_PAYMENT,
    KIND_REFUND,
    PENDING,
    REFUNDED,
    Ledger,
    minor_units,
    payment_doc,
)
from core.billing.mails import BillingMails
from core.billing.renewals import Renewals
from core.billing.webhooks import (
    TERMINAL_STATUSES,
    CancelNotification,
    Code,
    FailNotification,
    InvalidNotification,
    Kind,
    PaymentNotification,
    RecurrentNotification,
    RefundNotification,
    detect_kind,
    parse_fields,
    verify_signature,
)
from core.db import Database, Doc, parse_object_id
from core.settings import Settings

log = logging.getLogger(__name__)

MODELS: dict[Kind, type[BaseModel]] = {
    Kind.CHECK: PaymentNotification,
    Kind.PAY: PaymentNotification,
    Kind.CONFIRM: PaymentNotification,
    Kind.FAIL: FailNotification,
    Kind.REFUND: RefundNotification,
    Kind.RECURRENT: RecurrentNotification,
    Kind.CANCEL: CancelNotification,
}

ORDER_CREATED = "created"
ORDER_PAID = "paid"
ORDER_FAILED = "failed"


class NotificationProcessor:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        ledger: Ledger,
        renewals: Renewals,
        mails: BillingMails,
        secret: bytes,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._users = db["users"]
        self._orders = db["orders"]
        self._ledger = ledger
        self._renewals = renewals
        self._mails = mails
        self._secret = secret
        self._now = clock

    async def handle(
        self, kind: Kind | None, body: bytes, headers: Mapping[str, str], content_type: str
    ) -> Code:
        """Verify the signature over the raw body, then parse and apply the notification.

        Raises `BadSignature` (nothing was read or changed) or `InvalidNotification`.
        """
        verify_signature(self._secret, body, headers)
        fields = parse_fields(body, content_type)
        kind = kind or detect_kind(fields)
        if kind is None:
            raise InvalidNotification(
                "Check, Pay, Confirm and Cancel look alike: post to /webhook/<kind> or ?kind="
            )
        try:
            notification = MODELS[kind].model_validate(fields)
        except ValidationError as exc:
            wrong = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            raise InvalidNotification(f"invalid {kind} fields: {', '.join(wrong)}") from None
        log.info("billing notification", extra={"kind": str(kind)})
        if isinstance(notification, RecurrentNotification):
            return await self._recurrent(notification)
        if isinstance(notification, RefundNotification):
            return await self._refund(notification)
        if isinstance(notification, CancelNotification):
            return await self._cancel(notification)
        if isinstance(notification, FailNotification):
            return await self._fail(notification)
        assert isinstance(notification, PaymentNotification)
        if kind is Kind.CHECK:
            return await self._check(notification)
        return await self._pay(notification, may_be_authorization=kind is Kind.PAY)

    # --- lookups -----------------------------------------------------------------------------

    async def _user(self, account_id: str | None) -> Doc | None:
        user_id = parse_object_id(account_id or "")
        return await self._users.find_one({"_id": user_id}) if user_id is not None else None

    def _order_code(self, order: Doc | None, n: PaymentNotification) -> Code:
        if order is None:
            return Code.UNKNOWN_ORDER
        if n.account_id != str(order["userId"]):
            return Code.WRONG_ACCOUNT
        if minor_units(n.amount) != int(order["amount"]) * 100 or n.currency != order["currency"]:
            return Code.WRONG_AMOUNT
        return Code.OK

    def _subscription_plan(self, user: Doc, n: PaymentNotification) -> tuple[str | None, Code]:
        """The plan a recurring charge pays for, or the reason it matches nothing."""
        billing: Doc = user.get("billing") or {}
        if n.subscription_id == self._renewals.current_subscription_id(user):
            if minor_units(n.amount) != billing.get(
                "subscriptionAmountMinor"
            ) or n.currency != billing.get("subscriptionCurrency"):
                return None, Code.WRONG_AMOUNT
            return str(billing.get("subscriptionPlan")), Code.OK
        # A subscription this user had before: charged at the price of some plan.
        for plan_id, plan in self._settings.plans.items():
            if plan.price * 100 == minor_units(n.amount) and plan.currency == n.currency:
                return plan_id, Code.OK
        return None, Code.NOT_ACCEPTED

    # --- Check -------------------------------------------------------------------------------

    async def _check(self, n: PaymentNotification) -> Code:
        if n.invoice_id is None:
            if n.subscription_id is None:
                return Code.UNKNOWN_ORDER
            user = await self._user(n.account_id)
            if user is None:
                return Code.WRONG_ACCOUNT
            return self._subscription_plan(user, n)[1]
        order = await self._orders.find_one({"_id": n.invoice_id})
        code = self._order_code(order, n)
        if code is not Code.OK or order is None:
            return code
        if order["status"] == ORDER_PAID:
            return Code.NOT_ACCEPTED
        if order["expiresAt"] <= self._now():
            return Code.EXPIRED
        return Code.OK

    # --- Pay and Confirm ---------------------------------------------------------------------

    async def _pay(self, n: PaymentNotification, *, may_be_authorization: bool) -> Code:
        txn = str(n.transaction_id)
        order: Doc | None = None
        plan_id: str | None = None
        user_id = parse_object_id(n.account_id or "")
        if n.invoice_id is not None:
            order = await self._orders.find_one({"_id": n.invoice_id})
            code = self._order_code(order, n)
            plan_id = str(order["plan"]) if order is not None and code is Code.OK else None
        elif n.subscription_id is not None:
            user = await self._user(n.account_id)
            plan_id, code = self._subscription_plan(user, n) if user else (None, Code.WRONG_ACCOUNT)
        else:
            code = Code.UNKNOWN_ORDER
        plan = self._settings.plans.get(plan_id or "")
        anomaly = code.name.lower() if code is not Code.OK else None
        if anomaly is None and plan is None:
            anomaly = "unknown_plan"
        pending = may_be_authorization and n.status == "Authorized"
        doc = payment_doc(
            user_id=user_id,
            transaction_id=txn,
            kind=KIND_PAYMENT,
            status=PENDING if pending else COMPLETED,
            amount=n.amount,
            currency=n.currency,
            when=n.date_time,
            now=self._now(),
            plan=plan_id,
            days=plan.days if plan is not None and anomaly is None else 0,
            invoiceId=n.invoice_id,
            recurring=n.subscription_id is not None or None,
            cardType=n.card_type,
            cardLastFour=n.card_last_four,
            testMode=n.test_mode,
            anomaly=anomaly,
        )
        if pending:
            await self._ledger.record(doc)  # two-stage: access comes with Confirm
            return Code.OK
        if not await self._ledger.settle(doc):
            return Code.OK  # already applied
        if anomaly is not None or user_id is None or plan_id is None:
            log.error("payment does not match", extra={"transaction": txn, "anomaly": anomaly})
            return Code.OK
        if order is not None:
            await self._orders.update_one(
                {"_id": order["_id"], "status": {"$ne": ORDER_PAID}},
                {"$set": {"status": ORDER_PAID, "paidAt": n.date_time, "transactionId": txn}},
            )
        await self._ledger.sync_refund_status(txn)  # a Refund delivered before this Pay
        access = await self._ledger.refresh_access(user_id)
        renews = bool(order is not None and order.get("autoRenew") and n.token)
        if renews and n.token is not None:
            await self._renewals.arm(user_id, n.token, plan_id, txn)
        elif order is not None and order.get("autoRenew"):
            log.warning("no card token in Pay: auto-renewal not set up", extra={"txn": txn})
        user = await self._users.find_one({"_id": user_id})
        if user is not None:
            await self._mails.receipt(
                user,
                plan=plan_id,
                amount=n.amount,
                currency=n.currency,
                paid_at=n.date_time,
                ends=access.end if access else None,
                transaction_id=txn,
                auto_renew=bool((user.get("subscription") or {}).get("autoRenew")),
            )
        return Code.OK

    # --- Fail --------------------------------------------------------------------------------

    async def _fail(self, n: FailNotification) -> Code:
        txn = str(n.transaction_id)
        user_id = parse_object_id(n.account_id or "")
        recurring = n.subscription_id is not None
        doc = payment_doc(
            user_id=user_id,
            transaction_id=txn,
            kind=KIND_FAILURE,
            status=FAILED,
            amount=n.amount,
            currency=n.currency,
            when=n.date_time,
            now=self._now(),
            invoiceId=n.invoice_id,
            recurring=recurring or None,
            reason=n.reason,
            reasonCode=n.reason_code,
            cardType=n.card_type,
            cardLastFour=n.card_last_four,
        )
        if not await self._ledger.record(doc):
            return Code.OK
        if n.invoice_id is not None:
            # Only an unpaid order turns failed: a Fail after its Pay changes nothing.
            await self._orders.update_one(
                {"_id": n.invoice_id, "status": ORDER_CREATED}, {"$set": {"status": ORDER_FAILED}}
            )
        user = await self._user(n.account_id)
        if user is None:
            return Code.OK
        if recurring:
            await self._users.update_one(
                {"_id": user["_id"], "billing.lastFailure.at": {"$not": {"$gt": n.date_time}}},
                {"$set": {"billing.lastFailure": {"transactionId": txn, "at": n.date_time}}},
            )
        await self._mails.failed(
            user, amount=n.amount, currency=n.currency, reason=n.reason, recurring=recurring
        )
        return Code.OK

    # --- Refund ------------------------------------------------------------------------------

    async def _refund(self, n: RefundNotification) -> Code:
        paid_txn = str(n.payment_transaction_id)
        original = await self._ledger.get(paid_txn)
        user_id: ObjectId | None = (
            original.get("userId") if original else parse_object_id(n.account_id or "")
        )
        doc = payment_doc(
            user_id=user_id,
            transaction_id=str(n.transaction_id),
            kind=KIND_REFUND,
            status=REFUNDED,
            amount=n.amount,
            currency=original["currency"] if original else "RUB",
            when=n.date_time,
            now=self._now(),
            plan=original.get("subscriptionPeriod") if original else None,
            paymentTransactionId=paid_txn,
            invoiceId=n.invoice_id,
        )
        if not await self._ledger.record(doc):
            return Code.OK
        if original is None or user_id is None:
            # The Pay has not arrived yet; it will see this refund when it does.
            log.warning("refund before its payment", extra={"transaction": paid_txn})
            return Code.OK
        await self._ledger.sync_refund_status(paid_txn)
        access = await self._ledger.refresh_access(user_id)
        # Money given back: stop charging the card (access already paid for is kept).
        await self._renewals.disable(user_id, notify=False)
        user = await self._users.find_one({"_id": user_id})
        if user is not None:
            now = self._now()
            await self._mails.refunded(
                user,
                amount=n.amount,
                currency=str(doc["currency"]),
                active=bool(access and access.active(now)),
                ends=access.end if access else None,
            )
        return Code.OK

    # --- Cancel ------------------------------------------------------------------------------

    async def _cancel(self, n: CancelNotification) -> Code:
        txn = str(n.transaction_id)
        if not await self._mark_cancelled(txn, n):
            return Code.OK
        # An authorized payment that was voided grants nothing.
        await self._ledger.payments.update_one(
            {"externalPaymentId": txn, "status": PENDING}, {"$set": {"status": FAILED}}
        )
        user_id = parse_object_id(n.account_id or "")
        if user_id is not None:
            await self._renewals.disable(user_id, notify=True)
        return Code.OK

    async def _mark_cancelled(self, txn: str, n: CancelNotification) -> bool:
        """Mark the transaction cancelled; True only for the first delivery."""
        mark: dict[str, Any] = {"$set": {"metadata.cancelledAt": self._now()}}
        unmarked = {"externalPaymentId": txn, "metadata.cancelledAt": {"$exists": False}}
        if (await self._ledger.payments.update_one(unmarked, mark)).modified_count:
            return True
        doc = payment_doc(
            user_id=parse_object_id(n.account_id or ""),
            transaction_id=txn,
            kind=KIND_PAYMENT,
            status=FAILED,
            amount=n.amount or Decimal(0),
            currency="RUB",
            when=n.date_time or self._now(),
            now=self._now(),
            invoiceId=n.invoice_id,
            cancelledAt=self._now(),
        )
        if await self._ledger.record(doc):
            return True
        # Recorded by a concurrent Pay in between: mark that one.
        return bool((await self._ledger.payments.update_one(unmarked, mark)).modified_count)

    # --- Recurrent ---------------------------------------------------------------------------

    async def _recurrent(self, n: RecurrentNotification) -> Code:
        user = await self._user(n.account_id)
        if user is None:
            log.warning("recurrent notification for an unknown account")
            return Code.OK
        if self._renewals.current_subscription_id(user) != n.id:
            return Code.OK  # about a subscription this user no longer has
        billing: Doc = user.get("billing") or {}
        same = {
            "_id": user["_id"],
            "billing.subscriptionRef": billing.get("subscriptionRef"),
            "billing.subscriptionStatus": {"$nin": list(TERMINAL_STATUSES)},
        }
        if n.status in TERMINAL_STATUSES:
            # Terminal statuses are final: a later "Active" for this subscription is stale.
            changed = await self._users.update_one(
                same, {"$set": {"billing.subscriptionStatus": n.status}}
            )
            if changed.modified_count == 0:
                return Code.OK
            stopped = await self._users.update_one(
                {
                    "_id": user["_id"],
                    "billing.subscriptionRef": billing.get("subscriptionRef"),
                    "subscription.autoRenew": True,
                    "billing.pendingRenewal": {"$exists": False},
                },
                {"$set": {"subscription.autoRenew": False}},
            )
            if stopped.modified_count:
                await self._mails.cancelled(user, (user.get("subscription") or {}).get("endDate"))
            return Code.OK
        # Active <-> PastDue: the charge counter orders them.
        await self._users.update_one(
            {**same, "billing.subscriptionCounter": {"$not": {"$gt": n.counter}}},
            {
                "$set": {
                    "billing.subscriptionStatus": n.status,
                    "billing.subscriptionCounter": n.counter,
                }
            },
        )
        return Code.OK
