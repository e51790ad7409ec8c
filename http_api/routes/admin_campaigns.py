"""Campaigns for staff, SendPulse's event webhook, and the one-click unsubscribe link."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from core.campaigns import CampaignService, MarketingTemplate, Segment
from core.db import Doc
from core.errors import AppError, Forbidden
from http_api.deps import Admin, Campaigns, get_campaigns
from http_api.routing import area_router, errors, raw_body, read_json, schema_ref
from http_api.schemas import PageQuery, QueryModel, RequestModel, ResponseModel

router = area_router("admin: campaigns")
mail_router = area_router("mail")
MAX_EVENTS_PER_CALL = 5000
CampaignId = Annotated[str, Path(alias="campaignId", description="A campaign id")]


class CampaignRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Come back in June",
                    "template": "comeback",
                    "segment": "inactive_7d",
                    "sendAt": "2026-06-01T09:00:00+03:00",
                }
            ]
        }
    )

    name: str = Field(min_length=1, max_length=200, json_schema_extra={"pattern": r"\S"})
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
    template: MarketingTemplate
    segment: Segment
    sendAt: datetime
    status: Literal["scheduled", "sending", "sent", "cancelled"]
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


class WebhookInfo(ResponseModel):
    url: str = Field(description="Give this URL to SendPulse (API settings -> webhooks)")


class EventsQuery(QueryModel):
    token: str = Field(
        default="", max_length=200, description="The secret from `GET /admin/mail/webhook`"
    )


class EventsResponse(ResponseModel):
    success: bool
    stored: int = Field(description="Events not seen before")


class MailEvent(BaseModel):
    """One SendPulse event; other fields are kept out, events without event or email skipped."""

    model_config = ConfigDict(extra="allow")

    event: str = Field(description="delivered, open, redirect, hard_bounce, unsubscribe, ...")
    email: str | None = None
    recipient: str | None = Field(default=None, description="Read when `email` is absent")
    message_id: str | None = None
    campaignId: str | None = None
    campaign_id: str | None = None
    tag: str | None = None
    timestamp: int | str | None = None
    link_url: str | None = None


DOCUMENTED_MODELS: tuple[type[BaseModel], ...] = (MailEvent,)
EVENTS_BODY = raw_body(
    {
        "anyOf": [
            {"type": "array", "items": schema_ref(MailEvent), "maxItems": MAX_EVENTS_PER_CALL},
            schema_ref(MailEvent),
        ]
    },
    f"One event or an array of at most {MAX_EVENTS_PER_CALL}; items that are not events are "
    "skipped, an event already stored is not stored again.",
)


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


@router.post(
    "/admin/campaigns",
    summary="Schedule a campaign: a marketing template, a segment and a time",
    status_code=201,
    responses=errors(413),
)
async def create_campaign(
    body: CampaignRequest, admin: Admin, campaigns: Campaigns
) -> CampaignResponse:
    """Each consenting user of the segment gets the template once, from `sendAt` on."""
    doc = await campaigns.create(
        name=body.name,
        template=body.template,
        segment=body.segment,
        send_at=body.sendAt,
        admin_id=admin.user_id,
    )
    return CampaignResponse(campaign=await campaign_view(campaigns, doc))


@router.get(
    "/admin/campaigns",
    summary="Campaigns, newest first, each with its delivery summary",
)
async def list_campaigns(
    query: Annotated[PageQuery, Query()], admin: Admin, campaigns: Campaigns
) -> CampaignList:
    """One page of campaigns with recipients, sends, deliveries, opens and opt-outs."""
    docs, total = await campaigns.list_campaigns((query.page - 1) * query.pageSize, query.pageSize)
    return CampaignList(
        campaigns=[await campaign_view(campaigns, d) for d in docs],
        page=query.page,
        pageSize=query.pageSize,
        total=total,
    )


@router.get(
    "/admin/campaigns/{campaignId}",
    summary="One campaign with its delivery summary",
    responses=errors(404),
)
async def get_campaign(
    campaign_id: CampaignId, admin: Admin, campaigns: Campaigns
) -> CampaignResponse:
    """The campaign and its delivery figures so far."""
    doc = await campaigns.get(campaign_id)
    return CampaignResponse(campaign=await campaign_view(campaigns, doc))


@router.post(
    "/admin/campaigns/{campaignId}/cancel",
    summary="Cancel a campaign that has not started sending",
    responses=errors(404, 409),
)
async def cancel_campaign(
    campaign_id: CampaignId, admin: Admin, campaigns: Campaigns
) -> CampaignResponse:
    """Only a scheduled campaign can be cancelled (409 once it is sending)."""
    doc = await campaigns.cancel(campaign_id)
    return CampaignResponse(campaign=await campaign_view(campaigns, doc))


@router.get(
    "/admin/mail/webhook",
    summary="The SendPulse event webhook URL, with its secret token",
)
async def webhook_info(admin: Admin, campaigns: Campaigns) -> WebhookInfo:
    """Give this URL to SendPulse to have delivery, open, click and opt-out events counted."""
    return WebhookInfo(url=campaigns.events_webhook_url())


@mail_router.post(
    "/mail/events",
    summary="SendPulse event webhook: a JSON array of events (token in the query)",
    responses=errors(400, 403, 413),
    openapi_extra=EVENTS_BODY,
)
async def mail_events(
    request: Request, query: Annotated[EventsQuery, Query()], campaigns: Campaigns
) -> EventsResponse:
    """Events SendPulse posts about campaign mail; 403 `invalid_webhook_token` without the
    secret from `GET /admin/mail/webhook`.
    """
    # SendPulse signs nothing, so the URL's secret is the only proof it is them.
    if not campaigns.check_webhook_token(query.token):
        raise Forbidden("Unknown webhook token", code="invalid_webhook_token")
    data = await read_json(request)
    events = data if isinstance(data, list) else [data]
    if len(events) > MAX_EVENTS_PER_CALL:
        raise AppError("Too many events in one call", code="too_many_events")
    stored = await campaigns.record_events(events)
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
        campaigns = await get_campaigns(request.app.state.services)
        language = await campaigns.unsubscribe(user_id[:64], signature[:128])
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
