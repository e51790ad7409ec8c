"""Billing: plans, orders, subscription status, the free tier, and the webhook entry point."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from core.billing.crypto import ReferenceCipher
from core.billing.gateway import GatewayError, OrderRequest, PaymentGateway, PaymentsOff
from core.billing.ledger import Ledger
from core.billing.mails import BillingMails
from core.billing.processing import ORDER_CREATED, NotificationProcessor
from core.billing.renewals import Renewals
from core.billing.sandbox import SandboxCheckout, SandboxGateway
from core.billing.webhooks import Code, Kind
from core.db import Database, Doc, parse_object_id
from core.errors import AppError, Conflict, Forbidden, NotFound, PaymentRequired
from core.mailing import Mailer
from core.settings import Plan, Settings
from core.tasks import TaskQueue, periodic

log = logging.getLogger(__name__)

ORDER_TTL = timedelta(hours=24)


class PaymentsUnavailable(AppError):
    """Subscriptions are off on this deployment (production without CloudPayments)."""

    status = 503
    code = "payments_unavailable"


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class FreeTier:
    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    active: bool
    plan: str | None
    started_at: datetime | None
    expires_at: datetime | None
    auto_renew: bool
    free_tier: FreeTier


class BillingService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        mailer: Mailer,
        queue: TaskQueue,
        gateway: PaymentGateway,
        cipher: ReferenceCipher,
        webhook_secret: bytes,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.gateway = gateway
        self.cipher = cipher
        self.queue = queue
        self.now = clock or (lambda: datetime.now(UTC))
        self.users = db["users"]
        self.orders = db["orders"]
        self.interviews = db["interviews"]
        self.mails = BillingMails(settings, mailer)
        self.ledger = Ledger(db, self.now)
        self.renewals = Renewals(settings, db, gateway, cipher, queue, self.mails, self.now)
        self.processor = NotificationProcessor(
            settings, db, self.ledger, self.renewals, self.mails, webhook_secret, self.now
        )
        self.payments_enabled = not isinstance(gateway, PaymentsOff)
        if not self.payments_enabled:
            log.warning(
                "payments are off: CLOUDPAYMENTS_PUBLIC_ID and CLOUDPAYMENTS_API_SECRET are not "
                "set (the sandbox checkout is not for production); buying a plan answers 503 "
                "payments_unavailable"
            )
        self.sandbox: SandboxCheckout | None = None
        if isinstance(gateway, SandboxGateway):
            self.sandbox = SandboxCheckout(
                webhook_secret,
                self.handle_notification,
                self.find_order,
                self.plan_title,
                settings.public_base_url,
            )
        self._loops: list[asyncio.Task[None]] = []

    async def close(self) -> None:
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(BaseException):
                await task
        await self.gateway.close()

    # --- plans and status ----------------------------------------------------------------------

    def plan_title(self, plan_id: str, language: str) -> str:
        plan = self.settings.plans.get(plan_id)
        if plan is None:
            return plan_id
        return plan.title_en if language == "en" else plan.title_ru

    def plans(self) -> dict[str, Plan]:
        return dict(self.settings.plans)

    async def _user(self, user_id: str) -> Doc:
        oid = parse_object_id(user_id)
        user = await self.users.find_one({"_id": oid}) if oid is not None else None
        if user is None:
            raise NotFound("No such user", code="user_not_found")
        return user

    def _has_access(self, user: Doc) -> bool:
        sub: Doc = user.get("subscription") or {}
        end = sub.get("endDate")
        return bool(sub.get("isActive")) and end is not None and end > self.now()

    async def _started_this_month(self, user: Doc) -> int:
        since = month_start(self.now())
        return await self.interviews.count_documents(
            {"userId": user["_id"], "startTime": {"$gte": since}}
        )

    async def status(self, user_id: str) -> SubscriptionView:
        user = await self._user(user_id)
        sub: Doc = user.get("subscription") or {}
        active = self._has_access(user)
        return SubscriptionView(
            active=active,
            plan=sub.get("plan") if active else None,
            started_at=sub.get("startDate") if active else None,
            expires_at=sub.get("endDate"),
            auto_renew=bool(sub.get("autoRenew")),
            free_tier=FreeTier(
                self.settings.free_interviews_per_month, await self._started_this_month(user)
            ),
        )

    # --- the free tier ---------------------------------------------------------------------------

    async def start_guard(self, user_id: str) -> None:
        """Refuse another interview when the month's free ones are used and nothing is paid.

        The count comes from the interviews started this calendar month (UTC); a per-month
        reservation taken with a conditional `$inc` stops two simultaneous starts from both
        taking the last free one. A reservation whose start then fails is not given back.
        """
        user = await self._user(user_id)
        if self._has_access(user):
            return
        limit = self.settings.free_interviews_per_month
        started = await self._started_this_month(user)
        if started < limit:
            slot = f"billing.freeStarts.{month_start(self.now()):%Y-%m}"
            await self.users.update_one({"_id": user["_id"]}, {"$max": {slot: started}})
            taken = await self.users.update_one(
                {"_id": user["_id"], slot: {"$not": {"$gte": limit}}}, {"$inc": {slot: 1}}
            )
            if taken.modified_count:
                return
        raise PaymentRequired(
            f"The {limit} free interviews of this month are used; subscribe to continue",
            details={"freeInterviewsPerMonth": limit, "startedThisMonth": started},
        )

    # --- orders ----------------------------------------------------------------------------------

    def require_payments(self) -> None:
        """Refuse anything that would take money while payments are off."""
        if not self.payments_enabled:
            raise PaymentsUnavailable("Subscriptions are not available at the moment")

    async def find_order(self, order_id: str) -> Doc | None:
        return await self.orders.find_one({"_id": order_id})

    async def create_order(self, user_id: str, plan_id: str, auto_renew: bool) -> tuple[str, str]:
        """An order for `plan_id` and the page where it is paid: (orderId, paymentUrl)."""
        self.require_payments()
        plan = self.settings.plans.get(plan_id)
        if plan is None:
            raise NotFound(f"No plan {plan_id!r}", code="unknown_plan")
        user = await self._user(user_id)
        if not user.get("isEmailVerified"):
            raise Forbidden("Confirm your email address first", code="email_not_verified")
        order_id = secrets.token_hex(12)
        now = self.now()
        language = str(user.get("language") or "ru")
        await self.orders.insert_one(
            {
                "_id": order_id,
                "userId": user["_id"],
                "plan": plan_id,
                "amount": plan.price,
                "currency": plan.currency,
                "autoRenew": auto_renew,
                "status": ORDER_CREATED,
                "createdAt": now,
                "expiresAt": now + ORDER_TTL,
                "gateway": self.gateway.name,
                "email": user["email"],
                "language": language,
            }
        )
        base = self.settings.public_base_url.rstrip("/")
        try:
            created = await self.gateway.create_order(
                OrderRequest(
                    invoice_id=order_id,
                    account_id=str(user["_id"]),
                    amount=Decimal(plan.price),
                    currency=plan.currency,
                    description=f"Interview Platform: {self.plan_title(plan_id, language)}",
                    email=str(user["email"]),
                    success_url=f"{base}/?payment=success",
                    fail_url=f"{base}/?payment=failed",
                    request_id=f"order-{order_id}",
                )
            )
        except GatewayError as exc:
            log.error("order not created", extra={"order": order_id, "error": exc.message})
            await self.orders.update_one({"_id": order_id}, {"$set": {"status": "error"}})
            raise AppError(
                "The payment provider is unavailable; please retry shortly",
                code="payment_provider_unavailable",
                status=503,
            ) from None
        await self.orders.update_one(
            {"_id": order_id}, {"$set": {"externalOrderId": created.id, "paymentUrl": created.url}}
        )
        return order_id, created.url

    async def cancel(self, user_id: str) -> SubscriptionView:
        """Turn auto-renewal off; access stays until the end of the paid period."""
        user = await self._user(user_id)
        sub: Doc = user.get("subscription") or {}
        if not sub.get("autoRenew") and not self._has_access(user):
            raise Conflict("There is no subscription to cancel", code="no_subscription")
        await self.renewals.disable(user["_id"], notify=True)
        return await self.status(user_id)

    async def payments(self, user_id: str, skip: int, limit: int) -> tuple[list[Doc], int]:
        user = await self._user(user_id)
        return await self.ledger.for_user(user["_id"], skip, limit)

    # --- notifications ---------------------------------------------------------------------------

    async def handle_notification(
        self, kind: Kind | None, body: bytes, headers: Mapping[str, str], content_type: str
    ) -> Code:
        """The webhook: raw body and headers in, the code CloudPayments expects out."""
        self.require_payments()
        return await self.processor.handle(kind, body, headers, content_type)

    # --- background loops for runs without Celery beat --------------------------------------------

    def start_background(self, jobs: Mapping[str, tuple[Callable[[], Any], float]]) -> None:
        """Run each periodic job in this process (when no Celery beat schedules them)."""
        for name, (job, interval) in jobs.items():
            self._loops.append(
                asyncio.create_task(periodic(name, interval, job, max_backoff=300.0))
            )
