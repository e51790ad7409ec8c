"""The whole accounts and interview flow through the ASGI app, as a new user would go."""

from __future__ import annotations

import httpx

from http_api.services import AppServices
from tests.helpers import verified_user


async def test_register_verify_login_start_answer_complete(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "smoke@example.ru")
    me = await client.get("/api/v1/auth/me", headers=user["headers"])
    assert me.status_code == 200
    assert me.json()["user"]["isEmailVerified"] is True

    started = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "intern"}, headers=user["headers"]
    )
    assert started.status_code == 201, started.text
    interview_id = started.json()["interviewId"]
    question = started.json()["questions"][0]
    answered = await client.post(
        f"/api/v1/interviews/technical/{interview_id}/answer",
        json={"questionId": question["questionId"], "answer": "не знаю"},
        headers=user["headers"],
    )
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["evaluation"]["score"] == 0
    assert body["nextQuestion"]["index"] == 1

    done = await client.post(
        f"/api/v1/interviews/technical/{interview_id}/complete", headers=user["headers"]
    )
    assert done.status_code == 200, done.text
    assert done.json()["score"] == 0 and done.json()["passed"] is False
