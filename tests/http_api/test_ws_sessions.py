"""Sockets and the sessions behind them, over real uvicorn, with the in-process adapters and with
Redis: ended sessions close sockets, expired tokens must be renewed in-band, and the number of
sockets per user and per address is limited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from core.revocations import Revocation
from http_api.services import AppServices
from tests.helpers import PASSWORD, recv, verified_user
from tests.http_api.test_ws import open_socket, start

pytestmark = pytest.mark.both_adapters


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {
        "ws_max_sockets_per_user": 2,
        "ws_max_pending_per_ip": 3,
        "questions_per_interview": 2,
    }


async def welcomed(address: str, token: str, interview_id: str) -> ClientConnection:
    ws = await open_socket(address, token, interview_id)
    assert (await recv(ws))["type"] == "welcome"
    return ws


async def closed_with(ws: ClientConnection, timeout: float = 10.0) -> int | None:
    """Read until the server closes the socket; the close code."""
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    return ws.close_code


async def still_open(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"type": "ping", "nonce": "alive"}))
    async with asyncio.timeout(10):
        while (await recv(ws)) != {"type": "pong", "nonce": "alive"}:
            pass


@pytest.fixture
async def two_users(
    client: httpx.AsyncClient, services: AppServices
) -> AsyncIterator[tuple[dict[str, Any], dict[str, Any]]]:
    yield (
        await verified_user(client, services, "owner@example.ru"),
        await verified_user(client, services, "other@example.ru"),
    )


async def test_an_ended_session_closes_its_users_sockets(
    client: httpx.AsyncClient,
    services: AppServices,
    live_server: str,
    two_users: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    owner, other = two_users
    first = await welcomed(live_server, owner["token"], await start(client, owner))
    second = await welcomed(live_server, owner["token"], await start(client, owner))
    bystander = await welcomed(live_server, other["token"], await start(client, other))
    await services.infra.revocations.publish(Revocation(owner["user"]["id"]))
    assert await closed_with(first) == 4401
    assert await closed_with(second) == 4401
    await still_open(bystander)
    await bystander.close()


async def test_only_the_sockets_of_the_ended_session_close(
    client: httpx.AsyncClient,
    services: AppServices,
    live_server: str,
    two_users: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    owner, _ = two_users
    interview_id = await start(client, owner)
    ws = await welcomed(live_server, owner["token"], interview_id)
    claims = services.tokens.verify(owner["token"])
    await services.infra.revocations.publish(Revocation(owner["user"]["id"], "another-session"))
    await still_open(ws)
    await services.infra.revocations.publish(Revocation(owner["user"]["id"], claims.session_id))
    assert await closed_with(ws) == 4401


async def test_the_oldest_socket_goes_when_a_user_opens_too_many(
    client: httpx.AsyncClient,
    live_server: str,
    two_users: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    owner, _ = two_users
    interview_id = await start(client, owner)
    oldest = await welcomed(live_server, owner["token"], interview_id)
    middle = await welcomed(live_server, owner["token"], interview_id)
    newest = await welcomed(live_server, owner["token"], interview_id)
    assert await closed_with(oldest) == 4409
    assert oldest.close_reason == "too many open sockets for this account"
    await still_open(middle)
    await still_open(newest)
    for ws in (middle, newest):
        await ws.close()


async def test_sockets_that_have_not_said_hello_are_limited_per_address(
    client: httpx.AsyncClient,
    live_server: str,
    two_users: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    owner, _ = two_users
    url = f"ws://{live_server}/ws/v1/interview"
    silent = [await connect(url) for _ in range(3)]
    refused = await connect(url)
    assert await closed_with(refused) == 1008
    # One of them says hello: it no longer counts as pending, and a new socket is let in.
    interview_id = await start(client, owner)
    await silent[0].send(
        json.dumps({"type": "hello", "token": owner["token"], "interviewId": interview_id})
    )
    assert (await recv(silent[0]))["type"] == "welcome"
    admitted = await connect(url)
    await admitted.send(
        json.dumps({"type": "hello", "token": owner["token"], "interviewId": interview_id})
    )
    assert (await recv(admitted))["type"] == "welcome"
    for ws in [*silent, admitted]:
        await ws.close()


@pytest.mark.parametrize(
    "settings_overrides",
    [{"access_token_ttl_sec": 2, "ws_auth_grace_sec": 1, "questions_per_interview": 2}],
)
async def test_a_socket_lives_on_fresh_tokens_sent_with_auth(
    client: httpx.AsyncClient, services: AppServices, live_server: str
) -> None:
    user = await verified_user(client, services, "renews@example.ru")
    interview_id = await start(client, user)
    renewing = await welcomed(live_server, user["token"], interview_id)
    lapsing = await welcomed(live_server, user["token"], interview_id)
    await renewing.send(json.dumps({"type": "auth", "token": "not a token"}))
    frame = await recv(renewing)
    while frame["type"] != "error":  # the replayed question comes first
        frame = await recv(renewing)
    assert frame["code"] == "bad_token"
    # Renew before the first token expires, as the page does, and again after that.
    for _ in range(2):
        await asyncio.sleep(1.0)
        login = await client.post(
            "/api/v1/auth/login", json={"email": "renews@example.ru", "password": PASSWORD}
        )
        await renewing.send(json.dumps({"type": "auth", "token": login.json()["token"]}))
    assert await closed_with(lapsing) == 4401
    assert lapsing.close_reason == "the token expired: send auth with a fresh one"
    await still_open(renewing)
    await renewing.close()
