"""Time limits and abandonment are enforced by the server, with or without a client.

The interview service's clock is moved forward instead of waiting for time limits to pass.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from bson import ObjectId
from websockets.asyncio.client import connect

from http_api.services import AppServices
from tests.helpers import recv, recv_until, verified_user

pytestmark = pytest.mark.both_adapters

LIMIT = 300  # TIME_LIMIT_JUNIOR_SEC's default


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"questions_per_interview": 2}


@pytest.fixture
def clock(services: AppServices) -> Clock:
    moved = Clock()
    services.engine.service.clock = moved
    return moved


async def wait_for(predicate: Any, timeout: float = 8.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            value = await predicate()
            if value:
                return value
            await asyncio.sleep(0.1)


async def test_deadline_submits_empty_answer_without_a_client(
    client: httpx.AsyncClient, services: AppServices, clock: Clock
) -> None:
    user = await verified_user(client, services, "late@example.ru")
    started = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "junior"}, headers=user["headers"]
    )
    interview_id = started.json()["interviewId"]
    interviews = services.infra.db["interviews"]

    async def at_question(index: int) -> Any:
        doc = await interviews.find_one({"_id": ObjectId(interview_id)})
        return doc if doc and doc.get("currentIndex") == index else None

    async def moved_on() -> Any:
        doc = await interviews.find_one({"_id": ObjectId(interview_id)})
        return doc if doc and doc["status"] == "completed" else None

    clock.advance(LIMIT - 1)
    await asyncio.sleep(0.5)  # two ticks of the deadline timer: nothing is due yet
    assert await at_question(0)
    clock.advance(2)
    await wait_for(lambda: at_question(1))
    clock.advance(LIMIT + 1)
    doc = await wait_for(moved_on)
    for q in doc["questions"]:
        assert q["auto"] is True and q["userAnswer"] == ""
        assert q["aiEvaluation"]["score"] == 0
    assert doc["overallScore"] == 0 and doc["passed"] is False


async def test_deadline_submits_the_draft(
    client: httpx.AsyncClient, services: AppServices, live_server: str, clock: Clock
) -> None:
    user = await verified_user(client, services, "draft@example.ru")
    started = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "junior"}, headers=user["headers"]
    )
    interview_id = started.json()["interviewId"]
    async with connect(f"ws://{live_server}/ws/v1/interview") as ws:
        await ws.send(
            json.dumps({"type": "hello", "token": user["token"], "interviewId": interview_id})
        )
        await recv(ws)
        question = await recv(ws)
        await ws.send(
            json.dumps(
                {
                    "type": "draft",
                    "questionId": question["questionId"],
                    "answer": "черновик про индексы",
                }
            )
        )
        await ws.send(json.dumps({"type": "ping", "nonce": "draft-stored"}))
        await recv_until(ws, "pong")  # the draft was applied before this answer
        clock.advance(LIMIT + 1)
        accepted, _ = await recv_until(ws, "answer.accepted")
        assert accepted["auto"] is True and accepted["questionId"] == question["questionId"]
    doc = await services.infra.db["interviews"].find_one({"_id": ObjectId(interview_id)})
    assert doc is not None and doc["questions"][0]["userAnswer"] == "черновик про индексы"


async def test_inactive_interviews_are_abandoned(
    client: httpx.AsyncClient, services: AppServices, live_server: str, clock: Clock
) -> None:
    user = await verified_user(client, services, "gone@example.ru")
    started = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "intern"}, headers=user["headers"]
    )
    interview_id = started.json()["interviewId"]
    async with connect(f"ws://{live_server}/ws/v1/interview") as ws:
        await ws.send(
            json.dumps({"type": "hello", "token": user["token"], "interviewId": interview_id})
        )
        await recv(ws)
        assert await services.engine.service.abandon_stale() == 0, "not idle yet"
        clock.advance(services.settings.abandon_after_sec + 1)
        assert await services.engine.service.abandon_stale() == 1
        abandoned, _ = await recv_until(ws, "interview.abandoned")
        assert abandoned["reason"] == "inactive"
    history = await client.get("/api/v1/interviews/history", headers=user["headers"])
    assert history.json()["interviews"][0]["status"] == "abandoned"
