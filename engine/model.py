"""An interview's state: its status, its questions and what happened to each. No I/O here.

`engine.state` changes it; this module holds the data and the views the protocol shows of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from protocol.v1.messages import Scores, Snapshot, SnapshotQuestion


class Status(Enum):
    AWAITING_ANSWER = "awaiting_answer"
    EVALUATING = "evaluating"
    COMPLETED = "completed"
    ABANDONED = "abandoned"

    @property
    def public(self) -> str:
        """The status as stored and shown by the API: in-progress, completed or abandoned."""
        if self in (Status.AWAITING_ANSWER, Status.EVALUATING):
            return "in-progress"
        return str(self.value)

    @property
    def closed(self) -> bool:
        return self in (Status.COMPLETED, Status.ABANDONED)


class ProtocolViolation(Exception):
    """The event is not allowed now; `code` is the error code the client sees."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class QuestionState:
    question_id: str
    text: str
    tags: list[str]
    time_limit_sec: int
    answer: str | None = None
    client_msg_id: str | None = None
    answered_at: float | None = None
    auto: bool = False
    evaluation: dict[str, Any] | None = None


@dataclass
class InterviewState:
    interview_id: str
    user_id: str
    level: str
    language: str
    pass_threshold: int
    questions: list[QuestionState]
    status: Status = Status.AWAITING_ANSWER
    current: int = 0
    deadline: float | None = None
    draft: str | None = None
    complete_requested: bool = False
    result: dict[str, Any] | None = None
    version: int = 0

    @property
    def current_question(self) -> QuestionState | None:
        if self.status.closed or self.current >= len(self.questions):
            return None
        return self.questions[self.current]

    def find(self, question_id: str) -> int | None:
        for i, q in enumerate(self.questions):
            if q.question_id == question_id:
                return i
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the live store (and a copy the state shares no list with)."""
        return {
            "interview_id": self.interview_id,
            "user_id": self.user_id,
            "level": self.level,
            "language": self.language,
            "pass_threshold": self.pass_threshold,
            "questions": [
                {
                    "question_id": q.question_id,
                    "text": q.text,
                    "tags": list(q.tags),
                    "time_limit_sec": q.time_limit_sec,
                    "answer": q.answer,
                    "client_msg_id": q.client_msg_id,
                    "answered_at": q.answered_at,
                    "auto": q.auto,
                    "evaluation": _copy(q.evaluation),
                }
                for q in self.questions
            ],
            "status": self.status.value,
            "current": self.current,
            "deadline": self.deadline,
            "draft": self.draft,
            "complete_requested": self.complete_requested,
            "result": _copy(self.result),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InterviewState:
        fields = dict(data)
        fields["status"] = Status(fields["status"])
        fields["questions"] = [QuestionState(**q) for q in fields["questions"]]
        return cls(**fields)


def _copy(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy two levels deep: evaluations and results hold a dict or a list inside."""
    if value is None:
        return None
    return {
        k: dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v
        for k, v in value.items()
    }


def snapshot(state: InterviewState, seq: int) -> Snapshot:
    """The whole visible state, for a client whose history is gone: asked questions only."""
    current = state.current_question
    result = state.result or {}
    return Snapshot(
        seq=seq,
        status=state.status.public,
        currentQuestionId=current.question_id if current else None,
        deadline=state.deadline,
        total=len(state.questions),
        questions=[
            SnapshotQuestion(
                questionId=q.question_id,
                index=i,
                text=q.text,
                tags=q.tags,
                answer=q.answer,
                score=q.evaluation["score"] if q.evaluation else None,
                scores=Scores(**q.evaluation["scores"]) if q.evaluation else None,
                feedback=q.evaluation["feedback"] if q.evaluation else None,
            )
            for i, q in enumerate(state.questions)
            if i <= state.current or q.answer is not None
        ],
        score=result.get("score"),
        passed=result.get("passed"),
        feedback=result.get("feedback"),
    )
