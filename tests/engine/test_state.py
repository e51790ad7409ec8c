"""The interview state machine (engine/state.py): pure, synchronous, no I/O.

Every frame the machine emits in these tests goes through `frames()`, which validates it against
the wire models of protocol v1 the way the socket would send it (events get a `seq`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.evaluator.base import Evaluation
from engine.state import (
    TRANSITIONS,
    Abandoned,
    AnswerSubmitted,
    CancelDeadline,
    CompleteRequested,
    DeadlinePassed,
    DraftSaved,
    EvaluationDone,
    EvaluationReset,
    EvaluationToken,
    InterviewState,
    PersistAnswer,
    PersistEvaluation,
    PersistOutcome,
    ProtocolViolation,
    QuestionState,
    ScheduleDeadline,
    StartEvaluation,
    Status,
    Transition,
    handle,
    start,
)
from protocol.v1.messages import UNSEQUENCED, server_adapter
from protocol.v1.wire import encode, number

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
QIDS = ("q-python", "q-sql", "q-misc")
TAGS = (["python", "basics"], ["sql"], [])
LIMITS = (60, 90, 120)
SKIPPED = {
    "score": 0,
    "scores": {"correctness": 0, "completeness": 0, "clarity": 0},
    "feedback": "",
    "source": "skipped",
    "tokensIn": 0,
    "tokensOut": 0,
}

# --- helpers ---------------------------------------------------------------------------------


def make_state(language: str = "en", threshold: int = 60) -> InterviewState:
    """A fresh, not yet started interview of three questions with different tags and limits."""
    return InterviewState(
        interview_id="iv-1",
        user_id="user-1",
        level="junior",
        language=language,
        pass_threshold=threshold,
        questions=[
            QuestionState(qid, f"Question {i}?", list(tags), limit)
            for i, (qid, tags, limit) in enumerate(zip(QIDS, TAGS, LIMITS, strict=True))
        ],
    )


_seq = itertools.count(1)


@dataclass
class Out:
    """A transition as the wire shows it: events and replies as the JSON a socket receives
    (events without the `seq` the bus gives them)."""

    events: list[dict[str, Any]]
    effects: list[Any]
    reply: list[dict[str, Any]]
    changed: bool


def frames(out: Transition) -> Out:
    """Validate every frame of a transition as the socket would send it; return its wire view."""
    events = []
    for event in out.events:
        assert event.seq == UNSEQUENCED, "the bus, not the machine, numbers events"
        text = number(encode(event), next(_seq))
        frame = server_adapter.validate_json(text)
        assert frame.type == event.type  # type: ignore[attr-defined]
        data = json.loads(text)
        del data["seq"]
        events.append(data)
    replies = []
    for reply in out.reply:
        # Replies are not part of the history: they carry no sequence number.
        text = reply.model_dump_json()
        frame = server_adapter.validate_json(text)
        assert frame.seq is None  # type: ignore[attr-defined]
        replies.append(json.loads(text))
    return Out(events, out.effects, replies, out.changed)


def begin(state: InterviewState, now: float = NOW) -> Out:
    return frames(start(state, now))


def step(state: InterviewState, event: Any) -> Out:
    return frames(handle(state, event))


def refused(state: InterviewState, event: Any) -> str:
    """Feed an input that must be refused; the state must be left exactly as it was."""
    before = state.to_dict()
    with pytest.raises(ProtocolViolation) as info:
        handle(state, event)
    assert state.to_dict() == before
    return info.value.code


def grade(score: float, feedback: str = "ok", source: str = "local") -> Evaluation:
    return Evaluation(score, score, score, score, feedback, source)


def started(**kwargs: Any) -> InterviewState:
    state = make_state(**kwargs)
    begin(state)
    return state


def answer(state: InterviewState, index: int, client_msg_id: str | None = None) -> Transition:
    cid = client_msg_id or f"c-{index}"
    return step(state, AnswerSubmitted(QIDS[index], f"answer {index}", cid, NOW + 10 * index + 5))


def finish_eval(state: InterviewState, index: int, score: float) -> Transition:
    return step(state, EvaluationDone(QIDS[index], grade(score), NOW + 10 * index + 8))


def evaluating() -> InterviewState:
    state = started()
    answer(state, 0)
    return state


def completed() -> InterviewState:
    state = started()
    step(state, CompleteRequested(NOW + 1))
    return state


def abandoned() -> InterviewState:
    state = started()
    step(state, Abandoned("inactive", NOW + 1))
    return state


BUILDERS: dict[Status, Callable[[], InterviewState]] = {
    Status.AWAITING_ANSWER: started,
    Status.EVALUATING: evaluating,
    Status.COMPLETED: completed,
    Status.ABANDONED: abandoned,
}

INPUT_TYPES = (
    AnswerSubmitted,
    DraftSaved,
    EvaluationToken,
    EvaluationReset,
    EvaluationDone,
    DeadlinePassed,
    CompleteRequested,
    Abandoned,
)


def sample_input(kind: type, state: InterviewState) -> Any:
    """A plausible input of this kind, aimed at the current question, long after its deadline."""
    qid = state.questions[state.current].question_id
    late = NOW + 10_000
    return {
        AnswerSubmitted: AnswerSubmitted(qid, "late answer", "c-new", late),
        DraftSaved: DraftSaved(qid, "draft"),
        EvaluationToken: EvaluationToken(qid, "tok"),
        EvaluationReset: EvaluationReset(qid, "retry"),
        EvaluationDone: EvaluationDone(qid, grade(5), late),
        DeadlinePassed: DeadlinePassed(qid, late),
        CompleteRequested: CompleteRequested(late),
        Abandoned: Abandoned("inactive", late),
    }[kind]


def _key_id(key: tuple[Status, type]) -> str:
    return f"{key[0].name}-{key[1].__name__}"


# --- start -----------------------------------------------------------------------------------


def test_start_asks_the_first_question() -> None:
    state = make_state()
    out = begin(state, NOW + 0.5)
    assert out.events == [
        {
            "type": "question",
            "questionId": "q-python",
            "index": 0,
            "total": 3,
            "text": "Question 0?",
            "tags": ["python", "basics"],
            "timeLimitSec": 60,
            "deadline": "2023-11-14T22:14:20.500Z",
        }
    ]
    assert out.effects == [ScheduleDeadline(0, NOW + 60.5)]
    assert out.reply == []
    assert state.version == 1
    assert state.status is Status.AWAITING_ANSWER
    assert state.current == 0
    assert state.deadline == NOW + 60.5


def test_starting_twice_is_refused() -> None:
    state = started()
    before = state.to_dict()
    with pytest.raises(ProtocolViolation):
        start(state, NOW + 5)
    assert state.to_dict() == before


# --- the table -------------------------------------------------------------------------------

# What each entry of the table does with `sample_input`: the status it leads to, or the error code.
EXPECTED: dict[tuple[Status, type], Status | str] = {
    (Status.AWAITING_ANSWER, AnswerSubmitted): Status.EVALUATING,
    (Status.AWAITING_ANSWER, DraftSaved): Status.AWAITING_ANSWER,
    (Status.AWAITING_ANSWER, DeadlinePassed): Status.EVALUATING,
    (Status.AWAITING_ANSWER, CompleteRequested): Status.COMPLETED,
    (Status.AWAITING_ANSWER, Abandoned): Status.ABANDONED,
    (Status.EVALUATING, AnswerSubmitted): "already_answered",
    (Status.EVALUATING, EvaluationToken): Status.EVALUATING,
    (Status.EVALUATING, EvaluationReset): Status.EVALUATING,
    (Status.EVALUATING, EvaluationDone): Status.AWAITING_ANSWER,
    (Status.EVALUATING, DeadlinePassed): Status.EVALUATING,
    (Status.EVALUATING, CompleteRequested): Status.EVALUATING,
    (Status.EVALUATING, Abandoned): Status.ABANDONED,
    (Status.COMPLETED, AnswerSubmitted): "interview_closed",
    (Status.COMPLETED, DraftSaved): "interview_closed",
    (Status.COMPLETED, CompleteRequested): "interview_closed",
    (Status.ABANDONED, AnswerSubmitted): "interview_closed",
    (Status.ABANDONED, DraftSaved): "interview_closed",
    (Status.ABANDONED, CompleteRequested): "interview_closed",
    # A stale timer after the end is a no-op (see test_stale_deadline_after_the_end_does_nothing).
    (Status.COMPLETED, DeadlinePassed): Status.COMPLETED,
    (Status.ABANDONED, DeadlinePassed): Status.ABANDONED,
}


@pytest.mark.parametrize("key", list(TRANSITIONS), ids=_key_id)
def test_every_transition_of_the_table_is_reached(
    key: tuple[Status, type], monkeypatch: pytest.MonkeyPatch
) -> None:
    status, kind = key
    state = BUILDERS[status]()
    assert state.status is status
    real = TRANSITIONS[key]
    calls: list[Any] = []

    def spy(s: InterviewState, e: Any) -> Transition:
        calls.append(e)
        return real(s, e)

    monkeypatch.setitem(TRANSITIONS, key, spy)
    event = sample_input(kind, state)
    assert key in EXPECTED, "a new entry of the table needs its expected outcome here"
    expected = EXPECTED[key]
    if isinstance(expected, str):
        assert refused(state, event) == expected
    else:
        step(state, event)
        assert state.status is expected
    assert calls == [event]


NOT_IN_TABLE = [
    (status, kind)
    for status in Status
    for kind in INPUT_TYPES
    if (status, kind) not in TRANSITIONS
    # A timer firing after the end is a stale deadline: see test_stale_deadline_after_the_end.
    and not (status.closed and kind is DeadlinePassed)
]


@pytest.mark.parametrize("key", NOT_IN_TABLE, ids=_key_id)
def test_input_not_in_the_table_is_refused_and_changes_nothing(key: tuple[Status, type]) -> None:
    status, kind = key
    state = BUILDERS[status]()
    code = refused(state, sample_input(kind, state))
    assert code == ("interview_closed" if status.closed else "not_your_turn")


def test_token_while_awaiting_an_answer_is_not_your_turn() -> None:
    state = started()
    assert refused(state, EvaluationToken("q-python", "x")) == "not_your_turn"
    assert state.version == 1


# --- answers ---------------------------------------------------------------------------------


def test_answer_to_the_current_question_is_accepted_and_evaluated() -> None:
    state = started()
    out = step(state, AnswerSubmitted("q-python", "lists are mutable", "c-1", NOW + 5))
    assert state.status is Status.EVALUATING
    assert out.events == [
        {"type": "answer.accepted", "questionId": "q-python", "clientMsgId": "c-1"}
    ]
    assert out.effects == [CancelDeadline(), PersistAnswer(0), StartEvaluation(0)]
    assert out.reply == []
    assert state.version == 2
    q = state.questions[0]
    assert (q.answer, q.client_msg_id, q.answered_at, q.auto) == (
        "lists are mutable",
        "c-1",
        NOW + 5,
        False,
    )
    assert state.deadline is None


def _evaluating_first() -> InterviewState:
    return evaluating()


def _awaiting_second() -> InterviewState:
    state = evaluating()
    finish_eval(state, 0, 7)
    return state


def _completed_after_answer() -> InterviewState:
    state = evaluating()
    finish_eval(state, 0, 7)
    step(state, CompleteRequested(NOW + 50))
    return state


def _abandoned_after_answer() -> InterviewState:
    state = evaluating()
    step(state, Abandoned("inactive", NOW + 50))
    return state


@pytest.mark.parametrize(
    "build",
    [_evaluating_first, _awaiting_second, _completed_after_answer, _abandoned_after_answer],
    ids=["evaluating", "awaiting-next", "completed", "abandoned"],
)
@pytest.mark.parametrize("question_id", ["q-python", "q-sql"])
def test_repeated_client_msg_id_is_acknowledged_again_and_changes_nothing(
    build: Callable[[], InterviewState], question_id: str
) -> None:
    state = build()
    before = state.to_dict()
    out = step(state, AnswerSubmitted(question_id, "resent", "c-0", NOW + 99))
    assert out.changed is False
    assert out.events == []
    assert out.effects == []
    assert len(out.reply) == 1
    assert {k: v for k, v in out.reply[0].items() if k != "seq"} == {
        "type": "answer.accepted",
        "questionId": "q-python",
        "clientMsgId": "c-0",
        "duplicate": True,
    }
    assert out.reply[0].get("seq") is None
    assert state.to_dict() == before
    assert state.questions[0].answer == "answer 0"


def test_duplicate_ack_as_sent_by_the_socket_is_a_valid_server_frame() -> None:
    """The socket sends `out.reply` as it serializes. docs/protocol.md (and
    protocol/v1/examples/server.answer.accepted.duplicate.json) give this reply as
    `{..., "duplicate": true, "seq": null}`, and AnswerAccepted requires `seq` (nullable)."""
    state = evaluating()
    out = handle(state, AnswerSubmitted("q-python", "resent", "c-0", NOW + 9))
    assert len(out.reply) == 1
    sent = json.loads(out.reply[0].model_dump_json())
    assert "seq" in sent and sent["seq"] is None
    frame = server_adapter.validate_python(sent)
    assert frame.duplicate is True  # type: ignore[attr-defined]
    assert frame.seq is None  # type: ignore[attr-defined]


def test_answer_to_another_question_is_a_mismatch() -> None:
    state = started()
    assert refused(state, AnswerSubmitted("q-sql", "x", "c-9", NOW + 1)) == "question_mismatch"
    assert refused(state, AnswerSubmitted("nope", "x", "c-9", NOW + 1)) == "question_mismatch"


def test_answer_to_an_answered_question_is_refused() -> None:
    state = _awaiting_second()
    code = refused(state, AnswerSubmitted("q-python", "again", "c-other", NOW + 20))
    assert code == "already_answered"
    assert state.questions[0].answer == "answer 0"


def test_answer_again_while_it_is_being_evaluated_is_already_answered() -> None:
    state = evaluating()
    code = refused(state, AnswerSubmitted("q-python", "again", "c-other", NOW + 6))
    assert code == "already_answered"


def test_answer_to_the_next_question_while_evaluating_is_not_your_turn() -> None:
    state = evaluating()
    code = refused(state, AnswerSubmitted("q-sql", "eager", "c-other", NOW + 6))
    assert code == "not_your_turn"
    assert state.questions[1].answer is None


# --- evaluation ------------------------------------------------------------------------------


def test_tokens_while_evaluating_are_streamed_without_changing_state() -> None:
    state = evaluating()
    before = state.to_dict()
    outs = [step(state, EvaluationToken("q-python", d)) for d in ("Good ", "answer.")]
    assert [o.events for o in outs] == [
        [{"type": "feedback.delta", "questionId": "q-python", "delta": "Good "}],
        [{"type": "feedback.delta", "questionId": "q-python", "delta": "answer."}],
    ]
    assert all(o.changed is False and o.effects == [] and o.reply == [] for o in outs)
    assert state.to_dict() == before


def test_reset_while_evaluating_tells_the_client_to_discard_the_text() -> None:
    state = evaluating()
    before = state.to_dict()
    out = step(state, EvaluationReset("q-python", "evaluator_unavailable"))
    assert out.events == [
        {"type": "feedback.reset", "questionId": "q-python", "reason": "evaluator_unavailable"}
    ]
    assert out.changed is False
    assert out.effects == []
    assert state.to_dict() == before


@pytest.mark.parametrize(
    "event",
    [
        EvaluationToken("q-sql", "x"),
        EvaluationReset("q-sql", "x"),
        EvaluationDone("q-sql", grade(9), NOW + 7),
    ],
    ids=["token", "reset", "done"],
)
def test_evaluation_of_another_question_is_stale(event: Any) -> None:
    state = evaluating()
    assert refused(state, event) == "stale_evaluation"


def test_late_token_of_the_previous_question_is_stale() -> None:
    state = _awaiting_second()
    answer(state, 1)
    assert refused(state, EvaluationToken("q-python", "late")) == "stale_evaluation"
    assert refused(state, EvaluationDone("q-python", grade(1), NOW + 30)) == "stale_evaluation"
    assert state.questions[0].evaluation is not None
    assert state.questions[0].evaluation["score"] == 7


def test_evaluation_done_gives_feedback_and_asks_the_next_question() -> None:
    state = evaluating()
    out = step(state, EvaluationDone("q-python", Evaluation(8, 9, 7, 8, "Solid.", "llm"), NOW + 30))
    assert out.events == [
        {
            "type": "feedback.done",
            "questionId": "q-python",
            "score": 8,
            "scores": {"correctness": 9, "completeness": 7, "clarity": 8},
            "feedback": "Solid.",
            "source": "llm",
        },
        {
            "type": "question",
            "questionId": "q-sql",
            "index": 1,
            "total": 3,
            "text": "Question 1?",
            "tags": ["sql"],
            "timeLimitSec": 90,
            "deadline": "2023-11-14T22:15:20.000Z",
        },
    ]
    assert out.effects == [PersistEvaluation(0), ScheduleDeadline(1, NOW + 120)]
    assert state.status is Status.AWAITING_ANSWER
    assert state.current == 1
    assert state.deadline == NOW + 120
    assert state.version == 3
    assert state.questions[0].evaluation is not None
    assert state.questions[0].evaluation["score"] == 8


def test_last_evaluation_completes_the_interview() -> None:
    state = started()
    for index, score in enumerate((8, 6, 3)):
        answer(state, index)
        out = finish_eval(state, index, score)
    assert [e["type"] for e in out.events] == ["feedback.done", "interview.completed"]
    completed_event = out.events[1]
    # mean (8 + 6 + 3) / 3 = 5.67 -> 57; python strong, sql neither, the untagged one weak
    assert completed_event["score"] == 57
    assert completed_event["passed"] is False
    assert completed_event["strongTopics"] == ["python"]
    assert completed_event["weakTopics"] == ["general"]
    assert "57" in completed_event["feedback"]
    assert "Questions answered: 3 of 3" in completed_event["feedback"]
    assert out.effects == [PersistEvaluation(2), PersistOutcome()]
    assert state.status is Status.COMPLETED
    assert state.current_question is None
    assert state.deadline is None
    assert state.result == {k: v for k, v in completed_event.items() if k != "type"}
    assert state.version == 7


def test_after_completion_answers_drafts_and_complete_are_refused() -> None:
    state = started()
    for index in range(3):
        answer(state, index)
        finish_eval(state, index, 9)
    assert state.status is Status.COMPLETED
    late = AnswerSubmitted("q-misc", "more", "c-new", NOW + 99)
    assert refused(state, late) == "interview_closed"
    assert refused(state, DraftSaved("q-misc", "more")) == "interview_closed"
    assert refused(state, CompleteRequested(NOW + 99)) == "interview_closed"
    assert refused(state, Abandoned("inactive", NOW + 99)) == "interview_closed"


# --- drafts and deadlines --------------------------------------------------------------------


def test_draft_is_kept_quietly() -> None:
    state = started()
    out = step(state, DraftSaved("q-python", "half an"))
    assert out.events == [] and out.effects == [] and out.reply == []
    assert state.draft == "half an"
    assert state.version == 2
    assert state.status is Status.AWAITING_ANSWER


def test_draft_for_another_question_is_a_mismatch() -> None:
    state = started()
    assert refused(state, DraftSaved("q-sql", "x")) == "question_mismatch"


def test_deadline_not_yet_reached_does_nothing() -> None:
    state = started()
    before = state.to_dict()
    out = step(state, DeadlinePassed("q-python", NOW + 59.999))
    assert out.changed is False
    assert out.events == [] and out.effects == []
    assert state.to_dict() == before


@pytest.mark.parametrize("late", [0.0, 1.5], ids=["at", "after"])
def test_deadline_submits_the_latest_draft(late: float) -> None:
    state = started()
    step(state, DraftSaved("q-python", "first"))
    step(state, DraftSaved("q-python", "half an answer"))
    out = step(state, DeadlinePassed("q-python", NOW + 60 + late))
    assert out.events == [
        {"type": "answer.accepted", "questionId": "q-python", "clientMsgId": None, "auto": True}
    ]
    assert out.effects == [CancelDeadline(), PersistAnswer(0), StartEvaluation(0)]
    assert state.status is Status.EVALUATING
    q = state.questions[0]
    assert (q.answer, q.auto, q.answered_at) == ("half an answer", True, NOW + 60 + late)
    assert state.draft is None


def test_deadline_without_draft_submits_an_empty_answer() -> None:
    state = started()
    out = step(state, DeadlinePassed("q-python", NOW + 61))
    assert out.events[0]["auto"] is True
    assert state.questions[0].answer == ""
    assert state.questions[0].auto is True
    assert state.status is Status.EVALUATING


def test_draft_of_one_question_is_not_submitted_for_the_next() -> None:
    state = started()
    step(state, DraftSaved("q-python", "draft of the first"))
    answer(state, 0)
    finish_eval(state, 0, 5)
    step(state, DeadlinePassed("q-sql", state.deadline or 0))
    assert state.questions[1].answer == ""
    assert state.questions[0].answer == "answer 0"


def test_deadline_for_a_question_that_is_not_current_does_nothing() -> None:
    state = started()
    before = state.to_dict()
    out = step(state, DeadlinePassed("q-sql", NOW + 1_000))
    assert out.changed is False and out.events == [] and out.effects == []
    assert state.to_dict() == before


def test_deadline_while_evaluating_does_nothing() -> None:
    state = evaluating()
    before = state.to_dict()
    out = step(state, DeadlinePassed("q-python", NOW + 1_000))
    assert out.changed is False and out.events == [] and out.effects == []
    assert state.to_dict() == before


@pytest.mark.parametrize("build", [completed, abandoned], ids=["completed", "abandoned"])
def test_stale_deadline_after_the_end_does_nothing(build: Callable[[], InterviewState]) -> None:
    """A timer that fires after the interview ended (the cancel raced with it) is stale, like one
    that fires while evaluating: it must not be an error (the deadline loop only tolerates
    AppError, and ProtocolViolation is not one)."""
    state = build()
    before = state.to_dict()
    out = step(state, DeadlinePassed("q-python", NOW + 1_000))
    assert out.changed is False and out.events == [] and out.effects == []
    assert state.to_dict() == before


# --- complete and abandon --------------------------------------------------------------------


def test_complete_while_awaiting_finishes_at_once_with_unanswered_skipped() -> None:
    state = _awaiting_second()  # first answered and graded 7
    out = step(state, CompleteRequested(NOW + 50))
    assert [e["type"] for e in out.events] == ["interview.completed"]
    event = out.events[0]
    assert event["score"] == 23  # (7 + 0 + 0) / 3 * 10
    assert event["passed"] is False
    assert event["strongTopics"] == ["python"]
    assert event["weakTopics"] == ["general", "sql"]
    assert "Questions answered: 1 of 3" in event["feedback"]
    assert out.effects == [CancelDeadline(), PersistOutcome()]
    assert state.status is Status.COMPLETED
    assert state.deadline is None
    assert state.questions[1].evaluation == SKIPPED
    assert state.questions[2].evaluation == SKIPPED
    assert state.questions[1].answer is None
    assert state.questions[0].evaluation is not None
    assert state.questions[0].evaluation["score"] == 7


def test_complete_right_after_start_scores_zero() -> None:
    state = started()
    out = step(state, CompleteRequested(NOW + 1))
    assert out.events[0]["score"] == 0
    assert out.events[0]["passed"] is False
    assert all(q.evaluation == SKIPPED for q in state.questions)


def test_complete_while_evaluating_waits_for_the_feedback() -> None:
    state = evaluating()
    version = state.version
    out = step(state, CompleteRequested(NOW + 6))
    assert out.events == [] and out.effects == []
    assert state.complete_requested is True
    assert state.status is Status.EVALUATING
    assert state.version == version + 1
    step(state, EvaluationToken("q-python", "still streaming"))
    out = finish_eval(state, 0, 7)
    assert [e["type"] for e in out.events] == ["feedback.done", "interview.completed"]
    assert out.events[1]["score"] == 23
    assert out.effects == [PersistEvaluation(0), PersistOutcome()]
    assert state.status is Status.COMPLETED
    assert state.current == 0
    assert state.questions[1].evaluation == SKIPPED


@pytest.mark.parametrize("build", [started, evaluating], ids=["awaiting", "evaluating"])
def test_abandon_ends_the_interview(build: Callable[[], InterviewState]) -> None:
    state = build()
    version = state.version
    out = step(state, Abandoned("inactive", NOW + 3_600))
    assert out.events == [{"type": "interview.abandoned", "reason": "inactive"}]
    assert out.effects == [CancelDeadline(), PersistOutcome()]
    assert state.status is Status.ABANDONED
    assert state.status.public == "abandoned"
    assert state.deadline is None
    assert state.result is None
    assert state.version == version + 1
    qid = state.questions[state.current].question_id
    assert refused(state, AnswerSubmitted(qid, "too late", "c-late", NOW + 3_601)) == (
        "interview_closed"
    )
    assert refused(state, DraftSaved(qid, "too late")) == "interview_closed"
    assert refused(state, CompleteRequested(NOW + 3_601)) == "interview_closed"
    assert refused(state, EvaluationDone(qid, grade(9), NOW + 3_601)) == "interview_closed"


# --- persistence -----------------------------------------------------------------------------


def _awaiting_with_draft() -> InterviewState:
    state = _awaiting_second()
    step(state, DraftSaved("q-sql", "select 1"))
    return state


def _evaluating_completion_requested() -> InterviewState:
    state = _awaiting_second()
    answer(state, 1)
    step(state, CompleteRequested(NOW + 30))
    return state


@pytest.mark.parametrize(
    "build",
    [_awaiting_with_draft, _evaluating_completion_requested, _completed_after_answer],
    ids=["awaiting-with-draft", "evaluating-complete-requested", "completed"],
)
def test_to_dict_from_dict_round_trips(build: Callable[[], InterviewState]) -> None:
    state = build()
    text = json.dumps(state.to_dict())
    restored = InterviewState.from_dict(json.loads(text))
    assert restored == state
    assert restored.to_dict() == state.to_dict()
    assert restored.status is state.status


def test_restored_state_goes_on_exactly_like_the_original() -> None:
    state = _awaiting_with_draft()
    restored = InterviewState.from_dict(json.loads(json.dumps(state.to_dict())))
    deadline = state.deadline
    assert deadline is not None
    a = step(state, DeadlinePassed("q-sql", deadline))
    b = step(restored, DeadlinePassed("q-sql", deadline))
    assert a == b
    assert restored.questions[1].answer == "select 1"
    assert restored == state


# --- properties ------------------------------------------------------------------------------

QUESTION_CHOICE = st.sampled_from(["current", "current", "current", 0, 1, 2, "unknown"])
CLIENT_IDS = st.sampled_from(["a", "b", "c", "d", "e", None])
SCORES = st.one_of(st.integers(0, 10), st.floats(0, 10, allow_nan=False))

_ACTION_OF_KIND = {
    "answer": st.tuples(st.just("answer"), QUESTION_CHOICE, CLIENT_IDS, st.text(max_size=5)),
    "draft": st.tuples(st.just("draft"), QUESTION_CHOICE, st.text(max_size=5)),
    "token": st.tuples(st.just("token"), QUESTION_CHOICE, st.text(max_size=5)),
    "reset": st.tuples(st.just("reset"), QUESTION_CHOICE),
    "done": st.tuples(st.just("done"), QUESTION_CHOICE, SCORES),
    "deadline": st.tuples(st.just("deadline"), QUESTION_CHOICE),
    "complete": st.tuples(st.just("complete")),
    "abandon": st.tuples(st.just("abandon")),
}
# Weighted so that runs get through several questions before they end.
_KINDS = ["answer"] * 6 + ["done"] * 6 + ["draft", "token", "token", "reset", "deadline"] * 2
_KINDS += ["complete", "abandon"]
ACTIONS = st.sampled_from(_KINDS).flatmap(lambda kind: _ACTION_OF_KIND[kind])
STEPS = st.lists(st.tuples(ACTIONS, st.floats(0, 100, allow_nan=False)), max_size=60)


def _qid(state: InterviewState, choice: Any) -> str:
    if choice == "current":
        return state.questions[state.current].question_id
    if choice == "unknown":
        return "q-unknown"
    return QIDS[choice]


def _input(state: InterviewState, action: tuple[Any, ...], now: float) -> Any:
    kind = action[0]
    if kind == "answer":
        return AnswerSubmitted(_qid(state, action[1]), action[3], action[2], now)
    if kind == "draft":
        return DraftSaved(_qid(state, action[1]), action[2])
    if kind == "token":
        return EvaluationToken(_qid(state, action[1]), action[2])
    if kind == "reset":
        return EvaluationReset(_qid(state, action[1]), "retry")
    if kind == "done":
        return EvaluationDone(_qid(state, action[1]), grade(action[2]), now)
    if kind == "deadline":
        return DeadlinePassed(_qid(state, action[1]), now)
    if kind == "complete":
        return CompleteRequested(now)
    return Abandoned("inactive", now)


@settings(max_examples=200, deadline=None, database=None)
@given(steps=STEPS)
def test_random_inputs_keep_the_invariants(steps: list[tuple[tuple[Any, ...], float]]) -> None:
    state = make_state()
    now = NOW
    history = list(begin(state, now).events)
    assert state.version == 1
    for action, elapsed in steps:
        now += elapsed
        event = _input(state, action, now)
        before = state.to_dict()
        answers_before = [q.answer for q in state.questions]
        was_closed = state.status.closed
        status_before = state.status
        try:
            out = step(state, event)
        except ProtocolViolation:
            assert state.to_dict() == before
            continue
        if out.changed:
            assert state.version == before["version"] + 1
        else:
            assert state.to_dict() == before
        if was_closed:
            # Once closed, stays closed, and nothing about it changes any more.
            assert state.status is status_before
            assert state.to_dict() == before
            assert out.events == [] and out.effects == []
        for old, q in zip(answers_before, state.questions, strict=True):
            if old is not None:
                assert q.answer == old
        history.extend(out.events)

        asked = [e for e in history if e["type"] == "question"]
        indexes = [e["index"] for e in asked]
        assert indexes == sorted(set(indexes))
        assert len({e["questionId"] for e in asked}) == len(asked)
        assert indexes[-1] == state.current
        accepted = [e["questionId"] for e in history if e["type"] == "answer.accepted"]
        assert len(accepted) == len(set(accepted))
        assert len(accepted) == sum(q.answer is not None for q in state.questions)
        ends = [e for e in history if e["type"] in ("interview.completed", "interview.abandoned")]
        assert len(ends) <= 1
        if ends:
            assert history[-1] is ends[0]
            assert state.status.closed
            assert ends[0]["type"] == f"interview.{state.status.value}"
        else:
            assert not state.status.closed

    if state.status is Status.COMPLETED:
        assert state.result is not None
        assert 0 <= state.result["score"] <= 100
        assert all(q.evaluation is not None for q in state.questions)
