"""The served OpenAPI document, checked by what consumes it: a generated client, Spectral, rules.

The document must let tools written elsewhere work unaided: openapi-python-client generates a
client that runs the whole candidate flow, Spectral's `spectral:oas` ruleset finds nothing, and
what the document promises (limits, enums, error answers, `Allow`) is what the server does.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from http_api.services import AppServices
from tests.helpers import PASSWORD, drain, link_token, mails_to, verified_user

ROOT = Path(__file__).resolve().parents[2]
SPECTRAL = ROOT / "node_modules" / ".bin" / "spectral"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
ANSWER_MAX = 1234
MESSAGE_MAX = 321
CLIENT_PACKAGE = "platform_client"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "questions_per_interview": 3,
        "answer_max_chars": ANSWER_MAX,
        "support_message_max_chars": MESSAGE_MAX,
    }


async def served_document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


async def run(*command: str | Path, cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode()


# --- a client generated from the document -------------------------------------------------------


@pytest.fixture
def generated_client(tmp_path: Path) -> Iterator[Path]:
    """Where the generated package goes; it is unloaded again afterwards."""
    yield tmp_path
    for name in [m for m in sys.modules if m.split(".")[0] == CLIENT_PACKAGE]:
        del sys.modules[name]
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def module(name: str) -> ModuleType:
    return importlib.import_module(f"{CLIENT_PACKAGE}.{name}")


async def test_a_generated_python_client_runs_the_candidate_flow(
    app: FastAPI, client: httpx.AsyncClient, services: AppServices, generated_client: Path
) -> None:
    spec_file = generated_client / "openapi.json"
    spec_file.write_text(json.dumps(await served_document(client)))
    config = generated_client / "generator.yaml"
    # No post hooks: formatting the generated code is not what is being tested.
    config.write_text(f"post_hooks: []\npackage_name_override: {CLIENT_PACKAGE}\n")
    code, output = await run(
        GENERATOR,
        "generate",
        "--path",
        spec_file,
        "--output-path",
        generated_client / CLIENT_PACKAGE,
        "--meta",
        "none",
        "--config",
        config,
        cwd=generated_client,
    )
    assert code == 0, output
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(generated_client))

    client_module = module("client")
    models = module("models")
    register = module("api.auth.post_auth_register")
    verify = module("api.auth.post_auth_verify_email")
    login = module("api.auth.post_auth_login")
    start = module("api.interviews.post_interviews_technical_start")
    answer = module("api.interviews.post_interviews_technical_interview_id_answer")
    report = module("api.interviews.get_interviews_interview_id_report")

    # The generated clients build their own httpx clients; these reach the app in process.
    transport = {"transport": httpx.ASGITransport(app=app, client=("127.0.0.1", 40001))}
    base_url = "http://testserver"
    async with client_module.Client(base_url=base_url, httpx_args=transport) as anonymous:
        address = "generated@example.ru"
        registered = await register.asyncio(
            client=anonymous,
            body=models.RegisterRequest.from_dict(
                {"email": address, "password": PASSWORD, "gender": "other", "age": 30}
            ),
        )
        assert isinstance(registered, models.RegisterResponse), registered
        await drain(services)
        token = link_token(mails_to(services, address, "verify_email")[-1])
        verified = await verify.asyncio(
            client=anonymous, body=models.VerifyEmailRequest(token=token)
        )
        assert isinstance(verified, models.SuccessResponse), verified
        session = await login.asyncio(
            client=anonymous, body=models.LoginRequest(email=address, password=PASSWORD)
        )
        assert isinstance(session, models.LoginResponse), session
        assert session.user.is_email_verified is True

        async with client_module.AuthenticatedClient(
            base_url=base_url, token=session.token, httpx_args=transport
        ) as user:
            started = await start.asyncio(
                client=user, body=models.StartRequest.from_dict({"level": "junior"})
            )
            assert isinstance(started, models.StartResponse), started
            question = started.questions[0]
            answered = 0
            text = "A list is mutable, a tuple is not; a tuple can be a dict key."
            while question is not None:
                result = await answer.asyncio(
                    started.interview_id,
                    client=user,
                    body=models.AnswerRequest(
                        question_id=question.question_id,
                        answer=text,
                    ),
                )
                assert isinstance(result, models.AnswerResponse), result
                assert result.evaluation is not None
                answered += 1
                question = result.next_question
            assert answered == started.total == 3
            assert result.status.value == "completed"

            final = await report.asyncio(started.interview_id, client=user)
            assert isinstance(final, models.ReportResponse), final
            assert final.status.value == "completed"
            assert isinstance(final.overall_score, int)
            assert [q.user_answer for q in final.questions] == [text] * 3

        refused = await start.asyncio(
            client=anonymous, body=models.StartRequest.from_dict({"level": "junior"})
        )
        assert isinstance(refused, models.ErrorResponse)
        assert refused.error.code == "unauthorized"


# --- Spectral ----------------------------------------------------------------------------------


async def test_spectral_oas_ruleset_finds_nothing(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    if not SPECTRAL.exists():
        pytest.fail("Spectral is not installed: run `make node_modules/.installed` (npm ci)")
    spec_file = tmp_path / "openapi.json"
    spec_file.write_text(json.dumps(await served_document(client)))
    code, output = await run(
        SPECTRAL,
        "lint",
        spec_file,
        "--ruleset",
        ROOT / ".spectral.yaml",
        "--format",
        "json",
        "--fail-severity",
        "hint",
        "--quiet",
        cwd=tmp_path,
    )
    findings = json.loads(output[output.index("[") :])
    assert findings == [], json.dumps(findings, indent=1)
    assert code == 0, output


# --- what consumers of the document rely on ----------------------------------------------------


async def test_the_document_suits_client_generators(client: httpx.AsyncClient) -> None:
    document = await served_document(client)
    schemas = document["components"]["schemas"]
    titles = [schema.get("title", name) for name, schema in schemas.items()]
    assert len(titles) == len(set(titles)), sorted(t for t in titles if titles.count(t) > 1)
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", name) for name in schemas), sorted(schemas)
    defined_tags = {tag["name"] for tag in document["tags"]}
    for method, path, operation in operations(document):
        label = f"{method} {path}"
        assert operation.get("summary") and operation.get("description"), label
        assert operation["tags"] and set(operation["tags"]) <= defined_tags, label
        for status, response in operation["responses"].items():
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            assert schema, f"{label} {status} has no schema"
            if status.startswith(("4", "5")):
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, label
        retry_after = operation["responses"]["429"]["headers"]["Retry-After"]
        assert retry_after["schema"]["type"] == "integer", label


async def test_bodies_read_by_the_routes_themselves_are_documented(
    client: httpx.AsyncClient,
) -> None:
    paths = (await served_document(client))["paths"]
    for path in ("/api/v1/subscriptions/webhook", "/api/v1/subscriptions/webhook/{kind}"):
        operation = paths[path]["post"]
        content = operation["requestBody"]["content"]
        assert set(content) == {"application/x-www-form-urlencoded", "application/json"}
        refs = {s["$ref"].rsplit("/", 1)[1] for s in content["application/json"]["schema"]["anyOf"]}
        assert "PaymentNotification" in refs and "RefundNotification" in refs
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        assert "Content-HMAC" in headers
    events = paths["/api/v1/mail/events"]["post"]["requestBody"]["content"]["application/json"]
    assert events["schema"]["anyOf"][0]["items"] == {"$ref": "#/components/schemas/MailEvent"}
    bank = paths["/api/v1/admin/questions/import"]["post"]["requestBody"]["content"]
    assert bank["application/json"]["schema"]["anyOf"][0]["items"] == {
        "$ref": "#/components/schemas/BankQuestion"
    }


async def test_enum_like_fields_are_enums(client: httpx.AsyncClient) -> None:
    schemas = (await served_document(client))["components"]["schemas"]

    def values(schema: str, field: str) -> list[Any]:
        node = schemas[schema]["properties"][field]
        if "anyOf" in node:
            node = next(n for n in node["anyOf"] if n.get("type") != "null")
        found: list[Any] = node["enum"]
        return found

    assert values("UserView", "role") == ["user", "admin"]
    assert values("AnswerResponse", "status") == ["in-progress", "completed", "abandoned"]
    assert values("PaymentItem", "kind") == ["payment", "failure", "refund"]
    assert values("CampaignView", "status") == ["scheduled", "sending", "sent", "cancelled"]
    assert values("AdminQuestionView", "level") == ["intern", "junior", "middle"]
    assert values("BillingWebhookAnswer", "code") == [0, 10, 11, 12, 13, 20]


# --- documented limits are the ones the server applies -------------------------------------------


async def test_documented_limits_come_from_the_settings(
    client: httpx.AsyncClient, services: AppServices
) -> None:
    schemas = (await served_document(client))["components"]["schemas"]
    assert schemas["AnswerRequest"]["properties"]["answer"]["maxLength"] == ANSWER_MAX
    for name in ("ContactRequest", "ReplyRequest"):
        assert schemas[name]["properties"]["message"]["maxLength"] == MESSAGE_MAX
    assert "x-max-length-setting" not in json.dumps(schemas)

    user = await verified_user(client, services, "limits@example.ru")
    started = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "intern"}, headers=user["headers"]
    )
    interview_id = started.json()["interviewId"]
    question_id = started.json()["questions"][0]["questionId"]
    too_long = await client.post(
        f"/api/v1/interviews/technical/{interview_id}/answer",
        json={"questionId": question_id, "answer": "x" * (ANSWER_MAX + 1)},
        headers=user["headers"],
    )
    assert too_long.status_code == 422
    assert too_long.json()["error"]["code"] == "answer_too_long"
    message = await client.post(
        "/api/v1/support/contact",
        json={"subject": "Hi", "message": "y" * (MESSAGE_MAX + 1)},
        headers=user["headers"],
    )
    assert message.status_code == 422
    assert message.json()["error"]["code"] == "message_too_long"
    at_limit = await client.post(
        "/api/v1/support/contact",
        json={"subject": "Hi", "message": "y" * MESSAGE_MAX},
        headers=user["headers"],
    )
    assert at_limit.status_code == 201, at_limit.text


async def test_question_update_has_the_create_rules(client: httpx.AsyncClient) -> None:
    schemas = (await served_document(client))["components"]["schemas"]
    create = schemas["QuestionCreate"]["properties"]
    patch = schemas["QuestionPatch"]
    assert patch["additionalProperties"] is False and patch["minProperties"] == 1
    assert "required" not in patch
    for name, rule in patch["properties"].items():
        expected = {k: v for k, v in create[name].items() if k != "default"}
        assert rule == expected, name
    assert patch["properties"]["tags"]["maxItems"] == 6
    assert patch["properties"]["slug"]["pattern"] == create["slug"]["pattern"]


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("anna@example.ru", True),
        ("  padded@example.ru ", True),
        ("ivan@пример.рф", True),
        ("a@b.c", False),
        ("a@localhost", False),
        ("a..b@example.ru", False),
        ("a@example.ru*", False),
        ("a b@example.ru", False),
    ],
)
async def test_the_email_pattern_is_the_servers_rule(
    client: httpx.AsyncClient, address: str, valid: bool
) -> None:
    schemas = (await served_document(client))["components"]["schemas"]
    pattern = schemas["RegisterRequest"]["properties"]["email"]["pattern"]
    assert bool(re.search(pattern, address)) is valid
    response = await client.post(
        "/api/v1/auth/register",
        json={"email": address, "password": PASSWORD, "gender": "male", "age": 30},
    )
    assert response.status_code == (201 if valid else 422), response.text


# --- 405 lists what the path does serve --------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/api/v1/interviews/abc/share", "DELETE, POST"),
        ("POST", "/api/v1/admin/questions/abc", "GET, PUT"),
        ("DELETE", "/api/v1/admin/questions", "GET, POST"),
        ("GET", "/api/v1/auth/login", "POST"),
        ("PUT", "/api/interviews/abc/share", "DELETE, POST"),
        ("POST", "/health/live", "GET, HEAD"),
    ],
)
async def test_405_lists_every_method_the_path_serves(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["allow"] == allow
