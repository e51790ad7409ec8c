"""Support tickets over REST: the user's own tickets, and the staff desk under /admin."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from core.db import Doc
from core.errors import ValidationFailed
from core.settings import Settings
from core.support import SUBJECT_MAX_CHARS, SupportService, TicketStatus
from http_api.deps import Admin, AppSettings, CurrentUser, Support
from http_api.docs import max_length_from
from http_api.routing import area_router, errors
from http_api.schemas import PageQuery, RequestModel, ResponseModel

router = area_router("support")
admin_router = area_router("admin: support")

# The exact limit is the SUPPORT_MESSAGE_MAX_CHARS setting (checked below, and documented from
# it); this only stops absurd bodies early.
MESSAGE_HARD_MAX = 20_000
# The service refuses a blank subject or message (after trimming): the schema says so too.
NOT_BLANK: JsonDict = {"pattern": r"\S"}
TicketId = Annotated[str, Path(alias="ticketId", description="A ticket id")]


def _message_field() -> Any:
    return Field(
        min_length=1,
        max_length=MESSAGE_HARD_MAX,
        json_schema_extra={**NOT_BLANK, **max_length_from("support_message_max_chars")},
    )


def check_message_length(message: str, settings: Settings) -> None:
    """The documented limit, on the text as sent (the service measures it trimmed)."""
    limit = settings.support_message_max_chars
    if len(message) > limit:
        raise ValidationFailed(
            f"Messages are limited to {limit} characters",
            code="message_too_long",
            details={"maxChars": limit},
        )


class ContactRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"subject": "Payment", "message": "I paid, but the status still says free."}
            ]
        }
    )

    subject: str = Field(min_length=1, max_length=SUBJECT_MAX_CHARS, json_schema_extra=NOT_BLANK)
    message: str = _message_field()


class ContactResponse(ResponseModel):
    success: bool
    ticketId: str


class ReplyRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"message": "Thank you, it works now."}]}
    )

    message: str = _message_field()


class StatusRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "resolved"}]})

    status: TicketStatus


class AdminTicketQuery(PageQuery):
    status: TicketStatus | None = Field(default=None, description="Only tickets in this state")


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


async def _admin_view(service: SupportService, doc: Doc) -> AdminTicketResponse:
    emails = await service.emails_of([doc["userId"]])
    return AdminTicketResponse(ticket=admin_ticket_view(doc, emails.get(doc["userId"])))


# --- the user's tickets ----------------------------------------------------------------------


@router.post(
    "/support/contact",
    summary="Open a support ticket",
    status_code=201,
    responses=errors(413),
)
async def contact(
    body: ContactRequest, user: CurrentUser, support: Support, settings: AppSettings
) -> ContactResponse:
    """Open a ticket; staff answer in the ticket and by mail.

    At most `SUPPORT_TICKETS_PER_DAY` tickets a day (429 past it); messages are limited to
    `SUPPORT_MESSAGE_MAX_CHARS` characters.
    """
    check_message_length(body.message, settings)
    ticket_id = await support.create_ticket(user.user_id, body.subject, body.message)
    return ContactResponse(success=True, ticketId=ticket_id)


@router.get("/support/tickets", summary="The user's tickets, newest first")
async def my_tickets(
    query: Annotated[PageQuery, Query()], user: CurrentUser, support: Support
) -> TicketList:
    """One page of the user's own tickets with their replies."""
    docs, total = await support.list_own(
        user.user_id, (query.page - 1) * query.pageSize, query.pageSize
    )
    return TicketList(
        tickets=[ticket_view(d) for d in docs],
        page=query.page,
        pageSize=query.pageSize,
        total=total,
    )


@router.get(
    "/support/tickets/{ticketId}",
    summary="One of the user's tickets with its replies",
    responses=errors(404),
)
async def my_ticket(ticket_id: TicketId, user: CurrentUser, support: Support) -> TicketResponse:
    """One of the user's own tickets; 404 for anyone else's."""
    doc = await support.get_own(user.user_id, ticket_id)
    return TicketResponse(ticket=ticket_view(doc))


@router.post(
    "/support/tickets/{ticketId}/reply",
    summary="Reply to one of the user's tickets (reopens a resolved one)",
    responses=errors(404, 409, 413),
)
async def my_reply(
    ticket_id: TicketId,
    body: ReplyRequest,
    user: CurrentUser,
    support: Support,
    settings: AppSettings,
) -> TicketResponse:
    """Add a message to the ticket; a resolved ticket opens again. 409 past the reply limit."""
    check_message_length(body.message, settings)
    doc = await support.reply_as_user(user.user_id, ticket_id, body.message)
    return TicketResponse(ticket=ticket_view(doc))


# --- the staff desk ----------------------------------------------------------------------------


@admin_router.get(
    "/admin/support/tickets",
    summary="All tickets, newest first, optionally by status",
)
async def all_tickets(
    query: Annotated[AdminTicketQuery, Query()], admin: Admin, support: Support
) -> AdminTicketList:
    """One page of every user's tickets, with the users' addresses."""
    docs, total = await support.list_all(
        query.status, (query.page - 1) * query.pageSize, query.pageSize
    )
    emails = await support.emails_of([d["userId"] for d in docs])
    return AdminTicketList(
        tickets=[admin_ticket_view(d, emails.get(d["userId"])) for d in docs],
        page=query.page,
        pageSize=query.pageSize,
        total=total,
    )


@admin_router.get(
    "/admin/support/tickets/{ticketId}",
    summary="Any ticket with its replies",
    responses=errors(404),
)
async def any_ticket(ticket_id: TicketId, admin: Admin, support: Support) -> AdminTicketResponse:
    """Any user's ticket with its replies and the user's address."""
    return await _admin_view(support, await support.get(ticket_id))


@admin_router.post(
    "/admin/support/tickets/{ticketId}/reply",
    summary="Reply as staff; the user gets an email",
    responses=errors(404, 409, 413),
)
async def staff_reply(
    ticket_id: TicketId,
    body: ReplyRequest,
    admin: Admin,
    support: Support,
    settings: AppSettings,
) -> AdminTicketResponse:
    """Answer the user; the ticket moves to in-progress and the user is mailed."""
    check_message_length(body.message, settings)
    doc = await support.reply_as_staff(admin.user_id, ticket_id, body.message)
    return await _admin_view(support, doc)


@admin_router.put(
    "/admin/support/tickets/{ticketId}/status",
    summary="Set a ticket's status (new, in-progress, resolved)",
    responses=errors(404),
)
async def set_status(
    ticket_id: TicketId, body: StatusRequest, admin: Admin, support: Support
) -> AdminTicketResponse:
    """Move the ticket to another state."""
    doc = await support.set_status(ticket_id, body.status)
    return await _admin_view(support, doc)
