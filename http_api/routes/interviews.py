"""Interviews over REST: the same engine and the same record as the socket."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path, Query
from pydantic import ConfigDict, Field

from core.db import Doc
from core.errors import AppError, Conflict, NotFound, ValidationFailed
from core.security import hash_token, new_secret_token
from engine.container import Engine
from engine.state import AnswerSubmitted, InterviewState, ProtocolViolation, Status, iso
from http_api.deps import AppSettings, CurrentUser, EngineDep
from http_api.docs import max_length_from
from http_api.routing import area_router, errors
from http_api.schemas import (
    InterviewStatus,
    Language,
    Level,
    PageQuery,
    RequestModel,
    ResponseModel,
)
from protocol.v1.messages import PATH as SOCKET_PATH

router = area_router("interviews")
LEVELS: list[Level] = ["intern", "junior", "middle"]
# The exact limit is the ANSWER_MAX_CHARS setting (checked below, and documented from it);
# this only stops absurd bodies early.
ANSWER_HARD_MAX = 100_000
SHARE_TOKEN_PATTERN = r"^[A-Za-z0-9_-]{16,256}$"
InterviewId = Annotated[
    str,
    Path(alias="interviewId", description="An interview id from the start answer or the history"),
]


class LevelsResponse(ResponseModel):
    levels: list[Level]
    questionsPerInterview: int
    timeLimitsSec: dict[str, int]
    passThresholds: dict[str, int]


class StartRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"level": "junior", "language": "en"}]}
    )

    level: Level
    language: Language | None = Field(
        default=None, description="The language of questions and feedback (the profile's if absent)"
    )


class InterviewQuestion(ResponseModel):
    """The question being asked, as the interview's candidate sees it."""

    questionId: str
    index: int
    total: int
    text: str
    tags: list[str]
    timeLimitSec: int
    deadline: str | None = Field(description="When the answer is due (ISO 8601, UTC)")


class StartResponse(ResponseModel):
    interviewId: str
    questions: list[InterviewQuestion] = Field(
        description="The questions asked so far: the first one"
    )
    total: int
    socketPath: str


class AnswerRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "questionId": "665f1c2e8f1b2a3c4d5e6f70",
                    "answer": "A list is mutable; a tuple is not and can be a dict key.",
                    "clientMsgId": "a1",
                }
            ]
        }
    )

    questionId: str = Field(min_length=1, max_length=64)
    answer: str = Field(
        max_length=ANSWER_HARD_MAX, json_schema_extra=max_length_from("answer_max_chars")
    )
    clientMsgId: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The client's id for this answer: a retry with the same id counts once",
    )


class Scores(ResponseModel):
    correctness: float
    completeness: float
    clarity: float


class EvaluationView(ResponseModel):
    score: float
    scores: Scores
    feedback: str
    source: str = Field(
        description="Who graded it: openai, openai-cache, local, local-fallback, local-budget "
        "or precheck"
    )


class AnswerResponse(ResponseModel):
    success: bool
    evaluation: EvaluationView | None
    nextQuestion: InterviewQuestion | None
    status: InterviewStatus


class ResultResponse(ResponseModel):
    score: int
    passed: bool
    feedback: str
    strongTopics: list[str]
    weakTopics: list[str]


class InterviewSummary(ResponseModel):
    interviewId: str
    type: Literal["technical"]
    level: Level
    language: Language
    status: InterviewStatus
    startTime: datetime
    endTime: datetime | None
    overallScore: int | None
    passed: bool | None
    answered: int
    total: int


class InterviewHistory(ResponseModel):
    interviews: list[InterviewSummary]
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
    level: Level
    language: Language
    status: InterviewStatus
    startTime: datetime
    endTime: datetime | None
    overallScore: int | None
    passed: bool | None
    feedback: str | None
    strongTopics: list[str]
    weakTopics: list[str]
    percentile: int | None = Field(
        description="The share of finished interviews of this level scoring lower (0-100)"
    )
    questions: list[ReportQuestion]
    shared: bool = Field(description="Whether a public link to this report exists")


class ShareResponse(ResponseModel):
    shareUrl: str
    token: str


class SuccessOnly(ResponseModel):
    success: bool


def question_view(state: InterviewState) -> InterviewQuestion | None:
    q = state.current_question
    if q is None or state.status is not Status.AWAITING_ANSWER:
        return None
    return InterviewQuestion(
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


@router.get("/interviews/technical", summary="Levels of technical interviews")
async def levels(user: CurrentUser, settings: AppSettings) -> LevelsResponse:
    """The levels one can start, with their question count, time limits and pass marks."""
    return LevelsResponse(
        levels=LEVELS,
        questionsPerInterview=settings.questions_per_interview,
        timeLimitsSec={lv: settings.time_limit_sec(lv) for lv in LEVELS},
        passThresholds={lv: settings.pass_threshold(lv) for lv in LEVELS},
    )


@router.post(
    "/interviews/technical/start",
    summary="Start a technical interview",
    status_code=201,
    responses=errors(402, 403),
)
async def start_interview(
    body: StartRequest, user: CurrentUser, engine: EngineDep
) -> StartResponse:
    """Start an interview of the level and return its first question.

    Continue it here (answer, complete) or over the live socket at `socketPath`. Without a
    subscription the free tier allows `FREE_INTERVIEWS_PER_MONTH` a month: past it, 402
    `subscription_required`; 403 until the email address is confirmed.
    """
    started = await engine.service.start_interview(user.user_id, body.level, body.language)
    first = question_view(started.state)
    return StartResponse(
        interviewId=started.interview_id,
        questions=[first] if first else [],
        total=len(started.state.questions),
        socketPath=SOCKET_PATH,
    )


@router.post(
    "/interviews/technical/{interviewId}/answer",
    summary="Answer the current question; returns its evaluation and the next question",
    responses=errors(404, 409),
)
async def answer(
    interview_id: InterviewId,
    body: AnswerRequest,
    user: CurrentUser,
    engine: EngineDep,
    settings: AppSettings,
) -> AnswerResponse:
    """Answer the question being asked and wait for its evaluation.

    Answers are limited to `ANSWER_MAX_CHARS` characters (422 `answer_too_long`); 409 when the
    question is not the one being asked or the interview is over.
    """
    service = engine.service
    if len(body.answer) > settings.answer_max_chars:
        raise ValidationFailed(
            f"Answers are limited to {settings.answer_max_chars} characters",
            code="answer_too_long",
        )
    state = await service.owned(interview_id, user.user_id)
    index = state.find(body.questionId)
    try:
        await service.apply(
            interview_id,
            AnswerSubmitted(body.questionId, body.answer, body.clientMsgId, time.time()),
        )
    except ProtocolViolation as exc:
        raise _as_http(exc) from None
    if index is not None:
        await service.wait_evaluation(interview_id, index, timeout=150.0)
    state = await service.owned(interview_id, user.user_id)
    evaluation = None
    if index is not None and state.questions[index].evaluation is not None:
        evaluation = EvaluationView.model_validate(state.questions[index].evaluation)
    return AnswerResponse(
        success=True,
        evaluation=evaluation,
        nextQuestion=question_view(state),
        status=state.status.public,
    )


@router.post(
    "/interviews/technical/{interviewId}/complete",
    summary="Finish the interview (unanswered questions score 0) and get the result",
    responses=errors(404, 409),
)
async def complete(
    interview_id: InterviewId, user: CurrentUser, engine: EngineDep
) -> ResultResponse:
    """Finish the interview now, or read the result of a finished one.

    Waits for an answer still being evaluated; 409 `not_ready` if that takes too long.
    """
    service = engine.service
    state = await service.owned(interview_id, user.user_id)
    if state.status is not Status.COMPLETED:
        try:
            await service.complete(interview_id)
        except ProtocolViolation as exc:
            raise _as_http(exc) from None
        if state.status is Status.EVALUATING:
            await service.wait_evaluation(interview_id, state.current, timeout=150.0)
        state = await service.owned(interview_id, user.user_id)
    if state.result is None:
        raise Conflict("The last answer is still being evaluated; retry shortly", code="not_ready")
    return ResultResponse.model_validate(state.result)


@router.get("/interviews/history", summary="The user's interviews, newest first")
async def history(
    query: Annotated[PageQuery, Query()], user: CurrentUser, engine: EngineDep
) -> InterviewHistory:
    """One page of the user's interviews with their scores, newest first."""
    docs, total = await engine.store.history(
        user.user_id, (query.page - 1) * query.pageSize, query.pageSize
    )
    items = [
        InterviewSummary(
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
    return InterviewHistory(interviews=items, page=query.page, pageSize=query.pageSize, total=total)


async def build_report(engine: Engine, doc: Doc) -> ReportResponse:
    score = doc.get("overallScore")
    percentile = await engine.store.percentile(doc["level"], score) if score is not None else None
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


async def _owned_doc(engine: Engine, interview_id: str, user_id: str) -> Doc:
    doc = await engine.store.get(interview_id)
    if doc is None or str(doc["userId"]) != user_id:
        raise NotFound("No such interview", code="interview_not_found")
    return doc


@router.get(
    "/interviews/{interviewId}/report",
    summary="The full report of one interview",
    responses=errors(404),
)
async def report(interview_id: InterviewId, user: CurrentUser, engine: EngineDep) -> ReportResponse:
    """Scores, feedback, strong and weak topics, the percentile and every answer."""
    return await build_report(engine, await _owned_doc(engine, interview_id, user.user_id))


@router.post(
    "/interviews/{interviewId}/share",
    summary="Create a public link to the report",
    status_code=201,
    responses=errors(404),
)
async def share(
    interview_id: InterviewId,
    user: CurrentUser,
    engine: EngineDep,
    settings: AppSettings,
) -> ShareResponse:
    """A new public link to the report (it replaces an earlier one)."""
    doc = await _owned_doc(engine, interview_id, user.user_id)
    token = new_secret_token()
    await engine.store.set_share_token(str(doc["_id"]), hash_token(token))
    base = settings.public_base_url.rstrip("/")
    return ShareResponse(shareUrl=f"{base}/shared/{token}", token=token)


@router.delete(
    "/interviews/{interviewId}/share",
    summary="Revoke the public link",
    responses=errors(404),
)
async def unshare(interview_id: InterviewId, user: CurrentUser, engine: EngineDep) -> SuccessOnly:
    """The public link stops working."""
    doc = await _owned_doc(engine, interview_id, user.user_id)
    await engine.store.set_share_token(str(doc["_id"]), None)
    return SuccessOnly(success=True)


@router.get(
    "/shared/{token}",
    summary="A shared report (no login; no email or user id)",
    responses=errors(404),
)
async def shared_report(
    token: Annotated[
        str,
        # Any other text is simply no link: 404, like a revoked one.
        Path(
            description="The token at the end of the share link",
            json_schema_extra={"pattern": SHARE_TOKEN_PATTERN},
        ),
    ],
    engine: EngineDep,
) -> ReportResponse:
    """The report behind a share link, for anyone who has the link."""
    doc = (
        await engine.store.by_share_token(hash_token(token))
        if re.fullmatch(SHARE_TOKEN_PATTERN, token)
        else None
    )
    if doc is None:
        raise NotFound("This link is invalid or was revoked", code="share_not_found")
    return await build_report(engine, doc)
