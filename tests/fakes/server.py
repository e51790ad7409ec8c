"""Run a fake vendor's ASGI app under uvicorn in a background thread, on a free loopback port."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp


class ThreadedServer:
    """`start()` returns the base URL once the server accepts connections; `stop()` ends it."""

    def __init__(self, app: ASGIApp, name: str, config: uvicorn.Config | None = None) -> None:
        self.name = name
        self._config = config or uvicorn.Config(
            app, lifespan="off", ws="none", http="h11", log_level="warning", access_log=False
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    def start(self) -> str:
        # Binding here, not in uvicorn, gives a free port known before the thread starts.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        server = uvicorn.Server(self._config)
        self._server = server
        sockets = [self._socket]
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=sockets)), name=self.name, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)
        return url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
