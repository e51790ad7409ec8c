"""Protocol v1 of the live interview socket: every frame is a JSON object with a `type`.

Client frames are validated strictly (unknown fields refused). Server frames that are interview
events carry `seq`, which grows by exactly 1 per interview; the interview's state machine emits
them with `seq` 0 (`UNSEQUENCED`) and the session bus numbers each one as it appends it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    WithJsonSchema,
)

VERSION = 1
PATH = "/ws/v1/interview"
UNSEQUENCED = 0

Id = Annotated[str, Field(min_length=1, max_length=64)]


def _whole_number(value: Any) -> Any:
    # JSON has one number type: 3.0 is the integer 3 to a schema validator, so it is to us too.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def iso(ts: float) -> str:
    """A Unix time as the protocol writes it: ISO 8601, UTC, milliseconds, `Z`."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: Any) -> Any:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return value


# A point in time: a Unix time in the program, an ISO 8601 string on the wire.
Timestamp = Annotated[
    float,
    BeforeValidator(_parse_time),
    PlainSerializer(iso, return_type=str),
    WithJsonSchema({"type": "string"}),
]


class ClientFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Hello(ClientFrame):
    type: Literal["hello"]
    token: str | None = Field(default=None, max_length=4096)
    interviewId: Id
    lastSeq: Annotated[int | None, BeforeValidator(_whole_number)] = Field(default=None, ge=0)
    epoch: str | None = Field(default=None, max_length=64)


class Answer(ClientFrame):
    type: Literal["answer"]
    questionId: Id
    answer: str = Field(max_length=100_000)
    clientMsgId: Annotated[str, Field(min_length=1, max_length=64)]


class Draft(ClientFrame):
    """The answer typed so far; it is what gets submitted if the deadline passes."""

    type: Literal["draft"]
    questionId: Id
    answer: str = Field(max_length=100_000)


class Complete(ClientFrame):
    type: Literal["complete"]


class Auth(ClientFrame):
    """A fresh access token for this socket, sent before the one from `hello` expires."""

    type: Literal["auth"]
    token: str = Field(min_length=1, max_length=4096)


class Ping(ClientFrame):
    type: Literal["ping"]
    nonce: str | None = Field(default=None, max_length=64)


ClientMessage = Annotated[
    Hello | Answer | Draft | Complete | Ping | Auth, Field(discriminator="type")
]
client_adapter: TypeAdapter[Hello | Answer | Draft | Complete | Ping | Auth] = TypeAdapter(
    ClientMessage
)

CLIENT_TYPES = ("hello", "answer", "draft", "complete", "ping", "auth")


def _type_is_required(schema: dict[str, Any]) -> None:
    # `type` has a default so that code can build frames without repeating it, but every frame
    # on the wire has one: the schema says so.
    if "type" in schema.get("properties", {}):
        schema["required"] = ["type", *(f for f in schema.get("required", []) if f != "type")]


class ServerFrame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_type_is_required)


class Scores(ServerFrame):
    correctness: float = Field(ge=0, le=10)
    completeness: float = Field(ge=0, le=10)
    clarity: float = Field(ge=0, le=10)


class SavedDraft(ServerFrame):
    """The answer typed so far for the current question, as the last `draft` frame left it."""

    questionId: str
    answer: str


class Welcome(ServerFrame):
    type: Literal["welcome"] = "welcome"
    protocol: int = VERSION
    interviewId: str
    status: str
    lastSeq: int
    epoch: str
    # Present when the current question has a saved draft: a page that reloads gets it back.
    draft: SavedDraft | None = Field(default=None, exclude_if=lambda v: v is None)


class QuestionEvent(ServerFrame):
    type: Literal["question"] = "question"
    seq: int
    questionId: str
    index: int
    total: int
    text: str
    tags: list[str]
    timeLimitSec: int
    deadline: Timestamp


class AnswerAccepted(ServerFrame):
    """The answer is stored. A repeated clientMsgId is acknowledged again with `duplicate: true`
    and no `seq`: that reply is not part of the interview's history."""

    type: Literal["answer.accepted"] = "answer.accepted"
    seq: int | None
    questionId: str
    clientMsgId: str | None = None
    auto: bool = Field(default=False, exclude_if=lambda v: not v)
    duplicate: bool = Field(default=False, exclude_if=lambda v: not v)


class FeedbackDelta(ServerFrame):
    type: Literal["feedback.delta"] = "feedback.delta"
    seq: int
    questionId: str
    delta: str


class FeedbackReset(ServerFrame):
    """Discard the feedback text received so far for this question; a new stream follows."""

    type: Literal["feedback.reset"] = "feedback.reset"
    seq: int
    questionId: str
    reason: str


class FeedbackDone(ServerFrame):
    type: Literal["feedback.done"] = "feedback.done"
    seq: int
    questionId: str
    score: float = Field(ge=0, le=10)
    scores: Scores
    feedback: str
    source: str


class InterviewCompleted(ServerFrame):
    type: Literal["interview.completed"] = "interview.completed"
    seq: int
    score: int = Field(ge=0, le=100)
    passed: bool
    feedback: str
    strongTopics: list[str]
    weakTopics: list[str]


class InterviewAbandoned(ServerFrame):
    type: Literal["interview.abandoned"] = "interview.abandoned"
    seq: int
    reason: str


class SnapshotQuestion(ServerFrame):
    questionId: str
    index: int
    text: str
    tags: list[str]
    answer: str | None
    score: float | None
    scores: Scores | None
    feedback: str | None


class Snapshot(ServerFrame):
    """The whole current state, sent when the history a client asked for is gone."""

    type: Literal["snapshot"] = "snapshot"
    seq: int
    status: str
    currentQuestionId: str | None
    deadline: Timestamp | None
    total: int
    questions: list[SnapshotQuestion]
    score: int | None
    passed: bool | None
    feedback: str | None


class Pong(ServerFrame):
    type: Literal["pong"] = "pong"
    nonce: str | None = None


class Error(ServerFrame):
    type: Literal["error"] = "error"
    code: str
    message: str
    retryAfter: int | None = Field(default=None, exclude_if=lambda v: v is None)


# The interview's own events: numbered by the bus, kept in its history, replayed on resume.
Event = (
    QuestionEvent
    | AnswerAccepted
    | FeedbackDelta
    | FeedbackReset
    | FeedbackDone
    | InterviewCompleted
    | InterviewAbandoned
)

EVENT_TYPES = (
    QuestionEvent,
    AnswerAccepted,
    FeedbackDelta,
    FeedbackReset,
    FeedbackDone,
    InterviewCompleted,
    InterviewAbandoned,
)

ServerMessage = Annotated[
    Welcome
    | QuestionEvent
    | AnswerAccepted
    | FeedbackDelta
    | FeedbackReset
    | FeedbackDone
    | InterviewCompleted
    | InterviewAbandoned
    | Snapshot
    | Pong
    | Error,
    Field(discriminator="type"),
]
server_adapter: TypeAdapter[object] = TypeAdapter(ServerMessage)


class ErrorCode:
    """Stable error codes of `error` frames."""

    BAD_FRAME = "bad_frame"
    UNKNOWN_TYPE = "unknown_type"
    NOT_YOUR_TURN = "not_your_turn"
    QUESTION_MISMATCH = "question_mismatch"
    ALREADY_ANSWERED = "already_answered"
    INTERVIEW_CLOSED = "interview_closed"
    RATE_LIMITED = "rate_limited"
    ANSWER_TOO_LONG = "answer_too_long"
    ALREADY_HELLO = "already_hello"
    BAD_TOKEN = "bad_token"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal_error"


class CloseCode:
    """WebSocket close codes the server uses."""

    NORMAL = 1000
    GOING_AWAY = 1001
    POLICY = 1008
    TOO_LARGE = 1009
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_TOKEN = 4401
    NOT_OWNER = 4403
    TOO_MANY_SOCKETS = 4409
    NO_SUCH_INTERVIEW = 4404
    HELLO_TIMEOUT = 4408
    SLOW_CONSUMER = 4429
    BAD_HELLO = 4400
