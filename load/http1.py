"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for the REST load.

httpx spends milliseconds of CPU per request; on a two-core machine that is CPU taken from the
server under test. This client writes a prepared request and reads the status, the headers and a
`Content-Length` (or chunked) body: enough for the product's JSON API, a fraction of the cost.
One `Http1Connection` is one user's connection, reopened when it went idle or was closed.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any


class HttpError(Exception):
    """The connection broke or the response could not be read."""


class Http1Connection:
    def __init__(self, host: str, port: int, idle_timeout: float = 4.0) -> None:
        self.host = host
        self.port = port
        # Below uvicorn's 5 s keep-alive timeout: the client drops an idle connection first, so
        # a request never races the server closing it.
        self.idle_timeout = idle_timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._last_used = 0.0

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: dict[str, Any] | None = None,
        timeout: float = 60.0,
    ) -> tuple[int, bytes]:
        """Send one request; returns the status and the body."""
        payload = json.dumps(body).encode() if body is not None else b""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        if token:
            lines.append(f"Authorization: Bearer {token}")
        if body is not None:
            lines.append("Content-Type: application/json")
        if payload or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(payload)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        try:
            async with asyncio.timeout(timeout):
                if self._writer is None or time.monotonic() - self._last_used > self.idle_timeout:
                    await self._connect()
                assert self._writer is not None and self._reader is not None
                self._writer.write(head + payload)
                status, keep = await self._read_head()
                data = await self._read_body(keep)
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
            await self.close()
            raise HttpError(f"{type(exc).__name__}: {exc}") from exc
        if not keep["alive"]:
            await self.close()
        self._last_used = time.monotonic()
        return status, data

    async def _connect(self) -> None:
        await self.close()
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def _read_head(self) -> tuple[int, dict[str, Any]]:
        assert self._reader is not None
        status_line = await self._reader.readline()
        if not status_line:
            raise HttpError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        info: dict[str, Any] = {"alive": True, "length": None, "chunked": False}
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                info["length"] = int(value.strip())
            elif key == b"transfer-encoding" and b"chunked" in value.lower():
                info["chunked"] = True
            elif key == b"connection" and b"close" in value.lower():
                info["alive"] = False
        return status, info

    async def _read_body(self, info: dict[str, Any]) -> bytes:
        assert self._reader is not None
        if info["chunked"]:
            parts: list[bytes] = []
            while True:
                size = int((await self._reader.readline()).split(b";")[0].strip(), 16)
                if size == 0:
                    await self._reader.readline()
                    return b"".join(parts)
                parts.append(await self._reader.readexactly(size))
                await self._reader.readexactly(2)
        if info["length"] is None:
            info["alive"] = False
            return await self._reader.read()
        return await self._reader.readexactly(info["length"])

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 2)
            except (OSError, TimeoutError):
                pass
