"""Interviews over REST: the same engine and the same record as the socket."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from core.db import Doc
from core.errors import AppError, Conflict, NotFound, ValidationFailed
from core.security import hash_token, new_secret_token
from engine.state import AnswerSubmitted, InterviewState, ProtocolViolation, Status, iso
from http_api.framework import Ctx, QueryModel, RequestModel, ResponseModel, Router
from http_api.schemas import Language
from protocol.v1.messages import PATH as SOCKET_PATH

router = Router()
TAGS = ["interviews"]
LEVELS = ["intern", "junior", "middle"]
Level = Literal["intern", "junior", "middle"]


class LevelsResponse(ResponseModel):
    levels: list[str]
    questionsPerInterview: int
    timeLimitsSec: dict[str, int]
    passThresholds: dict[str, int]


class StartRequest(RequestModel):
    level: Level
    language: Language | None = None


class QuestionView(ResponseModel):
    questionId: str
    index: int
    total: int
    text: str
    tags: list[str]
    timeLimitSec: int
    deadline: str | None


class StartResponse(ResponseModel):
    interviewId: str
    questions: list[QuestionView] = Field(description="The questions asked so far: the first one")
    total: int
    socketPath: str


class AnswerRequest(RequestModel):
    questionId: str = Field(min_length=1, max_length=64)
    answer: str = Field(max_length=100_000)
    clientMsgId: str | None = Field(default=None, min_length=1, max_length=64)


class Scores(ResponseModel):
    correctness: float
    completeness: float
    clarity: float


class EvaluationView(ResponseModel):
    score: float
    scores: Scores
    feedback: str
    source: str


class AnswerResponse(ResponseModel):
    success: bool
    evaluation: EvaluationView | None
    nextQuestion: QuestionView | None
    status: str


class ResultResponse(ResponseModel):
    score: int
    passed: bool
    feedback: str
    strongTopics: list[str]
    weakTopics: list[str]


class HistoryQuery(QueryModel):
    page: int = Field(default=1, ge=1, le=10_000)
    pageSize: int = Field(default=20, ge=1, le=100)


class HistoryItem(ResponseModel):
    interviewId: str
    type: str
    level: str
    language: str
    status: str
    startTime: datetime
    endTime: datetime | None
    overallScore: int | None
    passed: bool | None
    answered: int
    total: int


class HistoryResponse(ResponseModel):
    interviews: list[HistoryItem]
    page: int
    pageSize: int
    total: int


class ReportQuestion(ResponseModel):
    questionId: str
    index: int
    question: str
    tags: list[str]
    userAnswer: str | None
    auto: bool
    aiEvaluation: EvaluationView | None


class ReportResponse(ResponseModel):
    interviewId: str
    level: str
    language: str
    status: str
    startTime: datetime
    endTime: datetime | None
    overallScore: int | None
    passed: bool | None
    feedback: str | None
    strongTopics: list[str]
    weakTopics: list[str]
    percentile: int | None
    questions: list[ReportQuestion]
    shared: bool


class ShareResponse(ResponseModel):
    shareUrl: str
    token: str


class SuccessOnly(ResponseModel):
    success: bool


def question_view(state: InterviewState) -> QuestionView | None:
    q = state.current_question
    if q is None or state.status is not Status.AWAITING_ANSWER:
        return None
    return QuestionView(
        questionId=q.question_id,
        index=state.current,
        total=len(state.questions),
        text=q.text,
        tags=q.tags,
        timeLimitSec=q.time_limit_sec,
        deadline=iso(state.deadline) if state.deadline else None,
    )


def _as_http(exc: ProtocolViolation) -> AppError:
    return Conflict(exc.message, code=exc.code)


@router.add(
    "GET",
    "/interviews/technical",
    summary="Levels of technical interviews",
    tags=TAGS,
    response=LevelsResponse,
)
async def levels(ctx: Ctx[Any, Any]) -> LevelsResponse:
    s = ctx.services.settings
    return LevelsResponse(
        levels=LEVELS,
        questionsPerInterview=s.questions_per_interview,
        timeLimitsSec={lv: s.time_limit_sec(lv) for lv in LEVELS},
        passThresholds={lv: s.pass_threshold(lv) for lv in LEVELS},
    )


@router.add(
    "POST",
    "/interviews/technical/start",
    summary="Start a technical interview",
    tags=TAGS,
    body=StartRequest,
    response=StartResponse,
    status=201,
    errors=[402, 403],
)
async def start_interview(ctx: Ctx[StartRequest, Any]) -> StartResponse:
    started = await ctx.services.engine.service.start_interview(
        ctx.user_id, ctx.body.level, ctx.body.language
    )
    first = question_view(started.state)
    return StartResponse(
        interviewId=started.interview_id,
        questions=[first] if first else [],
        total=len(started.state.questions),
        socketPath=SOCKET_PATH,
    )


@router.add(
    "POST",
    "/interviews/technical/{interviewId}/answer",
    summary="Answer the current question; returns its evaluation and the next question",
    tags=TAGS,
    body=AnswerRequest,
    response=AnswerResponse,
    errors=[404, 409],
)
async def answer(ctx: Ctx[AnswerRequest, Any]) -> AnswerResponse:
    service = ctx.services.engine.service
    interview_id = ctx.path("interviewId")
    if len(ctx.body.answer) > ctx.services.settings.answer_max_chars:
        raise ValidationFailed(
            f"Answers are limited to {ctx.services.settings.answer_max_chars} characters",
            code="answer_too_long",
        )
    state = await service.owned(interview_id, ctx.user_id)
    index = state.find(ctx.body.questionId)
    try:
        await service.apply(
            interview_id,
            AnswerSubmitted(
                ctx.body.questionId, ctx.body.answer, ctx.body.clientMsgId, time.time()
            ),
        )
    except ProtocolViolation as exc:
        raise _as_http(exc) from None
    if index is not None:
        await service.wait_evaluation(interview_id, index, timeout=150.0)
    state = await service.owned(interview_id, ctx.user_id)
    evaluation = None
    if index is not None and state.questions[index].evaluation is not None:
        evaluation = EvaluationView.model_validate(state.questions[index].evaluation)
    return AnswerResponse(
        success=True,
        evaluation=evaluation,
        nextQuestion=question_view(state),
        status=state.status.public,
    )


@router.add(
    "POST",
    "/interviews/technical/{interviewId}/complete",
    summary="Finish the interview (unanswered questions score 0) and get the result",
    tags=TAGS,
    response=ResultResponse,
    errors=[404, 409],
)
async def complete(ctx: Ctx[Any, Any]) -> ResultResponse:
    service = ctx.services.engine.service
    interview_id = ctx.path("interviewId")
    state = await service.owned(interview_id, ctx.user_id)
    if state.status is not Status.COMPLETED:
        try:
            await service.complete(interview_id)
        except ProtocolViolation as exc:
            raise _as_http(exc) from None
        if state.status is Status.EVALUATING:
            await service.wait_evaluation(interview_id, state.current, timeout=150.0)
        state = await service.owned(interview_id, ctx.user_id)
    if state.result is None:
        raise Conflict("The last answer is still being evaluated; retry shortly", code="not_ready")
    return ResultResponse.model_validate(state.result)


@router.add(
    "GET",
    "/interviews/history",
    summary="The user's interviews, newest first",
    tags=TAGS,
    query=HistoryQuery,
    response=HistoryResponse,
)
async def history(ctx: Ctx[Any, HistoryQuery]) -> HistoryResponse:
    q = ctx.query
    docs, total = await ctx.services.engine.store.history(
        ctx.user_id, (q.page - 1) * q.pageSize, q.pageSize
    )
    items = [
        HistoryItem(
            interviewId=str(d["_id"]),
            type=d.get("type", "technical"),
            level=d["level"],
            language=d.get("language", "ru"),
            status=d["status"],
            startTime=d["startTime"],
            endTime=d.get("endTime"),
            overallScore=d.get("overallScore"),
            passed=d.get("passed"),
            answered=sum(1 for x in d["questions"] if x.get("userAnswer")),
            total=len(d["questions"]),
        )
        for d in docs
    ]
    return HistoryResponse(interviews=items, page=q.page, pageSize=q.pageSize, total=total)


async def build_report(ctx: Ctx[Any, Any], doc: Doc) -> ReportResponse:
    score = doc.get("overallScore")
    percentile = (
        await ctx.services.engine.store.percentile(doc["level"], score)
        if score is not None
        else None
    )
    questions = [
        ReportQuestion(
            questionId=str(q["questionId"]),
            index=i,
            question=q["question"],
            tags=q.get("tags") or [],
            userAnswer=q.get("userAnswer"),
            auto=bool(q.get("auto")),
            aiEvaluation=EvaluationView.model_validate(q["aiEvaluation"])
            if q.get("aiEvaluation")
            else None,
        )
        for i, q in enumerate(doc["questions"])
    ]
    return ReportResponse(
        interviewId=str(doc["_id"]),
        level=doc["level"],
        language=doc.get("language", "ru"),
        status=doc["status"],
        startTime=doc["startTime"],
        endTime=doc.get("endTime"),
        overallScore=score,
        passed=doc.get("passed"),
        feedback=doc.get("feedback"),
        strongTopics=doc.get("strongTopics") or [],
        weakTopics=doc.get("weakTopics") or [],
        percentile=percentile,
        questions=questions,
        shared=bool(doc.get("shareTokenHash")),
    )


async def _owned_doc(ctx: Ctx[Any, Any]) -> Doc:
    doc = await ctx.services.engine.store.get(ctx.path("interviewId"))
    if doc is None or str(doc["userId"]) != ctx.user_id:
        raise NotFound("No such interview", code="interview_not_found")
    return doc


@router.add(
    "GET",
    "/interviews/{interviewId}/report",
    summary="The full report of one interview",
    tags=TAGS,
    response=ReportResponse,
    errors=[404],
)
async def report(ctx: Ctx[Any, Any]) -> ReportResponse:
    return await build_report(ctx, await _owned_doc(ctx))


@router.add(
    "POST",
    "/interviews/{interviewId}/share",
    summary="Create a public link to the report",
    tags=TAGS,
    response=ShareResponse,
    status=201,
    errors=[404],
)
async def share(ctx: Ctx[Any, Any]) -> ShareResponse:
    doc = await _owned_doc(ctx)
    token = new_secret_token()
    await ctx.services.engine.store.set_share_token(str(doc["_id"]), hash_token(token))
    base = ctx.services.settings.public_base_url.rstrip("/")
    return ShareResponse(shareUrl=f"{base}/shared/{token}", token=token)


@router.add(
    "DELETE",
    "/interviews/{interviewId}/share",
    summary="Revoke the public link",
    tags=TAGS,
    response=SuccessOnly,
    errors=[404],
)
async def unshare(ctx: Ctx[Any, Any]) -> SuccessOnly:
    doc = await _owned_doc(ctx)
    await ctx.services.engine.store.set_share_token(str(doc["_id"]), None)
    return SuccessOnly(success=True)


@router.add(
    "GET",
    "/shared/{token}",
    summary="A shared report (no login; no email or user id)",
    tags=TAGS,
    auth="none",
    response=ReportResponse,
    errors=[404],
)
async def shared_report(ctx: Ctx[Any, Any]) -> ReportResponse:
    token = ctx.path("token")
    doc = (
        await ctx.services.engine.store.by_share_token(hash_token(token))
        if len(token) < 200
        else None
    )
    if doc is None:
        raise NotFound("This link is invalid or was revoked", code="share_not_found")
    return await build_report(ctx, doc)
