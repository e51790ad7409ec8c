"""Interviews over REST: start, answer, complete, history, report and share links."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from bson import ObjectId

from http_api.services import AppServices
from tests.helpers import PASSWORD, register, verified_user

pytestmark = pytest.mark.both_adapters


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"questions_per_interview": 3}


async def start(
    client: httpx.AsyncClient, user: dict[str, Any], level: str = "junior"
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/interviews/technical/start", json={"level": level}, headers=user["headers"]
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def answer(
    client: httpx.AsyncClient, user: dict[str, Any], interview_id: str, question_id: str, text: str
) -> httpx.Response:
    return await client.post(
        f"/api/v1/interviews/technical/{interview_id}/answer",
        json={"questionId": question_id, "answer": text},
        headers=user["headers"],
    )


async def test_levels(client: httpx.AsyncClient, services: AppServices) -> None:
    user = await verified_user(client, services, "levels@example.ru")
    response = await client.get("/api/v1/interviews/technical", headers=user["headers"])
    assert response.json()["levels"] == ["intern", "junior", "middle"]
    assert (await client.get("/api/v1/interviews/technical")).status_code == 401


async def test_starting_needs_a_verified_email(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await register(client, services, "unverified@example.ru")
    login = await client.post(
        "/api/v1/auth/login", json={"email": "unverified@example.ru", "password": PASSWORD}
    )
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    response = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "intern"}, headers=headers
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "email_not_verified"
    assert await services.infra.db["interviews"].count_documents({}) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"level": "senior"},
        {},
        {"level": "junior", "extra": 1},
        {"level": ["junior"]},
        {"level": "junior", "language": "de"},
    ],
)
async def test_start_validates_its_body(
    client: httpx.AsyncClient, services: AppServices, body: dict[str, Any]
) -> None:
    user = await verified_user(client, services, "startbad@example.ru")
    response = await client.post(
        "/api/v1/interviews/technical/start", json=body, headers=user["headers"]
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_full_rest_flow_with_bad_inputs(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "rest@example.ru")
    other = await verified_user(client, services, "rest-other@example.ru")
    started = await start(client, user)
    interview_id = started["interviewId"]
    question = started["questions"][0]
    assert started["total"] == 3 and question["index"] == 0 and question["deadline"]

    wrong = await answer(client, user, interview_id, str(ObjectId()), "ответ")
    assert wrong.status_code == 409 and wrong.json()["error"]["code"] == "question_mismatch"
    foreign = await answer(client, other, interview_id, question["questionId"], "ответ")
    assert foreign.status_code == 404
    bogus = await answer(client, user, "not-an-id", question["questionId"], "ответ")
    assert bogus.status_code == 404
    long = await answer(client, user, interview_id, question["questionId"], "x" * 8001)
    assert long.status_code == 422 and long.json()["error"]["code"] == "answer_too_long"
    doc = await services.infra.db["interviews"].find_one({"_id": ObjectId(interview_id)})
    assert doc is not None and doc["questions"][0]["userAnswer"] is None

    ok = await answer(client, user, interview_id, question["questionId"], "индекс и транзакция")
    assert ok.status_code == 200
    body = ok.json()
    assert body["success"] is True and 0 <= body["evaluation"]["score"] <= 10
    assert set(body["evaluation"]["scores"]) == {"correctness", "completeness", "clarity"}
    assert body["nextQuestion"]["index"] == 1
    again = await answer(client, user, interview_id, question["questionId"], "ещё раз")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_answered"

    done = await client.post(
        f"/api/v1/interviews/technical/{interview_id}/complete", headers=user["headers"]
    )
    assert done.status_code == 200
    result = done.json()
    assert 0 <= result["score"] <= 100 and isinstance(result["passed"], bool)
    assert result["feedback"]
    repeat = await client.post(
        f"/api/v1/interviews/technical/{interview_id}/complete", headers=user["headers"]
    )
    assert repeat.json() == result
    late = await answer(client, user, interview_id, body["nextQuestion"]["questionId"], "поздно")
    assert late.status_code == 409 and late.json()["error"]["code"] == "interview_closed"


async def test_history_report_and_share_link(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "report@example.ru")
    ids = []
    for level in ("intern", "junior"):
        started = await start(client, user, level)
        ids.append(started["interviewId"])
        await client.post(
            f"/api/v1/interviews/technical/{started['interviewId']}/complete",
            headers=user["headers"],
        )
    history = await client.get("/api/v1/interviews/history?pageSize=1", headers=user["headers"])
    assert history.status_code == 200
    page = history.json()
    assert page["total"] == 2 and len(page["interviews"]) == 1
    assert page["interviews"][0]["interviewId"] == ids[1], "newest first"
    assert page["interviews"][0]["overallScore"] == 0
    bad = await client.get("/api/v1/interviews/history?pageSize=1000", headers=user["headers"])
    assert bad.status_code == 422

    report = await client.get(f"/api/v1/interviews/{ids[0]}/report", headers=user["headers"])
    assert report.status_code == 200
    data = report.json()
    assert data["status"] == "completed" and data["percentile"] is not None
    assert len(data["questions"]) == 3

    share = await client.post(f"/api/v1/interviews/{ids[0]}/share", headers=user["headers"])
    assert share.status_code == 201
    token = share.json()["token"]
    public = await client.get(f"/api/v1/shared/{token}")
    assert public.status_code == 200
    assert "report@example.ru" not in public.text and user["user"]["id"] not in public.text
    revoke = await client.delete(f"/api/v1/interviews/{ids[0]}/share", headers=user["headers"])
    assert revoke.status_code == 200
    assert (await client.get(f"/api/v1/shared/{token}")).status_code == 404


async def test_unseen_questions_come_first(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "fresh@example.ru")
    seen: set[str] = set()
    for _ in range(3):
        started = await start(client, user, "intern")
        doc = await services.infra.db["interviews"].find_one(
            {"_id": ObjectId(started["interviewId"])}
        )
        assert doc is not None
        asked = {str(q["questionId"]) for q in doc["questions"]}
        topics = {q["tags"][0] for q in doc["questions"]}
        assert not asked & seen, "no repeats while unseen questions remain"
        assert len(topics) == 3, "spread across topics"
        seen |= asked


async def test_deprecated_alias_answers_the_same(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "alias@example.ru")
    response = await client.get("/api/interviews/technical", headers=user["headers"])
    assert response.status_code == 200
    assert response.headers["Deprecation"] == "true"
    assert "/api/v1/interviews/technical" in response.headers["Link"]
