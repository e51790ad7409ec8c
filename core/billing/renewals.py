"""Auto-renewal: a CloudPayments subscription on the card token from the first payment.

State on the user document: `subscription.autoRenew` (what the user sees), and under `billing`
the sealed card token, the sealed CloudPayments subscription id with a random local `ref` used
for compare-and-set, its last known status, and `pendingRenewal` while the subscription is being
created by a background job. Every change is a conditional update on that state, so a user's
cancel, a late job and CloudPayments' own notifications cannot undo one another.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from core.billing.crypto import ReferenceCipher, ReferenceDecryptionError
from core.billing.gateway import GatewayError, PaymentGateway, SubscriptionRequest
from core.billing.mails import BillingMails
from core.billing.webhooks import TERMINAL_STATUSES
from core.db import Database, Doc, parse_object_id
from core.settings import Settings
from core.tasks import RetryableJobError, TaskQueue

log = logging.getLogger(__name__)

SETUP_RENEWAL_JOB = "billing.setup_renewal"
CANCEL_REMOTE_JOB = "billing.cancel_remote_subscription"


def token_context(user_id: str) -> str:
    return f"card-token:{user_id}"


def subscription_context(user_id: str) -> str:
    return f"cloudpayments-subscription:{user_id}"


def _cancel_request_id(subscription_id: str) -> str:
    return "cancel-" + hashlib.sha256(subscription_id.encode()).hexdigest()[:24]


class Renewals:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        gateway: PaymentGateway,
        cipher: ReferenceCipher,
        queue: TaskQueue,
        mails: BillingMails,
        clock: Callable[[], datetime],
    ) -> None:
        self._settings = settings
        self._users = db["users"]
        self._gateway = gateway
        self._cipher = cipher
        self._queue = queue
        self._mails = mails
        self._now = clock

    def current_subscription_id(self, user: Doc) -> str | None:
        """The user's CloudPayments subscription id, opened; None when there is none."""
        sealed = (user.get("billing") or {}).get("subscriptionId")
        if sealed is None:
            return None
        try:
            return self._cipher.decrypt(sealed, subscription_context(str(user["_id"])))
        except ReferenceDecryptionError:
            log.error("a stored subscription id does not open", extra={"user": str(user["_id"])})
            return None

    async def arm(self, user_id: ObjectId, token: str, plan: str, transaction_id: str) -> None:
        """Keep the card token (sealed) and set up the renewal in the background."""
        uid = str(user_id)
        await self._users.update_one(
            {"_id": user_id},
            {
                "$set": {
                    "billing.cardToken": self._cipher.encrypt(token, token_context(uid)),
                    "billing.pendingRenewal": {"transactionId": transaction_id, "plan": plan},
                    "subscription.autoRenew": True,
                }
            },
        )
        await self._queue.enqueue(
            SETUP_RENEWAL_JOB, {"userId": uid, "transactionId": transaction_id}
        )

    async def setup(self, payload: dict[str, Any]) -> None:
        """Job: create the CloudPayments subscription that renews from the end of access."""
        user_id = parse_object_id(str(payload.get("userId")))
        txn = str(payload.get("transactionId"))
        if user_id is None:
            return
        pending = {"_id": user_id, "billing.pendingRenewal.transactionId": txn}
        user = await self._users.find_one(pending)
        if user is None:
            return  # cancelled or superseded before the job ran
        uid = str(user_id)
        billing: Doc = user["billing"]
        plan_id = str(billing["pendingRenewal"]["plan"])
        plan = self._settings.plans.get(plan_id)
        ends: datetime | None = (user.get("subscription") or {}).get("endDate")
        if plan is None or ends is None or ends <= self._now():
            await self._give_up(user_id, txn, "no paid period to renew from")
            return
        try:
            token = self._cipher.decrypt(billing.get("cardToken"), token_context(uid))
        except ReferenceDecryptionError:
            await self._give_up(user_id, txn, "the card token does not open")
            return
        title = plan.title_en if user.get("language") == "en" else plan.title_ru
        try:
            subscription_id = await self._gateway.create_subscription(
                SubscriptionRequest(
                    token=token,
                    account_id=uid,
                    amount=Decimal(plan.price),
                    currency=plan.currency,
                    interval=plan.interval,
                    period=plan.period,
                    start_date=ends,
                    email=str(user["email"]),
                    description=f"Interview Platform: {title}",
                    request_id=f"subscription-{txn}",
                )
            )
        except GatewayError as exc:
            if exc.retryable:
                raise RetryableJobError(exc.message) from exc
            await self._give_up(user_id, txn, exc.message)
            return
        sealed = self._cipher.encrypt(subscription_id, subscription_context(uid))
        stored = await self._users.update_one(
            pending,
            {
                "$set": {
                    "billing.subscriptionId": sealed,
                    "billing.subscriptionRef": secrets.token_hex(8),
                    "billing.subscriptionStatus": "Active",
                    "billing.subscriptionCounter": 0,
                    "billing.subscriptionPlan": plan_id,
                    "billing.subscriptionAmountMinor": plan.price * 100,
                    "billing.subscriptionCurrency": plan.currency,
                    "subscription.autoRenew": True,
                },
                "$unset": {"billing.pendingRenewal": ""},
            },
        )
        if stored.modified_count == 0:
            # The user cancelled (or paid again) while it was being created: undo it.
            await self.cancel_remote(uid, sealed)
            return
        previous = billing.get("subscriptionId")
        if previous is not None and billing.get("subscriptionStatus") not in TERMINAL_STATUSES:
            await self.cancel_remote(uid, previous)
        log.info("renewal set up", extra={"user": uid})

    async def _give_up(self, user_id: ObjectId, txn: str, reason: str) -> None:
        log.warning("renewal not set up", extra={"user": str(user_id), "reason": reason})
        await self._users.update_one(
            {"_id": user_id, "billing.pendingRenewal.transactionId": txn},
            {"$set": {"subscription.autoRenew": False}, "$unset": {"billing.pendingRenewal": ""}},
        )

    async def disable(self, user_id: ObjectId, *, notify: bool) -> bool:
        """Turn auto-renewal off (access stays until endDate); False when it was already off."""
        before = await self._users.find_one_and_update(
            {"_id": user_id, "subscription.autoRenew": True},
            {"$set": {"subscription.autoRenew": False}, "$unset": {"billing.pendingRenewal": ""}},
            return_document=ReturnDocument.BEFORE,
        )
        if before is None:
            return False
        billing: Doc = before.get("billing") or {}
        sealed = billing.get("subscriptionId")
        if sealed is not None and billing.get("subscriptionStatus") not in TERMINAL_STATUSES:
            await self._users.update_one(
                {
                    "_id": user_id,
                    "billing.subscriptionRef": billing.get("subscriptionRef"),
                    "billing.subscriptionStatus": {"$nin": list(TERMINAL_STATUSES)},
                },
                {"$set": {"billing.subscriptionStatus": "Cancelled"}},
            )
            await self.cancel_remote(str(user_id), sealed)
        if notify:
            await self._mails.cancelled(before, (before.get("subscription") or {}).get("endDate"))
        return True

    async def cancel_remote(self, user_id: str, sealed: Any) -> None:
        """Cancel at CloudPayments now; when it cannot be reached, keep trying in a job."""
        try:
            await self._cancel(user_id, sealed)
        except RetryableJobError:
            await self._queue.enqueue(
                CANCEL_REMOTE_JOB, {"userId": user_id, "subscription": sealed}
            )

    async def cancel_remote_job(self, payload: dict[str, Any]) -> None:
        await self._cancel(str(payload.get("userId")), payload.get("subscription"))

    async def _cancel(self, user_id: str, sealed: Any) -> None:
        try:
            subscription_id = self._cipher.decrypt(sealed, subscription_context(user_id))
        except ReferenceDecryptionError:
            log.error("cannot cancel: the subscription id does not open", extra={"user": user_id})
            return
        try:
            await self._gateway.cancel_subscription(
                subscription_id, _cancel_request_id(subscription_id)
            )
        except GatewayError as exc:
            if exc.retryable:
                raise RetryableJobError(exc.message) from exc
            # Already cancelled or unknown there: nothing left to stop.
            log.warning(
                "subscription cancel refused", extra={"user": user_id, "error": exc.message}
            )
            return
        log.info("subscription cancelled at the provider", extra={"user": user_id})
