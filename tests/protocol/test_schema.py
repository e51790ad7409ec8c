"""The checked-in JSON Schema and example frames pin the wire format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from websockets.asyncio.client import ClientConnection, connect

from http_api.services import AppServices
from protocol.v1.asyncapi import ASYNCAPI_PATH, asyncapi_document
from protocol.v1.messages import (
    CLIENT_TYPES,
    EVENT_TYPES,
    PATH,
    UNSEQUENCED,
    client_adapter,
    server_adapter,
)
from protocol.v1.schema import SCHEMA_PATH, protocol_schema
from protocol.v1.wire import encode, number
from tests.helpers import recv, verified_user

ROOT_DIR = Path(__file__).parents[2]
ASYNCAPI_SPEC = (
    ROOT_DIR / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0-without-$id.json"
)
SCHEMA_URL = "/protocol/v1/schema.json"
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


ROOT = jsonschema.Draft202012Validator(SCHEMA)
SERVER_EXAMPLES = [p for p in EXAMPLES if p.name.startswith("server.")]


@pytest.mark.parametrize("frame", [[], 42, "x", {}, {"type": "nope"}, {"seq": 1, "delta": "x"}])
def test_the_schema_root_refuses_what_is_no_frame(frame: object) -> None:
    assert not ROOT.is_valid(frame)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_a_frame_at_the_schema_root(path: Path) -> None:
    ROOT.validate(json.loads(path.read_text("utf-8")))


@pytest.mark.parametrize("path", SERVER_EXAMPLES, ids=lambda p: p.name)
def test_frames_go_on_the_wire_exactly_as_recorded(path: Path) -> None:
    """The model of a recorded frame, serialized as the server does (an event: encoded and
    numbered as the bus does), gives back the same JSON with its members in the same order."""
    recorded = json.loads(path.read_text("utf-8"))
    model = server_adapter.validate_python(recorded)
    if not isinstance(model, EVENT_TYPES) or model.seq is None:
        text = model.model_dump_json()  # type: ignore[attr-defined]
    else:
        seq = model.seq
        text = number(encode(model.model_copy(update={"seq": UNSEQUENCED})), seq)  # type: ignore[attr-defined]
    assert json.loads(text) == recorded
    assert list(json.loads(text)) == list(recorded)


def test_the_asyncapi_document_is_valid_asyncapi_3() -> None:
    spec = json.loads(ASYNCAPI_SPEC.read_text("utf-8"))
    validator = jsonschema.Draft7Validator(spec)
    document = json.loads(ASYNCAPI_PATH.read_text("utf-8"))
    validator.validate(document)
    assert document == json.loads(json.dumps(asyncapi_document()))
    broken = {**document, "operations": {"x": {"action": "shout"}}}
    assert not validator.is_valid(broken)
    names = {m["name"] for m in document["components"]["messages"].values()}
    assert names == set(CLIENT_TYPES) | {
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
    }


async def test_the_app_serves_the_asyncapi_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/protocol/v1/asyncapi.json")
    assert response.status_code == 200
    assert response.json() == json.loads(ASYNCAPI_PATH.read_text("utf-8"))


async def test_every_frame_of_a_live_interview_is_valid_at_the_schema_root(
    client: httpx.AsyncClient, services: AppServices, live_server: str
) -> None:
    """Frames captured from a real socket: a whole interview, errors, a resume with a snapshot."""
    user = await verified_user(client, services, "frames@example.ru")
    started = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "intern"}, headers=user["headers"]
    )
    interview_id = started.json()["interviewId"]
    served = jsonschema.Draft202012Validator((await client.get(SCHEMA_URL)).json())
    captured: list[dict[str, Any]] = []

    async def take(ws: ClientConnection) -> dict[str, Any]:
        frame = await recv(ws)
        captured.append(frame)
        return frame

    async with connect(f"ws://{live_server}{PATH}") as ws:
        await ws.send(
            json.dumps({"type": "hello", "token": user["token"], "interviewId": interview_id})
        )
        assert (await take(ws))["type"] == "welcome"
        frame = await take(ws)
        for bad in ('{"type": "teleport"}', "[]", '{"type": "ping", "nonce": "n"}'):
            await ws.send(bad)
            assert (await take(ws))["type"] in ("error", "pong")
        answered = 0
        while True:
            if frame["type"] == "question":
                answered += 1
                answer = {
                    "type": "answer",
                    "questionId": frame["questionId"],
                    "answer": "Индекс ускоряет поиск, как B-дерево по ключу",
                    "clientMsgId": f"c{answered}",
                }
                await ws.send(json.dumps(answer))
                if answered == 1:
                    await ws.send(json.dumps(answer))  # a resend: the duplicate reply
            elif frame["type"] == "interview.completed":
                break
            frame = await take(ws)
    async with connect(f"ws://{live_server}{PATH}") as ws:  # a gap only a snapshot can cover
        hello = {"type": "hello", "token": user["token"], "interviewId": interview_id}
        await ws.send(json.dumps({**hello, "lastSeq": 10_000}))
        assert (await take(ws))["type"] == "welcome"
        assert (await take(ws))["type"] == "snapshot"
    kinds = {f["type"] for f in captured}
    assert {"welcome", "error", "pong", "question", "answer.accepted", "feedback.delta"} <= kinds
    assert {"feedback.done", "interview.completed", "snapshot"} <= kinds
    assert any(f.get("duplicate") for f in captured)
    for frame in captured:
        served.validate(frame)
