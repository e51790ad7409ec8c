"""Content administration: staff create, edit, (de)activate, import and export questions."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel
from starlette.responses import JSONResponse

from core.db import Doc
from core.errors import AppError
from engine.questions.admin import QuestionAdmin
from engine.questions.bank import BankQuestion, KeyPoint, Localized
from http_api.framework import Ctx, QueryModel, ResponseModel, Router

router = Router()
TAGS = ["admin: questions"]

Level = Literal["intern", "junior", "middle"]
QuestionType = Literal["technical", "hr", "manager"]


class QuestionCreate(BankQuestion):
    """A bank question (the same rules as the shipped bank files), optionally inactive."""

    isActive: bool = True


class QuestionPatch(BaseModel):
    """Any bank fields to change; the merged question is validated as a whole."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    slug: str | None = None
    level: str | None = None
    type: str | None = None
    tags: list[str] | None = None
    difficulty: int | None = None
    text: Localized | None = None
    exampleAnswer: Localized | None = None
    keyPoints: list[KeyPoint] | None = None


class BankFile(RootModel[list[BankQuestion]]):
    """A JSON array of questions in the bank-file format."""


class QuestionQuery(QueryModel):
    level: Level | None = None
    tag: str | None = Field(default=None, max_length=80)
    active: bool | None = None
    type: QuestionType | None = None
    page: int = Field(default=1, ge=1, le=10_000)
    pageSize: int = Field(default=50, ge=1, le=200)


class ExportQuery(QueryModel):
    level: Level | None = None
    active: bool | None = None


class QuestionView(ResponseModel):
    id: str
    slug: str
    level: str
    type: str
    tags: list[str]
    difficulty: int
    text: dict[str, str]
    exampleAnswer: dict[str, str]
    keyPoints: list[dict[str, Any]]
    isActive: bool
    createdAt: datetime | None
    updatedAt: datetime | None
    updatedBy: str | None


class QuestionResponse(ResponseModel):
    question: QuestionView


class QuestionList(ResponseModel):
    questions: list[QuestionView]
    page: int
    pageSize: int
    total: int


class ImportResult(ResponseModel):
    success: bool
    total: int
    created: int
    updated: int
    unchanged: int


class ChangeView(ResponseModel):
    action: str
    adminId: str
    at: datetime
    slug: str
    diff: dict[str, Any]


class HistoryResponse(ResponseModel):
    changes: list[ChangeView]


def _admin(ctx: Ctx[Any, Any]) -> QuestionAdmin:
    service: QuestionAdmin = ctx.request.app.state.question_admin
    return service


def question_view(doc: Doc) -> QuestionView:
    updated_by = doc.get("updatedBy")
    return QuestionView(
        id=str(doc["_id"]),
        slug=doc["slug"],
        level=doc["level"],
        type=doc.get("type", "technical"),
        tags=doc.get("tags") or [],
        difficulty=doc["difficulty"],
        text=doc["text"],
        exampleAnswer=doc["exampleAnswer"],
        keyPoints=doc["keyPoints"],
        isActive=bool(doc.get("isActive")),
        createdAt=doc.get("createdAt"),
        updatedAt=doc.get("updatedAt"),
        updatedBy=str(updated_by) if updated_by is not None else None,
    )


@router.add(
    "GET",
    "/admin/questions",
    summary="Questions by level, tag, type and state",
    tags=TAGS,
    query=QuestionQuery,
    response=QuestionList,
    auth="admin",
)
async def list_questions(ctx: Ctx[Any, QuestionQuery]) -> QuestionList:
    q = ctx.query
    docs, total = await _admin(ctx).list_questions(
        level=q.level,
        tag=q.tag,
        active=q.active,
        type_=q.type,
        skip=(q.page - 1) * q.pageSize,
        limit=q.pageSize,
    )
    return QuestionList(
        questions=[question_view(d) for d in docs], page=q.page, pageSize=q.pageSize, total=total
    )


@router.add(
    "GET",
    "/admin/questions/export",
    summary="Export questions as a bank file (a JSON array)",
    tags=TAGS,
    query=ExportQuery,
    response=BankFile,
    auth="admin",
)
async def export_questions(ctx: Ctx[Any, ExportQuery]) -> JSONResponse:
    items = await _admin(ctx).export(level=ctx.query.level, active=ctx.query.active)
    name = f"questions-{ctx.query.level or 'all'}.json"
    return JSONResponse(items, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.add(
    "POST",
    "/admin/questions/import",
    summary="Import a bank file (JSON array); all valid or nothing changes; upsert by slug",
    tags=TAGS,
    response=ImportResult,
    auth="admin",
    errors=[400, 413, 422],
)
async def import_questions(ctx: Ctx[Any, Any]) -> ImportResult:
    # The body is an array (the export's format), which the typed-body parser does not take.
    try:
        data = json.loads(await ctx.request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise AppError("The body is not valid JSON", code="malformed_json") from None
    if isinstance(data, dict) and isinstance(data.get("questions"), list):
        data = data["questions"]
    if not isinstance(data, list):
        raise AppError("The body must be a JSON array of questions", code="malformed_json")
    counts = await _admin(ctx).import_bank(data, ctx.user_id)
    return ImportResult(success=True, **counts)


@router.add(
    "GET",
    "/admin/questions/{questionId}",
    summary="One question",
    tags=TAGS,
    response=QuestionResponse,
    auth="admin",
    errors=[404],
)
async def get_question(ctx: Ctx[Any, Any]) -> QuestionResponse:
    return QuestionResponse(question=question_view(await _admin(ctx).get(ctx.path("questionId"))))


@router.add(
    "GET",
    "/admin/questions/{questionId}/history",
    summary="Who changed the question, when and what",
    tags=TAGS,
    response=HistoryResponse,
    auth="admin",
    errors=[404],
)
async def question_history(ctx: Ctx[Any, Any]) -> HistoryResponse:
    changes = await _admin(ctx).history(ctx.path("questionId"))
    return HistoryResponse(
        changes=[
            ChangeView(
                action=c["action"],
                adminId=str(c["adminId"]),
                at=c["at"],
                slug=c["slug"],
                diff=c.get("diff") or {},
            )
            for c in changes
        ]
    )


@router.add(
    "POST",
    "/admin/questions",
    summary="Create a question (validated like the shipped bank)",
    tags=TAGS,
    body=QuestionCreate,
    response=QuestionResponse,
    status=201,
    auth="admin",
    errors=[409, 413],
)
async def create_question(ctx: Ctx[QuestionCreate, Any]) -> QuestionResponse:
    fields = ctx.body.model_dump(exclude={"isActive"})
    doc = await _admin(ctx).create(
        BankQuestion.model_validate(fields), ctx.user_id, active=ctx.body.isActive
    )
    return QuestionResponse(question=question_view(doc))


@router.add(
    "PUT",
    "/admin/questions/{questionId}",
    summary="Change some fields of a question (the result is validated as a whole)",
    tags=TAGS,
    body=QuestionPatch,
    response=QuestionResponse,
    auth="admin",
    errors=[404, 409, 413],
)
async def update_question(ctx: Ctx[QuestionPatch, Any]) -> QuestionResponse:
    changes = ctx.body.model_dump(include=ctx.body.model_fields_set)
    if not changes:
        raise AppError("Give at least one field to change", code="validation_error", status=422)
    doc = await _admin(ctx).update(ctx.path("questionId"), changes, ctx.user_id)
    return QuestionResponse(question=question_view(doc))


async def _set_active(ctx: Ctx[Any, Any], active: bool) -> QuestionResponse:
    doc = await _admin(ctx).set_active(ctx.path("questionId"), active, ctx.user_id)
    return QuestionResponse(question=question_view(doc))


@router.add(
    "POST",
    "/admin/questions/{questionId}/activate",
    summary="Offer the question in interviews again",
    tags=TAGS,
    response=QuestionResponse,
    auth="admin",
    errors=[404],
)
async def activate_question(ctx: Ctx[Any, Any]) -> QuestionResponse:
    return await _set_active(ctx, True)


@router.add(
    "POST",
    "/admin/questions/{questionId}/deactivate",
    summary="Stop offering the question (running interviews keep it)",
    tags=TAGS,
    response=QuestionResponse,
    auth="admin",
    errors=[404],
)
async def deactivate_question(ctx: Ctx[Any, Any]) -> QuestionResponse:
    return await _set_active(ctx, False)
