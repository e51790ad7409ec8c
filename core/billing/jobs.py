"""Billing's background jobs: expiry, reminders, renewal set-up, key rotation.

Each periodic job is safe to run any number of times, on any node: a user is picked up by a
query and then changed only by a conditional update that also marks the mail as sent, so a
mail goes out only from the run whose update matched.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any

from core.billing.crypto import ReferenceDecryptionError
from core.billing.renewals import (
    CANCEL_REMOTE_JOB,
    SETUP_RENEWAL_JOB,
    subscription_context,
    token_context,
)
from core.billing.service import BillingService
from core.tasks import JobRegistry

log = logging.getLogger(__name__)

EXPIRE_JOB = "billing.expire_subscriptions"
REMIND_RENEWAL_JOB = "billing.remind_renewals"
REMIND_FAILED_JOB = "billing.remind_failed_payments"
REENCRYPT_JOB = "billing.reencrypt_references"

# With auto-renewal on, CloudPayments charges at endDate and retries for a few days: the
# "expired" mail waits this long so it does not race the renewal.
RENEWAL_GRACE = timedelta(days=3)
# A failed renewal charge is mailed at once; the reminder follows if still unpaid after this.
FAILED_REMINDER_DELAY = timedelta(days=1)

# For Celery beat (workers/celery_app.py) or `BillingService.start_background`: job -> seconds.
PERIODIC_JOBS: dict[str, float] = {
    EXPIRE_JOB: 600.0,
    REMIND_RENEWAL_JOB: 3600.0,
    REMIND_FAILED_JOB: 3600.0,
}


async def expire_subscriptions(billing: BillingService) -> int:
    """Mark subscriptions past endDate inactive and mail each user once."""
    now = billing.now()
    count = 0
    cursor = billing.users.find(
        {"subscription.isActive": True, "subscription.endDate": {"$lte": now}}
    )
    async for user in cursor:
        sub = user["subscription"]
        if sub.get("autoRenew") and sub["endDate"] > now - RENEWAL_GRACE:
            continue
        changed = await billing.users.update_one(
            {
                "_id": user["_id"],
                "subscription.isActive": True,
                "subscription.endDate": sub["endDate"],
            },
            {"$set": {"subscription.isActive": False}},
        )
        if changed.modified_count:
            count += 1
            await billing.mails.expired(user)
    if count:
        log.info("subscriptions expired", extra={"count": count})
    return count


async def remind_renewals(billing: BillingService) -> int:
    """Mail users whose subscription renews within `renewal_reminder_days`, once per period."""
    now = billing.now()
    horizon = now + timedelta(days=billing.settings.renewal_reminder_days)
    count = 0
    cursor = billing.users.find(
        {
            "subscription.isActive": True,
            "subscription.autoRenew": True,
            "subscription.endDate": {"$gt": now, "$lte": horizon},
        }
    )
    async for user in cursor:
        ends = user["subscription"]["endDate"]
        marked = await billing.users.update_one(
            {
                "_id": user["_id"],
                "subscription.endDate": ends,
                "billing.renewalReminderFor": {"$ne": ends},
            },
            {"$set": {"billing.renewalReminderFor": ends}},
        )
        if marked.modified_count:
            count += 1
            await billing.mails.renewal_reminder(
                user, plan=user["subscription"].get("plan"), ends=ends
            )
    return count


async def remind_failed_payments(billing: BillingService) -> int:
    """Remind users whose renewal charge failed a while ago and is still unpaid, once each."""
    now = billing.now()
    count = 0
    cursor = billing.users.find(
        {
            "billing.lastFailure.at": {"$lte": now - FAILED_REMINDER_DELAY},
            "billing.lastFailure.reminded": {"$ne": True},
        }
    )
    async for user in cursor:
        failure = user["billing"]["lastFailure"]
        marked = await billing.users.update_one(
            {
                "_id": user["_id"],
                "billing.lastFailure.transactionId": failure["transactionId"],
                "billing.lastFailure.reminded": {"$ne": True},
            },
            {"$set": {"billing.lastFailure.reminded": True}},
        )
        if marked.modified_count and not await billing.ledger.paid_since(
            user["_id"], failure["at"]
        ):
            count += 1
            await billing.mails.failed_reminder(user)
    return count


async def reencrypt_references(billing: BillingService) -> int:
    """Re-seal card tokens and subscription ids under the current key; returns how many."""
    cipher = billing.cipher
    current = cipher.current_key_id
    fields = {"billing.cardToken": token_context, "billing.subscriptionId": subscription_context}
    count = 0
    for path, context in fields.items():
        cursor = billing.users.find({f"{path}.keyId": {"$exists": True, "$ne": current}}, {path: 1})
        async for user in cursor:
            sealed = user["billing"][path.split(".")[1]]
            uid = str(user["_id"])
            try:
                plain = cipher.decrypt(sealed, context(uid))
            except ReferenceDecryptionError:
                log.error("cannot re-seal: unknown key", extra={"user": uid, "field": path})
                continue
            changed = await billing.users.update_one(
                {"_id": user["_id"], path: sealed},
                {"$set": {path: cipher.encrypt(plain, context(uid))}},
            )
            count += changed.modified_count
    log.info("payment references re-sealed", extra={"count": count})
    return count


def periodic_jobs(billing: BillingService) -> dict[str, tuple[Callable[[], Awaitable[Any]], float]]:
    """The periodic jobs as no-argument callables, for `BillingService.start_background`."""
    return {
        EXPIRE_JOB: (partial(expire_subscriptions, billing), PERIODIC_JOBS[EXPIRE_JOB]),
        REMIND_RENEWAL_JOB: (partial(remind_renewals, billing), PERIODIC_JOBS[REMIND_RENEWAL_JOB]),
        REMIND_FAILED_JOB: (
            partial(remind_failed_payments, billing),
            PERIODIC_JOBS[REMIND_FAILED_JOB],
        ),
    }


def register_billing_jobs(registry: JobRegistry, billing: BillingService) -> None:
    """Register every billing job by name, for Celery workers and the in-process queue."""

    def run(
        fn: Callable[[BillingService], Awaitable[int]],
    ) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def job(payload: dict[str, Any]) -> None:
            await fn(billing)

        return job

    registry.register(EXPIRE_JOB, run(expire_subscriptions))
    registry.register(REMIND_RENEWAL_JOB, run(remind_renewals))
    registry.register(REMIND_FAILED_JOB, run(remind_failed_payments))
    registry.register(REENCRYPT_JOB, run(reencrypt_references))
    registry.register(SETUP_RENEWAL_JOB, billing.renewals.setup)
    registry.register(CANCEL_REMOTE_JOB, billing.renewals.cancel_remote_job)
