"""Feedback deltas that come close together go out as one event; the text stays exact."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import pytest

from engine.evaluator.base import Delta, Done, Evaluation, EvaluationRequest, StreamItem
from http_api.services import AppServices
from tests.helpers import verified_user

PIECES = [f"word{i} " for i in range(20)]


class Burst:
    """Writes its feedback in 20 pieces at once, then pauses, then writes one more."""

    name = "burst"

    async def evaluate(self, request: EvaluationRequest) -> AsyncGenerator[StreamItem]:
        for piece in PIECES:
            yield Delta(piece)
        await asyncio.sleep(0.3)  # longer than the window: the next piece goes out at once
        yield Delta("end.")
        yield Done(Evaluation(5, 5, 5, 5, "".join(PIECES) + "end.", "local"))

    async def close(self) -> None:
        return None


async def deltas_of_first_answer(client: httpx.AsyncClient, services: AppServices) -> list[str]:
    services.engine.service.evaluator = Burst()
    user = await verified_user(client, services)
    started = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "intern"}, headers=user["headers"]
    )
    body = started.json()
    question = body["questions"][0]["questionId"]
    answered = await client.post(
        f"/api/v1/interviews/technical/{body['interviewId']}/answer",
        json={"questionId": question, "answer": "an answer", "clientMsgId": "c1"},
        headers=user["headers"],
    )
    assert answered.status_code == 200, answered.text
    replay = await services.engine.service.bus.replay(body["interviewId"], 0)
    frames = [json.loads(e.frame) for e in replay.events]
    done = next(f for f in frames if f["type"] == "feedback.done")
    deltas = [f["delta"] for f in frames if f["type"] == "feedback.delta"]
    assert "".join(deltas) == done["feedback"], "the deltas still add up to the feedback"
    return deltas


@pytest.mark.parametrize("settings_overrides", [{"feedback_coalesce_ms": 50}])
async def test_a_burst_of_deltas_becomes_few_events(
    client: httpx.AsyncClient, services: AppServices, settings_overrides: dict[str, Any]
) -> None:
    deltas = await deltas_of_first_answer(client, services)
    assert deltas[0] == PIECES[0], "the first piece goes out at once, alone"
    assert deltas[-1] == "end.", "a piece after a quiet window goes out at once, alone"
    assert len(deltas) < len(PIECES)


@pytest.mark.parametrize("settings_overrides", [{"feedback_coalesce_ms": 0}])
async def test_without_a_window_every_delta_is_an_event(
    client: httpx.AsyncClient, services: AppServices, settings_overrides: dict[str, Any]
) -> None:
    assert await deltas_of_first_answer(client, services) == [*PIECES, "end."]
