"""The baselines the benchmark measures beside the product, each in a process of its own:

- `echo`: a bare `websockets` asyncio server that sends every text frame back;
- `starlette`: a bare Starlette app on uvicorn, configured as the product runs it, with the
  three REST paths the benchmark calls (answered from memory: no database, no middleware)
  and a WebSocket echo.

    .venv/bin/python -m load.baselines echo --port 8901
    .venv/bin/python -m load.baselines starlette --port 8902
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import uuid
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from load.harness import COVERAGE_VARIABLE, HOST, Process, free_port, inherited_env, raise_nofile

MAX_FRAME_BYTES = 64 * 1024
PING_INTERVAL_SEC = 20.0


# --- a bare websockets server ----------------------------------------------------------------


async def run_echo(host: str, port: int) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    # The library's defaults otherwise (deflate offered, 20 s keepalive pings), as a service
    # built on it would run; the product's server negotiates the same extension.
    async with serve(echo, host, port, max_size=MAX_FRAME_BYTES, backlog=4096) as server:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 10)


# --- a bare Starlette app ----------------------------------------------------------------------

USER = {
    "id": "6b08ec9c1c355e399626aa2b",
    "email": "user@example.ru",
    "gender": "female",
    "age": 30,
    "language": "ru",
    "role": "user",
    "isEmailVerified": True,
    "marketingConsent": False,
}
HISTORY = {
    "interviews": [
        {
            "interviewId": f"6b08ec9c1c355e399626aa{i:02x}",
            "level": "junior",
            "language": "ru",
            "status": "completed",
            "startTime": "2026-11-27T02:41:12.577Z",
            "answered": 5,
            "total": 5,
            "overallScore": 72,
            "passed": True,
        }
        for i in range(5)
    ],
    "total": 5,
    "page": 1,
    "pageSize": 10,
}


def _authorized(request: Request) -> bool:
    header = request.headers.get("authorization", "")
    return header.startswith("Bearer ") and len(header) > len("Bearer ")


async def login(request: Request) -> Response:
    body = await request.json()
    if not isinstance(body, dict) or not body.get("email") or not body.get("password"):
        return JSONResponse({"code": "validation_error"}, status_code=422)
    return JSONResponse({"token": uuid.uuid4().hex, "user": USER})


async def me(request: Request) -> Response:
    if not _authorized(request):
        return JSONResponse({"code": "unauthorized"}, status_code=401)
    return JSONResponse(USER)


async def history(request: Request) -> Response:
    if not _authorized(request):
        return JSONResponse({"code": "unauthorized"}, status_code=401)
    return JSONResponse(HISTORY)


async def live(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def socket_echo(ws: WebSocket) -> None:
    await ws.accept()
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await ws.send_text(await ws.receive_text())


def starlette_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/api/v1/auth/login", login, methods=["POST"]),
            Route("/api/v1/auth/me", me, methods=["GET"]),
            Route("/api/v1/interviews/history", history, methods=["GET"]),
            Route("/health/live", live, methods=["GET"]),
            WebSocketRoute("/ws", socket_echo),
        ]
    )


def run_starlette(host: str, port: int) -> None:
    import uvicorn

    # The product's uvicorn options (core/cli.py's `run`), so only the application differs.
    uvicorn.run(
        starlette_app(),
        host=host,
        port=port,
        ws="websockets-sansio",
        ws_max_size=MAX_FRAME_BYTES,
        ws_ping_interval=PING_INTERVAL_SEC,
        ws_ping_timeout=PING_INTERVAL_SEC,
        log_config=None,
        log_level="warning",
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )


class BaselineServer(Process):
    """One of the baselines in a process of its own, ready once it accepts connections."""

    def __init__(self, kind: str, log: Path) -> None:
        self.port = free_port()
        args = [sys.executable, "-m", "load.baselines", kind, "--port", str(self.port)]
        super().__init__(
            f"the {kind} baseline", args, env=inherited_env([COVERAGE_VARIABLE]), log=log
        )

    def ready(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.5):
            return True
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the benchmark's baseline servers")
    parser.add_argument("server", choices=["echo", "starlette"])
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    raise_nofile()
    if args.server == "echo":
        asyncio.run(run_echo(args.host, args.port))
    else:
        run_starlette(args.host, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
