"""Marketing campaigns: segments, once-per-user sending, one-click unsubscribe, mail events."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections import defaultdict
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from core.db import Database, Doc, parse_object_id
from core.errors import AppError, Conflict, NotFound
from core.mail.base import MailSender
from core.mail.render import render
from core.security import sign, verify_signature
from core.settings import Settings
from core.tasks import JobRegistry

if TYPE_CHECKING:
    from core.container import Infrastructure

log = logging.getLogger(__name__)

RUN_DUE_JOB = "campaigns.run_due"
MarketingTemplate = Literal["comeback", "subscription_ending"]
MARKETING_TEMPLATES: tuple[MarketingTemplate, ...] = ("comeback", "subscription_ending")
Segment = Literal["inactive_7d", "subscription_ends_3d", "all_consented"]
SEGMENTS: tuple[Segment, ...] = ("inactive_7d", "subscription_ends_3d", "all_consented")
INACTIVE_FOR = timedelta(days=7)
ENDING_WITHIN = timedelta(days=3)
BATCH = 200
DUE_CAMPAIGNS_PER_RUN = 20

# SendPulse's event names (SMTP and Email service webhooks) -> what the summary counts.
_EVENT_NAMES = {
    "sent": "sent",
    "delivered": "delivered",
    "failed": "undelivered not_delivered bounce bounced hard_bounce hard_bounces soft_bounce "
    "soft_bounces failed error",
    "opened": "open opened",
    "clicked": "click clicked redirect",
    "spam": "spam",
    "unsubscribed": "unsubscribe unsubscribed",
}
EVENT_KINDS = {name: kind for kind, names in _EVENT_NAMES.items() for name in names.split()}
# Events that mean "stop mailing me": they withdraw marketing consent.
OPT_OUT_KINDS = ("spam", "unsubscribed")


def _derive(secret: str, purpose: str) -> str:
    """A key for one purpose, so a leaked link signature says nothing about any other secret."""
    return sign(secret, purpose)


def _parse_time(value: Any, default: datetime) -> datetime:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 10**11:
        return datetime.fromtimestamp(value, UTC)
    return default


def _text(value: Any, limit: int) -> str:
    if isinstance(value, int | str) and not isinstance(value, bool):
        return str(value).strip()[:limit]
    return ""


class CampaignService:
    def __init__(
        self, settings: Settings, db: Database, sender: MailSender, max_sends_per_run: int = 2000
    ) -> None:
        self._settings = settings
        self._campaigns = db["campaigns"]
        self._deliveries = db["campaign_deliveries"]
        self._events = db["mail_events"]
        self._users = db["users"]
        self._interviews = db["interviews"]
        self._sender = sender
        # One run stays well inside a worker's job timeout; the next beat tick goes on.
        self._max_sends = max_sends_per_run
        jwt_secret = settings.jwt_secret.get_secret_value()
        self._unsubscribe_key = _derive(jwt_secret, "unsubscribe-link:v1")
        token = settings.mail_webhook_token
        self._webhook_token = (
            token.get_secret_value() if token else _derive(jwt_secret, "mail-webhook-token:v1")
        )

    @property
    def _base(self) -> str:
        return self._settings.public_base_url.rstrip("/")

    # --- links and tokens ----------------------------------------------------------------

    def unsubscribe_url(self, user_id: str) -> str:
        query = urlencode({"u": user_id, "s": sign(self._unsubscribe_key, user_id)})
        return f"{self._base}/unsubscribe?{query}"

    async def unsubscribe(self, user_id: str, signature: str) -> str:
        """Withdraw marketing consent for a signed link; returns the user's language."""
        oid = parse_object_id(user_id)
        # compare_digest refuses non-ASCII text with TypeError; such a tag is simply wrong.
        valid = signature.isascii() and verify_signature(self._unsubscribe_key, user_id, signature)
        if oid is None or not valid:
            raise AppError("This unsubscribe link is not valid", code="invalid_signature")
        user = await self._users.find_one_and_update(
            {"_id": oid},
            {"$set": {"marketingConsent": False, "marketingConsentChangedAt": datetime.now(UTC)}},
            projection={"language": 1},
        )
        log.info("unsubscribed", extra={"user": user_id})
        return str((user or {}).get("language", "ru"))

    def check_webhook_token(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self._webhook_token.encode())

    def events_webhook_url(self) -> str:
        """The URL to give SendPulse for event webhooks (it carries the secret token)."""
        return f"{self._base}/api/v1/mail/events?{urlencode({'token': self._webhook_token})}"

    # --- campaigns --------------------------------------------------------------------------

    async def create(
        self, *, name: str, template: str, segment: str, send_at: datetime, admin_id: str
    ) -> Doc:
        if template not in MARKETING_TEMPLATES or segment not in SEGMENTS or not name.strip():
            raise AppError(
                "Give a name, a marketing template and a segment",
                code="invalid_campaign",
                status=422,
            )
        now = datetime.now(UTC)
        doc: Doc = {
            "name": name.strip(),
            "template": template,
            "segment": segment,
            "sendAt": send_at.astimezone(UTC),
            "status": "scheduled",
            "createdBy": parse_object_id(admin_id),
            "createdAt": now,
            "startedAt": None,
            "finishedAt": None,
        }
        result = await self._campaigns.insert_one(doc)
        doc["_id"] = result.inserted_id
        return doc

    async def list_campaigns(self, skip: int, limit: int) -> tuple[list[Doc], int]:
        cursor = (
            self._campaigns.find({})
            .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
            .skip(skip)
            .limit(limit)
        )
        return [d async for d in cursor], await self._campaigns.count_documents({})

    async def get(self, campaign_id: str) -> Doc:
        oid = parse_object_id(campaign_id)
        doc = await self._campaigns.find_one({"_id": oid}) if oid else None
        if doc is None:
            raise NotFound("No such campaign", code="campaign_not_found")
        return doc

    async def cancel(self, campaign_id: str) -> Doc:
        """Cancel a campaign that has not started sending."""
        doc = await self.get(campaign_id)
        cancelled = await self._campaigns.find_one_and_update(
            {"_id": doc["_id"], "status": "scheduled"},
            {"$set": {"status": "cancelled", "finishedAt": datetime.now(UTC)}},
            return_document=ReturnDocument.AFTER,
        )
        if cancelled is None:
            raise Conflict("The campaign has already started or ended", code="campaign_started")
        return cancelled

    async def summary(self, campaign_oid: ObjectId) -> dict[str, int]:
        """Recipients, sends and failures from our records; the rest from SendPulse's events."""
        counts = {
            status: await self._deliveries.count_documents(
                {"campaignId": campaign_oid, "status": status}
            )
            for status in ("pending", "sent", "failed")
        }

        async def people(*kinds: str) -> int:
            emails = await self._events.distinct(
                "email", {"campaignId": campaign_oid, "kind": {"$in": list(kinds)}}
            )
            return len(emails)

        return {
            "recipients": sum(counts.values()),
            "pending": counts["pending"],
            "sent": counts["sent"],
            # Refused at sending, or bounced later (SendPulse reports it as an event).
            "failed": counts["failed"] + await people("failed"),
            "delivered": await people("delivered"),
            # A click proves an open even when the tracking pixel was blocked.
            "opened": await people("opened", "clicked"),
            "clicked": await people("clicked"),
            "unsubscribed": await people(*OPT_OUT_KINDS),
        }

    # --- sending --------------------------------------------------------------------------

    async def run_due(self, now: datetime | None = None) -> int:
        """Send every due campaign to its segment; returns the number of messages attempted."""
        now = now or datetime.now(UTC)
        due = [
            d
            async for d in self._campaigns.find(
                {"status": {"$in": ["scheduled", "sending"]}, "sendAt": {"$lte": now}}
            )
            .sort("sendAt", ASCENDING)
            .limit(DUE_CAMPAIGNS_PER_RUN)
        ]
        attempted = 0
        for campaign in due:
            attempted += await self._run(campaign, now, self._max_sends - attempted)
            if attempted >= self._max_sends:
                break
        return attempted

    async def _run(self, campaign: Doc, now: datetime, budget: int) -> int:
        cid = campaign["_id"]
        claimed = await self._campaigns.update_one(
            {"_id": cid, "status": "scheduled"}, {"$set": {"status": "sending", "startedAt": now}}
        )
        if claimed.modified_count == 0:
            # Cancelled (or finished) since it was found due: only a started one goes on.
            current = await self._campaigns.find_one({"_id": cid}, {"status": 1})
            if current is None or current["status"] != "sending":
                return 0
        attempted = 0
        async with aclosing(self._recipients(campaign["segment"], now)) as batches:
            async for batch in batches:
                # A cheap pre-filter for reruns; the unique index is what guarantees once.
                ids = [u["_id"] for u in batch]
                done = set(
                    await self._deliveries.distinct(
                        "userId", {"campaignId": cid, "userId": {"$in": ids}}
                    )
                )
                for user in batch:
                    if user["_id"] in done:
                        continue
                    if attempted >= budget:
                        log.info("campaign paused", extra={"campaign": str(cid), "sent": attempted})
                        return attempted
                    if await self._deliver(campaign, user):
                        attempted += 1
        await self._campaigns.update_one(
            {"_id": cid, "status": "sending"},
            {"$set": {"status": "sent", "finishedAt": datetime.now(UTC)}},
        )
        log.info("campaign sent", extra={"campaign": str(cid), "sent": attempted})
        return attempted

    async def _recipients(self, segment: str, now: datetime) -> AsyncGenerator[list[Doc]]:
        """Consenting, verified users of the segment, in batches (keyset pagination by _id)."""
        query: Doc = {"marketingConsent": True, "isEmailVerified": True}
        if segment == "subscription_ends_3d":
            query["subscription.isActive"] = True
            query["subscription.endDate"] = {"$gt": now, "$lte": now + ENDING_WITHIN}
        elif segment == "inactive_7d":
            # Someone who joined yesterday has not been inactive for a week.
            query["registrationDate"] = {"$lte": now - INACTIVE_FOR}
        elif segment != "all_consented":
            raise ValueError(f"unknown segment {segment!r}")
        projection = {"email": 1, "language": 1, "subscription": 1}
        last: ObjectId | None = None
        while True:
            page_query = query if last is None else {**query, "_id": {"$gt": last}}
            batch = [
                d
                async for d in self._users.find(page_query, projection)
                .sort("_id", ASCENDING)
                .limit(BATCH)
            ]
            if not batch:
                return
            last = batch[-1]["_id"]
            if segment == "inactive_7d":
                active = set(
                    await self._interviews.distinct(
                        "userId",
                        {
                            "userId": {"$in": [u["_id"] for u in batch]},
                            "startTime": {"$gte": now - INACTIVE_FOR},
                        },
                    )
                )
                batch = [u for u in batch if u["_id"] not in active]
            if batch:
                yield batch

    async def _deliver(self, campaign: Doc, user: Doc) -> bool:
        """Claim (campaign, user) first, then send; False when someone already claimed it."""
        now = datetime.now(UTC)
        try:
            inserted = await self._deliveries.insert_one(
                {
                    "campaignId": campaign["_id"],
                    "userId": user["_id"],
                    "email": user["email"],
                    "status": "pending",
                    "createdAt": now,
                }
            )
        except DuplicateKeyError:
            return False
        # A crash between the claim and the send leaves the row "pending": the user misses
        # this campaign rather than getting it twice.
        sub = user.get("subscription") or {}
        end: datetime | None = sub.get("endDate")
        context = {
            "link": f"{self._base}/",
            "unsubscribe_url": self.unsubscribe_url(str(user["_id"])),
            "end_date": end.strftime("%d.%m.%Y") if end else "",
            "auto_renew": bool(sub.get("autoRenew")),
        }
        update: Doc
        try:
            message = render(
                campaign["template"], user.get("language", "ru"), user["email"], context
            )
            message_id = await self._sender.send(message)
            update = {"status": "sent", "messageId": message_id, "sentAt": datetime.now(UTC)}
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Adapter errors name the failure, never the message or credentials.
            update = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:300]}
            log.warning(
                "campaign mail failed",
                extra={"campaign": str(campaign["_id"]), "user": str(user["_id"])},
            )
        await self._deliveries.update_one({"_id": inserted.inserted_id}, {"$set": update})
        return True

    # --- provider events ----------------------------------------------------------------------

    async def record_events(self, events: list[Any]) -> int:
        """Store SendPulse's events (idempotently), tied to our deliveries; returns how many."""
        now = datetime.now(UTC)
        parsed: list[Doc] = []
        for raw in events:
            if not isinstance(raw, dict):
                continue
            name = _text(raw.get("event"), 40).lower()
            email = _text(raw.get("email") or raw.get("recipient"), 254).lower()
            if not name or not email:
                continue
            message_id = _text(raw.get("message_id") or raw.get("messageId"), 200)
            campaign_ref = _text(
                raw.get("campaignId") or raw.get("campaign_id") or raw.get("tag"), 64
            )
            timestamp = _text(raw.get("timestamp"), 20)
            link = _text(raw.get("link_url") or raw.get("link"), 2000)
            key = "|".join((message_id, campaign_ref, email, name, timestamp, link))
            parsed.append(
                {
                    "_id": hashlib.sha256(key.encode()).hexdigest(),
                    "event": name,
                    "kind": EVENT_KINDS.get(name, "other"),
                    "email": email,
                    "messageId": message_id or None,
                    "campaignRef": campaign_ref or None,
                    "at": _parse_time(raw.get("timestamp"), now),
                    "receivedAt": now,
                }
            )
        if not parsed:
            return 0
        await self._attach_deliveries(parsed)
        stored = len(parsed)
        try:
            await self._events.insert_many(parsed, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            stored -= len(errors)  # SendPulse delivered these before: already stored
        opted_out = sorted({e["email"] for e in parsed if e["kind"] in OPT_OUT_KINDS})
        if opted_out:
            await self._users.update_many(
                {"email": {"$in": opted_out}},
                {"$set": {"marketingConsent": False, "marketingConsentChangedAt": now}},
            )
        return stored

    async def _attach_deliveries(self, events: list[Doc]) -> None:
        """Link events to deliveries by provider message id, or by campaign id plus address."""
        by_message: dict[str, Doc] = {}
        ids = sorted({e["messageId"] for e in events if e["messageId"]})
        if ids:
            async for d in self._deliveries.find({"messageId": {"$in": ids}}):
                by_message[d["messageId"]] = d
        wanted: dict[ObjectId, set[str]] = defaultdict(set)
        for e in events:
            oid = parse_object_id(e["campaignRef"] or "")
            if e["messageId"] not in by_message and oid is not None:
                wanted[oid].add(e["email"])
        by_address: dict[tuple[ObjectId, str], Doc] = {}
        for oid, emails in wanted.items():
            async for d in self._deliveries.find(
                {"campaignId": oid, "email": {"$in": list(emails)}}
            ):
                by_address[(oid, d["email"])] = d
        for e in events:
            oid = parse_object_id(e["campaignRef"] or "")
            delivery = by_message.get(e["messageId"] or "") or (
                by_address.get((oid, e["email"])) if oid else None
            )
            e["campaignId"] = delivery["campaignId"] if delivery else None
            e["deliveryId"] = delivery["_id"] if delivery else None
            e["userId"] = delivery["userId"] if delivery else None


def build_campaigns(infra: Infrastructure) -> CampaignService:
    """The campaign service on the shared infrastructure (web nodes and workers alike)."""
    return CampaignService(infra.settings, infra.db, infra.mail_sender)


def register_campaign_jobs(registry: JobRegistry, service: CampaignService) -> None:
    """`campaigns.run_due`: beat runs it every minute; reruns never mail anyone twice."""

    async def run_due(payload: dict[str, Any]) -> None:
        attempted = await service.run_due()
        if attempted:
            log.info("due campaigns run", extra={"attempted": attempted})

    registry.register(RUN_DUE_JOB, run_due)
