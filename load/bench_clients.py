"""The socket clients of `load.bench`, one `SocketLoad` per worker process (`measure.Workers`).

A worker keeps its sockets open between commands, so a pool opened once serves every run, and
every measuring command reports the worker's own CPU time, so the benchmark can show that the
clients were not the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection

from load.clients import Interview, answer, hello, open_socket
from load.measure import Window, sleep_until

RECV_TIMEOUT = 30.0


@dataclass(frozen=True)
class Ticket:
    """What a socket needs to join an interview (picklable, sent to the workers)."""

    token: str
    interview_id: str


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]


@dataclass
class SocketLoad:
    deflate: bool = True
    pools: dict[str, list[ClientConnection]] = field(default_factory=dict)
    live: dict[str, list[Interview]] = field(default_factory=dict)

    # --- pools of open sockets -----------------------------------------------------------------

    async def _open(self, url: str, ticket: Ticket | None) -> tuple[ClientConnection, float]:
        """Connect (and on the product say hello and read up to the current question)."""
        t0 = time.perf_counter()
        ws = await open_socket(url, deflate=self.deflate)
        if ticket is not None:
            await ws.send(hello(ticket.token, ticket.interview_id))
            async with asyncio.timeout(60):
                while True:
                    frame = json.loads(await ws.recv())
                    if frame["type"] in ("question", "snapshot"):
                        break
                    if frame["type"] == "error":
                        raise RuntimeError(f"hello refused: {frame}")
        return ws, time.perf_counter() - t0

    async def open(
        self, pool: str, url: str, count: int, tickets: list[Ticket] | None, parallel: int = 64
    ) -> dict[str, Any]:
        """Open `count` sockets into `pool` (product sockets cycle through `tickets`)."""
        gate = asyncio.Semaphore(parallel)
        opened = self.pools.setdefault(pool, [])
        times: list[float] = []
        errors: list[str] = []

        async def one(i: int) -> None:
            async with gate:
                try:
                    ws, took = await self._open(url, tickets[i % len(tickets)] if tickets else None)
                except Exception as exc:  # counted and reported
                    errors.append(_error(exc))
                    return
                opened.append(ws)
                times.append(took)

        await asyncio.gather(*(one(i) for i in range(count)))
        return {
            "opened": len(times),
            "connect": times,
            "errors": errors[:20],
            "failed": len(errors),
        }

    async def close(self, pool: str) -> dict[str, Any]:
        sockets = self.pools.pop(pool, [])
        gate = asyncio.Semaphore(256)

        async def one(ws: ClientConnection) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 10)

        await asyncio.gather(*(one(ws) for ws in sockets))
        return {"closed": len(sockets)}

    def alive(self, pool: str) -> dict[str, Any]:
        sockets = self.pools.get(pool, [])
        return {"alive": sum(1 for ws in sockets if ws.close_code is None), "total": len(sockets)}

    async def shutdown(self) -> None:
        for pool in list(self.pools):
            await self.close(pool)
        for name in list(self.live):
            await self.close_interviews(name)

    # --- (a) round trips -----------------------------------------------------------------------

    async def ping(
        self, pool: str, count: int, start_at: float, warmup: float, measure: float
    ) -> dict[str, Any]:
        """Closed loop on `count` sockets: send a ping frame, wait for its answer, repeat."""
        sockets = self.pools[pool][:count]
        window = Window.from_wall(start_at, warmup, measure)
        latencies: list[float] = []
        unexpected = 0

        async def loop(k: int, ws: ClientConnection) -> None:
            nonlocal unexpected
            n = 0
            # One deadline for the whole loop: a timeout per frame would cost the client more
            # than the echo server spends on the frame.
            async with asyncio.timeout(window.end - time.perf_counter() + RECV_TIMEOUT):
                while time.perf_counter() < window.end:
                    nonce = f"{k}-{n}"
                    n += 1
                    t0 = time.perf_counter()
                    # The same text to every server: the echo servers return it, the product
                    # answers {"type": "pong", "nonce": ...}; every reply is parsed.
                    await ws.send(f'{{"type":"ping","nonce":"{nonce}"}}')
                    while True:
                        reply = json.loads(await ws.recv())
                        if reply.get("nonce") == nonce:
                            break
                        unexpected += 1
                    t1 = time.perf_counter()
                    if window.holds(t1):
                        latencies.append(t1 - t0)

        await sleep_until(window.start - warmup)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        results = await asyncio.gather(
            *(loop(k, ws) for k, ws in enumerate(sockets)), return_exceptions=True
        )
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        errors = [repr(r)[:200] for r in results if isinstance(r, BaseException)]
        return {
            "latencies": latencies,
            "unexpected": unexpected,
            "errors": errors[:20],
            "failed": len(errors),
            "cpu": cpu,
            "wall": wall,
        }

    # --- (c) interviews ------------------------------------------------------------------------

    async def open_interviews(
        self, pool: str, url: str, tickets: list[Ticket], parallel: int = 64
    ) -> dict[str, Any]:
        """Connect one socket per interview and read up to its current question."""
        gate = asyncio.Semaphore(parallel)
        conns = self.live.setdefault(pool, [])
        errors: list[str] = []

        async def one(t: Ticket) -> None:
            async with gate:
                try:
                    conns.append(
                        await Interview.join(url, t.token, t.interview_id, deflate=self.deflate)
                    )
                except Exception as exc:  # counted and reported
                    errors.append(_error(exc))

        await asyncio.gather(*(one(t) for t in tickets))
        return {"opened": len(conns), "errors": errors[:20], "failed": len(errors)}

    async def interviews(
        self, pool: str, start_at: float, duration: float, think: float, answers: int
    ) -> dict[str, Any]:
        """Answer each question after a think time; time the replies to every answer."""
        accepted: list[float] = []
        first: list[float] = []
        done: list[float] = []
        errors: list[str] = []
        counts = {"answers": 0, "completed": 0}
        begin = start_at + time.perf_counter() - time.time()
        end = begin + duration

        async def one(live: Interview) -> None:
            await sleep_until(begin + random.uniform(0, think))
            for _ in range(answers):
                if time.perf_counter() > end:
                    return
                t0 = time.perf_counter()
                await live.ws.send(answer(live.question["questionId"]))
                got_first = False
                while True:
                    f = await live.frame()
                    took = time.perf_counter() - t0
                    if f["type"] == "answer.accepted":
                        accepted.append(took)
                    elif f["type"] == "feedback.delta" and not got_first:
                        got_first = True
                        first.append(took)
                    elif f["type"] == "feedback.done":
                        done.append(took)
                        counts["answers"] += 1
                        break
                    elif f["type"] == "error":
                        raise RuntimeError(f"error frame: {f}")
                while True:
                    f = await live.frame()
                    if f["type"] == "question":
                        live.question = f
                        break
                    if f["type"] == "interview.completed":
                        counts["completed"] += 1
                        return
                pause = random.uniform(0.5, 1.5) * think
                if time.perf_counter() + pause > end:
                    return  # the next answer would come after the measured phase
                await asyncio.sleep(pause)

        async def guarded(live: Interview) -> None:
            try:
                async with asyncio.timeout(end - time.perf_counter() + 60):
                    await one(live)
            except Exception as exc:  # counted and reported
                errors.append(_error(exc))

        conns = self.live.get(pool, [])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(guarded(live) for live in conns))
        seq_errors = [e for live in conns for e in live.seq_errors]
        return {
            "accepted": accepted,
            "first_delta": first,
            "done": done,
            "seq_errors": seq_errors[:20],
            "seq_error_count": len(seq_errors),
            "errors": errors[:20],
            "failed": len(errors),
            "cpu": time.process_time() - cpu0,
            "wall": time.perf_counter() - wall0,
            **counts,
        }

    async def close_interviews(self, pool: str) -> dict[str, Any]:
        self.pools[pool + ":closing"] = [live.ws for live in self.live.pop(pool, [])]
        return await self.close(pool + ":closing")


class SocketLoadFactory:
    """Builds a worker's `SocketLoad` (picklable: sent to the spawned process)."""

    def __init__(self, deflate: bool) -> None:
        self.deflate = deflate

    def __call__(self) -> SocketLoad:
        return SocketLoad(deflate=self.deflate)
