"""Schemathesis over the support, campaign and content-admin operations: no 5xx, as documented."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from fastapi import APIRouter
from fastapi.routing import iter_route_contexts
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from core.settings import Settings
from http_api.app import DOCUMENTED_MODELS
from http_api.docs import build_openapi
from http_api.routes import admin_campaigns, admin_questions, support
from http_api.routing import API_PREFIX
from http_api.services import AppServices
from tests.helpers import verified_user

MAX_EXAMPLES = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Hundreds of requests from one address and one account: limits would answer instead.
    return {
        "rate_limit_auth_ip": "100000/60",
        "rate_limit_global_ip": "100000/60",
        "rate_limit_user": "100000/60",
        "support_tickets_per_day": 100000,
    }


def fuzz(operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str]) -> list[str]:
    failures: list[str] = []
    checks = [*CHECKS, negative_data_rejection] if mode is GenerationMode.NEGATIVE else CHECKS
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
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
        # 413 (the body limit) is a rejection too, one the negative-data check does not list.
        case_checks = CHECKS if response.status_code == 413 else checks
        try:
            case.validate_response(response, checks=case_checks, headers=headers)
        except AssertionError as exc:
            failures.append(f"{operation.label} [{mode.value}]: {exc}")

    try:
        run()
    finally:
        session.close()
    return failures


# The documented import body (arrays of whole bank questions) is costly to generate: on a busy
# machine the run takes longer than the suite's default limit.
@pytest.mark.timeout(300)
async def test_operations_conform_to_their_schema(
    client: httpx.AsyncClient,
    services: AppServices,
    settings: Settings,
    live_server: str,
    admin: dict[str, Any],
) -> None:
    user = await verified_user(client, services, "fuzz@example.ru")
    router = APIRouter()
    for area in (
        support.router,
        support.admin_router,
        admin_campaigns.router,
        admin_campaigns.mail_router,
        admin_questions.router,
    ):
        router.include_router(area, prefix=API_PREFIX)
    document = build_openapi(router.routes, settings, "test", DOCUMENTED_MODELS)
    schema = schemathesis.openapi.from_dict(document)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    endpoints = [(m, r.path) for r in iter_route_contexts(router.routes) for m in r.methods or ()]
    assert len(operations) == len(endpoints)

    failures: list[str] = []
    for operation in operations:
        is_admin = "/admin/" in operation.path
        headers = admin["headers"] if is_admin else user["headers"]
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += await asyncio.to_thread(
                fuzz, operation, mode, f"http://{live_server}", headers
            )
    assert not failures, "\n\n".join(failures)
