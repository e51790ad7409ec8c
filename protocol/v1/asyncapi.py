"""The AsyncAPI 3.0 document of protocol v1: the socket, its messages and who sends which."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from protocol.v1.messages import (
    PATH,
    VERSION,
    Answer,
    AnswerAccepted,
    Complete,
    Draft,
    Error,
    FeedbackDelta,
    FeedbackDone,
    FeedbackReset,
    Hello,
    InterviewAbandoned,
    InterviewCompleted,
    Ping,
    Pong,
    QuestionEvent,
    Snapshot,
    Welcome,
)

ASYNCAPI_PATH = Path(__file__).parent / "asyncapi.json"
EXAMPLES = Path(__file__).parent / "examples"
REF = "#/components/schemas/{model}"

CLIENT: list[tuple[str, type[BaseModel], str]] = [
    ("hello", Hello, "The first frame: the token, the interview and where to resume from."),
    ("answer", Answer, "An answer to the current question; clientMsgId makes a resend safe."),
    ("draft", Draft, "The answer typed so far; submitted by itself when time runs out."),
    ("complete", Complete, "End the interview now; unanswered questions score 0."),
    ("ping", Ping, "An application-level ping; answered with pong."),
]
SERVER: list[tuple[str, type[BaseModel], str]] = [
    ("welcome", Welcome, "The hello was accepted; the history after lastSeq follows."),
    ("question", QuestionEvent, "The next question, with its deadline."),
    ("answer.accepted", AnswerAccepted, "The answer is stored (duplicate: a resent answer)."),
    ("feedback.delta", FeedbackDelta, "The next piece of the feedback text."),
    ("feedback.reset", FeedbackReset, "Discard this question's feedback text so far."),
    ("feedback.done", FeedbackDone, "The scores and the whole feedback; it equals the deltas."),
    ("interview.completed", InterviewCompleted, "The result of the whole interview."),
    ("interview.abandoned", InterviewAbandoned, "The interview ended without a result."),
    ("snapshot", Snapshot, "The whole visible state, when the history cannot cover a gap."),
    ("pong", Pong, "The answer to ping."),
    ("error", Error, "A frame was refused; the socket stays open."),
]


def _schemas() -> dict[str, Any]:
    """Every message's JSON Schema under components/schemas, references pointing there too."""
    schemas: dict[str, Any] = {}
    for side, mode in ((CLIENT, "validation"), (SERVER, "serialization")):
        for _, model, _ in side:
            schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
    return schemas


def _examples(name: str, side: str) -> list[dict[str, Any]]:
    found = sorted(EXAMPLES.glob(f"{side}.{name}.json")) + sorted(
        EXAMPLES.glob(f"{side}.{name}.*.json")
    )
    return [{"name": p.stem, "payload": json.loads(p.read_text("utf-8"))} for p in found]


def _message_id(name: str) -> str:
    return name.replace(".", "_")


def asyncapi_document() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    for side, entries in (("client", CLIENT), ("server", SERVER)):
        for name, model, summary in entries:
            messages[_message_id(name)] = {
                "name": name,
                "title": model.__name__,
                "summary": summary,
                "contentType": "application/json",
                "payload": {"$ref": REF.format(model=model.__name__)},
                "examples": _examples(name, side),
            }
    channel_messages = {key: {"$ref": f"#/components/messages/{key}"} for key in messages}

    def operation(action: str, entries: list[tuple[str, type[BaseModel], str]]) -> dict[str, Any]:
        return {
            "action": action,
            "channel": {"$ref": "#/channels/interview"},
            "messages": [
                {"$ref": f"#/channels/interview/messages/{_message_id(name)}"}
                for name, _, _ in entries
            ],
        }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"Interview socket protocol v{VERSION}",
            "version": str(VERSION),
            "description": (
                "One WebSocket per live interview. The client says hello (a token and "
                "lastSeq), the server answers welcome, replays what the client lacks (or sends "
                "a snapshot), then streams the interview's events: each carries a seq that grows "
                "by exactly 1. See docs/protocol.md for resume semantics and close codes."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:8000",
                "protocol": "ws",
                "description": "`make run`; production serves the same path over wss.",
            }
        },
        "channels": {
            "interview": {
                "address": PATH,
                "title": "A live interview",
                "messages": channel_messages,
            }
        },
        "operations": {
            "receiveClientFrames": operation("receive", CLIENT),
            "sendServerFrames": operation("send", SERVER),
        },
        "components": {"schemas": _schemas(), "messages": messages},
    }
