"""The interview state machine: events in, interview events and effects out. No I/O here.

The states and the transitions allowed between them are the table `TRANSITIONS`; an event that
the table does not allow in the current state raises `ProtocolViolation` with a stable code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.bus.base import Stamped
from engine.evaluator.base import Evaluation
from engine.model import InterviewState, ProtocolViolation, QuestionState, Status
from engine.scoring import final_result
from protocol.v1.messages import (
    UNSEQUENCED,
    AnswerAccepted,
    Event,
    FeedbackDelta,
    FeedbackDone,
    FeedbackReset,
    InterviewAbandoned,
    InterviewCompleted,
    QuestionEvent,
    Scores,
    iso,
)

__all__ = [
    "InterviewState",
    "ProtocolViolation",
    "QuestionState",
    "Status",
    "iso",
]


# --- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerSubmitted:
    question_id: str
    answer: str
    client_msg_id: str | None
    now: float


@dataclass(frozen=True, slots=True)
class DraftSaved:
    question_id: str
    answer: str


@dataclass(frozen=True, slots=True)
class EvaluationToken:
    question_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class EvaluationReset:
    question_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class EvaluationDone:
    question_id: str
    evaluation: Evaluation
    now: float


@dataclass(frozen=True, slots=True)
class DeadlinePassed:
    question_id: str
    now: float


@dataclass(frozen=True, slots=True)
class CompleteRequested:
    now: float


@dataclass(frozen=True, slots=True)
class Abandoned:
    reason: str
    now: float


Input = (
    AnswerSubmitted
    | DraftSaved
    | EvaluationToken
    | EvaluationReset
    | EvaluationDone
    | DeadlinePassed
    | CompleteRequested
    | Abandoned
)

# --- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersistAnswer:
    """Store the answer durably; the acceptance is only published after this succeeds."""

    index: int


@dataclass(frozen=True, slots=True)
class PersistEvaluation:
    index: int


@dataclass(frozen=True, slots=True)
class PersistOutcome:
    """Store the interview's end (completed with results, or abandoned)."""


@dataclass(frozen=True, slots=True)
class StartEvaluation:
    index: int


@dataclass(frozen=True, slots=True)
class ScheduleDeadline:
    index: int
    at: float


@dataclass(frozen=True, slots=True)
class CancelDeadline:
    pass


Effect = (
    PersistAnswer
    | PersistEvaluation
    | PersistOutcome
    | StartEvaluation
    | ScheduleDeadline
    | CancelDeadline
)

# --- state -----------------------------------------------------------------------------------


@dataclass
class Transition:
    """What one input produced: events for the interview's history and effects to run.

    `reply` goes only to the client that sent the input and is not part of the history;
    `published` is filled in by the service: `events` as the bus numbered them.
    """

    events: list[Event] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)
    reply: list[AnswerAccepted] = field(default_factory=list)
    changed: bool = True
    published: list[Stamped] = field(default_factory=list)


# --- transitions -----------------------------------------------------------------------------


def start(state: InterviewState, now: float) -> Transition:
    """Ask the first question."""
    if state.version != 0 or not state.questions:
        raise ProtocolViolation("internal_error", "the interview has already started")
    out = Transition()
    _ask(state, 0, now, out)
    state.version += 1
    return out


def _ask(state: InterviewState, index: int, now: float, out: Transition) -> None:
    q = state.questions[index]
    state.status = Status.AWAITING_ANSWER
    state.current = index
    state.draft = None
    state.deadline = now + q.time_limit_sec
    out.events.append(
        QuestionEvent(
            seq=UNSEQUENCED,
            questionId=q.question_id,
            index=index,
            total=len(state.questions),
            text=q.text,
            tags=q.tags,
            timeLimitSec=q.time_limit_sec,
            deadline=state.deadline,
        )
    )
    out.effects.append(ScheduleDeadline(index, state.deadline))


def _accept(
    state: InterviewState, answer: str, client_msg_id: str | None, auto: bool, now: float
) -> Transition:
    q = state.questions[state.current]
    q.answer = answer
    q.client_msg_id = client_msg_id
    q.answered_at = now
    q.auto = auto
    state.status = Status.EVALUATING
    state.deadline = None
    state.draft = None
    event = AnswerAccepted(
        seq=UNSEQUENCED, questionId=q.question_id, clientMsgId=client_msg_id, auto=auto
    )
    return Transition(
        events=[event],
        effects=[CancelDeadline(), PersistAnswer(state.current), StartEvaluation(state.current)],
    )


def _duplicate_ack(state: InterviewState, client_msg_id: str | None) -> Transition | None:
    if client_msg_id is None:
        return None
    for q in state.questions:
        if q.client_msg_id == client_msg_id:
            reply = AnswerAccepted(
                seq=None, questionId=q.question_id, clientMsgId=client_msg_id, duplicate=True
            )
            return Transition(reply=[reply], changed=False)
    return None


def on_answer(state: InterviewState, event: AnswerSubmitted) -> Transition:
    q = state.questions[state.current]
    if event.question_id != q.question_id:
        index = state.find(event.question_id)
        if index is not None and state.questions[index].answer is not None:
            raise ProtocolViolation("already_answered", "This question already has an answer")
        raise ProtocolViolation("question_mismatch", "That is not the current question")
    return _accept(state, event.answer, event.client_msg_id, auto=False, now=event.now)


def on_answer_while_evaluating(state: InterviewState, event: AnswerSubmitted) -> Transition:
    q = state.questions[state.current]
    if event.question_id == q.question_id:
        raise ProtocolViolation("already_answered", "This question already has an answer")
    raise ProtocolViolation("not_your_turn", "Wait for the feedback on the previous answer")


def on_draft(state: InterviewState, event: DraftSaved) -> Transition:
    if event.question_id != state.questions[state.current].question_id:
        raise ProtocolViolation("question_mismatch", "That is not the current question")
    state.draft = event.answer
    return Transition()


def on_token(state: InterviewState, event: EvaluationToken) -> Transition:
    _check_evaluating(state, event.question_id)
    # The hottest event: built without re-validating what the evaluator already produced.
    delta = FeedbackDelta.model_construct(
        type="feedback.delta", seq=UNSEQUENCED, questionId=event.question_id, delta=event.delta
    )
    return Transition(events=[delta], changed=False)


def on_reset(state: InterviewState, event: EvaluationReset) -> Transition:
    _check_evaluating(state, event.question_id)
    reset = FeedbackReset(seq=UNSEQUENCED, questionId=event.question_id, reason=event.reason)
    return Transition(events=[reset], changed=False)


def _check_evaluating(state: InterviewState, question_id: str) -> None:
    if state.questions[state.current].question_id != question_id:
        raise ProtocolViolation(
            "stale_evaluation", "the evaluation is not for the current question"
        )


def on_evaluation_done(state: InterviewState, event: EvaluationDone) -> Transition:
    _check_evaluating(state, event.question_id)
    index = state.current
    q = state.questions[index]
    q.evaluation = event.evaluation.to_dict()
    done = FeedbackDone(
        seq=UNSEQUENCED,
        questionId=q.question_id,
        score=event.evaluation.score,
        scores=Scores(
            correctness=event.evaluation.correctness,
            completeness=event.evaluation.completeness,
            clarity=event.evaluation.clarity,
        ),
        feedback=event.evaluation.feedback,
        source=event.evaluation.source,
    )
    out = Transition(events=[done], effects=[PersistEvaluation(index)])
    if state.complete_requested or index + 1 >= len(state.questions):
        _finish(state, out)
    else:
        _ask(state, index + 1, event.now, out)
    return out


def on_deadline(state: InterviewState, event: DeadlinePassed) -> Transition:
    q = state.questions[state.current]
    if event.question_id != q.question_id or state.deadline is None or event.now < state.deadline:
        return Transition(changed=False)
    return _accept(state, state.draft or "", None, auto=True, now=event.now)


def on_stale_deadline(state: InterviewState, event: DeadlinePassed) -> Transition:
    return Transition(changed=False)


def on_complete(state: InterviewState, event: CompleteRequested) -> Transition:
    out = Transition(effects=[CancelDeadline()])
    _finish(state, out)
    return out


def on_complete_while_evaluating(state: InterviewState, event: CompleteRequested) -> Transition:
    state.complete_requested = True
    return Transition()


def on_abandon(state: InterviewState, event: Abandoned) -> Transition:
    state.status = Status.ABANDONED
    state.deadline = None
    return Transition(
        events=[InterviewAbandoned(seq=UNSEQUENCED, reason=event.reason)],
        effects=[CancelDeadline(), PersistOutcome()],
    )


def _finish(state: InterviewState, out: Transition) -> None:
    """Score what was answered; questions never reached count as skipped (0)."""
    for q in state.questions:
        if q.evaluation is None:
            q.evaluation = Evaluation(0, 0, 0, 0, "", "skipped").to_dict()
    items = [(q.tags, float(q.evaluation["score"])) for q in state.questions if q.evaluation]
    answered = sum(1 for q in state.questions if q.answer)
    result = final_result(items, answered, state.pass_threshold, state.language)
    state.status = Status.COMPLETED
    state.deadline = None
    state.result = {
        "score": result.score,
        "passed": result.passed,
        "feedback": result.feedback,
        "strongTopics": result.strong_topics,
        "weakTopics": result.weak_topics,
    }
    out.events.append(InterviewCompleted(seq=UNSEQUENCED, **state.result))
    out.effects.append(PersistOutcome())


def _closed(state: InterviewState, event: Input) -> Transition:
    raise ProtocolViolation("interview_closed", "The interview is over")


Handler = Callable[[InterviewState, Any], Transition]

A, E = Status.AWAITING_ANSWER, Status.EVALUATING
C, X = Status.COMPLETED, Status.ABANDONED

TRANSITIONS: dict[tuple[Status, type], Handler] = {
    (A, AnswerSubmitted): on_answer,
    (A, DraftSaved): on_draft,
    (A, DeadlinePassed): on_deadline,
    (A, CompleteRequested): on_complete,
    (A, Abandoned): on_abandon,
    (E, AnswerSubmitted): on_answer_while_evaluating,
    (E, EvaluationToken): on_token,
    (E, EvaluationReset): on_reset,
    (E, EvaluationDone): on_evaluation_done,
    (E, DeadlinePassed): on_stale_deadline,
    (E, CompleteRequested): on_complete_while_evaluating,
    (E, Abandoned): on_abandon,
    (C, AnswerSubmitted): _closed,
    (C, DraftSaved): _closed,
    (C, CompleteRequested): _closed,
    (C, DeadlinePassed): on_stale_deadline,
    (X, DeadlinePassed): on_stale_deadline,
    (X, AnswerSubmitted): _closed,
    (X, DraftSaved): _closed,
    (X, CompleteRequested): _closed,
}


def handle(state: InterviewState, event: Input) -> Transition:
    """Apply one input to `state` (in place) and say what it produced."""
    if isinstance(event, AnswerSubmitted):
        again = _duplicate_ack(state, event.client_msg_id)
        if again is not None:
            return again
    handler = TRANSITIONS.get((state.status, type(event)))
    if handler is None:
        raise ProtocolViolation(
            "not_your_turn" if not state.status.closed else "interview_closed",
            f"{type(event).__name__} is not allowed while the interview is {state.status.value}",
        )
    out = handler(state, event)
    if out.changed:
        state.version += 1
    return out
