"""A client that stops reading is closed with 4429; the node does not buffer for it forever."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from http_api.services import AppServices
from tests.conftest import serve
from tests.helpers import recv, verified_user


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ws_send_queue_limit": 16, "rate_limit_socket_messages": "10000000/1"}


@pytest.fixture
async def tight_server(app: Starlette) -> AsyncIterator[str]:
    async with serve(app, send_buffer=4096) as address:
        yield address


async def test_slow_reader_is_closed(
    client: httpx.AsyncClient, services: AppServices, tight_server: str
) -> None:
    user = await verified_user(client, services, "slow@example.ru")
    started = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "intern"}, headers=user["headers"]
    )
    interview_id = started.json()["interviewId"]
    host, port = tight_server.split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    ws = await connect(f"ws://{tight_server}/ws/v1/interview", sock=sock, max_queue=1)
    hello = {"type": "hello", "token": user["token"], "interviewId": interview_id}
    await ws.send(json.dumps(hello))
    assert (await recv(ws))["type"] == "welcome"
    ping = json.dumps({"type": "ping", "nonce": "x" * 64})
    async with asyncio.timeout(60):
        for _ in range(200_000):
            try:
                # Once the server gives up on this client it stops reading: our sends stall.
                await asyncio.wait_for(ws.send(ping), 0.5)
            except (TimeoutError, ConnectionClosed):
                break
        # Now read: the close frame comes after whatever was in flight.
        with pytest.raises(ConnectionClosed):
            while True:
                await ws.recv()
    assert ws.close_code == 4429
    sock.close()
    assert (await client.get("/health/live")).status_code == 200
