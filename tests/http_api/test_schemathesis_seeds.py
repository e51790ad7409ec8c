"""Schemathesis over every area of the served document, with seeds no other test uses.

No answer may be a 5xx, have a status, content type, headers or body the document does not
give for the operation, or accept data the document says is invalid. The accounts and staff
areas have their own, longer runs (test_schemathesis.py, admin/test_schema_fuzz.py); these
other seeds keep a schema from being shaped around one fixed set of inputs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from http_api.services import AppServices
from tests.helpers import verified_user

SEEDS = (7, 424242)
MAX_EXAMPLES = 5
AREAS = {
    "accounts": ("auth", "users"),
    "interviews": ("interviews",),
    "billing": ("billing", "billing webhooks"),
    "support": ("support", "admin: support", "admin: campaigns", "mail", "admin"),
    "questions": ("admin: questions",),
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Hundreds of requests from one address and account: the limits would answer instead.
    return {
        "rate_limit_auth_ip": "100000/60",
        "rate_limit_auth_account": "100000/60",
        "rate_limit_global_ip": "100000/60",
        "rate_limit_user": "100000/60",
        "support_tickets_per_day": 100000,
    }


def fuzz(
    operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str], run_seed: int
) -> tuple[int, list[str]]:
    """Send one operation's generated cases; returns how many were sent and what failed."""
    failures: list[str] = []
    sent = 0
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS
    session = requests.Session()

    @seed(run_seed)
    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        nonlocal sent
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        sent += 1
        # 413 (the body limit) is a rejection too, one the negative-data check does not list.
        case_checks = CHECKS if response.status_code == 413 else checks
        try:
            case.validate_response(
                response,
                checks=case_checks,
                headers=headers,
                transport_kwargs={"base_url": base_url, "headers": headers, "session": session},
            )
        except Exception as exc:  # noqa: BLE001 - collected, so one run reports every operation
            failures.append(f"{operation.label} [{mode.value}, seed {run_seed}]: {exc}")

    try:
        run()
    finally:
        session.close()
    return sent, failures


# The app, serving in the loop's thread, draws from the global `random` (PyMongo request ids,
# server selection) while Hypothesis draws in the worker thread; Hypothesis takes that for a
# strategy using `random` and warns. Nothing in the generated cases depends on it.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
@pytest.mark.timeout(300)  # generation runs in Python: slow on a busy machine
@pytest.mark.parametrize("run_seed", SEEDS)
@pytest.mark.parametrize("area", sorted(AREAS))
async def test_no_server_error_and_no_answer_outside_the_schema(
    client: httpx.AsyncClient,
    services: AppServices,
    live_server: str,
    area: str,
    run_seed: int,
) -> None:
    user = await verified_user(client, services, f"seed{run_seed}@example.ru")
    admin_id = await services.accounts.create_admin("seed-staff@example.ru", "staff password 1")
    login = await client.post(
        "/api/v1/auth/login",
        json={"email": "seed-staff@example.ru", "password": "staff password 1"},
    )
    assert login.json()["user"]["id"] == admin_id
    staff = {"Authorization": f"Bearer {login.json()['token']}"}

    document = (await client.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document).include(tag=list(AREAS[area]))
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert operations, area

    failures: list[str] = []
    for operation in operations:
        headers = staff if "/admin/" in operation.path else user["headers"]
        described = document["paths"][operation.path][operation.method.lower()]
        # An operation that takes nothing (no parameter, body or credentials) has no invalid
        # request to send.
        takes_input = any(key in described for key in ("parameters", "requestBody", "security"))
        modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE][: 2 if takes_input else 1]
        for mode in modes:
            sent, found = await asyncio.to_thread(
                fuzz, operation, mode, f"http://{live_server}", headers, run_seed
            )
            assert sent > 0, (operation.label, mode)
            failures += found
    assert not failures, "\n\n".join(failures)
