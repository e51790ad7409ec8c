"""The interview state's plain-data form: complete, and a copy that shares nothing mutable."""

from __future__ import annotations

import dataclasses

from engine.evaluator.base import Evaluation
from engine.model import InterviewState, QuestionState
from engine.state import AnswerSubmitted, EvaluationDone, handle, start


def test_to_dict_holds_every_field_and_round_trips() -> None:
    state = InterviewState(
        interview_id="iv",
        user_id="u",
        level="junior",
        language="en",
        pass_threshold=60,
        questions=[QuestionState("q1", "Q1?", ["python"], 60), QuestionState("q2", "Q2?", [], 60)],
    )
    start(state, 1000.0)
    handle(state, AnswerSubmitted("q1", "an answer", "c1", 1001.0))
    handle(state, EvaluationDone("q1", Evaluation(6, 6, 6, 6, "ok", "local"), 1002.0))
    data = state.to_dict()
    assert set(data) == {f.name for f in dataclasses.fields(InterviewState)}
    assert set(data["questions"][0]) == {f.name for f in dataclasses.fields(QuestionState)}
    assert InterviewState.from_dict(data) == state
    data["questions"][0]["tags"].append("changed")
    data["questions"][0]["evaluation"]["scores"]["clarity"] = 0
    assert state.questions[0].tags == ["python"]
    assert state.questions[0].evaluation is not None
    assert state.questions[0].evaluation["scores"]["clarity"] == 6
