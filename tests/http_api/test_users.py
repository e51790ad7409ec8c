"""Profile, password change, roles and owner scoping, through the API and the admin CLI."""

from __future__ import annotations

import asyncio
import email.header
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from core.settings import Settings
from http_api.deps import Admin
from http_api.routing import API_PREFIX, area_router
from http_api.schemas import SuccessResponse
from http_api.services import AppServices
from tests.helpers import PASSWORD, drain, link_token, mails_to, register, verified_user

ROOT = Path(__file__).resolve().parents[2]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def login(client: httpx.AsyncClient, address: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": address, "password": password})


async def me(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 200, response.text
    user: dict[str, Any] = response.json()["user"]
    return user


async def put_profile(
    client: httpx.AsyncClient, user: dict[str, Any], body: dict[str, Any]
) -> httpx.Response:
    return await client.put("/api/v1/users/profile", json=body, headers=user["headers"])


# --- profile ------------------------------------------------------------------------------------


async def test_profile_update_changes_the_given_fields_only(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "prof@example.ru")
    response = await put_profile(
        client, user, {"age": 35, "gender": "other", "language": "en", "marketingConsent": True}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    assert body["message"] == "Profile updated."
    shown = await me(client, user["headers"])
    assert body["user"] == shown
    assert (shown["age"], shown["gender"], shown["language"], shown["marketingConsent"]) == (
        35,
        "other",
        "en",
        True,
    )
    assert shown["email"] == "prof@example.ru" and shown["pendingEmail"] is None

    again = await put_profile(client, user, {"age": 36})
    assert again.json()["user"]["language"] == "en" and again.json()["user"]["age"] == 36


async def test_email_change_waits_for_verification_of_the_new_address(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "before@example.ru", language="en")
    response = await put_profile(client, user, {"email": "After@Example.ru"})
    assert response.status_code == 200, response.text
    await drain(services)
    shown = response.json()["user"]
    assert shown["email"] == "before@example.ru"
    assert shown["pendingEmail"] == "after@example.ru"
    assert "confirm" in response.json()["message"].lower()

    # Until verified, the old address is the login and the new one is not.
    assert (await login(client, "before@example.ru", PASSWORD)).status_code == 200
    assert (await login(client, "after@example.ru", PASSWORD)).status_code == 401

    mails = mails_to(services, "after@example.ru", "verify_email")
    assert len(mails) == 1
    subject = str(email.header.make_header(email.header.decode_header(mails[0]["Subject"])))
    assert subject == "Confirm your email address"  # the user's language
    verified = await client.post("/api/v1/auth/verify-email", json={"token": link_token(mails[0])})
    assert verified.status_code == 200, verified.text

    after = await me(client, user["headers"])
    assert after["email"] == "after@example.ru" and after["pendingEmail"] is None
    assert (await login(client, "after@example.ru", PASSWORD)).status_code == 200
    assert (await login(client, "before@example.ru", PASSWORD)).status_code == 401


async def test_email_change_to_a_taken_address_is_a_conflict(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await verified_user(client, services, "taken@example.ru")
    user = await verified_user(client, services, "wants@example.ru")
    response = await put_profile(client, user, {"email": "TAKEN@example.ru", "age": 50})
    assert response.status_code == 409
    assert error_code(response) == "email_taken"
    await drain(services)
    assert mails_to(services, "taken@example.ru", "verify_email")[1:] == []
    shown = await me(client, user["headers"])
    assert shown["pendingEmail"] is None and shown["age"] == 27  # nothing applied


async def test_verifying_a_pending_email_taken_meanwhile_is_a_conflict(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "slowpoke@example.ru")
    await put_profile(client, user, {"email": "contested@example.ru"})
    await drain(services)
    token = link_token(mails_to(services, "contested@example.ru", "verify_email")[-1])
    await verified_user(client, services, "contested@example.ru")

    response = await client.post("/api/v1/auth/verify-email", json={"token": token})
    assert response.status_code == 409 and error_code(response) == "email_taken"
    shown = await me(client, user["headers"])
    assert shown["email"] == "slowpoke@example.ru" and shown["pendingEmail"] is None


async def test_email_change_to_the_same_address_sends_nothing(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "same@example.ru")
    before = len(mails_to(services, "same@example.ru"))
    response = await put_profile(client, user, {"email": "Same@Example.ru"})
    assert response.status_code == 200
    await drain(services)
    assert response.json()["user"]["pendingEmail"] is None
    assert len(mails_to(services, "same@example.ru")) == before


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"role": "admin"},
        {"isEmailVerified": True},
        {"passwordHash": "x"},
        {"age": 5},
        {"age": "30"},
        {"gender": "robot"},
        {"language": "fr"},
        {"email": "nope"},
        {"email": {"$ne": None}},
        {"marketingConsent": "true"},
    ],
    ids=repr,
)
async def test_profile_refuses_bad_or_privileged_fields(
    client: httpx.AsyncClient, services: AppServices, body: dict[str, Any]
) -> None:
    user = await verified_user(client, services, "strict@example.ru")
    before = await me(client, user["headers"])
    response = await put_profile(client, user, body)
    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_error"
    assert await me(client, user["headers"]) == before


async def test_profile_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/v1/users/profile", json={"age": 30})
    assert response.status_code == 401 and error_code(response) == "unauthorized"


# --- password change --------------------------------------------------------------------------


async def test_password_change_needs_the_current_password(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "guard@example.ru")
    response = await client.put(
        "/api/v1/users/password",
        json={"currentPassword": "not the password", "newPassword": "hijacked password"},
        headers=user["headers"],
    )
    assert response.status_code == 403
    assert error_code(response) == "invalid_credentials"
    assert (await login(client, "guard@example.ru", PASSWORD)).status_code == 200
    assert (await login(client, "guard@example.ru", "hijacked password")).status_code == 401
    assert (await client.get("/api/v1/auth/me", headers=user["headers"])).status_code == 200


async def test_password_change_ends_other_sessions_and_returns_working_tokens(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "change@example.ru")
    other = (await login(client, "change@example.ru", PASSWORD)).json()

    response = await client.put(
        "/api/v1/users/password",
        json={"currentPassword": PASSWORD, "newPassword": "the new password"},
        headers=user["headers"],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    tokens = body["tokens"]
    await drain(services)

    # Every token issued before the change stops working, this session's and the other's.
    for old in (user, other):
        stale = await client.get("/api/v1/auth/me", headers=bearer(old["token"]))
        assert stale.status_code == 401 and error_code(stale) == "invalid_token"
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refreshToken": old["refreshToken"]}
        )
        assert refreshed.status_code == 401
        assert error_code(refreshed) == "invalid_refresh_token"

    # The new pair works, and its refresh token rotates.
    assert (await me(client, bearer(tokens["token"])))["email"] == "change@example.ru"
    rotated = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]}
    )
    assert rotated.status_code == 200
    assert (await me(client, bearer(rotated.json()["token"])))["email"] == "change@example.ru"

    assert (await login(client, "change@example.ru", PASSWORD)).status_code == 401
    assert (await login(client, "change@example.ru", "the new password")).status_code == 200
    assert len(mails_to(services, "change@example.ru", "password_changed")) == 1


@pytest.mark.parametrize("new_password", ["short", "x" * 129, "        "], ids=repr)
async def test_password_change_enforces_the_policy(
    client: httpx.AsyncClient, services: AppServices, new_password: str
) -> None:
    user = await verified_user(client, services, "pol@example.ru")
    response = await client.put(
        "/api/v1/users/password",
        json={"currentPassword": PASSWORD, "newPassword": new_password},
        headers=user["headers"],
    )
    assert response.status_code == 422 and error_code(response) == "validation_error"
    assert (await login(client, "pol@example.ru", PASSWORD)).status_code == 200


# --- roles and admins -----------------------------------------------------------------------------


@pytest.fixture
def staff_route(app: FastAPI) -> str:
    """An endpoint that depends on the admin role, mounted like the product's own."""
    router = area_router("test")

    @router.get("/test-staff", summary="staff")
    async def staff_only(admin: Admin) -> SuccessResponse:
        return SuccessResponse(message=f"hello {admin.user_id}")

    app.include_router(router, prefix=API_PREFIX)
    return "/api/v1/test-staff"


async def test_role_guard_lets_admins_in_and_keeps_users_out(
    client: httpx.AsyncClient, services: AppServices, staff_route: str
) -> None:
    admin_id = await services.accounts.create_admin("boss@example.ru", "admin password 1")
    user = await verified_user(client, services, "plain@example.ru")

    denied = await client.get(staff_route, headers=user["headers"])
    assert denied.status_code == 403 and error_code(denied) == "forbidden"
    anonymous = await client.get(staff_route)
    assert anonymous.status_code == 401

    admin = await login(client, "boss@example.ru", "admin password 1")
    assert admin.status_code == 200, admin.text
    assert admin.json()["user"]["role"] == "admin"
    assert admin.json()["user"]["id"] == admin_id
    allowed = await client.get(staff_route, headers=bearer(admin.json()["token"]))
    assert allowed.status_code == 200
    assert allowed.json()["message"] == f"hello {admin_id}"


async def run_cli(settings: Settings, *args: str, password: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "APP_ENV": "test",
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DB": settings.mongodb_db,
        "REDIS_URL": "",
        "CELERY_BROKER_URL": "",
        "DATA_DIR": str(settings.data_dir),
        "BCRYPT_ROUNDS": "4",
        "PASSWORD_PEPPER": settings.password_pepper.get_secret_value(),
        "LOG_LEVEL": "WARNING",
        "ADMIN_PASSWORD": password,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "core.cli",
        *args,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_cli_creates_an_admin_who_can_log_in(
    client: httpx.AsyncClient, services: AppServices, settings: Settings
) -> None:
    code, out, err = await run_cli(
        settings, "create-admin", "--email", "Root@Example.ru", password="root password 123"
    )
    assert code == 0, err
    assert out.startswith("admin ")

    response = await login(client, "root@example.ru", "root password 123")
    assert response.status_code == 200, response.text
    user = response.json()["user"]
    assert user["role"] == "admin" and user["isEmailVerified"] is True
    assert out.split()[1] == user["id"]


async def test_cli_promotes_an_existing_user_and_sets_the_password(
    client: httpx.AsyncClient, services: AppServices, settings: Settings
) -> None:
    user = await verified_user(client, services, "promote@example.ru")
    code, out, err = await run_cli(
        settings, "create-admin", "--email", "promote@example.ru", password="promoted pass 1"
    )
    assert code == 0, err
    response = await login(client, "promote@example.ru", "promoted pass 1")
    assert response.status_code == 200
    assert response.json()["user"]["role"] == "admin"
    assert response.json()["user"]["id"] == user["user"]["id"]
    assert (await login(client, "promote@example.ru", PASSWORD)).status_code == 401


async def test_cli_refuses_a_short_admin_password(
    client: httpx.AsyncClient, services: AppServices, settings: Settings
) -> None:
    code, out, err = await run_cli(
        settings, "create-admin", "--email", "tiny@example.ru", password="short"
    )
    assert code == 2
    assert "8 to 128" in err
    assert await services.infra.db["users"].find_one({"email": "tiny@example.ru"}) is None


async def test_registration_cannot_make_an_admin(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    body = {
        "email": "sneaky@example.ru",
        "password": PASSWORD,
        "gender": "male",
        "age": 30,
        "role": "admin",
    }
    response = await client.post("/api/v1/auth/register", json=body)
    assert response.status_code == 422
    assert (await register(client, services, "sneaky@example.ru")).status_code == 201
    assert await services.infra.db["users"].count_documents({"role": "admin"}) == 0


# --- owner scoping ------------------------------------------------------------------------------


async def finished_interview(client: httpx.AsyncClient, user: dict[str, Any]) -> str:
    started = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "intern"}, headers=user["headers"]
    )
    assert started.status_code == 201, started.text
    interview_id: str = started.json()["interviewId"]
    done = await client.post(
        f"/api/v1/interviews/technical/{interview_id}/complete", headers=user["headers"]
    )
    assert done.status_code == 200, done.text
    return interview_id


async def test_another_users_interview_answers_404(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    owner = await verified_user(client, services, "owner-iv@example.ru")
    other = await verified_user(client, services, "other-iv@example.ru")
    interview_id = await finished_interview(client, owner)

    mine = await client.get(f"/api/v1/interviews/{interview_id}/report", headers=owner["headers"])
    assert mine.status_code == 200 and mine.json()["interviewId"] == interview_id

    theirs = await client.get(f"/api/v1/interviews/{interview_id}/report", headers=other["headers"])
    unknown = await client.get(
        "/api/v1/interviews/000000000000000000000000/report", headers=other["headers"]
    )
    garbage = await client.get("/api/v1/interviews/not-an-id/report", headers=other["headers"])
    assert theirs.status_code == unknown.status_code == garbage.status_code == 404
    assert theirs.json() == unknown.json()
    assert error_code(theirs) == "interview_not_found"

    share = await client.post(f"/api/v1/interviews/{interview_id}/share", headers=other["headers"])
    assert share.status_code == 404
    history = await client.get("/api/v1/interviews/history", headers=other["headers"])
    assert history.status_code == 200 and history.json()["interviews"] == []
