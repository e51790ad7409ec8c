"""Headers, CORS, limits, the error shape, access tokens, aliases, docs and probes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi.routing import iter_route_contexts
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from core.settings import Settings
from http_api.app import AREAS
from http_api.middleware import SecurityHeadersMiddleware
from http_api.services import AppServices
from tests.conftest import make_settings
from tests.helpers import PASSWORD, drain, link_token, mails_to, register, verified_user

ALLOWED_ORIGIN = "https://app.example.ru"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"cors_allow_origins": [ALLOWED_ORIGIN]}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def client_from(app: Starlette, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


# --- security headers -----------------------------------------------------------------------------

BASE_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/health/live", 200),
        ("GET", "/openapi.json", 200),
        ("GET", "/docs", 200),
        ("GET", "/", 200),
        ("GET", "/api/v1/auth/me", 401),
        ("GET", "/api/v1/no-such-thing", 404),
        ("POST", "/api/v1/auth/login", 400),
    ],
)
async def test_every_response_carries_the_security_headers(
    client: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    response = await client.request(method, path, content=b"{" if method == "POST" else None)
    assert response.status_code == status
    for name, value in BASE_HEADERS.items():
        assert response.headers[name] == value
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "strict-transport-security" not in response.headers  # not in production
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_a_sane_request_id_is_echoed_and_an_odd_one_replaced(
    client: httpx.AsyncClient,
) -> None:
    echoed = await client.get("/health/live", headers={"X-Request-ID": "abc-123.X"})
    assert echoed.headers["x-request-id"] == "abc-123.X"
    odd = await client.get("/health/live", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["x-request-id"])


@pytest.mark.parametrize(
    ("env", "scheme", "hsts"),
    [("production", "https", True), ("production", "http", False), ("test", "https", False)],
)
async def test_hsts_is_sent_over_https_in_production_only(
    tmp_path: Any, env: str, scheme: str, hsts: bool
) -> None:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    settings = make_settings("mongodb://unused", tmp_path, app_env=env)
    app = SecurityHeadersMiddleware(inner, settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=f"{scheme}://testserver"
    ) as http:
        response = await http.get("/")
    assert response.headers["x-content-type-options"] == "nosniff"
    value = response.headers.get("strict-transport-security")
    if hsts:
        assert value is not None and "max-age=31536000" in value
    else:
        assert value is None


# --- CORS -----------------------------------------------------------------------------------------


async def test_cors_preflight_from_an_allowed_origin(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/api/v1/auth/login",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    simple = await client.get("/health/live", headers={"Origin": ALLOWED_ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


async def test_cors_refuses_an_origin_off_the_list(client: httpx.AsyncClient) -> None:
    evil = "https://evil.example.com"
    preflight = await client.options(
        "/api/v1/auth/login",
        headers={"Origin": evil, "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    simple = await client.post(
        "/api/v1/auth/login",
        json={"email": "a@example.ru", "password": "x"},
        headers={"Origin": evil},
    )
    assert "access-control-allow-origin" not in simple.headers
    assert simple.headers.get("access-control-allow-credentials") is None


# --- body size limit ------------------------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"max_body_bytes": 1024}])
async def test_a_body_over_the_limit_is_refused_with_413(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    body = {"email": "big@example.ru", "password": PASSWORD, "gender": "male", "age": 30}
    body["marketingConsent"] = False
    padded = json.dumps(body) + " " * (1024 - len(json.dumps(body)))
    assert len(padded) == 1024
    at_limit = await client.post("/api/v1/auth/register", content=padded)
    assert at_limit.status_code == 201, at_limit.text

    over = await client.post("/api/v1/auth/register", content=padded + " ")
    assert_error(over, 413, "body_too_large")
    assert over.headers["x-content-type-options"] == "nosniff"

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b" " * 400

    streamed = await client.post("/api/v1/auth/login", content=chunks())
    assert "content-length" not in streamed.request.headers
    assert_error(streamed, 413, "body_too_large")
    await drain(services)
    assert len(mails_to(services, "big@example.ru")) == 1


# --- rate limits ----------------------------------------------------------------------------------


def assert_rate_limited(response: httpx.Response, window: int) -> None:
    error = assert_error(response, 429, "rate_limited")
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= window
    assert error["details"] == {"retryAfter": retry_after}


AUTH_CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "login": ("/api/v1/auth/login", {"email": "rl@example.ru", "password": "wrong password"}),
    "register": (
        "/api/v1/auth/register",
        {"email": "rl@example.ru", "password": PASSWORD, "gender": "male", "age": 30},
    ),
    "verify": ("/api/v1/auth/verify-email", {"token": "T" * 43}),
    "forgot": ("/api/v1/auth/forgot-password", {"email": "rl@example.ru"}),
    "reset": ("/api/v1/auth/reset-password", {"token": "T" * 43, "newPassword": PASSWORD}),
    "refresh": ("/api/v1/auth/refresh", {"refreshToken": "R" * 43}),
}


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_auth_ip": "3/60"}])
@pytest.mark.parametrize("action", sorted(AUTH_CALLS))
async def test_auth_endpoints_are_limited_per_ip(
    app: Starlette, client: httpx.AsyncClient, action: str
) -> None:
    path, body = AUTH_CALLS[action]
    for _ in range(3):
        assert (await client.post(path, json=body)).status_code != 429
    assert_rate_limited(await client.post(path, json=body), 60)
    # Another address is counted on its own.
    async with client_from(app, "10.0.0.7") as other:
        assert (await other.post(path, json=body)).status_code != 429


@pytest.mark.parametrize(
    "settings_overrides", [{"rate_limit_auth_account": "2/300", "rate_limit_auth_ip": "100/60"}]
)
@pytest.mark.parametrize("action", ["login", "register", "forgot"])
async def test_auth_endpoints_are_limited_per_account(
    app: Starlette, client: httpx.AsyncClient, action: str
) -> None:
    path, body = AUTH_CALLS[action]
    for n in range(2):
        async with client_from(app, f"10.0.1.{n}") as http:
            assert (await http.post(path, json=body)).status_code != 429
    async with client_from(app, "10.0.1.99") as http:
        assert_rate_limited(await http.post(path, json=body), 300)
        # A different account from the same address is not affected.
        other = {**body, "email": "someone.else@example.ru"}
        assert (await http.post(path, json=other)).status_code != 429


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_global_ip": "4/60"}])
async def test_every_route_is_limited_per_ip(app: Starlette, client: httpx.AsyncClient) -> None:
    for _ in range(4):
        assert (await client.get("/api/v1/interviews/technical")).status_code == 401
    limited = await client.get("/api/v1/interviews/technical")
    assert_rate_limited(limited, 60)
    assert limited.headers["x-content-type-options"] == "nosniff"
    assert (await client.get("/openapi.json")).status_code == 429
    # Probes stay reachable for the orchestrator.
    assert (await client.get("/health/live")).status_code == 200
    assert (await client.get("/health/ready")).status_code == 200
    async with client_from(app, "10.0.2.1") as other:
        assert (await other.get("/api/v1/interviews/technical")).status_code == 401


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_user": "3/60"}])
async def test_each_user_is_limited(client: httpx.AsyncClient, services: AppServices) -> None:
    first = await verified_user(client, services, "busy@example.ru")
    second = await verified_user(client, services, "calm@example.ru")
    for _ in range(3):
        assert (await client.get("/api/v1/auth/me", headers=first["headers"])).status_code == 200
    assert_rate_limited(await client.get("/api/v1/auth/me", headers=first["headers"]), 60)
    assert (await client.get("/api/v1/auth/me", headers=second["headers"])).status_code == 200


# --- one error shape, and no operator reaches the database ----------------------------------------


@pytest.fixture
def account_calls(services: AppServices, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of AccountService methods the requests reached."""
    calls: list[str] = []
    accounts = services.accounts
    for name in (
        "register",
        "verify_email",
        "login",
        "refresh",
        "logout",
        "forgot_password",
        "reset_password",
        "change_password",
        "update_profile",
    ):
        method = getattr(accounts, name)

        def spy(*args: Any, _name: str = name, _method: Any = method, **kwargs: Any) -> Any:
            calls.append(_name)
            return _method(*args, **kwargs)

        monkeypatch.setattr(accounts, name, spy)
    return calls


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"[]",
        b'"a string"',
        b"null",
        b"42",
        b"\xff\xfe{}",
        b'{"email": "a@example.ru", "password": "x"',
        b"[" * 5000 + b"]" * 5000,
        b'{"email": "a@example.ru", "password": ' + b"9" * 5000 + b"}",
    ],
    ids=lambda c: repr(c[:24]),
)
async def test_malformed_json_is_a_400_in_the_error_shape(
    client: httpx.AsyncClient, account_calls: list[str], content: bytes
) -> None:
    response = await client.post(
        "/api/v1/auth/login", content=content, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "malformed_json")
    assert account_calls == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/auth/login", {"email": {"$ne": None}, "password": PASSWORD}, "email"),
        ("/api/v1/auth/login", {"email": "a@example.ru", "password": {"$ne": None}}, "password"),
        ("/api/v1/auth/login", {"email": {"$regex": ".*"}, "password": {"$gt": ""}}, "email"),
        ("/api/v1/auth/login", {"email": ["a@example.ru"], "password": PASSWORD}, "email"),
        ("/api/v1/auth/forgot-password", {"email": {"$ne": None}}, "email"),
        ("/api/v1/auth/verify-email", {"token": {"$ne": None}}, "token"),
        ("/api/v1/auth/verify-email", {"token": {"$exists": True}}, "token"),
        ("/api/v1/auth/reset-password", {"token": {"$ne": None}, "newPassword": PASSWORD}, "token"),
        ("/api/v1/auth/refresh", {"refreshToken": {"$ne": None}}, "refreshToken"),
        ("/api/v1/auth/logout", {"refreshToken": {"$gt": ""}}, "refreshToken"),
        (
            "/api/v1/auth/register",
            {"email": {"$ne": None}, "password": PASSWORD, "gender": "male", "age": 30},
            "email",
        ),
        (
            "/api/v1/auth/register",
            {"email": "a@example.ru", "password": PASSWORD, "gender": "male", "age": {"$gt": 1}},
            "age",
        ),
        ("/api/v1/auth/verify-email", {"token": "$where-this-is-fine-1"}, None),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else str(v),
)
async def test_operators_in_fields_are_refused_before_any_query(
    client: httpx.AsyncClient,
    account_calls: list[str],
    path: str,
    body: dict[str, Any],
    field: str | None,
) -> None:
    response = await client.post(path, json=body)
    if field is None:  # "$" inside a string is just a character; the token pattern refuses it
        assert_error(response, 422, "validation_error")
    else:
        error = assert_error(response, 422, "validation_error")
        assert field in {d["loc"][0] for d in error["details"]}
    assert "token" not in response.json()
    assert account_calls == []


async def test_operator_injection_cannot_log_in(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    await verified_user(client, services, "victim@example.ru")
    for body in (
        {"email": "victim@example.ru", "password": {"$ne": None}},
        {"email": {"$ne": None}, "password": {"$ne": None}},
        {"email": "victim@example.ru", "password": {"$gt": ""}},
    ):
        response = await client.post("/api/v1/auth/login", json=body)
        assert response.status_code == 422
        assert "token" not in response.json()


@pytest.mark.parametrize(
    ("body", "loc", "kind"),
    [
        ({"email": "a@example.ru", "password": 12345678}, ["password"], "string_type"),
        ({"email": 5, "password": "12345678"}, ["email"], "string_type"),
        ({"email": "a@example.ru"}, ["password"], "missing"),
        ({"email": "a@example.ru", "password": "x", "admin": True}, ["admin"], "extra_forbidden"),
    ],
)
async def test_wrong_types_missing_and_unknown_fields_are_422(
    client: httpx.AsyncClient,
    account_calls: list[str],
    body: dict[str, Any],
    loc: list[str],
    kind: str,
) -> None:
    error = assert_error(
        await client.post("/api/v1/auth/login", json=body), 422, "validation_error"
    )
    assert {"loc": loc, "type": kind} in [
        {"loc": d["loc"], "type": d["type"]} for d in error["details"]
    ]
    assert account_calls == []


async def test_unknown_routes_and_methods_use_the_error_shape(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v1/nothing-here"), 404, "not_found")
    wrong_method = await client.delete("/api/v1/auth/login")
    assert_error(wrong_method, 405, "method_not_allowed")
    query = await client.get("/api/v1/interviews/history?page=abc")
    assert query.status_code == 401  # authentication comes first


async def test_bad_query_parameters_are_422(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "query@example.ru")
    for query in ("page=abc", "page=0", "pageSize=1000", "unknown=1"):
        response = await client.get(f"/api/v1/interviews/history?{query}", headers=user["headers"])
        assert_error(response, 422, "validation_error")


# --- access tokens --------------------------------------------------------------------------------


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims_for(settings: Settings, user_id: str, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": user_id,
        "role": "user",
        "typ": "access",
        "jti": uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
    }
    for key, value in changes.items():
        if value is None:
            claims.pop(key, None)
        else:
            claims[key] = value
    return claims


def sign(settings: Settings, claims: dict[str, Any], algorithm: str = "HS256") -> str:
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=algorithm)


def sign_hmac(settings: Settings, claims: dict[str, Any], algorithm: str) -> str:
    """HMAC JWTs by hand: PyJWT warns about short HS512 keys, and warnings are errors here."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[algorithm]
    signing_input = b64({"alg": algorithm, "typ": "JWT"}) + "." + b64(claims)
    key = settings.jwt_secret.get_secret_value().encode()
    tag = hmac.new(key, signing_input.encode(), digest).digest()
    return signing_input + "." + base64.urlsafe_b64encode(tag).rstrip(b"=").decode()


def tamper(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data.update(changes)
    return ".".join([header, b64(data), signature])


Forger = Callable[[Settings, dict[str, Any]], str]

FORGED: dict[str, Forger] = {
    "alg none": lambda s, u: (
        b64({"alg": "none", "typ": "JWT"}) + "." + b64(claims_for(s, u["id"])) + "."
    ),
    "alg None with signature": lambda s, u: ".".join(
        [b64({"alg": "None"}), b64(claims_for(s, u["id"])), "c2ln"]
    ),
    "HS512 same secret": lambda s, u: sign_hmac(s, claims_for(s, u["id"]), "HS512"),
    "HS384 same secret": lambda s, u: sign_hmac(s, claims_for(s, u["id"]), "HS384"),
    "wrong secret": lambda s, u: jwt.encode(claims_for(s, u["id"]), "x" * 48, algorithm="HS256"),
    "wrong audience": lambda s, u: sign(s, claims_for(s, u["id"], aud="someone-else")),
    "wrong issuer": lambda s, u: sign(s, claims_for(s, u["id"], iss="https://evil.example")),
    "expired": lambda s, u: sign(
        s, claims_for(s, u["id"], exp=int(datetime.now(UTC).timestamp()) - 5)
    ),
    "no exp": lambda s, u: sign(s, claims_for(s, u["id"], exp=None)),
    "no jti": lambda s, u: sign(s, claims_for(s, u["id"], jti=None)),
    "issued in the future": lambda s, u: sign(
        s, claims_for(s, u["id"], iat=int(datetime.now(UTC).timestamp()) + 3600)
    ),
    "not an access token": lambda s, u: sign(s, claims_for(s, u["id"], typ="refresh")),
    "unknown role": lambda s, u: sign(s, claims_for(s, u["id"], role="root")),
    "tampered role": lambda s, u: tamper(u["token"], role="admin"),
    "tampered subject": lambda s, u: tamper(u["token"], sub="000000000000000000000000"),
    "tampered expiry": lambda s, u: tamper(u["token"], exp=4102444800),
    "refresh token as access": lambda s, u: u["refreshToken"],
    "garbage": lambda s, u: "not.a.jwt",
}


async def test_a_correctly_signed_token_is_accepted(
    client: httpx.AsyncClient, services: AppServices, settings: Settings
) -> None:
    """The control for the forgeries below: the same construction, unaltered, works."""
    user = await verified_user(client, services, "control@example.ru")
    claims = claims_for(settings, user["user"]["id"])
    for token in (sign(settings, claims), sign_hmac(settings, claims, "HS256")):
        response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert response.json()["user"]["email"] == "control@example.ru"


@pytest.mark.parametrize("forgery", sorted(FORGED))
async def test_forged_or_wrong_tokens_are_401(
    client: httpx.AsyncClient, services: AppServices, settings: Settings, forgery: str
) -> None:
    user = await verified_user(client, services, "jwt@example.ru")
    login = {**user, "id": user["user"]["id"]}
    token = FORGED[forgery](settings, login)
    response = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "invalid_token")


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", "bearer"]
)
async def test_malformed_authorization_headers_are_401(
    client: httpx.AsyncClient, header: str
) -> None:
    response = await client.get("/api/v1/auth/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["code"] in ("invalid_token", "unauthorized")


async def test_access_tokens_carry_the_registered_claims(
    client: httpx.AsyncClient, services: AppServices, settings: Settings
) -> None:
    user = await verified_user(client, services, "claims@example.ru")
    assert jwt.get_unverified_header(user["token"])["alg"] == "HS256"
    claims = jwt.decode(
        user["token"],
        settings.jwt_secret.get_secret_value(),
        algorithms=["HS256"],
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
    assert {"exp", "iat", "sub", "jti", "iss", "aud"} <= set(claims)
    assert claims["sub"] == user["user"]["id"]
    assert claims["exp"] - claims["iat"] == pytest.approx(settings.access_token_ttl_sec, abs=1)


# --- deprecated /api aliases ----------------------------------------------------------------------


def assert_deprecated(response: httpx.Response, successor: str) -> None:
    assert response.headers["deprecation"]
    assert response.headers["link"] == f'<{successor}>; rel="successor-version"'


async def test_api_aliases_answer_like_v1_and_point_at_it(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "alias@example.ru")
    body = {"email": "alias@example.ru", "password": PASSWORD}
    v1 = await client.post("/api/v1/auth/login", json=body)
    old = await client.post("/api/auth/login", json=body)
    assert v1.status_code == old.status_code == 200
    assert set(v1.json()) == set(old.json())
    assert v1.json()["user"]["id"] == old.json()["user"]["id"]
    assert "deprecation" not in v1.headers and "link" not in v1.headers
    assert_deprecated(old, "/api/v1/auth/login")

    me_v1 = await client.get("/api/v1/auth/me", headers=user["headers"])
    me_old = await client.get("/api/auth/me", headers=user["headers"])
    assert me_v1.json() == me_old.json()
    assert_deprecated(me_old, "/api/v1/auth/me")

    registered = await register(client, services, "alias2@example.ru")
    via_alias = await client.post(
        "/api/auth/register",
        json={"email": "alias3@example.ru", "password": PASSWORD, "gender": "male", "age": 30},
    )
    assert registered.status_code == via_alias.status_code == 201
    assert set(registered.json()) == set(via_alias.json())
    await drain(services)
    token = link_token(mails_to(services, "alias3@example.ru", "verify_email")[0])
    verified = await client.post("/api/auth/verify-email", json={"token": token})
    assert verified.status_code == 200
    assert_deprecated(verified, "/api/v1/auth/verify-email")


async def test_api_alias_errors_match_v1_and_are_marked_deprecated(
    client: httpx.AsyncClient,
) -> None:
    body = {"email": "ghost@example.ru", "password": "nope nope"}
    v1 = await client.post("/api/v1/auth/login", json=body)
    old = await client.post("/api/auth/login", json=body)
    assert v1.status_code == old.status_code == 401
    assert v1.json() == old.json()
    assert_deprecated(old, "/api/v1/auth/login")

    invalid = await client.post("/api/auth/login", json={"email": 1})
    assert invalid.status_code == 422
    assert_deprecated(invalid, "/api/v1/auth/login")


async def test_alias_with_a_path_parameter_links_the_concrete_v1_url(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    user = await verified_user(client, services, "aliasiv@example.ru")
    started = await client.post(
        "/api/interviews/technical/start", json={"level": "intern"}, headers=user["headers"]
    )
    assert started.status_code == 201
    interview_id = started.json()["interviewId"]
    done = await client.post(
        f"/api/interviews/technical/{interview_id}/complete", headers=user["headers"]
    )
    assert done.status_code == 200
    assert_deprecated(done, f"/api/v1/interviews/technical/{interview_id}/complete")


# --- OpenAPI and docs -----------------------------------------------------------------------------

ACCOUNT_OPERATIONS = {
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/verify-email"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/auth/forgot-password"),
    ("post", "/api/v1/auth/reset-password"),
    ("get", "/api/v1/auth/me"),
    ("put", "/api/v1/users/profile"),
    ("put", "/api/v1/users/password"),
}


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(refs(v) for v in node)) if node else set()
    return set()


async def test_openapi_is_3_1_and_lists_every_endpoint(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["openapi"].startswith("3.1.")
    listed = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    declared = {
        (method.lower(), "/api/v1" + route.path)
        for route in iter_route_contexts([r for area in AREAS for r in area.routes])
        for method in route.methods or ()
    }
    assert listed == declared
    assert ACCOUNT_OPERATIONS <= listed

    operation_ids = [op["operationId"] for ops in spec["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))
    schemas = spec["components"]["schemas"]
    for ref in refs(spec):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas

    login = spec["paths"]["/api/v1/auth/login"]["post"]
    assert "auth" in login["tags"] and "security" not in login
    assert {"200", "400", "401", "413", "422", "429"} <= set(login["responses"])
    me = spec["paths"]["/api/v1/auth/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}]
    register_body = login_schema = None
    register_body = spec["paths"]["/api/v1/auth/register"]["post"]["requestBody"]
    login_schema = schemas["RegisterRequest"]
    assert register_body["content"]["application/json"]["schema"]["$ref"].endswith(
        "/RegisterRequest"
    )
    assert login_schema["additionalProperties"] is False
    assert login_schema["properties"]["password"]["maxLength"] == 128
    assert login_schema["properties"]["password"]["minLength"] == 8


async def test_docs_page_loads_everything_from_this_server(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="swagger-ui"' in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    assert not re.search(r"<script>(?!</script>)", page.text)  # no inline script for the CSP
    for asset in assets:
        assert asset.startswith("/"), f"{asset} is not served locally"
        response = await client.get(asset)
        assert response.status_code == 200, asset
        kind = "javascript" if asset.endswith(".js") else "css"
        assert kind in response.headers["content-type"]
        assert len(response.content) > 30
    init = await client.get("/docs/init.js")
    assert '"/openapi.json"' in init.text


# --- health probes --------------------------------------------------------------------------------


async def test_liveness_and_readiness(client: httpx.AsyncClient) -> None:
    live = await client.get("/health/live")
    assert live.status_code == 200 and live.json()["status"] == "ok"
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"mongo": True}}


async def test_readiness_reports_a_dead_database(
    client: httpx.AsyncClient, services: AppServices, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down() -> bool:
        return False

    monkeypatch.setattr(services.infra.db, "ping", down)
    ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "checks": {"mongo": False}}
    assert (await client.get("/health/live")).status_code == 200


async def test_unexpected_errors_keep_the_shape_and_headers(
    app: Any, client: httpx.AsyncClient
) -> None:
    from starlette.routing import Route

    async def broken(request: Any) -> Any:
        raise RuntimeError("boom")

    app.router.routes.insert(0, Route("/broken", broken))
    response = await client.get("/broken", headers={"X-Request-ID": "req-500"})
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "boom" not in response.text
    assert response.headers["X-Request-ID"] == "req-500"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
