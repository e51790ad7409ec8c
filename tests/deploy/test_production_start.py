"""A production start without the optional vendors: it starts, says what it does instead."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

from core.settings import ConfigurationError, Settings
from http_api.services import AppServices
from tests.conftest import make_settings, running_app
from tests.helpers import verified_user

pytestmark = pytest.mark.integration

SECRETS = {
    "jwt_secret": "a-production-jwt-secret-of-forty-characters",
    "password_pepper": "a production pepper",
    "payment_reference_key": "a production payment reference key",
}


@pytest.fixture
async def production(
    mongo_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Settings, Starlette, list[str]]]:
    prefix = f"t:{uuid.uuid4().hex[:12]}:"
    settings = make_settings(
        mongo_url,
        tmp_path,
        app_env="production",
        redis_url=redis_url,
        redis_key_prefix=prefix,
        **SECRETS,
    )
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler = Keep(level=logging.WARNING)
    billing_log = logging.getLogger("core.billing.service")
    billing_log.addHandler(handler)
    try:
        async with running_app(settings) as app:
            yield settings, app, said
    finally:
        billing_log.removeHandler(handler)
        redis: Redis = Redis.from_url(redis_url)
        async for key in redis.scan_iter(match=prefix + "*"):
            await redis.unlink(key)
        await redis.aclose()


async def test_production_starts_without_cloudpayments_and_turns_payments_off(
    production: tuple[Settings, Starlette, list[str]],
) -> None:
    settings, app, said = production
    services: AppServices = app.state.services
    assert any("payments are off" in line and "sandbox" in line for line in said), said
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40002))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        user = await verified_user(client, services, "prod@example.ru")
        bought = await client.post(
            "/api/v1/subscriptions/create", json={"plan": "month"}, headers=user["headers"]
        )
        assert bought.status_code == 503
        assert bought.json()["error"]["code"] == "payments_unavailable"
        notified = await client.post(
            "/api/v1/subscriptions/webhook/pay",
            content=b"TransactionId=1&Amount=990",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert notified.status_code == 503
        assert notified.json()["error"]["code"] == "payments_unavailable"
        assert await services.infra.db["payments"].count_documents({}) == 0, "nothing recorded"
        # Everything else works: the bank was seeded on this first start.
        started = await client.post(
            "/api/v1/interviews/technical/start", json={"level": "junior"}, headers=user["headers"]
        )
        assert started.status_code == 201, started.text
        plans = await client.get("/api/v1/subscriptions/plans")
        assert plans.status_code == 200
        assert "strict-transport-security" in plans.headers, "https in production"


async def test_an_empty_bank_is_seeded_once_and_a_full_one_left_alone(
    production: tuple[Settings, Starlette, list[str]],
) -> None:
    _, app, _ = production
    services: AppServices = app.state.services
    questions = services.engine.questions
    count = await services.infra.db["questions"].count_documents({})
    assert count > 0, "seeded on the first start"
    await services.infra.db["questions"].update_one({}, {"$set": {"isActive": False}})
    assert not await questions.seed_if_empty()
    assert await services.infra.db["questions"].count_documents({"isActive": False}) == 1


def test_production_notes_say_where_mail_goes(tmp_path: Path) -> None:
    settings = make_settings(
        "mongodb://db", tmp_path, app_env="production", redis_url="redis://r", **SECRETS
    )
    notes = settings.production_notes()
    assert any(str((tmp_path / "outbox").resolve()) in note for note in notes), notes
    settings.check_production()  # optional vendors missing: no refusal
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        make_settings("mongodb://db", tmp_path, app_env="production", **SECRETS).check_production()
    configured: dict[str, Any] = {
        "sendpulse_client_id": "id",
        "sendpulse_client_secret": "secret",
        "openai_api_key": "sk-x",
    }
    full = make_settings(
        "mongodb://db",
        tmp_path,
        app_env="production",
        redis_url="redis://r",
        **SECRETS,
        **configured,
    )
    assert full.production_notes() == []
    assert make_settings("mongodb://db", tmp_path, backup_dir="").backup_path == (
        tmp_path / "backups"
    ), "an empty BACKUP_DIR means the default"
