"""Content administration: staff create, edit, (de)activate, import and export questions."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model
from pydantic.fields import FieldInfo
from starlette.responses import JSONResponse

from core.db import Doc
from core.errors import AppError
from engine.questions.admin import MAX_IMPORT
from engine.questions.bank import BankQuestion
from http_api.deps import Admin, Questions
from http_api.routing import area_router, errors, raw_body, read_json, schema_ref
from http_api.schemas import Level, QueryModel, ResponseModel

router = area_router("admin: questions")

QuestionType = Literal["technical", "hr", "manager"]
QuestionId = Annotated[str, Path(alias="questionId", description="A question id")]


class QuestionCreate(BankQuestion):
    """A bank question (the same rules as the shipped bank files), optionally inactive."""

    isActive: bool = True


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _optional(field: FieldInfo) -> tuple[Any, FieldInfo]:
    # The same type and constraints as in a bank question, but may be left out (never null).
    info = FieldInfo.merge_field_infos(field, default=None, json_schema_extra=_drop_default)
    return field.rebuild_annotation(), info


# Any fields of a bank question, with the same rules; the merged question is then validated as
# a whole (a new slug must be free, for one). Built from BankQuestion so the two never drift.
if TYPE_CHECKING:
    QuestionPatch = BaseModel
else:
    QuestionPatch = create_model(
        "QuestionPatch",
        __config__=ConfigDict(
            extra="forbid",
            frozen=True,
            json_schema_extra={
                "minProperties": 1,
                "examples": [{"difficulty": 3, "tags": ["python", "concurrency"]}],
            },
        ),
        __doc__="Fields of a bank question to change: at least one, each with the bank's rules.",
        **{name: _optional(field) for name, field in BankQuestion.model_fields.items()},
    )


class BankFile(RootModel[list[BankQuestion]]):
    """A JSON array of questions in the bank-file format."""


class QuestionImport(BaseModel):
    """The bank file wrapped in an object."""

    questions: list[BankQuestion] = Field(max_length=MAX_IMPORT)


DOCUMENTED_MODELS: tuple[type[BaseModel], ...] = (BankQuestion, QuestionImport)
IMPORT_BODY = raw_body(
    {
        "anyOf": [
            {"type": "array", "items": schema_ref(BankQuestion), "maxItems": MAX_IMPORT},
            schema_ref(QuestionImport),
        ]
    },
    "A bank file (the export's format), or an object with it under `questions`. Every "
    "question is validated before anything is written: one invalid question refuses the "
    "whole import (422 `import_invalid`, with each invalid question's index and errors).",
)


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


class AdminQuestionView(ResponseModel):
    """A stored question with its state and who last changed it."""

    id: str
    slug: str
    level: Level
    type: QuestionType
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
    question: AdminQuestionView


class QuestionList(ResponseModel):
    questions: list[AdminQuestionView]
    page: int
    pageSize: int
    total: int


class ImportResult(ResponseModel):
    success: bool
    total: int
    created: int
    updated: int
    unchanged: int


class QuestionChange(ResponseModel):
    action: Literal["create", "update", "activate", "deactivate", "import-create", "import-update"]
    adminId: str
    at: datetime
    slug: str
    diff: dict[str, Any]


class QuestionHistory(ResponseModel):
    changes: list[QuestionChange] = Field(description="Oldest first")


def question_view(doc: Doc) -> AdminQuestionView:
    updated_by = doc.get("updatedBy")
    return AdminQuestionView(
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


@router.get("/admin/questions", summary="Questions by level, tag, type and state")
async def list_questions(
    query: Annotated[QuestionQuery, Query()], admin: Admin, questions: Questions
) -> QuestionList:
    """One page of stored questions, filtered."""
    docs, total = await questions.list_questions(
        level=query.level,
        tag=query.tag,
        active=query.active,
        type_=query.type,
        skip=(query.page - 1) * query.pageSize,
        limit=query.pageSize,
    )
    return QuestionList(
        questions=[question_view(d) for d in docs],
        page=query.page,
        pageSize=query.pageSize,
        total=total,
    )


@router.get(
    "/admin/questions/export",
    summary="Export questions as a bank file (a JSON array)",
    response_model=BankFile,
)
async def export_questions(
    query: Annotated[ExportQuery, Query()], admin: Admin, questions: Questions
) -> JSONResponse:
    """The questions in the shipped bank's file format, as a download; import takes it back."""
    items = await questions.export(level=query.level, active=query.active)
    name = f"questions-{query.level or 'all'}.json"
    return JSONResponse(items, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post(
    "/admin/questions/import",
    summary="Import a bank file (JSON array); all valid or nothing changes; upsert by slug",
    responses=errors(400, 413, 422),
    openapi_extra=IMPORT_BODY,
)
async def import_questions(request: Request, admin: Admin, questions: Questions) -> ImportResult:
    """Create the questions with new slugs and update the others (staff edits included).

    The body is read here rather than by the typed-body parser so that every invalid question
    is reported at once, by its index.
    """
    data = await read_json(request)
    if isinstance(data, dict) and isinstance(data.get("questions"), list):
        data = data["questions"]
    if not isinstance(data, list):
        raise AppError("The body must be a JSON array of questions", code="malformed_json")
    counts = await questions.import_bank(data, admin.user_id)
    return ImportResult(success=True, **counts)


@router.get("/admin/questions/{questionId}", summary="One question", responses=errors(404))
async def get_question(
    question_id: QuestionId, admin: Admin, questions: Questions
) -> QuestionResponse:
    """The stored question with its state."""
    return QuestionResponse(question=question_view(await questions.get(question_id)))


@router.get(
    "/admin/questions/{questionId}/history",
    summary="Who changed the question, when and what",
    responses=errors(404),
)
async def question_history(
    question_id: QuestionId, admin: Admin, questions: Questions
) -> QuestionHistory:
    """Every change to the question: who, when, and the fields before and after."""
    changes = await questions.history(question_id)
    return QuestionHistory(
        changes=[
            QuestionChange(
                action=c["action"],
                adminId=str(c["adminId"]),
                at=c["at"],
                slug=c["slug"],
                diff=c.get("diff") or {},
            )
            for c in changes
        ]
    )


@router.post(
    "/admin/questions",
    summary="Create a question (validated like the shipped bank)",
    status_code=201,
    responses=errors(409, 413),
)
async def create_question(
    body: QuestionCreate, admin: Admin, questions: Questions
) -> QuestionResponse:
    """A new question; 409 when the slug is taken."""
    fields = body.model_dump(exclude={"isActive"})
    doc = await questions.create(
        BankQuestion.model_validate(fields), admin.user_id, active=body.isActive
    )
    return QuestionResponse(question=question_view(doc))


@router.put(
    "/admin/questions/{questionId}",
    summary="Change some fields of a question (the result is validated as a whole)",
    responses=errors(404, 409, 413),
)
async def update_question(
    question_id: QuestionId,
    body: QuestionPatch,
    admin: Admin,
    questions: Questions,
) -> QuestionResponse:
    """Change the given fields; the changed question must still be a valid bank question.

    409 when a new slug is taken; the question cache is dropped on every change.
    """
    changes = body.model_dump(include=body.model_fields_set)
    if not changes:
        raise AppError("Give at least one field to change", code="validation_error", status=422)
    doc = await questions.update(question_id, changes, admin.user_id)
    return QuestionResponse(question=question_view(doc))


@router.post(
    "/admin/questions/{questionId}/activate",
    summary="Offer the question in interviews again",
    responses=errors(404),
)
async def activate_question(
    question_id: QuestionId, admin: Admin, questions: Questions
) -> QuestionResponse:
    """New interviews may ask it again."""
    doc = await questions.set_active(question_id, True, admin.user_id)
    return QuestionResponse(question=question_view(doc))


@router.post(
    "/admin/questions/{questionId}/deactivate",
    summary="Stop offering the question (running interviews keep it)",
    responses=errors(404),
)
async def deactivate_question(
    question_id: QuestionId, admin: Admin, questions: Questions
) -> QuestionResponse:
    """New interviews no longer ask it; interviews that already have it keep it."""
    doc = await questions.set_active(question_id, False, admin.user_id)
    return QuestionResponse(question=question_view(doc))
