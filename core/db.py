"""The MongoDB connection and the indexes every query relies on."""

from __future__ import annotations

import logging
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

log = logging.getLogger(__name__)

Doc = dict[str, Any]

INDEXES: dict[str, list[IndexModel]] = {
    "users": [
        IndexModel([("email", ASCENDING)], unique=True, name="email_unique"),
        IndexModel([("verificationToken", ASCENDING)], sparse=True, name="verification_token"),
        IndexModel([("passwordResetToken", ASCENDING)], sparse=True, name="reset_token"),
        IndexModel([("subscription.endDate", ASCENDING)], name="subscription_end"),
    ],
    "refresh_tokens": [
        IndexModel([("familyId", ASCENDING)], name="family"),
        IndexModel([("userId", ASCENDING)], name="user"),
        IndexModel([("expiresAt", ASCENDING)], expireAfterSeconds=0, name="expires_ttl"),
    ],
    "questions": [
        IndexModel([("slug", ASCENDING)], unique=True, name="slug_unique"),
        IndexModel(
            [("type", ASCENDING), ("level", ASCENDING), ("isActive", ASCENDING)],
            name="type_level_active",
        ),
    ],
    "interviews": [
        IndexModel([("userId", ASCENDING), ("startTime", DESCENDING)], name="user_history"),
        IndexModel([("status", ASCENDING), ("lastActivity", ASCENDING)], name="status_activity"),
        IndexModel(
            [("level", ASCENDING), ("status", ASCENDING), ("overallScore", ASCENDING)],
            name="level_scores",
        ),
        IndexModel([("shareTokenHash", ASCENDING)], sparse=True, name="share_token"),
    ],
    "payments": [
        # One document per CloudPayments transaction: the unique index is what makes a
        # notification delivered twice (or twice at once) apply exactly once.
        IndexModel([("externalPaymentId", ASCENDING)], unique=True, sparse=True, name="txn"),
        IndexModel([("userId", ASCENDING), ("transactionDate", DESCENDING)], name="user_payments"),
        IndexModel(
            [("metadata.paymentTransactionId", ASCENDING)], sparse=True, name="refunded_txn"
        ),
    ],
    "orders": [
        IndexModel([("userId", ASCENDING), ("createdAt", DESCENDING)], name="user_orders"),
    ],
    "support_tickets": [
        IndexModel([("userId", ASCENDING), ("createdAt", DESCENDING)], name="user_tickets"),
        IndexModel([("status", ASCENDING), ("createdAt", DESCENDING)], name="status_created"),
    ],
    "support_ticket_slots": [
        # A user's daily ticket allowance as numbered slots: claiming one is a single atomic
        # upsert, so tickets opened at the same moment get exactly the allowance between them.
        IndexModel([("userId", ASCENDING), ("slot", ASCENDING)], unique=True, name="user_slot"),
        IndexModel([("until", ASCENDING)], expireAfterSeconds=0, name="until_ttl"),
    ],
    "campaigns": [
        IndexModel([("status", ASCENDING), ("sendAt", ASCENDING)], name="status_send_at"),
        IndexModel([("createdAt", DESCENDING)], name="created"),
    ],
    "campaign_deliveries": [
        # Once per user per campaign: the sender inserts here before it sends.
        IndexModel(
            [("campaignId", ASCENDING), ("userId", ASCENDING)],
            unique=True,
            name="campaign_user_unique",
        ),
        IndexModel([("campaignId", ASCENDING), ("status", ASCENDING)], name="campaign_status"),
        IndexModel([("messageId", ASCENDING)], sparse=True, name="message_id"),
    ],
    "mail_events": [
        IndexModel([("campaignId", ASCENDING), ("kind", ASCENDING)], name="campaign_kind"),
        IndexModel([("email", ASCENDING), ("at", DESCENDING)], name="email_events"),
    ],
    "question_changes": [
        IndexModel([("questionId", ASCENDING), ("at", DESCENDING)], name="question_history"),
        IndexModel([("adminId", ASCENDING), ("at", DESCENDING)], name="admin_changes"),
    ],
}


class Database:
    """Owns the AsyncMongoClient; built in the app lifespan, closed there too."""

    def __init__(self, url: str, name: str) -> None:
        self.client: AsyncMongoClient[Doc] = AsyncMongoClient(
            url, tz_aware=True, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000
        )
        self.db: AsyncDatabase[Doc] = self.client[name]

    def __getitem__(self, name: str) -> AsyncCollection[Doc]:
        return self.db[name]

    async def ensure_indexes(self) -> None:
        """Create every index; re-running with the same definitions changes nothing."""
        for collection, models in INDEXES.items():
            await self.db[collection].create_indexes(models)

    async def ping(self) -> bool:
        try:
            await self.client.admin.command("ping")
        except Exception:  # noqa: BLE001 - readiness reports, never raises
            log.warning("mongo ping failed", exc_info=True)
            return False
        return True

    async def close(self) -> None:
        await self.client.close()


def parse_object_id(value: str) -> ObjectId | None:
    """An ObjectId from its hex form, or None for anything else."""
    if not isinstance(value, str) or len(value) != 24:
        return None
    try:
        return ObjectId(value)
    except InvalidId:
        return None
