"""Schemathesis against /openapi.json for the accounts endpoints: no 5xx, answers as documented.

The app runs under a real uvicorn in the test's event loop (`live_server`); Schemathesis and
Hypothesis are synchronous, so the run happens in a worker thread while the loop serves.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from http_api.services import AppServices
from tests.helpers import verified_user

TAGS = ("auth", "users")
MAX_EXAMPLES = 20
ACCOUNT_OPERATIONS = {
    "POST /api/v1/auth/register",
    "POST /api/v1/auth/verify-email",
    "POST /api/v1/auth/login",
    "POST /api/v1/auth/refresh",
    "POST /api/v1/auth/logout",
    "POST /api/v1/auth/forgot-password",
    "POST /api/v1/auth/reset-password",
    "GET /api/v1/auth/me",
    "PUT /api/v1/users/profile",
    "PUT /api/v1/users/password",
}

CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Fuzzing sends hundreds of requests from one address: rate limits would answer 429 instead
    # of the endpoint, which would test nothing.
    return {
        "rate_limit_auth_ip": "100000/60",
        "rate_limit_auth_account": "100000/60",
        "rate_limit_global_ip": "100000/60",
        "rate_limit_user": "100000/60",
    }


def accounts_schema(spec: dict[str, Any]) -> Any:
    schema = schemathesis.openapi.from_dict(spec)
    return schema.include(tag=list(TAGS))


@dataclass
class Outcome:
    statuses: list[int] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def fuzz_operation(
    operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str]
) -> Outcome:
    """Send one operation's generated cases and check each answer; collects, never raises."""
    outcome = Outcome()
    checks = (
        [*CONFORMANCE, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CONFORMANCE
    )
    transport = {"base_url": base_url, "headers": headers}
    session = requests.Session()

    @seed(20240601)
    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        try:
            response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
            outcome.statuses.append(response.status_code)
            if response.status_code >= 400:
                outcome.codes.append(response.json()["error"]["code"])
            case.validate_response(
                response,
                # 413 (the body limit) is a rejection the negative-data check does not list.
                checks=CONFORMANCE if response.status_code == 413 else checks,
                headers=headers,
                transport_kwargs={**transport, "session": session},
            )
        except Exception as exc:  # noqa: BLE001 - collected, so one run reports every operation
            outcome.failures.append(f"{operation.label} [{mode.value}]: {exc}")

    try:
        run()
    finally:
        session.close()
    return outcome


# The app, serving in the loop's thread, draws from the global `random` (PyMongo request ids,
# server selection) while Hypothesis draws in the worker thread; Hypothesis takes that for a
# strategy using `random` and warns. Nothing in the generated cases depends on it.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
async def test_accounts_endpoints_conform_to_their_schema(
    client: httpx.AsyncClient, services: AppServices, live_server: str
) -> None:
    user = await verified_user(client, services, "fuzz@example.ru")
    headers = {"Authorization": f"Bearer {user['token']}"}
    spec = (await client.get("/openapi.json")).json()
    schema = accounts_schema(spec)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} == ACCOUNT_OPERATIONS

    base_url = f"http://{live_server}"
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            outcome = await asyncio.to_thread(fuzz_operation, operation, mode, base_url, headers)
            failures += outcome.failures
            assert len(outcome.statuses) >= MAX_EXAMPLES // 2, operation.label
            assert 429 not in outcome.statuses, "rate limits got in the way of the fuzzing"
            if mode is GenerationMode.POSITIVE:
                # Schema-valid cases got past validation and reached the accounts logic.
                reached = len(outcome.statuses) - outcome.codes.count("validation_error")
                assert reached > 0, (operation.label, outcome.codes)
    assert not failures, "\n\n".join(failures)

    # Whatever the fuzzer sent, the account it used is intact and its session still works.
    me = await client.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "fuzz@example.ru"
