"""Campaigns for staff, SendPulse's event webhook, and the one-click unsubscribe link."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, Field
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.campaigns import CampaignService, MarketingTemplate, Segment
from core.db import Doc
from core.errors import AppError, Forbidden
from http_api.framework import Ctx, QueryModel, RequestModel, ResponseModel, Router

router = Router()
TAGS = ["admin: campaigns"]
MAX_EVENTS_PER_CALL = 5000


class CampaignRequest(RequestModel):
    name: str = Field(min_length=1, max_length=200)
    template: MarketingTemplate
    segment: Segment
    # JSON has no datetime type: an ISO 8601 string with its offset is the one accepted form.
    sendAt: AwareDatetime = Field(strict=False)


class CampaignSummary(ResponseModel):
    recipients: int
    pending: int
    sent: int
    failed: int
    delivered: int
    opened: int
    clicked: int
    unsubscribed: int


class CampaignView(ResponseModel):
    id: str
    name: str
    template: str
    segment: str
    sendAt: datetime
    status: str = Field(description="scheduled, sending, sent or cancelled")
    createdAt: datetime
    startedAt: datetime | None
    finishedAt: datetime | None
    summary: CampaignSummary


class CampaignResponse(ResponseModel):
    campaign: CampaignView


class CampaignList(ResponseModel):
    campaigns: list[CampaignView]
    page: int
    pageSize: int
    total: int


class PageQuery(QueryModel):
    page: int = Field(default=1, ge=1, le=10_000)
    pageSize: int = Field(default=20, ge=1, le=100)


class WebhookInfo(ResponseModel):
    url: str = Field(description="Give this URL to SendPulse (API settings -> webhooks)")


class EventsQuery(QueryModel):
    token: str = Field(default="", max_length=200)


class EventsResponse(ResponseModel):
    success: bool
    stored: int


def _service(request: Request) -> CampaignService:
    service: CampaignService = request.app.state.campaigns
    return service


async def campaign_view(service: CampaignService, doc: Doc) -> CampaignView:
    return CampaignView(
        id=str(doc["_id"]),
        name=doc["name"],
        template=doc["template"],
        segment=doc["segment"],
        sendAt=doc["sendAt"],
        status=doc["status"],
        createdAt=doc["createdAt"],
        startedAt=doc.get("startedAt"),
        finishedAt=doc.get("finishedAt"),
        summary=CampaignSummary(**await service.summary(doc["_id"])),
    )


@router.add(
    "POST",
    "/admin/campaigns",
    summary="Schedule a campaign: a marketing template, a segment and a time",
    tags=TAGS,
    body=CampaignRequest,
    response=CampaignResponse,
    status=201,
    auth="admin",
    errors=[413],
)
async def create_campaign(ctx: Ctx[CampaignRequest, Any]) -> CampaignResponse:
    service = _service(ctx.request)
    b = ctx.body
    doc = await service.create(
        name=b.name, template=b.template, segment=b.segment, send_at=b.sendAt, admin_id=ctx.user_id
    )
    return CampaignResponse(campaign=await campaign_view(service, doc))


@router.add(
    "GET",
    "/admin/campaigns",
    summary="Campaigns, newest first, each with its delivery summary",
    tags=TAGS,
    query=PageQuery,
    response=CampaignList,
    auth="admin",
)
async def list_campaigns(ctx: Ctx[Any, PageQuery]) -> CampaignList:
    service = _service(ctx.request)
    q = ctx.query
    docs, total = await service.list_campaigns((q.page - 1) * q.pageSize, q.pageSize)
    return CampaignList(
        campaigns=[await campaign_view(service, d) for d in docs],
        page=q.page,
        pageSize=q.pageSize,
        total=total,
    )


@router.add(
    "GET",
    "/admin/campaigns/{campaignId}",
    summary="One campaign with its delivery summary",
    tags=TAGS,
    response=CampaignResponse,
    auth="admin",
    errors=[404],
)
async def get_campaign(ctx: Ctx[Any, Any]) -> CampaignResponse:
    service = _service(ctx.request)
    doc = await service.get(ctx.path("campaignId"))
    return CampaignResponse(campaign=await campaign_view(service, doc))


@router.add(
    "POST",
    "/admin/campaigns/{campaignId}/cancel",
    summary="Cancel a campaign that has not started sending",
    tags=TAGS,
    response=CampaignResponse,
    auth="admin",
    errors=[404, 409],
)
async def cancel_campaign(ctx: Ctx[Any, Any]) -> CampaignResponse:
    service = _service(ctx.request)
    doc = await service.cancel(ctx.path("campaignId"))
    return CampaignResponse(campaign=await campaign_view(service, doc))


@router.add(
    "GET",
    "/admin/mail/webhook",
    summary="The SendPulse event webhook URL, with its secret token",
    tags=TAGS,
    response=WebhookInfo,
    auth="admin",
)
async def webhook_info(ctx: Ctx[Any, Any]) -> WebhookInfo:
    return WebhookInfo(url=_service(ctx.request).events_webhook_url())


@router.add(
    "POST",
    "/mail/events",
    summary="SendPulse event webhook: a JSON array of events (token in the query)",
    tags=["mail"],
    query=EventsQuery,
    response=EventsResponse,
    auth="none",
    errors=[403, 413],
)
async def mail_events(ctx: Ctx[Any, EventsQuery]) -> EventsResponse:
    service = _service(ctx.request)
    # SendPulse signs nothing, so the URL's secret is the only proof it is them.
    if not service.check_webhook_token(ctx.query.token):
        raise Forbidden("Unknown webhook token", code="invalid_webhook_token")
    try:
        data = json.loads(await ctx.request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AppError("The body is not valid JSON", code="malformed_json") from None
    events = data if isinstance(data, list) else [data]
    if len(events) > MAX_EVENTS_PER_CALL:
        raise AppError("Too many events in one call", code="too_many_events")
    stored = await service.record_events(events)
    return EventsResponse(success=True, stored=stored)


# --- /unsubscribe: the link in every campaign mail (outside /api: it is a page) ---------------

_PAGES = {
    "ru": ("Вы отписались", "Мы больше не будем присылать вам рекламные письма и напоминания."),
    "en": ("You are unsubscribed", "We will not send you marketing mail or reminders any more."),
}
_INVALID = (
    "Link not valid / Ссылка недействительна",
    "This unsubscribe link is damaged. / Ссылка для отписки повреждена.",
)


def _page(title: str, text: str, lang: str, status: int = 200) -> HTMLResponse:
    html = (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{title}</title></head>"
        '<body style="font-family: Arial, sans-serif; max-width: 560px; margin: 48px auto;">'
        f"<h1>{title}</h1><p>{text}</p></body></html>"
    )
    return HTMLResponse(html, status, headers={"Cache-Control": "no-store"})


async def unsubscribe(request: Request) -> Response:
    """GET from the link in the mail, or RFC 8058 one-click POST; both withdraw consent."""
    user_id = request.query_params.get("u", "")
    signature = request.query_params.get("s", "")
    try:
        language = await _service(request).unsubscribe(user_id[:64], signature[:128])
    except AppError as exc:
        if request.method == "POST":
            return JSONResponse(
                {"error": {"code": exc.code, "message": exc.message, "details": None}}, 400
            )
        return _page(*_INVALID, "ru", status=400)
    if request.method == "POST":
        return JSONResponse({"success": True})
    title, text = _PAGES.get(language, _PAGES["ru"])
    return _page(title, text, language)


unsubscribe_routes: list[BaseRoute] = [
    Route("/unsubscribe", unsubscribe, methods=["GET", "POST"], name="unsubscribe"),
]
