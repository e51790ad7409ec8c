"""Subscriptions and payments over REST, CloudPayments' webhooks, and the sandbox checkout."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.billing import BillingService
from core.billing.ledger import KIND_PAYMENT
from core.billing.sandbox import SANDBOX_PATH, SandboxCheckout
from core.billing.service import SubscriptionView
from core.billing.webhooks import BadSignature, Code, InvalidNotification, Kind
from core.errors import AppError, NotFound, Unauthorized
from http_api.framework import Ctx, QueryModel, RequestModel, ResponseModel, Router

router = Router()
TAGS = ["billing"]
WEBHOOK_TAGS = ["billing webhooks"]


def billing_of(request: Request) -> BillingService:
    """The service the app's lifespan put in `app.state.billing`."""
    billing = getattr(request.app.state, "billing", None)
    if not isinstance(billing, BillingService):
        raise RuntimeError("billing is not wired: set app.state.billing in the lifespan")
    return billing


class PlanView(ResponseModel):
    id: str
    title: str
    titleRu: str
    titleEn: str
    price: int
    currency: str
    interval: str
    period: int
    days: int


class PlansResponse(ResponseModel):
    plans: list[PlanView]
    freeInterviewsPerMonth: int


class FreeTierView(ResponseModel):
    limit: int
    used: int
    remaining: int


class SubscriptionStatusResponse(ResponseModel):
    active: bool
    plan: str | None
    startDate: datetime | None
    expiresAt: datetime | None = Field(description="End of the paid period (also once over)")
    autoRenew: bool
    freeInterviews: FreeTierView
    plans: list[PlanView]


class SubscriptionCreateRequest(RequestModel):
    plan: str = Field(min_length=1, max_length=32)
    autoRenew: bool = Field(default=True, description="Renew with the same card every period")


class SubscriptionCreateResponse(ResponseModel):
    paymentUrl: str
    orderId: str


class PaymentsQuery(QueryModel):
    page: int = Field(default=1, ge=1, le=10_000)
    pageSize: int = Field(default=20, ge=1, le=100)


class PaymentItem(ResponseModel):
    id: str
    kind: str = Field(description="payment, failure or refund")
    status: str
    amount: float
    currency: str
    plan: str | None
    transactionDate: datetime
    cardLastFour: str | None
    reason: str | None


class PaymentsResponse(ResponseModel):
    payments: list[PaymentItem]
    page: int
    pageSize: int
    total: int


KindName = Literal["check", "pay", "fail", "confirm", "refund", "recurrent", "cancel"]


class BillingWebhookQuery(QueryModel):
    kind: KindName | None = Field(default=None, description="Which notification this is")


class BillingWebhookAnswer(ResponseModel):
    code: int = Field(description="0 accepts; on Check 10, 11, 12, 13 or 20 refuse the payment")
    success: bool


def _plans(ctx: Ctx[Any, Any], language: str) -> list[PlanView]:
    billing = billing_of(ctx.request)
    return [
        PlanView(
            id=plan_id,
            title=billing.plan_title(plan_id, language),
            titleRu=plan.title_ru,
            titleEn=plan.title_en,
            price=plan.price,
            currency=plan.currency,
            interval=plan.interval,
            period=plan.period,
            days=plan.days,
        )
        for plan_id, plan in billing.plans().items()
    ]


def _language(ctx: Ctx[Any, Any]) -> str:
    accept = ctx.request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else "ru"


@router.add(
    "GET",
    "/subscriptions/plans",
    summary="The subscription plans and the free tier",
    tags=TAGS,
    auth="none",
    response=PlansResponse,
)
async def plans(ctx: Ctx[Any, Any]) -> PlansResponse:
    return PlansResponse(
        plans=_plans(ctx, _language(ctx)),
        freeInterviewsPerMonth=ctx.services.settings.free_interviews_per_month,
    )


@router.add(
    "GET",
    "/subscriptions/status",
    summary="The user's subscription: active, plan, expiresAt, auto-renewal, free tier",
    tags=TAGS,
    response=SubscriptionStatusResponse,
)
async def status(ctx: Ctx[Any, Any]) -> SubscriptionStatusResponse:
    return _status_response(ctx, await billing_of(ctx.request).status(ctx.user_id))


def _status_response(ctx: Ctx[Any, Any], view: SubscriptionView) -> SubscriptionStatusResponse:
    return SubscriptionStatusResponse(
        active=view.active,
        plan=view.plan,
        startDate=view.started_at,
        expiresAt=view.expires_at,
        autoRenew=view.auto_renew,
        freeInterviews=FreeTierView(
            limit=view.free_tier.limit,
            used=view.free_tier.used,
            remaining=view.free_tier.remaining,
        ),
        plans=_plans(ctx, _language(ctx)),
    )


@router.add(
    "POST",
    "/subscriptions/create",
    summary="Start buying a plan: returns the payment page",
    tags=TAGS,
    body=SubscriptionCreateRequest,
    response=SubscriptionCreateResponse,
    status=201,
    errors=[403, 404, 503],
)
async def create(ctx: Ctx[SubscriptionCreateRequest, Any]) -> SubscriptionCreateResponse:
    await ctx.limit("billing-order", ctx.user_id, "20/3600")
    order_id, url = await billing_of(ctx.request).create_order(
        ctx.user_id, ctx.body.plan, ctx.body.autoRenew
    )
    return SubscriptionCreateResponse(paymentUrl=url, orderId=order_id)


@router.add(
    "POST",
    "/subscriptions/cancel",
    summary="Turn auto-renewal off; access stays until the end of the paid period",
    tags=TAGS,
    response=SubscriptionStatusResponse,
    errors=[409],
)
async def cancel(ctx: Ctx[Any, Any]) -> SubscriptionStatusResponse:
    return _status_response(ctx, await billing_of(ctx.request).cancel(ctx.user_id))


@router.add(
    "GET",
    "/payments",
    summary="The user's payments, refunds and failed charges, newest first",
    tags=TAGS,
    query=PaymentsQuery,
    response=PaymentsResponse,
)
async def payments(ctx: Ctx[Any, PaymentsQuery]) -> PaymentsResponse:
    q = ctx.query
    docs, total = await billing_of(ctx.request).payments(
        ctx.user_id, (q.page - 1) * q.pageSize, q.pageSize
    )
    items = [
        PaymentItem(
            id=str(d["_id"]),
            kind=str(d.get("metadata", {}).get("kind", KIND_PAYMENT)),
            status=d["status"],
            amount=d["amount"],
            currency=d["currency"],
            plan=d.get("subscriptionPeriod"),
            transactionDate=d["transactionDate"],
            cardLastFour=d.get("metadata", {}).get("cardLastFour"),
            reason=d.get("metadata", {}).get("reason"),
        )
        for d in docs
    ]
    return PaymentsResponse(payments=items, page=q.page, pageSize=q.pageSize, total=total)


async def _webhook(ctx: Ctx[Any, Any], kind: Kind | None) -> BillingWebhookAnswer:
    # The signature covers the exact bytes sent: read them before anything parses them.
    body = await ctx.request.body()
    headers = ctx.request.headers
    try:
        code = await billing_of(ctx.request).handle_notification(
            kind, body, headers, headers.get("content-type", "")
        )
    except BadSignature as exc:
        raise Unauthorized(str(exc), code="invalid_signature") from None
    except InvalidNotification as exc:
        raise AppError(str(exc), code="invalid_notification") from None
    return BillingWebhookAnswer(code=int(code), success=code is Code.OK)


@router.add(
    "POST",
    "/subscriptions/webhook",
    summary="CloudPayments notifications (kind from ?kind= or from the fields)",
    tags=WEBHOOK_TAGS,
    auth="none",
    query=BillingWebhookQuery,
    response=BillingWebhookAnswer,
    errors=[401],
)
async def webhook(ctx: Ctx[Any, BillingWebhookQuery]) -> BillingWebhookAnswer:
    kind = ctx.query.kind
    return await _webhook(ctx, Kind(kind) if kind is not None else None)


@router.add(
    "POST",
    "/subscriptions/webhook/{kind}",
    summary="CloudPayments notifications of one kind (check, pay, fail, confirm, refund, "
    "recurrent, cancel)",
    tags=WEBHOOK_TAGS,
    auth="none",
    response=BillingWebhookAnswer,
    errors=[400, 401, 404],
)
async def webhook_of_kind(ctx: Ctx[Any, Any]) -> BillingWebhookAnswer:
    try:
        kind = Kind(ctx.path("kind"))
    except ValueError:
        raise NotFound("No such notification kind", code="unknown_notification_kind") from None
    return await _webhook(ctx, kind)


# --- the sandbox checkout (runs without CloudPayments credentials only) ------------------------


def _checkout(request: Request) -> SandboxCheckout:
    checkout = billing_of(request).sandbox
    if checkout is None:
        raise NotFound("There is no sandbox checkout here", code="not_found")
    return checkout


async def sandbox_page(request: Request) -> Response:
    checkout = _checkout(request)
    order = await checkout.order(str(request.path_params["orderId"]))
    if order is None:
        raise NotFound("No such order", code="order_not_found")
    return HTMLResponse(checkout.render(order), headers={"Cache-Control": "no-store"})


async def sandbox_submit(request: Request) -> Response:
    checkout = _checkout(request)
    order_id = str(request.path_params["orderId"])
    order = await checkout.order(order_id)
    if order is None:
        raise NotFound("No such order", code="order_not_found")
    async with request.form() as form:
        outcome = form.get("outcome")
    if outcome not in ("pay", "fail"):
        raise AppError("Choose pay or fail", code="invalid_outcome")
    code = await checkout.submit(order, pay=outcome == "pay")
    if code is not Code.OK:
        message = f"The shop refused the payment (code {int(code)})."
        return HTMLResponse(checkout.render(order, message), headers={"Cache-Control": "no-store"})
    return RedirectResponse(f"{SANDBOX_PATH}/{order_id}", status_code=303)


sandbox_routes: list[BaseRoute] = [
    Route(SANDBOX_PATH + "/{orderId}", sandbox_page, methods=["GET"]),
    Route(SANDBOX_PATH + "/{orderId}", sandbox_submit, methods=["POST"]),
]
