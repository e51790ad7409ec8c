"""Random frames thrown at the socket: each gets a documented answer and nothing breaks."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from http_api.services import AppServices
from protocol.v1.messages import server_adapter
from tests.helpers import recv, verified_user

KNOWN_CODES = {
    "bad_frame",
    "unknown_type",
    "question_mismatch",
    "not_your_turn",
    "already_answered",
    "interview_closed",
    "rate_limited",
    "answer_too_long",
    "already_hello",
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
frame_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["answer", "draft", "complete", "ping", "hello", "nope", ""])},
    optional={
        "questionId": st.text(max_size=30) | json_values,
        "answer": st.text(max_size=200) | json_values,
        "clientMsgId": st.text(max_size=70) | json_values,
        "nonce": st.text(max_size=70),
        "extra": json_values,
    },
)
raw_frames = st.one_of(
    frame_like.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limit_socket_messages": "100000/1"}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=st.lists(raw_frames, min_size=1, max_size=8))
async def test_random_frames_get_documented_answers(
    client: httpx.AsyncClient, services: AppServices, live_server: str, frames: list[str]
) -> None:
    if not hasattr(services, "_fuzz_user"):
        services._fuzz_user = await verified_user(client, services, "fuzz@example.ru")  # type: ignore[attr-defined]
    user = services._fuzz_user  # type: ignore[attr-defined]
    # A new interview for every example: one example's `complete` must not leave the next
    # ones an interview that is already over.
    started = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "intern"}, headers=user["headers"]
    )
    assert started.status_code == 201, started.text
    interview_id = started.json()["interviewId"]
    async with connect(f"ws://{live_server}/ws/v1/interview") as ws:
        await ws.send(
            json.dumps({"type": "hello", "token": user["token"], "interviewId": interview_id})
        )
        assert (await recv(ws))["type"] == "welcome"
        for raw in frames:
            await ws.send(raw)
        await ws.send(json.dumps({"type": "ping", "nonce": "end"}))
        try:
            while True:
                frame = await recv(ws)
                server_adapter.validate_python(frame)
                if frame["type"] == "error":
                    assert frame["code"] in KNOWN_CODES, frame
                if frame == {"type": "pong", "nonce": "end"}:
                    break
        except ConnectionClosed:
            pytest.fail(f"the socket closed on {frames!r}")
    health = await client.get("/health/ready")
    assert health.status_code == 200
