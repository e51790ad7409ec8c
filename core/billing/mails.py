"""The billing emails (templates under core/mail/templates/{ru,en}/, subjects.billing.json)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from core.db import Doc
from core.mailing import Mailer
from core.settings import Settings

RECEIPT = "payment_receipt"
FAILED = "payment_failed"
FAILED_REMINDER = "payment_failed_reminder"
CANCELLED = "subscription_cancelled"
REFUNDED = "payment_refunded"
RENEWAL_REMINDER = "renewal_reminder"
EXPIRED = "subscription_expired"

TEMPLATES = (RECEIPT, FAILED, FAILED_REMINDER, CANCELLED, REFUNDED, RENEWAL_REMINDER, EXPIRED)


def _date(value: datetime | None) -> str:
    return value.strftime("%d.%m.%Y") if value is not None else "-"


def _money(amount: Decimal | float | int, currency: str) -> str:
    return f"{Decimal(str(amount)).quantize(Decimal('0.01'))} {currency}"


class BillingMails:
    """Builds each email's context (strings only: it travels through the job queue as JSON)."""

    def __init__(self, settings: Settings, mailer: Mailer) -> None:
        self._settings = settings
        self._mailer = mailer

    def _link(self) -> str:
        return self._settings.public_base_url.rstrip("/") + "/"

    def _plan_title(self, plan: str | None, language: str) -> str:
        found = self._settings.plans.get(plan or "")
        if found is None:
            return plan or "-"
        return found.title_en if language == "en" else found.title_ru

    async def _send(self, template: str, user: Doc, context: dict[str, str]) -> None:
        language = str(user.get("language") or "ru")
        await self._mailer.send(template, str(user["email"]), language, context)

    async def receipt(
        self,
        user: Doc,
        *,
        plan: str,
        amount: Decimal,
        currency: str,
        paid_at: datetime,
        ends: datetime | None,
        transaction_id: str,
        auto_renew: bool,
    ) -> None:
        lang = str(user.get("language") or "ru")
        await self._send(
            RECEIPT,
            user,
            {
                "plan": self._plan_title(plan, lang),
                "amount": _money(amount, currency),
                "paidAt": _date(paid_at),
                "endDate": _date(ends),
                "transactionId": transaction_id,
                "autoRenew": "yes" if auto_renew else "",
                "link": self._link(),
            },
        )

    async def failed(
        self, user: Doc, *, amount: Decimal, currency: str, reason: str | None, recurring: bool
    ) -> None:
        await self._send(
            FAILED,
            user,
            {
                "amount": _money(amount, currency),
                "reason": reason or "",
                "recurring": "yes" if recurring else "",
                "link": self._link(),
            },
        )

    async def failed_reminder(self, user: Doc) -> None:
        sub = user.get("subscription") or {}
        await self._send(
            FAILED_REMINDER, user, {"endDate": _date(sub.get("endDate")), "link": self._link()}
        )

    async def cancelled(self, user: Doc, ends: datetime | None) -> None:
        await self._send(CANCELLED, user, {"endDate": _date(ends), "link": self._link()})

    async def refunded(
        self, user: Doc, *, amount: Decimal, currency: str, active: bool, ends: datetime | None
    ) -> None:
        await self._send(
            REFUNDED,
            user,
            {
                "amount": _money(amount, currency),
                "active": "yes" if active else "",
                "endDate": _date(ends),
                "link": self._link(),
            },
        )

    async def renewal_reminder(self, user: Doc, *, plan: str | None, ends: datetime) -> None:
        lang = str(user.get("language") or "ru")
        amount = ""
        found = self._settings.plans.get(plan or "")
        if found is not None:
            amount = _money(found.price, found.currency)
        await self._send(
            RENEWAL_REMINDER,
            user,
            {
                "plan": self._plan_title(plan, lang),
                "amount": amount,
                "endDate": _date(ends),
                "link": self._link(),
            },
        )

    async def expired(self, user: Doc) -> None:
        await self._send(EXPIRED, user, {"link": self._link()})
