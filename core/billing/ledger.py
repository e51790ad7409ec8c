"""The Payments collection and the subscription it pays for.

One document per CloudPayments transaction (`externalPaymentId` = TransactionId, unique), so
recording is an insert and a duplicate delivery is a `DuplicateKeyError`, even when two arrive
at once. The user's `subscription` is then recomputed from the ledger (`periods.py`) and written
under a per-user sequence number, so a slower recomputation can never overwrite a newer one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from core.billing.periods import Access, PaidPeriod, compute_access, full_refund_times
from core.db import Database, Doc

Clock = Callable[[], datetime]

# Payment statuses (requirements 4.4).
PENDING = "pending"
COMPLETED = "completed"
FAILED = "failed"
REFUNDED = "refunded"

# What a Payments document records (metadata.kind).
KIND_PAYMENT = "payment"
KIND_FAILURE = "failure"
KIND_REFUND = "refund"


def minor_units(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def payment_doc(
    *,
    user_id: ObjectId | None,
    transaction_id: str,
    kind: str,
    status: str,
    amount: Decimal,
    currency: str,
    when: datetime,
    now: datetime,
    plan: str | None = None,
    days: int = 0,
    **metadata: Any,
) -> Doc:
    """A Payments document in the shape of requirements 4.4; extras go under `metadata`."""
    return {
        "userId": user_id,
        "amount": float(amount),
        "currency": currency,
        "status": status,
        "paymentMethod": "card",
        "subscriptionPeriod": plan,
        "transactionDate": when,
        "externalPaymentId": transaction_id,
        "metadata": {
            "kind": kind,
            "amountMinor": minor_units(amount),
            "plan": plan,
            "days": days,
            **{k: v for k, v in metadata.items() if v is not None},
        },
        "createdAt": now,
    }


class Ledger:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.payments = db["payments"]
        self.users = db["users"]
        self._now = clock

    async def record(self, doc: Doc) -> bool:
        """Insert; False when this transaction was already recorded."""
        try:
            await self.payments.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def settle(self, doc: Doc) -> bool:
        """Record a completed payment, or complete its pending (authorized) record.

        True only for the one call that made the payment complete.
        """
        if await self.record(doc):
            return True
        result = await self.payments.update_one(
            {"externalPaymentId": doc["externalPaymentId"], "status": PENDING},
            {"$set": {"status": COMPLETED, "metadata.confirmedAt": self._now()}},
        )
        return result.modified_count == 1

    async def get(self, transaction_id: str) -> Doc | None:
        return await self.payments.find_one({"externalPaymentId": transaction_id})

    async def sync_refund_status(self, transaction_id: str) -> None:
        """Mark the payment refunded once its refunds add up to its amount."""
        total = 0
        async for refund in self.payments.find(
            {"metadata.kind": KIND_REFUND, "metadata.paymentTransactionId": transaction_id},
            {"metadata.amountMinor": 1},
        ):
            total += int(refund["metadata"]["amountMinor"])
        await self.payments.update_one(
            {
                "externalPaymentId": transaction_id,
                "status": COMPLETED,
                "metadata.amountMinor": {"$lte": total},
            },
            {"$set": {"status": REFUNDED, "metadata.refundedAt": self._now()}},
        )

    async def refresh_access(self, user_id: ObjectId) -> Access | None:
        """Recompute the user's subscription from the ledger and store it; None: no such user."""
        ticket = await self.users.find_one_and_update(
            {"_id": user_id},
            {"$inc": {"billing.seq": 1}},
            projection={"billing.seq": 1},
            return_document=ReturnDocument.AFTER,
        )
        if ticket is None:
            return None
        seq = int(ticket["billing"]["seq"])
        # Every ledger write is followed by a ticket of its own, so reading after taking ours
        # sees every write whose ticket came earlier; only the highest ticket's result is kept.
        access = await self._access_from_ledger(user_id)
        await self.users.update_one(
            {"_id": user_id, "billing.appliedSeq": {"$not": {"$gte": seq}}},
            {
                "$set": {
                    "subscription.isActive": access.active(self._now()),
                    "subscription.plan": access.plan,
                    "subscription.startDate": access.start,
                    "subscription.endDate": access.end,
                    "subscription.paymentId": access.payment_id,
                    "billing.appliedSeq": seq,
                }
            },
        )
        return access

    async def _access_from_ledger(self, user_id: ObjectId) -> Access:
        paid: list[Doc] = [
            doc
            async for doc in self.payments.find(
                {
                    "userId": user_id,
                    "metadata.kind": KIND_PAYMENT,
                    "status": {"$in": [COMPLETED, REFUNDED]},
                    "metadata.days": {"$gt": 0},
                }
            )
        ]
        amounts = {d["externalPaymentId"]: int(d["metadata"]["amountMinor"]) for d in paid}
        refunds = [
            (
                r["metadata"]["paymentTransactionId"],
                r["transactionDate"],
                r["metadata"]["amountMinor"],
            )
            async for r in self.payments.find(
                {
                    "metadata.kind": KIND_REFUND,
                    "metadata.paymentTransactionId": {"$in": list(amounts)},
                }
            )
        ]
        refunded = full_refund_times(amounts, refunds)
        return compute_access(
            PaidPeriod(
                payment_id=str(d["_id"]),
                transaction_id=d["externalPaymentId"],
                paid_at=d["transactionDate"],
                days=int(d["metadata"]["days"]),
                plan=str(d["metadata"]["plan"]),
                refunded_at=refunded.get(d["externalPaymentId"]),
            )
            for d in paid
        )

    async def paid_since(self, user_id: ObjectId, since: datetime) -> bool:
        found = await self.payments.find_one(
            {
                "userId": user_id,
                "metadata.kind": KIND_PAYMENT,
                "status": COMPLETED,
                "transactionDate": {"$gt": since},
            },
            {"_id": 1},
        )
        return found is not None

    async def for_user(self, user_id: ObjectId, skip: int, limit: int) -> tuple[list[Doc], int]:
        query = {"userId": user_id}
        total = await self.payments.count_documents(query)
        cursor = self.payments.find(query).sort("transactionDate", -1).skip(skip).limit(limit)
        return [d async for d in cursor], total
