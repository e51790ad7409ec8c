"""Subscriptions and payments over REST, CloudPayments' webhooks, and the sandbox checkout."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, cast

from fastapi import Depends, Header, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from core.billing import BillingService
from core.billing.ledger import KIND_PAYMENT
from core.billing.sandbox import SANDBOX_PATH, SandboxCheckout
from core.billing.service import SubscriptionView
from core.billing.webhooks import (
    BadSignature,
    CancelNotification,
    Code,
    FailNotification,
    InvalidNotification,
    Kind,
    PaymentNotification,
    RecurrentNotification,
    RefundNotification,
)
from core.errors import AppError, NotFound, Unauthorized
from http_api.deps import AppSettings, Billing, CurrentUser, get_billing, limit_per_user
from http_api.routing import area_router, errors, raw_body, schema_ref
from http_api.schemas import PageQuery, RequestModel, ResponseModel

router = area_router("billing")
webhooks = area_router("billing webhooks")


class PlanView(ResponseModel):
    id: str
    title: str = Field(description="In the language of `Accept-Language` (ru unless en)")
    titleRu: str
    titleEn: str
    price: int = Field(description="In whole units of `currency`")
    currency: str = Field(description="ISO 4217, e.g. RUB")
    interval: Literal["Day", "Week", "Month"] = Field(description="Billed every `period` of these")
    period: int
    days: int = Field(description="Days of access one payment buys")


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
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"plan": "month", "autoRenew": True}]}
    )

    plan: str = Field(
        min_length=1, max_length=32, description="A plan id from `GET /subscriptions/plans`"
    )
    autoRenew: bool = Field(default=True, description="Renew with the same card every period")


class SubscriptionCreateResponse(ResponseModel):
    paymentUrl: str
    orderId: str


class PaymentItem(ResponseModel):
    id: str
    kind: Literal["payment", "failure", "refund"]
    status: Literal["pending", "completed", "failed", "refunded"]
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


AnswerCode = Literal[0, 10, 11, 12, 13, 20]


class BillingWebhookAnswer(ResponseModel):
    code: AnswerCode = Field(
        description="0 accepts; on Check 10, 11, 12, 13 or 20 refuse the payment"
    )
    success: bool


# CloudPayments' notification bodies, for the document: the handler verifies the signature
# over the raw bytes before it parses anything.
NOTIFICATIONS: tuple[type[BaseModel], ...] = (
    PaymentNotification,
    FailNotification,
    RefundNotification,
    CancelNotification,
    RecurrentNotification,
)
DOCUMENTED_MODELS = NOTIFICATIONS
NOTIFICATION_BODY = raw_body(
    {"anyOf": [schema_ref(model) for model in NOTIFICATIONS]},
    "A CloudPayments notification, form-urlencoded or JSON as set in the merchant settings "
    "(field names in PascalCase). The signature in `Content-HMAC` covers these exact bytes.",
    ("application/x-www-form-urlencoded", "application/json"),
)
ContentHmac = Annotated[
    str,
    Header(
        alias="Content-HMAC",
        description="base64(HMAC-SHA256(API secret, raw body)); required (`X-Content-HMAC` is "
        "read when it is absent). 401 `invalid_signature` when missing or wrong.",
    ),
]


def _plans(billing: BillingService, language: str) -> list[PlanView]:
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


def _language(request: Request) -> str:
    accept = request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else "ru"


@router.get("/subscriptions/plans", summary="The subscription plans and the free tier")
async def plans(request: Request, billing: Billing, settings: AppSettings) -> PlansResponse:
    """The plans on sale (titles in the `Accept-Language` language) and the free interviews."""
    return PlansResponse(
        plans=_plans(billing, _language(request)),
        freeInterviewsPerMonth=settings.free_interviews_per_month,
    )


@router.get(
    "/subscriptions/status",
    summary="The user's subscription: active, plan, expiresAt, auto-renewal, free tier",
)
async def status(
    request: Request, user: CurrentUser, billing: Billing
) -> SubscriptionStatusResponse:
    """Whether a paid period is running, until when, whether it renews, and the free tier."""
    return _status_response(request, billing, await billing.status(user.user_id))


def _status_response(
    request: Request, billing: BillingService, view: SubscriptionView
) -> SubscriptionStatusResponse:
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
        plans=_plans(billing, _language(request)),
    )


@router.post(
    "/subscriptions/create",
    summary="Start buying a plan: returns the payment page",
    status_code=201,
    responses=errors(403, 404, 503),
    dependencies=[Depends(limit_per_user("billing-order", lambda s: "20/3600"))],
)
async def create(
    body: SubscriptionCreateRequest, user: CurrentUser, billing: Billing
) -> SubscriptionCreateResponse:
    """Create an order for the plan and return the page where the user pays.

    Without CloudPayments credentials the page is the local sandbox checkout. 404 for an
    unknown plan, 403 until the email address is confirmed.
    """
    order_id, url = await billing.create_order(user.user_id, body.plan, body.autoRenew)
    return SubscriptionCreateResponse(paymentUrl=url, orderId=order_id)


@router.post(
    "/subscriptions/cancel",
    summary="Turn auto-renewal off; access stays until the end of the paid period",
    responses=errors(409),
)
async def cancel(
    request: Request, user: CurrentUser, billing: Billing
) -> SubscriptionStatusResponse:
    """Stop renewing; the paid period runs to its end. 409 when nothing renews."""
    return _status_response(request, billing, await billing.cancel(user.user_id))


@router.get(
    "/payments",
    summary="The user's payments, refunds and failed charges, newest first",
)
async def payments(
    query: Annotated[PageQuery, Query()], user: CurrentUser, billing: Billing
) -> PaymentsResponse:
    """One page of the user's payments, refunds and failed charges."""
    docs, total = await billing.payments(
        user.user_id, (query.page - 1) * query.pageSize, query.pageSize
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
    return PaymentsResponse(payments=items, page=query.page, pageSize=query.pageSize, total=total)


async def _webhook(
    request: Request, billing: BillingService, kind: Kind | None
) -> BillingWebhookAnswer:
    # The signature covers the exact bytes sent: read them before anything parses them.
    body = await request.body()
    headers = request.headers
    try:
        code = await billing.handle_notification(
            kind, body, headers, headers.get("content-type", "")
        )
    except BadSignature as exc:
        raise Unauthorized(str(exc), code="invalid_signature") from None
    except InvalidNotification as exc:
        raise AppError(str(exc), code="invalid_notification") from None
    return BillingWebhookAnswer(code=cast(AnswerCode, int(code)), success=code is Code.OK)


@webhooks.post(
    "/subscriptions/webhook",
    summary="CloudPayments notifications (kind from ?kind= or from the fields)",
    responses=errors(400, 401, 413),
    openapi_extra=NOTIFICATION_BODY,
)
async def webhook(
    request: Request,
    billing: Billing,
    content_hmac: ContentHmac = "",
    kind: Annotated[KindName | None, Query(description="Which notification this is")] = None,
) -> BillingWebhookAnswer:
    """One URL for every notification; prefer the per-kind URLs below.

    Check, Pay and Confirm carry the same fields, so their kind must come from `?kind=`;
    Fail, Refund and Recurrent are told by their fields. The answer's `code` is what
    CloudPayments expects: 0 accepts.
    """
    return await _webhook(request, billing, Kind(kind) if kind is not None else None)


@webhooks.post(
    "/subscriptions/webhook/{kind}",
    summary="CloudPayments notifications of one kind (check, pay, fail, confirm, refund, "
    "recurrent, cancel)",
    responses=errors(400, 401, 404, 413),
    openapi_extra=NOTIFICATION_BODY,
)
async def webhook_of_kind(
    request: Request,
    billing: Billing,
    kind: Annotated[
        str,
        # Documented as the enum it is; an unknown kind is a 404 (no such URL), not a 422.
        PathParam(json_schema_extra={"enum": [k.value for k in Kind]}),
    ],
    content_hmac: ContentHmac = "",
) -> BillingWebhookAnswer:
    """The URL to give CloudPayments for each kind of notification.

    Replays are answered 0 and applied once (per TransactionId); 404 for an unknown kind.
    """
    try:
        notification_kind = Kind(kind)
    except ValueError:
        raise NotFound("No such notification kind", code="unknown_notification_kind") from None
    return await _webhook(request, billing, notification_kind)


# --- the sandbox checkout (runs without CloudPayments credentials only) ------------------------


async def _checkout(request: Request) -> SandboxCheckout:
    checkout = (await get_billing(request.app.state.services)).sandbox
    if checkout is None:
        raise NotFound("There is no sandbox checkout here", code="not_found")
    return checkout


async def sandbox_page(request: Request) -> Response:
    checkout = await _checkout(request)
    order = await checkout.order(str(request.path_params["orderId"]))
    if order is None:
        raise NotFound("No such order", code="order_not_found")
    return HTMLResponse(checkout.render(order), headers={"Cache-Control": "no-store"})


async def sandbox_submit(request: Request) -> Response:
    checkout = await _checkout(request)
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
