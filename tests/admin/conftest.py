"""Fixtures for the staff side: an admin account and the campaign service."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from core.campaigns import CampaignService
from http_api.services import AppServices
from tests.helpers import PASSWORD, drain

ADMIN_EMAIL = "staff@example.ru"


@pytest.fixture
def campaigns(app: Starlette) -> CampaignService:
    service: CampaignService = app.state.services.campaigns
    return service


@pytest.fixture
async def admin(client: httpx.AsyncClient, services: AppServices) -> dict[str, Any]:
    """A staff account, logged in: its id and Authorization headers."""
    admin_id = await services.accounts.create_admin(ADMIN_EMAIL, PASSWORD)
    login = await client.post(
        "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    await drain(services)
    return {"id": admin_id, "headers": {"Authorization": f"Bearer {login.json()['token']}"}}
