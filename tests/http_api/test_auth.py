"""The accounts rules of /api/v1/auth/*, as a client of the API sees them."""

from __future__ import annotations

import email.header
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import httpx
import pytest

from core.logging import JsonFormatter
from http_api.services import AppServices
from tests.helpers import (
    PASSWORD,
    drain,
    link_token,
    mail_text,
    mails_to,
    outbox,
    register,
    verified_user,
)

pytestmark = pytest.mark.both_adapters

OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


def subject(message: Message) -> str:
    return str(email.header.make_header(email.header.decode_header(message["Subject"])))


async def login(client: httpx.AsyncClient, address: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"email": address, "password": password})


async def verify_link(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/verify-email", json={"token": token})


async def registered_and_verified(
    client: httpx.AsyncClient, services: AppServices, address: str, password: str, **extra: Any
) -> None:
    response = await register(client, services, address, password=password, **extra)
    assert response.status_code == 201, response.text
    token = link_token(mails_to(services, address, "verify_email")[-1])
    assert (await verify_link(client, token)).status_code == 200


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


# --- register -------------------------------------------------------------------------------


async def test_register_answers_the_same_for_a_new_and_a_taken_email(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    first = await register(client, services, "owner@example.ru")
    again = await register(
        client, services, "Owner@Example.RU", password="another password 1", gender="male", age=40
    )

    assert first.status_code == again.status_code == 201
    a, b = first.json(), again.json()
    assert set(a) == set(b) == {"success", "message", "userId"}
    assert a["success"] is b["success"] is True
    assert a["message"] == b["message"]
    assert OBJECT_ID.match(a["userId"]) and OBJECT_ID.match(b["userId"])
    assert a["userId"] != b["userId"]

    # The owner hears about the attempt; no second verification link goes out.
    assert len(mails_to(services, "owner@example.ru", "verify_email")) == 1
    notices = mails_to(services, "owner@example.ru", "account_exists")
    assert len(notices) == 1
    assert "/forgot-password" in mail_text(notices[0])
    # The attempt changed nothing: the owner's password still works, the intruder's does not.
    token = link_token(mails_to(services, "owner@example.ru", "verify_email")[0])
    assert (await verify_link(client, token)).status_code == 200
    assert (await login(client, "owner@example.ru", PASSWORD)).status_code == 200
    assert_error(
        await login(client, "owner@example.ru", "another password 1"), 401, "invalid_credentials"
    )


@pytest.mark.parametrize("length", [8, 64, 128])
async def test_register_accepts_passwords_of_8_to_128_characters(
    client: httpx.AsyncClient, services: AppServices, length: int
) -> None:
    password = ("Pw9-" * 40)[:length]
    address = f"len{length}@example.ru"
    await registered_and_verified(client, services, address, password)
    assert (await login(client, address, password)).status_code == 200


@pytest.mark.parametrize(
    "password", ["", "short7!", "x" * 129, " " * 12, "nul\x00inside"], ids=repr
)
async def test_register_refuses_a_bad_password_without_echoing_it(
    client: httpx.AsyncClient, services: AppServices, password: str
) -> None:
    body = {"email": "weak@example.ru", "password": password, "gender": "male", "age": 30}
    response = await client.post("/api/v1/auth/register", json=body)
    error = assert_error(response, 422, "validation_error")
    assert ["password"] in [d["loc"] for d in error["details"]]
    if password.strip():
        assert password not in response.text
    await drain(services)
    assert outbox(services) == []


async def test_a_long_cyrillic_password_counts_every_byte(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    password = "пароль" * 16 + "ёжик"  # 100 characters, 200 bytes in UTF-8
    assert len(password) == 100 and len(password.encode()) > 72
    await registered_and_verified(client, services, "cyr@example.ru", password)

    assert (await login(client, "cyr@example.ru", password)).status_code == 200
    # Same first 72 bytes (36 letters), different afterwards: bcrypt alone would say "equal".
    lookalike = password[:36] + "x" * 64
    assert lookalike.encode()[:72] == password.encode()[:72]
    assert_error(await login(client, "cyr@example.ru", lookalike), 401, "invalid_credentials")
    assert_error(await login(client, "cyr@example.ru", password[:-1]), 401, "invalid_credentials")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("age", 13),
        ("age", 101),
        ("age", -1),
        ("age", "27"),
        ("age", 27.5),
        ("age", True),
        ("age", None),
        ("gender", "robot"),
        ("gender", ""),
        ("gender", 1),
        ("gender", None),
        ("language", "de"),
        ("email", "not-an-email"),
        ("email", "a@b"),
        ("email", "two@@example.ru"),
        ("marketingConsent", "yes"),
    ],
)
async def test_register_validates_every_field(
    client: httpx.AsyncClient, services: AppServices, field: str, value: Any
) -> None:
    body: dict[str, Any] = {
        "email": "fields@example.ru",
        "password": PASSWORD,
        "gender": "female",
        "age": 30,
        field: value,
    }
    error = assert_error(
        await client.post("/api/v1/auth/register", json=body), 422, "validation_error"
    )
    assert [field] in [d["loc"][:1] for d in error["details"]]
    await drain(services)
    assert outbox(services) == []


@pytest.mark.parametrize("missing", ["email", "password", "gender", "age"])
async def test_register_requires_each_field(client: httpx.AsyncClient, missing: str) -> None:
    body = {"email": "req@example.ru", "password": PASSWORD, "gender": "male", "age": 30}
    del body[missing]
    error = assert_error(
        await client.post("/api/v1/auth/register", json=body), 422, "validation_error"
    )
    assert [missing] in [d["loc"] for d in error["details"]]


@pytest.mark.parametrize("age", [14, 100, 27.0])
async def test_register_accepts_the_age_bounds_and_integral_numbers(
    client: httpx.AsyncClient, services: AppServices, age: float
) -> None:
    # 27.0 is the integer 27 in JSON (and in the published JSON Schema); 27.5 is refused above.
    response = await register(client, services, f"age{age}@example.ru", age=age)
    assert response.status_code == 201, response.text
    token = link_token(mails_to(services, f"age{age}@example.ru", "verify_email")[0])
    assert (await verify_link(client, token)).status_code == 200
    user = (await login(client, f"age{age}@example.ru", PASSWORD)).json()["user"]
    assert user["age"] == int(age) and isinstance(user["age"], int)


# --- verification and mail language ----------------------------------------------------------


async def test_verification_link_works_once_and_sends_one_welcome(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await register(client, services, "once@example.ru")
    token = link_token(mails_to(services, "once@example.ru", "verify_email")[0])
    assert len(token) >= 22  # >= 128 bits

    assert (await verify_link(client, token)).json()["success"] is True
    await drain(services)
    assert_error(await verify_link(client, token), 400, "invalid_token")
    await drain(services)

    assert len(mails_to(services, "once@example.ru", "welcome")) == 1
    user = await login(client, "once@example.ru", PASSWORD)
    assert user.json()["user"]["isEmailVerified"] is True


async def test_verification_tokens_are_stored_hashed(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await register(client, services, "hashed@example.ru")
    token = link_token(mails_to(services, "hashed@example.ru", "verify_email")[0])
    doc = await services.infra.db["users"].find_one({"email": "hashed@example.ru"})
    assert doc is not None
    assert token not in repr(doc)


async def test_an_expired_verification_link_is_refused(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await register(client, services, "late@example.ru")
    token = link_token(mails_to(services, "late@example.ru", "verify_email")[0])
    users = services.infra.db["users"]
    doc = await users.find_one({"email": "late@example.ru"})
    assert doc is not None
    # The link is valid for 24 h from registration.
    assert abs(doc["verificationExpires"] - datetime.now(UTC) - timedelta(hours=24)) < timedelta(
        minutes=1
    )
    await users.update_one(
        {"_id": doc["_id"]},
        {"$set": {"verificationExpires": datetime.now(UTC) - timedelta(seconds=1)}},
    )

    assert_error(await verify_link(client, token), 400, "invalid_token")
    await drain(services)
    assert mails_to(services, "late@example.ru", "welcome") == []
    me = (await login(client, "late@example.ru", PASSWORD)).json()["user"]
    assert me["isEmailVerified"] is False


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        ("A" * 43, 400, "invalid_token"),
        ("short", 422, "validation_error"),
        ("has space in it!!", 422, "validation_error"),
        ("x" * 257, 422, "validation_error"),
    ],
)
async def test_unknown_or_malformed_verification_tokens_are_refused(
    client: httpx.AsyncClient, token: str, status: int, code: str
) -> None:
    assert_error(await verify_link(client, token), status, code)


@pytest.mark.parametrize(
    ("language", "verify_subject", "welcome_subject"),
    [
        ("en", "Confirm your email address", "Welcome to the interview practice platform"),
        ("ru", "Подтвердите адрес электронной почты", "Добро пожаловать"),
        (None, "Подтвердите адрес электронной почты", "Добро пожаловать"),
    ],
)
async def test_mails_are_in_the_language_chosen_at_registration(
    client: httpx.AsyncClient,
    services: AppServices,
    language: str | None,
    verify_subject: str,
    welcome_subject: str,
) -> None:
    address = f"lang-{language or 'default'}@example.ru"
    extra = {"language": language} if language else {}
    await registered_and_verified(client, services, address, PASSWORD, **extra)
    await register(client, services, address, **extra)  # account_exists
    await drain(services)

    assert subject(mails_to(services, address, "verify_email")[0]) == verify_subject
    assert subject(mails_to(services, address, "welcome")[0]).startswith(welcome_subject)
    exists = subject(mails_to(services, address, "account_exists")[0])
    assert (exists == "Someone tried to register with your address") == (language == "en")


# --- login, refresh, logout --------------------------------------------------------------------


async def test_login_returns_tokens_and_the_user(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await registered_and_verified(client, services, "in@example.ru", PASSWORD)
    response = await login(client, "  IN@example.ru ", PASSWORD)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"] and body["refreshToken"] and body["tokenType"] == "Bearer"
    assert body["expiresIn"] == services.settings.access_token_ttl_sec
    user = body["user"]
    assert user["email"] == "in@example.ru" and user["role"] == "user"
    assert user["lastLoginDate"] is not None
    assert not {"passwordHash", "verificationToken", "password"} & set(user)
    # No credential travels in a cookie, so there is nothing for CSRF to ride on.
    assert "set-cookie" not in response.headers
    # bcrypt at the configured cost, over a pre-hash: the stored hash never holds the password.
    doc = await services.infra.db["users"].find_one({"email": "in@example.ru"})
    assert doc is not None
    rounds = services.settings.bcrypt_rounds
    assert doc["passwordHash"].startswith(f"$2b${rounds:02d}$")
    assert PASSWORD not in repr(doc)


async def test_login_fails_the_same_way_for_unknown_email_and_wrong_password(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await registered_and_verified(client, services, "known@example.ru", PASSWORD)
    unknown = await login(client, "nobody@example.ru", PASSWORD)
    wrong = await login(client, "known@example.ru", PASSWORD + "!")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()
    assert unknown.json()["error"]["code"] == "invalid_credentials"


async def test_refresh_rotates_the_refresh_token(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "rot@example.ru")
    response = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": user["refreshToken"]}
    )
    assert response.status_code == 200, response.text
    pair = response.json()
    assert pair["refreshToken"] != user["refreshToken"]
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {pair['token']}"})
    assert me.status_code == 200 and me.json()["user"]["email"] == "rot@example.ru"
    # The new refresh token rotates once more.
    again = await client.post("/api/v1/auth/refresh", json={"refreshToken": pair["refreshToken"]})
    assert again.status_code == 200


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "reuse@example.ru")
    old = user["refreshToken"]
    newer = (await client.post("/api/v1/auth/refresh", json={"refreshToken": old})).json()
    # A second, independent session of the same user must survive.
    other = (await login(client, "reuse@example.ru", PASSWORD)).json()

    stolen = await client.post("/api/v1/auth/refresh", json={"refreshToken": old})
    assert_error(stolen, 401, "invalid_refresh_token")
    legit = await client.post("/api/v1/auth/refresh", json={"refreshToken": newer["refreshToken"]})
    assert_error(legit, 401, "invalid_refresh_token")

    survivor = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": other["refreshToken"]}
    )
    assert survivor.status_code == 200


async def test_an_unknown_refresh_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/refresh", json={"refreshToken": "Z" * 43})
    assert_error(response, 401, "invalid_refresh_token")


async def test_an_expired_refresh_token_is_refused(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "old@example.ru")
    await services.infra.db["refresh_tokens"].update_many(
        {}, {"$set": {"expiresAt": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    response = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": user["refreshToken"]}
    )
    assert_error(response, 401, "invalid_refresh_token")


async def test_logout_revokes_the_refresh_token(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "bye@example.ru")
    out = await client.post("/api/v1/auth/logout", json={"refreshToken": user["refreshToken"]})
    assert out.status_code == 200 and out.json()["success"] is True
    response = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": user["refreshToken"]}
    )
    assert_error(response, 401, "invalid_refresh_token")


async def test_logout_of_an_unknown_token_answers_the_same(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/logout", json={"refreshToken": "Q" * 43})
    assert response.status_code == 200 and response.json()["success"] is True


# --- forgot and reset password ----------------------------------------------------------------


async def forgot(client: httpx.AsyncClient, services: AppServices, address: str) -> httpx.Response:
    response = await client.post("/api/v1/auth/forgot-password", json={"email": address})
    await drain(services)
    return response


async def test_forgot_password_answers_the_same_for_unknown_emails(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await registered_and_verified(client, services, "forgetful@example.ru", PASSWORD)
    known = await forgot(client, services, "forgetful@example.ru")
    unknown = await forgot(client, services, "stranger@example.ru")
    assert known.status_code == unknown.status_code == 200
    assert known.json() == unknown.json()
    assert len(mails_to(services, "forgetful@example.ru", "password_reset")) == 1
    assert mails_to(services, "stranger@example.ru") == []


async def test_reset_sets_the_password_once_revokes_sessions_and_mails_the_user(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "reset@example.ru")
    await forgot(client, services, "reset@example.ru")
    token = link_token(mails_to(services, "reset@example.ru", "password_reset")[-1])

    new_password = "brand new password"
    response = await client.post(
        "/api/v1/auth/reset-password", json={"token": token, "newPassword": new_password}
    )
    assert response.status_code == 200, response.text
    await drain(services)

    assert len(mails_to(services, "reset@example.ru", "password_changed")) == 1
    assert_error(await login(client, "reset@example.ru", PASSWORD), 401, "invalid_credentials")
    assert (await login(client, "reset@example.ru", new_password)).status_code == 200
    stale = await client.post("/api/v1/auth/refresh", json={"refreshToken": user["refreshToken"]})
    assert_error(stale, 401, "invalid_refresh_token")
    me = await client.get("/api/v1/auth/me", headers=user["headers"])
    assert_error(me, 401, "invalid_token")

    replay = await client.post(
        "/api/v1/auth/reset-password", json={"token": token, "newPassword": "third password!"}
    )
    assert_error(replay, 400, "invalid_token")
    assert (await login(client, "reset@example.ru", new_password)).status_code == 200


async def test_an_expired_reset_link_is_refused(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await registered_and_verified(client, services, "slow@example.ru", PASSWORD)
    await forgot(client, services, "slow@example.ru")
    token = link_token(mails_to(services, "slow@example.ru", "password_reset")[-1])
    users = services.infra.db["users"]
    doc = await users.find_one({"email": "slow@example.ru"})
    assert doc is not None
    assert token not in repr(doc)  # stored hashed
    # Valid for one hour.
    remaining = doc["passwordResetExpires"] - datetime.now(UTC)
    assert timedelta(minutes=59) < remaining <= timedelta(hours=1)
    await users.update_one(
        {"_id": doc["_id"]},
        {"$set": {"passwordResetExpires": datetime.now(UTC) - timedelta(seconds=1)}},
    )
    response = await client.post(
        "/api/v1/auth/reset-password", json={"token": token, "newPassword": "never applied!"}
    )
    assert_error(response, 400, "invalid_token")
    assert (await login(client, "slow@example.ru", PASSWORD)).status_code == 200


async def test_a_newer_reset_link_replaces_the_older_one(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await registered_and_verified(client, services, "twice@example.ru", PASSWORD)
    await forgot(client, services, "twice@example.ru")
    await forgot(client, services, "twice@example.ru")
    first, second = (
        link_token(m) for m in mails_to(services, "twice@example.ru", "password_reset")
    )
    stale = await client.post(
        "/api/v1/auth/reset-password", json={"token": first, "newPassword": "not this one"}
    )
    assert_error(stale, 400, "invalid_token")
    fresh = await client.post(
        "/api/v1/auth/reset-password", json={"token": second, "newPassword": "this one works"}
    )
    assert fresh.status_code == 200


async def test_reset_enforces_the_password_policy(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await registered_and_verified(client, services, "policy@example.ru", PASSWORD)
    await forgot(client, services, "policy@example.ru")
    token = link_token(mails_to(services, "policy@example.ru", "password_reset")[-1])
    for bad in ("short", "y" * 129):
        response = await client.post(
            "/api/v1/auth/reset-password", json={"token": token, "newPassword": bad}
        )
        assert_error(response, 422, "validation_error")
    # The token was not spent by the refused attempts.
    response = await client.post(
        "/api/v1/auth/reset-password", json={"token": token, "newPassword": "z" * 128}
    )
    assert response.status_code == 200
    assert (await login(client, "policy@example.ru", "z" * 128)).status_code == 200


# --- me -----------------------------------------------------------------------------------------


async def test_me_shows_the_current_user(client: httpx.AsyncClient, services: AppServices) -> None:
    user = await verified_user(client, services, "me@example.ru", gender="male", age=33)
    response = await client.get("/api/v1/auth/me", headers=user["headers"])
    assert response.status_code == 200
    me = response.json()["user"]
    assert me["id"] == user["user"]["id"]
    assert (me["email"], me["gender"], me["age"], me["language"]) == (
        "me@example.ru",
        "male",
        33,
        "ru",
    )
    assert me["subscription"]["isActive"] is False


async def test_me_needs_a_token(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/auth/me"), 401, "unauthorized")


# --- logs ----------------------------------------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[list[str]]:
    """Every log line of the product, formatted as production formats it, at DEBUG."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(logging.DEBUG)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_logs_never_contain_passwords_or_tokens(
    client: httpx.AsyncClient, services: AppServices, json_log: list[str]
) -> None:
    password = "секретный пароль 42"
    new_password = "another secret 1234"
    address = "quiet@example.ru"
    await registered_and_verified(client, services, address, password)
    verify_token = link_token(mails_to(services, address, "verify_email")[-1])
    await register(client, services, address, password="intruder password 9")
    bad_login = await login(client, address, "wrong password here")
    assert bad_login.status_code == 401
    good = (await login(client, address, password)).json()
    rotated = (
        await client.post("/api/v1/auth/refresh", json={"refreshToken": good["refreshToken"]})
    ).json()
    # A reused token is logged as an incident; the token itself must not be.
    await client.post("/api/v1/auth/refresh", json={"refreshToken": good["refreshToken"]})
    await forgot(client, services, address)
    reset_token = link_token(mails_to(services, address, "password_reset")[-1])
    await client.post(
        "/api/v1/auth/reset-password", json={"token": reset_token, "newPassword": new_password}
    )
    too_long = "p" * 200
    await client.post(
        "/api/v1/auth/register",
        json={"email": "x@example.ru", "password": too_long, "gender": "male", "age": 20},
    )
    await drain(services)

    text = "\n".join(json_log)
    assert '"path": "/api/v1/auth/reset-password"' in text  # the capture works
    entries = [json.loads(line) for line in json_log]
    access = [e for e in entries if e["logger"] == "http_api.access"]
    assert len(access) >= 10
    assert all(re.fullmatch(r"[0-9a-f]{32}", e["request_id"]) for e in access)
    assert "refresh token reuse" in text
    secrets = [
        password,
        new_password,
        "intruder password 9",
        "wrong password here",
        too_long,
        verify_token,
        reset_token,
        good["token"],
        good["refreshToken"],
        rotated["token"],
        rotated["refreshToken"],
    ]
    for secret in secrets:
        assert secret not in text
