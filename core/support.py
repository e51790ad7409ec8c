"""Support tickets: users open and answer their own; staff answer, triage and resolve them."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from bson import ObjectId
from pymongo import DESCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from core.db import Database, Doc, parse_object_id
from core.errors import AppError, Conflict, NotFound, ValidationFailed
from core.mailing import Mailer
from core.settings import Settings

if TYPE_CHECKING:
    from core.container import Infrastructure

log = logging.getLogger(__name__)

TicketStatus = Literal["new", "in-progress", "resolved"]
SUBJECT_MAX_CHARS = 200
MAX_RESPONSES = 200  # bounds the document: every response may be support_message_max_chars long
LIMIT_WINDOW = timedelta(days=1)
REPLY_TEMPLATE = "support_reply"


class SupportService:
    def __init__(self, settings: Settings, db: Database, mailer: Mailer) -> None:
        self._settings = settings
        self._tickets = db["support_tickets"]
        self._slots = db["support_ticket_slots"]
        self._users = db["users"]
        self._mailer = mailer

    # --- validation ------------------------------------------------------------------------

    def _clean_subject(self, subject: str) -> str:
        text = subject.strip()
        if not text:
            raise ValidationFailed("The subject cannot be blank", code="subject_blank")
        if len(text) > SUBJECT_MAX_CHARS:
            raise ValidationFailed(
                f"Subjects are limited to {SUBJECT_MAX_CHARS} characters", code="subject_too_long"
            )
        return text

    def _clean_message(self, message: str) -> str:
        text = message.strip()
        limit = self._settings.support_message_max_chars
        if not text:
            raise ValidationFailed("The message cannot be blank", code="message_blank")
        if len(text) > limit:
            raise ValidationFailed(
                f"Messages are limited to {limit} characters",
                code="message_too_long",
                details={"maxChars": limit},
            )
        return text

    # --- the user's side -------------------------------------------------------------------

    async def _claim_slot(self, user_oid: ObjectId, ticket_oid: ObjectId, now: datetime) -> None:
        """Take one of the user's `support_tickets_per_day` slots for a rolling day.

        A slot is free when it does not exist or its `until` has passed; taking it is one
        upsert guarded by the unique (userId, slot) index, so concurrent requests can never
        share a slot and every free slot is taken by someone.
        """
        limit = self._settings.support_tickets_per_day
        for slot in range(limit):
            try:
                await self._slots.update_one(
                    {"userId": user_oid, "slot": slot, "until": {"$lte": now}},
                    {"$set": {"until": now + LIMIT_WINDOW, "ticketId": ticket_oid}},
                    upsert=True,
                )
            except DuplicateKeyError:
                continue  # held by a ticket from the last day
            return
        held = [
            d["until"] async for d in self._slots.find({"userId": user_oid, "until": {"$gt": now}})
        ]
        # The slot that frees up first decides when a new ticket is allowed.
        raise self._limit_error((min(held) - now) if held else timedelta(minutes=1))

    async def _release_slot(self, user_oid: ObjectId, ticket_oid: ObjectId, now: datetime) -> None:
        await self._slots.update_one(
            {"userId": user_oid, "ticketId": ticket_oid}, {"$set": {"until": now}}
        )

    def _limit_error(self, wait: timedelta) -> AppError:
        limit = self._settings.support_tickets_per_day
        retry_after = max(1, math.ceil(wait.total_seconds()))
        return AppError(
            f"At most {limit} tickets a day; please add to an open ticket instead",
            code="ticket_limit",
            status=429,
            details={"limit": limit, "retryAfter": retry_after},
            headers={"Retry-After": str(retry_after)},
        )

    async def create_ticket(self, user_id: str, subject: str, message: str) -> str:
        """Open a ticket; refused past `support_tickets_per_day` in a rolling day."""
        user_oid = _oid(user_id)
        clean_subject = self._clean_subject(subject)
        clean_message = self._clean_message(message)
        now = datetime.now(UTC)
        ticket_oid = ObjectId()
        await self._claim_slot(user_oid, ticket_oid, now)
        doc: Doc = {
            "_id": ticket_oid,
            "userId": user_oid,
            "subject": clean_subject,
            "message": clean_message,
            "status": "new",
            "createdAt": now,
            "updatedAt": now,
            "responses": [],
        }
        try:
            result = await self._tickets.insert_one(doc)
        except BaseException:
            await self._release_slot(user_oid, ticket_oid, now)
            raise
        log.info("support ticket opened", extra={"ticket": str(result.inserted_id)})
        return str(result.inserted_id)

    async def list_own(self, user_id: str, skip: int, limit: int) -> tuple[list[Doc], int]:
        query = {"userId": _oid(user_id)}
        return await self._page(query, skip, limit)

    async def get_own(self, user_id: str, ticket_id: str) -> Doc:
        """The user's own ticket; anyone else's is indistinguishable from a missing one."""
        oid = parse_object_id(ticket_id)
        doc = await self._tickets.find_one({"_id": oid, "userId": _oid(user_id)}) if oid else None
        if doc is None:
            raise NotFound("No such ticket", code="ticket_not_found")
        return doc

    async def reply_as_user(self, user_id: str, ticket_id: str, message: str) -> Doc:
        """Add the user's reply; a resolved ticket the user answers is open again."""
        owned = await self.get_own(user_id, ticket_id)
        status = "in-progress" if owned["status"] == "resolved" else owned["status"]
        return await self._append(owned["_id"], message, is_staff=False, status=status)

    # --- the staff side --------------------------------------------------------------------

    async def list_all(
        self, status: TicketStatus | None, skip: int, limit: int
    ) -> tuple[list[Doc], int]:
        query: Doc = {} if status is None else {"status": status}
        return await self._page(query, skip, limit)

    async def get(self, ticket_id: str) -> Doc:
        oid = parse_object_id(ticket_id)
        doc = await self._tickets.find_one({"_id": oid}) if oid else None
        if doc is None:
            raise NotFound("No such ticket", code="ticket_not_found")
        return doc

    async def reply_as_staff(self, staff_id: str, ticket_id: str, message: str) -> Doc:
        """Add a staff reply and mail the user, in their language."""
        ticket = await self.get(ticket_id)
        status = "in-progress" if ticket["status"] == "new" else ticket["status"]
        updated = await self._append(
            ticket["_id"], message, is_staff=True, status=status, author=staff_id
        )
        user = await self._users.find_one({"_id": ticket["userId"]}, {"email": 1, "language": 1})
        if user is not None:
            base = self._settings.public_base_url.rstrip("/")
            await self._mailer.send(
                REPLY_TEMPLATE,
                user["email"],
                user.get("language", "ru"),
                {
                    "subject": ticket["subject"],
                    "reply": updated["responses"][-1]["message"],
                    "ticket_id": str(ticket["_id"]),
                    "link": f"{base}/",
                },
            )
        return updated

    async def set_status(self, ticket_id: str, status: TicketStatus) -> Doc:
        oid = parse_object_id(ticket_id)
        doc = (
            await self._tickets.find_one_and_update(
                {"_id": oid},
                {"$set": {"status": status, "updatedAt": datetime.now(UTC)}},
                return_document=ReturnDocument.AFTER,
            )
            if oid
            else None
        )
        if doc is None:
            raise NotFound("No such ticket", code="ticket_not_found")
        return doc

    async def emails_of(self, user_ids: list[ObjectId]) -> dict[ObjectId, str]:
        """The addresses of the tickets' authors, for the staff list (one query per page)."""
        cursor = self._users.find({"_id": {"$in": list(set(user_ids))}}, {"email": 1})
        return {d["_id"]: d["email"] async for d in cursor}

    # --- shared ------------------------------------------------------------------------------

    async def _page(self, query: Doc, skip: int, limit: int) -> tuple[list[Doc], int]:
        cursor = (
            self._tickets.find(query)
            .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
            .skip(skip)
            .limit(limit)
        )
        docs = [d async for d in cursor]
        return docs, await self._tickets.count_documents(query)

    async def _append(
        self,
        ticket_oid: ObjectId,
        message: str,
        *,
        is_staff: bool,
        status: str,
        author: str | None = None,
    ) -> Doc:
        text = self._clean_message(message)
        now = datetime.now(UTC)
        response: dict[str, Any] = {"message": text, "isStaff": is_staff, "createdAt": now}
        if author is not None:
            response["authorId"] = _oid(author)
        doc = await self._tickets.find_one_and_update(
            # The size check in the filter makes the cap race-free.
            {"_id": ticket_oid, f"responses.{MAX_RESPONSES - 1}": {"$exists": False}},
            {"$push": {"responses": response}, "$set": {"status": status, "updatedAt": now}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise Conflict(
                "This ticket has too many replies; please open a new one", code="ticket_full"
            )
        return doc


def _oid(value: str) -> ObjectId:
    oid = parse_object_id(value)
    if oid is None:
        raise NotFound("No such user", code="user_not_found")
    return oid


def build_support(infra: Infrastructure) -> SupportService:
    """The support service on the shared infrastructure (web nodes only; it runs no jobs)."""
    return SupportService(infra.settings, infra.db, infra.mailer)
