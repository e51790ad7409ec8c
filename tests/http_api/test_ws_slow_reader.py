"""A client that stops reading is closed with 4429; the node does not buffer for it forever."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from websockets.client import ClientProtocol
from websockets.frames import Close
from websockets.http11 import Response
from websockets.uri import parse_uri

from http_api.services import AppServices
from tests.conftest import serve
from tests.helpers import verified_user

BUFFER = 4096


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"ws_send_queue_limit": 16, "rate_limit_socket_messages": "10000000/1"}


@pytest.fixture
async def tight_server(app: Starlette) -> AsyncIterator[str]:
    async with serve(app, send_buffer=BUFFER) as address:
        yield address


class RawClient:
    """A WebSocket client over a bare socket: it reads only when the test says so."""

    def __init__(self, address: str) -> None:
        host, port = address.split(":")
        self.loop = asyncio.get_running_loop()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
        self.sock.setblocking(False)
        self.address = (host, int(port))
        self.protocol = ClientProtocol(parse_uri(f"ws://{address}/ws/v1/interview"))

    async def _flush(self) -> None:
        await self.loop.sock_sendall(self.sock, b"".join(self.protocol.data_to_send()))

    async def _read(self) -> bool:
        """Feed what arrives to the protocol; False at the end of the stream."""
        data = await self.loop.sock_recv(self.sock, 65536)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        return bool(data)

    async def open(self) -> None:
        await self.loop.sock_connect(self.sock, self.address)
        self.protocol.send_request(self.protocol.connect())
        await self._flush()
        while not any(isinstance(e, Response) for e in self.protocol.events_received()):
            assert await self._read(), "the server closed during the handshake"

    async def send(self, frame: dict[str, Any]) -> None:
        self.protocol.send_text(json.dumps(frame).encode())
        await self._flush()

    async def flood(self, frame: dict[str, Any], until: Callable[[], int]) -> None:
        """Send `frame` over and over, whole frames only, until `until()` is true."""
        pending = b""
        while not until():
            if not pending:
                self.protocol.send_text(json.dumps(frame).encode())
                pending = b"".join(self.protocol.data_to_send())
            try:
                pending = pending[self.sock.send(pending) :]
            except BlockingIOError:
                await asyncio.sleep(0.01)  # the server is not reading: let it run
            except OSError:
                return  # the server dropped the connection

    async def receive(self) -> dict[str, Any]:
        while True:
            for event in self.protocol.events_received():
                return dict(json.loads(event.data))
            assert await self._read(), "the server closed the connection"

    async def read_to_end(self) -> Close | None:
        """Read everything the server still sends; the close frame, if one came."""
        while await self._read():
            self.protocol.events_received()
        return self.protocol.close_rcvd


async def test_slow_reader_is_closed(
    client: httpx.AsyncClient, services: AppServices, tight_server: str
) -> None:
    user = await verified_user(client, services, "slow@example.ru")
    started = await client.post(
        "/api/v1/interviews/technical/start", json={"level": "intern"}, headers=user["headers"]
    )
    interview_id = started.json()["interviewId"]
    raw = RawClient(tight_server)
    await raw.open()
    await raw.send({"type": "hello", "token": user["token"], "interviewId": interview_id})
    assert (await raw.receive())["type"] == "welcome"

    # Ask for pongs and never read them: once the kernel buffers and the server's own queue are
    # full, the server gives up on this client and stops reading its frames too.
    service = services.engine.service
    async with asyncio.timeout(60):
        await raw.flood({"type": "ping", "nonce": "x" * 64}, lambda: service.socket_closes[4429])
        # The connection ends: with the 4429 close frame after whatever was in flight when it
        # could still be sent, or without one when the client's backlog blocked it too.
        close = await raw.read_to_end()
        while service.open_sockets:
            await asyncio.sleep(0.05)
    assert service.socket_closes == {4429: 1}
    assert close is None or close.code == 4429
    raw.sock.close()
    assert (await client.get("/health/live")).status_code == 200
