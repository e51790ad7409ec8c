"""Support tickets over REST: the user's own tickets, and the staff desk under /admin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from core.db import Doc
from core.support import SUBJECT_MAX_CHARS, SupportService, TicketStatus
from http_api.framework import Ctx, QueryModel, RequestModel, ResponseModel, Router

router = Router()
TAGS = ["support"]
ADMIN_TAGS = ["admin: support"]

# The exact limit is a setting (checked by the service); this only stops absurd bodies early.
MESSAGE_HARD_MAX = 20_000


class ContactRequest(RequestModel):
    subject: str = Field(min_length=1, max_length=SUBJECT_MAX_CHARS)
    message: str = Field(min_length=1, max_length=MESSAGE_HARD_MAX)


class ContactResponse(ResponseModel):
    success: bool
    ticketId: str


class ReplyRequest(RequestModel):
    message: str = Field(min_length=1, max_length=MESSAGE_HARD_MAX)


class StatusRequest(RequestModel):
    status: TicketStatus


class PageQuery(QueryModel):
    page: int = Field(default=1, ge=1, le=10_000)
    pageSize: int = Field(default=20, ge=1, le=100)


class AdminTicketQuery(PageQuery):
    status: TicketStatus | None = None


class TicketReply(ResponseModel):
    message: str
    isStaff: bool
    createdAt: datetime


class TicketView(ResponseModel):
    id: str
    subject: str
    message: str
    status: TicketStatus
    createdAt: datetime
    updatedAt: datetime
    responses: list[TicketReply]


class AdminTicketView(TicketView):
    userId: str
    userEmail: str | None


class TicketResponse(ResponseModel):
    ticket: TicketView


class AdminTicketResponse(ResponseModel):
    ticket: AdminTicketView


class TicketList(ResponseModel):
    tickets: list[TicketView]
    page: int
    pageSize: int
    total: int


class AdminTicketList(ResponseModel):
    tickets: list[AdminTicketView]
    page: int
    pageSize: int
    total: int


def _service(ctx: Ctx[Any, Any]) -> SupportService:
    service: SupportService = ctx.request.app.state.support
    return service


def _fields(doc: Doc) -> dict[str, Any]:
    return {
        "id": str(doc["_id"]),
        "subject": doc["subject"],
        "message": doc["message"],
        "status": doc["status"],
        "createdAt": doc["createdAt"],
        "updatedAt": doc["updatedAt"],
        "responses": [
            TicketReply(message=r["message"], isStaff=r["isStaff"], createdAt=r["createdAt"])
            for r in doc.get("responses", [])
        ],
    }


def ticket_view(doc: Doc) -> TicketView:
    return TicketView(**_fields(doc))


def admin_ticket_view(doc: Doc, email: str | None) -> AdminTicketView:
    return AdminTicketView(**_fields(doc), userId=str(doc["userId"]), userEmail=email)


async def _admin_view(ctx: Ctx[Any, Any], doc: Doc) -> AdminTicketResponse:
    emails = await _service(ctx).emails_of([doc["userId"]])
    return AdminTicketResponse(ticket=admin_ticket_view(doc, emails.get(doc["userId"])))


# --- the user's tickets ----------------------------------------------------------------------


@router.add(
    "POST",
    "/support/contact",
    summary="Open a support ticket",
    tags=TAGS,
    body=ContactRequest,
    response=ContactResponse,
    status=201,
    errors=[413],
)
async def contact(ctx: Ctx[ContactRequest, Any]) -> ContactResponse:
    ticket_id = await _service(ctx).create_ticket(ctx.user_id, ctx.body.subject, ctx.body.message)
    return ContactResponse(success=True, ticketId=ticket_id)


@router.add(
    "GET",
    "/support/tickets",
    summary="The user's tickets, newest first",
    tags=TAGS,
    query=PageQuery,
    response=TicketList,
)
async def my_tickets(ctx: Ctx[Any, PageQuery]) -> TicketList:
    q = ctx.query
    docs, total = await _service(ctx).list_own(ctx.user_id, (q.page - 1) * q.pageSize, q.pageSize)
    return TicketList(
        tickets=[ticket_view(d) for d in docs], page=q.page, pageSize=q.pageSize, total=total
    )


@router.add(
    "GET",
    "/support/tickets/{ticketId}",
    summary="One of the user's tickets with its replies",
    tags=TAGS,
    response=TicketResponse,
    errors=[404],
)
async def my_ticket(ctx: Ctx[Any, Any]) -> TicketResponse:
    doc = await _service(ctx).get_own(ctx.user_id, ctx.path("ticketId"))
    return TicketResponse(ticket=ticket_view(doc))


@router.add(
    "POST",
    "/support/tickets/{ticketId}/reply",
    summary="Reply to one of the user's tickets (reopens a resolved one)",
    tags=TAGS,
    body=ReplyRequest,
    response=TicketResponse,
    errors=[404, 409, 413],
)
async def my_reply(ctx: Ctx[ReplyRequest, Any]) -> TicketResponse:
    doc = await _service(ctx).reply_as_user(ctx.user_id, ctx.path("ticketId"), ctx.body.message)
    return TicketResponse(ticket=ticket_view(doc))


# --- the staff desk ----------------------------------------------------------------------------


@router.add(
    "GET",
    "/admin/support/tickets",
    summary="All tickets, newest first, optionally by status",
    tags=ADMIN_TAGS,
    query=AdminTicketQuery,
    response=AdminTicketList,
    auth="admin",
)
async def all_tickets(ctx: Ctx[Any, AdminTicketQuery]) -> AdminTicketList:
    q = ctx.query
    service = _service(ctx)
    docs, total = await service.list_all(q.status, (q.page - 1) * q.pageSize, q.pageSize)
    emails = await service.emails_of([d["userId"] for d in docs])
    return AdminTicketList(
        tickets=[admin_ticket_view(d, emails.get(d["userId"])) for d in docs],
        page=q.page,
        pageSize=q.pageSize,
        total=total,
    )


@router.add(
    "GET",
    "/admin/support/tickets/{ticketId}",
    summary="Any ticket with its replies",
    tags=ADMIN_TAGS,
    response=AdminTicketResponse,
    auth="admin",
    errors=[404],
)
async def any_ticket(ctx: Ctx[Any, Any]) -> AdminTicketResponse:
    return await _admin_view(ctx, await _service(ctx).get(ctx.path("ticketId")))


@router.add(
    "POST",
    "/admin/support/tickets/{ticketId}/reply",
    summary="Reply as staff; the user gets an email",
    tags=ADMIN_TAGS,
    body=ReplyRequest,
    response=AdminTicketResponse,
    auth="admin",
    errors=[404, 409, 413],
)
async def staff_reply(ctx: Ctx[ReplyRequest, Any]) -> AdminTicketResponse:
    doc = await _service(ctx).reply_as_staff(ctx.user_id, ctx.path("ticketId"), ctx.body.message)
    return await _admin_view(ctx, doc)


@router.add(
    "PUT",
    "/admin/support/tickets/{ticketId}/status",
    summary="Set a ticket's status (new, in-progress, resolved)",
    tags=ADMIN_TAGS,
    body=StatusRequest,
    response=AdminTicketResponse,
    auth="admin",
    errors=[404],
)
async def set_status(ctx: Ctx[StatusRequest, Any]) -> AdminTicketResponse:
    doc = await _service(ctx).set_status(ctx.path("ticketId"), ctx.body.status)
    return await _admin_view(ctx, doc)
