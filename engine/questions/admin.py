"""Staff edits to the question bank: validated like the shipped bank, audited, cache dropped."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pydantic import ValidationError
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.errors import DuplicateKeyError

from core.db import Database, Doc, parse_object_id
from core.errors import Conflict, NotFound, ValidationFailed
from engine.questions.bank import BankQuestion
from engine.questions.repository import QuestionRepository

log = logging.getLogger(__name__)

BANK_FIELDS = ("slug", "level", "type", "tags", "difficulty", "text", "exampleAnswer", "keyPoints")
# Small fields whose old and new values the audit keeps; long texts are only named.
SCALAR_FIELDS = ("slug", "level", "type", "tags", "difficulty", "isActive")
MAX_IMPORT = 5000
MAX_REPORTED_ERRORS = 200


def validation_details(exc: ValidationError, prefix: list[str] | None = None) -> list[Doc]:
    """Pydantic errors without the input (texts can be long), with their location."""
    return [
        {"loc": [*(prefix or []), *(str(p) for p in e["loc"])], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def stored_fields(q: BankQuestion) -> Doc:
    """A bank question as the questions collection holds it (the repository's seed shape)."""
    return {
        "slug": q.slug,
        "type": q.type,
        "level": q.level,
        "question": q.text.ru,
        "text": q.text.model_dump(),
        "exampleAnswer": q.exampleAnswer.model_dump(),
        "keyPoints": [k.model_dump() for k in q.keyPoints],
        "tags": list(q.tags),
        "difficulty": q.difficulty,
    }


def bank_view(doc: Doc) -> Doc:
    """The bank-file form of a stored question (what export writes and import reads)."""
    return {name: doc.get(name) for name in BANK_FIELDS}


def _diff(before: Doc, after: Doc) -> Doc:
    changed = sorted(k for k, v in after.items() if before.get(k) != v and k != "question")
    summary: Doc = {"fields": changed}
    small = [k for k in changed if k in SCALAR_FIELDS]
    if small:
        summary["from"] = {k: before.get(k) for k in small}
        summary["to"] = {k: after[k] for k in small}
    return summary


class QuestionAdmin:
    def __init__(self, db: Database, repository: QuestionRepository) -> None:
        self._questions = db["questions"]
        self._changes = db["question_changes"]
        self._repository = repository

    # --- reading --------------------------------------------------------------------------

    async def list_questions(
        self,
        *,
        level: str | None = None,
        tag: str | None = None,
        active: bool | None = None,
        type_: str | None = None,
        skip: int = 0,
        limit: int = 50,
    ) -> tuple[list[Doc], int]:
        query = self._filter(level, tag, active, type_)
        cursor = (
            self._questions.find(query)
            .sort([("level", ASCENDING), ("slug", ASCENDING)])
            .skip(skip)
            .limit(limit)
        )
        return [d async for d in cursor], await self._questions.count_documents(query)

    async def get(self, question_id: str) -> Doc:
        oid = parse_object_id(question_id)
        doc = await self._questions.find_one({"_id": oid}) if oid else None
        if doc is None:
            raise NotFound("No such question", code="question_not_found")
        return doc

    async def history(self, question_id: str, limit: int = 100) -> list[Doc]:
        doc = await self.get(question_id)
        cursor = self._changes.find({"questionId": doc["_id"]}).sort("at", DESCENDING).limit(limit)
        return [d async for d in cursor]

    async def export(self, *, level: str | None = None, active: bool | None = None) -> list[Doc]:
        cursor = self._questions.find(self._filter(level, None, active, None)).sort(
            [("level", ASCENDING), ("slug", ASCENDING)]
        )
        return [bank_view(d) async for d in cursor]

    @staticmethod
    def _filter(level: str | None, tag: str | None, active: bool | None, type_: str | None) -> Doc:
        query: Doc = {}
        if level is not None:
            query["level"] = level
        if tag is not None:
            query["tags"] = tag
        if active is not None:
            query["isActive"] = active
        if type_ is not None:
            query["type"] = type_
        return query

    # --- changing ------------------------------------------------------------------------------

    async def create(self, question: BankQuestion, admin_id: str, *, active: bool = True) -> Doc:
        now = datetime.now(UTC)
        admin = _admin_oid(admin_id)
        doc: Doc = {
            **stored_fields(question),
            "isActive": active,
            "createdAt": now,
            "updatedAt": now,
            "updatedBy": admin,
        }
        try:
            result = await self._questions.insert_one(doc)
        except DuplicateKeyError:
            raise Conflict(f"The slug {question.slug!r} is taken", code="slug_taken") from None
        doc["_id"] = result.inserted_id
        await self._record(doc["_id"], question.slug, admin, "create", {"fields": ["*"]}, now)
        await self._repository.invalidate()
        return doc

    async def update(self, question_id: str, changes: Doc, admin_id: str) -> Doc:
        """Apply a partial change; the merged question must pass the bank's validation."""
        doc = await self.get(question_id)
        try:
            merged = BankQuestion.model_validate({**bank_view(doc), **changes})
        except ValidationError as exc:
            raise ValidationFailed(
                "The question is invalid", details=validation_details(exc)
            ) from None
        after = stored_fields(merged)
        diff = _diff(doc, after)
        if not diff["fields"]:
            return doc
        return await self._apply(
            doc, {k: after[k] for k in (*diff["fields"], "question")}, diff, admin_id, "update"
        )

    async def set_active(self, question_id: str, active: bool, admin_id: str) -> Doc:
        doc = await self.get(question_id)
        if bool(doc.get("isActive")) == active:
            return doc
        diff = {
            "fields": ["isActive"],
            "from": {"isActive": not active},
            "to": {"isActive": active},
        }
        return await self._apply(
            doc, {"isActive": active}, diff, admin_id, "activate" if active else "deactivate"
        )

    async def import_bank(self, items: list[Any], admin_id: str) -> dict[str, int]:
        """Validate every item first (all or nothing), then upsert by slug."""
        if len(items) > MAX_IMPORT:
            raise ValidationFailed(
                f"At most {MAX_IMPORT} questions per import", code="import_too_large"
            )
        questions: list[BankQuestion] = []
        errors: list[Doc] = []
        seen: set[str] = set()
        for index, item in enumerate(items):
            raw_slug = item.get("slug") if isinstance(item, dict) else None
            slug = raw_slug if isinstance(raw_slug, str) and len(raw_slug) <= 120 else None
            try:
                q = BankQuestion.model_validate(item)
            except ValidationError as exc:
                errors.append({"index": index, "slug": slug, "errors": validation_details(exc)})
                continue
            if q.slug in seen:
                errors.append(
                    {
                        "index": index,
                        "slug": q.slug,
                        "errors": [{"loc": ["slug"], "msg": "duplicate slug", "type": "unique"}],
                    }
                )
            seen.add(q.slug)
            questions.append(q)
        if errors:
            raise ValidationFailed(
                f"{len(errors)} of {len(items)} questions are invalid; nothing was imported",
                code="import_invalid",
                details=errors[:MAX_REPORTED_ERRORS],
            )
        return await self._upsert(questions, _admin_oid(admin_id))

    async def _upsert(self, questions: list[BankQuestion], admin: ObjectId) -> dict[str, int]:
        now = datetime.now(UTC)
        existing = {
            d["slug"]: d
            async for d in self._questions.find({"slug": {"$in": [q.slug for q in questions]}})
        }
        ops: list[UpdateOne] = []
        pending: list[tuple[str, str, Doc, ObjectId | None]] = []
        for q in questions:
            after = stored_fields(q)
            before = existing.get(q.slug)
            if before is None:
                ops.append(
                    UpdateOne(
                        {"slug": q.slug},
                        {
                            "$set": {**after, "updatedAt": now, "updatedBy": admin},
                            "$setOnInsert": {"isActive": True, "createdAt": now},
                        },
                        upsert=True,
                    )
                )
                pending.append(("import-create", q.slug, {"fields": ["*"]}, None))
                continue
            diff = _diff(before, after)
            if diff["fields"]:
                changed = {k: after[k] for k in (*diff["fields"], "question")}
                ops.append(
                    UpdateOne(
                        {"_id": before["_id"]},
                        {"$set": {**changed, "updatedAt": now, "updatedBy": admin}},
                    )
                )
                pending.append(("import-update", q.slug, diff, before["_id"]))
        if ops:
            await self._questions.bulk_write(ops, ordered=False)
            created = [slug for action, slug, _, oid in pending if oid is None]
            ids = {
                d["slug"]: d["_id"]
                async for d in self._questions.find({"slug": {"$in": created}}, {"slug": 1})
            }
            await self._changes.insert_many(
                [
                    self._change(oid or ids[slug], slug, admin, action, diff, now)
                    for action, slug, diff, oid in pending
                ]
            )
            await self._repository.invalidate()
        created_count = sum(1 for p in pending if p[3] is None)
        return {
            "total": len(questions),
            "created": created_count,
            "updated": len(pending) - created_count,
            "unchanged": len(questions) - len(pending),
        }

    async def _apply(self, doc: Doc, fields: Doc, diff: Doc, admin_id: str, action: str) -> Doc:
        now = datetime.now(UTC)
        admin = _admin_oid(admin_id)
        update = {**fields, "updatedAt": now, "updatedBy": admin}
        try:
            await self._questions.update_one({"_id": doc["_id"]}, {"$set": update})
        except DuplicateKeyError:
            raise Conflict(f"The slug {fields.get('slug')!r} is taken", code="slug_taken") from None
        slug = str(fields.get("slug", doc["slug"]))
        await self._record(doc["_id"], slug, admin, action, diff, now)
        await self._repository.invalidate()
        log.info("question changed", extra={"question": str(doc["_id"]), "action": action})
        return {**doc, **update}

    @staticmethod
    def _change(
        question_id: ObjectId, slug: str, admin: ObjectId, action: str, diff: Doc, at: datetime
    ) -> Doc:
        return {
            "questionId": question_id,
            "slug": slug,
            "adminId": admin,
            "action": action,
            "at": at,
            "diff": diff,
        }

    async def _record(
        self,
        question_id: ObjectId,
        slug: str,
        admin: ObjectId,
        action: str,
        diff: Doc,
        at: datetime,
    ) -> None:
        await self._changes.insert_one(self._change(question_id, slug, admin, action, diff, at))


def _admin_oid(admin_id: str) -> ObjectId:
    oid = parse_object_id(admin_id)
    if oid is None:
        raise NotFound("No such user", code="user_not_found")
    return oid
