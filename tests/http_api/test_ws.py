"""The live interview socket over a real uvicorn server, as a client sees it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from bson import ObjectId
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from http_api.services import AppServices
from protocol.v1.messages import server_adapter
from tests.helpers import recv, recv_until, verified_user

pytestmark = pytest.mark.both_adapters


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ws_hello_timeout_sec": 0.5, "questions_per_interview": 3}


async def start(client: httpx.AsyncClient, user: dict[str, Any], level: str = "junior") -> str:
    response = await client.post(
        "/api/v1/interviews/technical/start", json={"level": level}, headers=user["headers"]
    )
    assert response.status_code == 201, response.text
    interview_id: str = response.json()["interviewId"]
    return interview_id


async def open_socket(
    address: str, token: str | None, interview_id: str, **hello: Any
) -> ClientConnection:
    ws = await connect(f"ws://{address}/ws/v1/interview", max_size=None)
    frame = {"type": "hello", "interviewId": interview_id, **hello}
    if token is not None:
        frame["token"] = token
    await ws.send(json.dumps(frame))
    return ws


def check_frames(frames: list[dict[str, Any]]) -> None:
    for frame in frames:
        server_adapter.validate_python(frame)


async def answer_all(
    ws: ClientConnection, answer: str = "хеш-таблица O(1) индекс"
) -> list[dict[str, Any]]:
    """Answer every question as it arrives; return every frame up to interview.completed."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while True:
            frame = await recv(ws)
            frames.append(frame)
            if frame["type"] == "question":
                await ws.send(
                    json.dumps(
                        {
                            "type": "answer",
                            "questionId": frame["questionId"],
                            "answer": answer,
                            "clientMsgId": f"m-{frame['index']}",
                        }
                    )
                )
            if frame["type"] == "interview.completed":
                return frames


async def test_whole_interview_streams_feedback_and_completes(
    client: httpx.AsyncClient, services: AppServices, live_server: str
) -> None:
    user = await verified_user(client, services, "socket@example.ru")
    interview_id = await start(client, user)
    ws = await open_socket(live_server, user["token"], interview_id)
    welcome = await recv(ws)
    assert welcome["type"] == "welcome" and welcome["status"] == "in-progress"
    frames = await answer_all(ws)
    await ws.close()
    check_frames([welcome, *frames])
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(1, len(seqs) + 1)), "seq grows by exactly one"
    kinds = [f["type"] for f in frames]
    assert kinds.count("question") == 3 and kinds.count("feedback.done") == 3
    first_delta = kinds.index("feedback.delta")
    assert first_delta < kinds.index("feedback.done"), "feedback streams before it is done"
    for done in (f for f in frames if f["type"] == "feedback.done"):
        streamed = "".join(
            f["delta"]
            for f in frames
            if f["type"] == "feedback.delta" and f["questionId"] == done["questionId"]
        )
        assert streamed == done["feedback"]
    report = await client.get(f"/api/v1/interviews/{interview_id}/report", headers=user["headers"])
    assert report.json()["status"] == "completed"
    assert all(q["userAnswer"] for q in report.json()["questions"])


async def test_resume_with_last_seq_gets_each_event_once(
    client: httpx.AsyncClient, services: AppServices, live_server: str
) -> None:
    user = await verified_user(client, services, "resume@example.ru")
    interview_id = await start(client, user)
    ws = await open_socket(live_server, user["token"], interview_id)
    await recv(ws)
    question = await recv(ws)
    await ws.send(
        json.dumps(
            {
                "type": "answer",
                "questionId": question["questionId"],
                "answer": "индекс",
                "clientMsgId": "a1",
            }
        )
    )
    accepted = await recv(ws)
    assert accepted["type"] == "answer.accepted"
    await ws.close()
    # Reconnect: everything after the last seq seen, exactly once and in order.
    ws = await open_socket(live_server, user["token"], interview_id, lastSeq=accepted["seq"])
    welcome = await recv(ws)
    assert welcome["lastSeq"] >= accepted["seq"]
    frames = await answer_all(ws)
    await ws.close()
    seqs = [f["seq"] for f in frames]
    assert seqs == list(range(accepted["seq"] + 1, accepted["seq"] + 1 + len(seqs)))
    # A full replay from 0 returns the whole history.
    ws = await open_socket(live_server, user["token"], interview_id)
    await recv(ws)
    _, history = await recv_until(ws, "interview.completed")
    await ws.close()
    assert [f["seq"] for f in history] == list(range(1, seqs[-1] + 1))


async def test_repeated_client_msg_id_is_acknowledged_not_stored_twice(
    client: httpx.AsyncClient, services: AppServices, live_server: str
) -> None:
    user = await verified_user(client, services, "dup@example.ru")
    interview_id = await start(client, user)
    ws = await open_socket(live_server, user["token"], interview_id)
    await recv(ws)
    question = await recv(ws)
    frame = {
        "type": "answer",
        "questionId": question["questionId"],
        "answer": "первый",
        "clientMsgId": "same",
    }
    await ws.send(json.dumps(frame))
    await ws.send(json.dumps({**frame, "answer": "второй"}))
    acks = []
    async with asyncio.timeout(10):
        while len(acks) < 2:
            got = await recv(ws)
            if got["type"] == "answer.accepted":
                acks.append(got)
    await ws.close()
    assert acks[0]["seq"] is not None and not acks[0].get("duplicate")
    assert acks[1]["duplicate"] is True and acks[1].get("seq") is None
    doc = await services.infra.db["interviews"].find_one({"_id": ObjectId(interview_id)})
    assert doc is not None and doc["questions"][0]["userAnswer"] == "первый"


async def test_recoverable_errors_keep_the_socket_open(
    client: httpx.AsyncClient, services: AppServices, live_server: str
) -> None:
    user = await verified_user(client, services, "errors@example.ru")
    interview_id = await start(client, user)
    ws = await open_socket(live_server, user["token"], interview_id)
    await recv(ws)
    question = await recv(ws)
    cases = [
        ("{not json", "bad_frame"),
        (json.dumps([1, 2]), "bad_frame"),
        (json.dumps({"type": "shout"}), "unknown_type"),
        (json.dumps({"type": "answer", "questionId": question["questionId"]}), "bad_frame"),
        (
            json.dumps(
                {"type": "answer", "questionId": "x" * 24, "answer": "a", "clientMsgId": "c"}
            ),
            "question_mismatch",
        ),
        (
            json.dumps(
                {
                    "type": "answer",
                    "questionId": question["questionId"],
                    "answer": "a" * 9000,
                    "clientMsgId": "long",
                }
            ),
            "answer_too_long",
        ),
        (json.dumps({"type": "hello", "interviewId": interview_id}), "already_hello"),
    ]
    for raw, code in cases:
        await ws.send(raw)
        error = await recv(ws)
        assert error["type"] == "error" and error["code"] == code, (raw[:40], error)
    await ws.send(json.dumps({"type": "ping", "nonce": "n1"}))
    assert await recv(ws) == {"type": "pong", "nonce": "n1"}
    await ws.close()
    doc = await services.infra.db["interviews"].find_one({"_id": ObjectId(interview_id)})
    assert doc is not None and doc["questions"][0]["userAnswer"] is None, "nothing was stored"


async def test_answers_out_of_turn_and_after_completion_are_refused(
    client: httpx.AsyncClient, services: AppServices, live_server: str
) -> None:
    user = await verified_user(client, services, "turns@example.ru")
    interview_id = await start(client, user)
    ws = await open_socket(live_server, user["token"], interview_id)
    await recv(ws)
    question = await recv(ws)
    answer = {
        "type": "answer",
        "questionId": question["questionId"],
        "answer": "индекс",
        "clientMsgId": "t1",
    }
    await ws.send(json.dumps(answer))
    await ws.send(json.dumps({**answer, "clientMsgId": "t2"}))
    error, _ = await recv_until(ws, "error")
    assert error["code"] in ("already_answered", "not_your_turn")
    await ws.send(json.dumps({"type": "complete"}))
    completed, _ = await recv_until(ws, "interview.completed")
    assert 0 <= completed["score"] <= 100
    await ws.send(json.dumps({**answer, "clientMsgId": "t3"}))
    error, _ = await recv_until(ws, "error")
    assert error["code"] == "interview_closed"
    await ws.close()


async def close_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    return ws.close_code


async def test_close_codes(
    client: httpx.AsyncClient, services: AppServices, live_server: str
) -> None:
    owner = await verified_user(client, services, "owner@example.ru")
    other = await verified_user(client, services, "other@example.ru")
    interview_id = await start(client, owner)
    assert await close_code(await open_socket(live_server, "garbage", interview_id)) == 4401
    assert await close_code(await open_socket(live_server, None, interview_id)) == 4401
    assert await close_code(await open_socket(live_server, other["token"], interview_id)) == 4403
    missing = str(ObjectId())
    assert await close_code(await open_socket(live_server, owner["token"], missing)) == 4404
    silent = await connect(f"ws://{live_server}/ws/v1/interview")
    assert await close_code(silent) == 4408
    bad_first = await connect(f"ws://{live_server}/ws/v1/interview")
    await bad_first.send(json.dumps({"type": "ping"}))
    assert await close_code(bad_first) == 4400
    big = await open_socket(live_server, owner["token"], interview_id)
    await recv(big)
    await big.send("x" * (70 * 1024))
    assert await close_code(big) == 1009


async def test_bearer_header_on_upgrade_is_accepted(
    client: httpx.AsyncClient, services: AppServices, live_server: str
) -> None:
    user = await verified_user(client, services, "header@example.ru")
    interview_id = await start(client, user)
    ws = await connect(
        f"ws://{live_server}/ws/v1/interview",
        additional_headers={"Authorization": f"Bearer {user['token']}"},
    )
    await ws.send(json.dumps({"type": "hello", "interviewId": interview_id}))
    assert (await recv(ws))["type"] == "welcome"
    await ws.close()


async def test_second_tab_sees_the_same_events(
    client: httpx.AsyncClient, services: AppServices, live_server: str
) -> None:
    user = await verified_user(client, services, "tabs@example.ru")
    interview_id = await start(client, user)
    first = await open_socket(live_server, user["token"], interview_id)
    second = await open_socket(live_server, user["token"], interview_id)
    for ws in (first, second):
        await recv(ws)
        question = await recv(ws)
    frame = {
        "type": "answer",
        "questionId": question["questionId"],
        "answer": "индекс",
        "clientMsgId": "tab1",
    }
    await first.send(json.dumps(frame))
    done_first, _ = await recv_until(first, "feedback.done")
    done_second, _ = await recv_until(second, "feedback.done")
    assert done_first == done_second
    await second.send(json.dumps({**frame, "clientMsgId": "tab2"}))
    error, _ = await recv_until(second, "error")
    assert error["code"] == "already_answered"
    await first.close()
    await second.close()


async def test_rest_and_socket_drive_the_same_interview(
    client: httpx.AsyncClient, services: AppServices, live_server: str
) -> None:
    user = await verified_user(client, services, "mixed@example.ru")
    started = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "middle"}, headers=user["headers"]
    )
    interview_id = started.json()["interviewId"]
    first = started.json()["questions"][0]
    rest = await client.post(
        f"/api/v1/interviews/technical/{interview_id}/answer",
        json={"questionId": first["questionId"], "answer": "шардирование и репликация"},
        headers=user["headers"],
    )
    assert rest.status_code == 200 and rest.json()["nextQuestion"]["index"] == 1
    ws = await open_socket(live_server, user["token"], interview_id)
    await recv(ws)
    frames = await answer_all(ws)
    await ws.close()
    # The socket replays the answer given over REST, then continues.
    accepted = [f for f in frames if f["type"] == "answer.accepted"]
    assert accepted[0]["questionId"] == first["questionId"]
    assert frames[-1]["type"] == "interview.completed"


async def test_a_saved_draft_comes_back_with_the_welcome(
    client: httpx.AsyncClient, services: AppServices, live_server: str
) -> None:
    user = await verified_user(client, services, "drafts@example.ru")
    interview_id = await start(client, user)
    ws = await open_socket(live_server, user["token"], interview_id)
    assert "draft" not in await recv(ws)
    question = await recv(ws)
    draft = {"type": "draft", "questionId": question["questionId"], "answer": "половина ответа"}
    await ws.send(json.dumps(draft))
    await ws.send(json.dumps({"type": "ping", "nonce": "saved"}))
    await recv_until(ws, "pong")
    await ws.close()
    # The page reloads: its new socket is welcomed with what was typed.
    again = await open_socket(live_server, user["token"], interview_id, lastSeq=1)
    welcome = await recv(again)
    assert welcome["draft"] == {"questionId": question["questionId"], "answer": "половина ответа"}
    await again.close()
