"""The baseline: a bare `websockets` asyncio server that echoes every text frame back.

.venv/bin/python -m load.echo_server --port 8901
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from websockets.asyncio.server import ServerConnection, serve


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def run(host: str, port: int, max_size: int) -> None:
    # The library's defaults otherwise (deflate offered, 20 s keepalive pings), as a typical
    # service built on it would run; the product's server negotiates the same extension.
    async with serve(echo, host, port, max_size=max_size, backlog=4096) as server:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 10)


def main() -> None:
    parser = argparse.ArgumentParser(description="a bare websockets echo server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8901)
    parser.add_argument("--max-size", type=int, default=64 * 1024)
    args = parser.parse_args()
    from load.common import raise_nofile

    raise_nofile()
    asyncio.run(run(args.host, args.port, args.max_size))


if __name__ == "__main__":
    main()
