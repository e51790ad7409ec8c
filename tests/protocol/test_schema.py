"""The checked-in JSON Schema and example frames pin the wire format."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jsonschema
import pytest

from protocol.v1.messages import client_adapter, server_adapter
from protocol.v1.schema import SCHEMA_PATH, protocol_schema

EXAMPLES = sorted((Path(__file__).parents[2] / "protocol" / "v1" / "examples").glob("*.json"))
SCHEMA = json.loads(SCHEMA_PATH.read_text("utf-8"))


def test_checked_in_schema_is_current() -> None:
    assert SCHEMA == json.loads(json.dumps(protocol_schema()))


def test_every_frame_type_has_an_example() -> None:
    names = {p.name.split(".", 1)[1].rsplit(".json", 1)[0] for p in EXAMPLES}
    for kind in (
        "hello",
        "answer",
        "draft",
        "complete",
        "ping",
        "welcome",
        "question",
        "answer.accepted",
        "feedback.delta",
        "feedback.reset",
        "feedback.done",
        "interview.completed",
        "interview.abandoned",
        "snapshot",
        "pong",
        "error",
    ):
        assert kind in names, kind


def validator(side: str) -> jsonschema.Draft202012Validator:
    """The schema of one side; its $refs (#/<side>/$defs/...) resolve against the whole document."""
    return jsonschema.Draft202012Validator({**SCHEMA, "$ref": f"#/{side}"})


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_schema_and_models(path: Path) -> None:
    frame = json.loads(path.read_text("utf-8"))
    side = "client" if path.name.startswith("client.") else "server"
    validator(side).validate(frame)
    adapter = client_adapter if side == "client" else server_adapter
    adapter.validate_python(frame)


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "answer", "questionId": "q", "answer": 5, "clientMsgId": "c"},
        {"type": "answer", "questionId": "q", "answer": "a"},
        {"type": "hello", "interviewId": "i", "lastSeq": -1},
        {"type": "hello", "interviewId": "i", "extra": True},
        {"type": "teleport"},
    ],
)
def test_invalid_client_frames_are_rejected_by_the_schema(frame: dict[str, object]) -> None:
    assert not validator("client").is_valid(frame)


async def test_the_app_serves_the_schema(client: httpx.AsyncClient) -> None:
    response = await client.get("/protocol/v1/schema.json")
    assert response.status_code == 200
    assert response.json() == SCHEMA
