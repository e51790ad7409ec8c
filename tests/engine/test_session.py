"""The socket session (engine/session.py): protocol v1 over text and time, no server, no I/O."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.bus.base import Replay, Stamped
from engine.model import InterviewState, QuestionState, Status
from engine.session import (
    Apply,
    Authenticate,
    Close,
    Limits,
    Phase,
    Resnapshot,
    SocketSession,
)
from engine.state import AnswerSubmitted, CompleteRequested, DraftSaved
from protocol.v1.messages import (
    UNSEQUENCED,
    AnswerAccepted,
    FeedbackDelta,
    server_adapter,
)
from protocol.v1.wire import encode, number

LIMITS = Limits(
    max_frame_chars=1000,
    hello_timeout=10.0,
    idle_timeout=600.0,
    rate_count=5,
    rate_window=10.0,
    send_queue=4,
    answer_max_chars=100,
)
T0 = 1000.0
IV = "iv-1"


def hello(**extra: Any) -> str:
    return json.dumps({"type": "hello", "token": "t", "interviewId": IV, **extra})


def sent(session: SocketSession) -> list[dict[str, Any]]:
    """What the session wants written, each checked against protocol v1, then marked written."""
    frames = session.data_to_send()
    session.written(len(frames))
    out = []
    for text in frames:
        server_adapter.validate_json(text)
        out.append(json.loads(text))
    return out


def stamped(seq: int, delta: str = "x") -> Stamped:
    event = FeedbackDelta(seq=UNSEQUENCED, questionId="q1", delta=delta)
    return Stamped(seq, number(encode(event), seq))


def replay(head: int, after: int = 0, complete: bool = True, epoch: str = "e1") -> Replay:
    return Replay(epoch, head, [stamped(s) for s in range(after + 1, head + 1)], complete)


def opened(head: int = 0, limits: Limits = LIMITS, **hello_fields: Any) -> SocketSession:
    session = SocketSession(limits, T0)
    session.receive_text(hello(**hello_fields), T0)
    assert session.requests_to_run() == [Authenticate("t", IV, hello_fields.get("lastSeq") or 0)]
    session.authenticated("user-1", IV, "in-progress", replay(head, hello_fields.get("lastSeq", 0)))
    return session


def state() -> InterviewState:
    return InterviewState(
        interview_id=IV,
        user_id="user-1",
        level="junior",
        language="en",
        pass_threshold=60,
        questions=[QuestionState("q1", "Q1?", ["python"], 60), QuestionState("q2", "Q2?", [], 60)],
        status=Status.AWAITING_ANSWER,
        deadline=T0 + 60,
    )


# --- hello ---------------------------------------------------------------------------------


def test_hello_then_welcome_and_the_history() -> None:
    session = opened(head=3)
    frames = sent(session)
    assert frames[0] == {
        "type": "welcome",
        "protocol": 1,
        "interviewId": IV,
        "status": "in-progress",
        "lastSeq": 3,
        "epoch": "e1",
    }
    assert [f["seq"] for f in frames[1:]] == [1, 2, 3]
    assert session.phase is Phase.OPEN and session.close is None


@pytest.mark.parametrize(
    ("first", "code"),
    [
        ('{"type": "ping"}', 4400),
        ("not json", 4400),
        (json.dumps({"type": "hello", "interviewId": IV, "extra": 1}), 4400),
        (json.dumps({"type": "hello", "interviewId": IV}), 4401),  # no token anywhere
        ("x" * 2000, 1009),
    ],
)
def test_a_bad_first_frame_closes(first: str, code: int) -> None:
    session = SocketSession(LIMITS, T0)
    session.receive_text(first, T0)
    assert session.close is not None and session.close.code == code
    assert session.requests_to_run() == [] and session.data_to_send() == []


def test_the_upgrade_header_token_stands_in_for_the_hello_token() -> None:
    session = SocketSession(LIMITS, T0, header_token="from-header")
    session.receive_text(json.dumps({"type": "hello", "interviewId": IV}), T0)
    assert session.requests_to_run() == [Authenticate("from-header", IV, 0)]


def test_no_hello_in_time_closes_with_4408() -> None:
    session = SocketSession(LIMITS, T0)
    assert session.next_tick() == T0 + 10
    session.tick(T0 + 9.9)
    assert session.close is None
    session.tick(T0 + 10)
    assert session.close == Close(4408, "no hello in time")


def test_a_refused_hello_closes_with_the_adapters_code() -> None:
    session = SocketSession(LIMITS, T0)
    session.receive_text(hello(), T0)
    session.requests_to_run()
    session.refused(Close(4403, "not your interview"))
    assert session.close == Close(4403, "not your interview")
    assert session.data_to_send() == []


def test_frames_sent_while_authenticating_are_answered_after_the_welcome() -> None:
    session = SocketSession(LIMITS, T0)
    session.receive_text(hello(), T0)
    session.receive_text('{"type": "ping", "nonce": "early"}', T0 + 0.1)
    session.requests_to_run()
    session.authenticated("user-1", IV, "in-progress", replay(0))
    assert [f["type"] for f in sent(session)] == ["welcome", "pong"]


# --- resume --------------------------------------------------------------------------------


def test_resume_replays_only_what_the_client_lacks() -> None:
    session = opened(head=5, lastSeq=3)
    assert [f.get("seq") for f in sent(session)] == [None, 4, 5]


def test_live_events_are_delivered_once_in_order() -> None:
    session = opened(head=2)
    sent(session)
    for seq in (2, 3, 3, 1, 4):
        session.event(stamped(seq))
    assert [f["seq"] for f in sent(session)] == [3, 4]


@pytest.mark.parametrize(
    ("hello_fields", "history"),
    [
        ({"lastSeq": 2}, replay(5, 2, complete=False)),  # trimmed history
        ({"lastSeq": 9}, replay(5, 5)),  # the client is ahead: the history restarted
        ({"lastSeq": 2, "epoch": "old"}, replay(5, 2)),  # another history with the same numbers
    ],
)
def test_a_gap_the_history_cannot_cover_gets_a_snapshot(
    hello_fields: dict[str, Any], history: Replay
) -> None:
    session = SocketSession(LIMITS, T0)
    session.receive_text(hello(**hello_fields), T0)
    session.requests_to_run()
    session.authenticated("user-1", IV, "in-progress", history)
    assert session.requests_to_run() == [Resnapshot(5)]
    session.event(stamped(6))  # arrives while the state is being loaded: waits for the snapshot
    assert [f["type"] for f in sent(session)] == ["welcome"]
    session.snapshot_of(state())
    frames = sent(session)
    assert [f["type"] for f in frames] == ["snapshot", "feedback.delta"]
    assert frames[0]["seq"] == 5 and frames[1]["seq"] == 6
    assert [q["questionId"] for q in frames[0]["questions"]] == ["q1"], "only asked questions"


# --- frames after hello ----------------------------------------------------------------------


def test_client_frames_become_inputs_for_the_interview() -> None:
    session = opened()
    sent(session)
    session.receive_text(
        '{"type": "answer", "questionId": "q1", "answer": "a", "clientMsgId": "c1"}', T0 + 1
    )
    session.receive_text('{"type": "draft", "questionId": "q1", "answer": "d"}', T0 + 2)
    session.receive_text('{"type": "complete"}', T0 + 3)
    assert session.requests_to_run() == [
        Apply(AnswerSubmitted("q1", "a", "c1", T0 + 1)),
        Apply(DraftSaved("q1", "d")),
        Apply(CompleteRequested(T0 + 3)),
    ]
    session.applied([AnswerAccepted(seq=None, questionId="q1", clientMsgId="c1", duplicate=True)])
    session.rejected("not_your_turn", "Wait for the feedback")
    assert sent(session) == [
        {
            "type": "answer.accepted",
            "seq": None,
            "questionId": "q1",
            "clientMsgId": "c1",
            "duplicate": True,
        },
        {"type": "error", "code": "not_your_turn", "message": "Wait for the feedback"},
    ]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{", "bad_frame"),
        ("[]", "bad_frame"),
        ('{"type": 5}', "bad_frame"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "answer", "questionId": "q1", "answer": 5, "clientMsgId": "c"}', "bad_frame"),
        ('{"type": "hello", "interviewId": "x"}', "already_hello"),
        ('{"type": "ping", "nonce": ' + "1" * 5000 + "}", "bad_frame"),  # int too long to convert
        ("[" * 100_000 + "]" * 100_000, "bad_frame"),  # nesting deeper than the parser allows
        (
            '{"type": "answer", "questionId": "q1", "answer": "'
            + "x" * 101
            + '", "clientMsgId": "c"}',
            "answer_too_long",
        ),
    ],
)
def test_bad_frames_get_an_error_and_the_socket_stays_open(text: str, code: str) -> None:
    session = opened(limits=dataclasses.replace(LIMITS, max_frame_chars=10**6))
    sent(session)
    session.receive_text(text, T0 + 1)
    errors = sent(session)
    assert [e["code"] for e in errors] == [code]
    assert session.close is None and session.requests_to_run() == []


def test_too_many_frames_are_refused_with_the_window() -> None:
    session = opened()
    sent(session)
    frames = []
    for i in range(7):
        session.receive_text('{"type": "ping"}', T0 + 1 + i * 0.1)
        frames += sent(session)
    assert [f["type"] for f in frames] == ["pong"] * 5 + ["error"] * 2
    assert frames[-1] == {
        "type": "error",
        "code": "rate_limited",
        "message": "Too many frames; slow down",
        "retryAfter": 10,
    }
    session.receive_text('{"type": "ping"}', T0 + 12)  # a new window
    assert [f["type"] for f in sent(session)] == ["pong"]


def test_a_socket_that_says_nothing_is_closed_as_idle() -> None:
    session = opened()
    session.receive_text('{"type": "ping"}', T0 + 100)
    assert session.next_tick() == T0 + 700
    session.tick(T0 + 699)
    assert session.close is None
    session.tick(T0 + 700)
    assert session.close is not None and session.close.code == 1001


# --- the send queue --------------------------------------------------------------------------


def test_a_client_that_stops_reading_is_closed_with_4429() -> None:
    session = opened(head=10)  # a replay of 10 does not count against the queue of 4
    session.data_to_send()  # taken by the writer, never reported written
    for seq in range(11, 15):
        session.event(stamped(seq))
    assert session.close is None
    session.event(stamped(15))
    assert session.close == Close(4429, "send queue full: the client is not reading")
    assert session.data_to_send() == [], "nothing more is written to it"


def test_written_frames_free_the_queue() -> None:
    session = opened()
    sent(session)
    for seq in range(1, 50):
        session.event(stamped(seq))
        sent(session)
    assert session.close is None and session.pending == 0


# --- whatever arrives, the session answers in protocol v1 and never raises -------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
frames = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["answer", "draft", "complete", "ping", "hello", "x", ""])},
        optional={
            "questionId": st.text(max_size=30) | json_values,
            "answer": st.text(max_size=200) | json_values,
            "clientMsgId": st.text(max_size=70) | json_values,
            "nonce": st.text(max_size=70),
            "extra": json_values,
        },
    ).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
)


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(frames, max_size=12), events=st.lists(st.integers(1, 30), max_size=10))
def test_any_input_gets_valid_frames_and_no_exception(texts: list[str], events: list[int]) -> None:
    session = opened()
    for i, text in enumerate(texts):
        session.receive_text(text, T0 + i)
        if events:
            session.event(stamped(events.pop()))
        for request in session.requests_to_run():
            assert isinstance(request, Apply)
        sent(session)
    assert session.close is None or session.close.code in (1009, 4429)
