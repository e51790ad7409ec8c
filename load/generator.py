"""The load generator: asyncio clients (`websockets`; `load.http1` for REST) in worker processes.

The benchmark starts a few workers (multiprocessing, spawn) and sends each of them commands over a
pipe; a worker keeps its sockets open between commands, so a pool opened once serves every run.
Every measuring command reports the worker's own CPU time over the measured window, so the
benchmark can show that the generator was not the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from load.common import raise_nofile
from load.http1 import Http1Connection, HttpError

RECV_TIMEOUT = 30.0
ANSWER = (
    "Хеш-таблица отображает ключ в индекс корзины через хеш-функцию; коллизии решаются "
    "цепочками или открытой адресацией, поиск и вставка в среднем за O(1), в худшем за O(n). "
    "При росте заполнения таблицу расширяют и перехешируют элементы."
)


@dataclass
class Session:
    """A logged-in user with one started interview."""

    email: str
    password: str
    token: str = ""
    interview_id: str = ""


@dataclass
class Window:
    """The measured part of a run, in this process's perf_counter time."""

    start: float
    end: float

    def holds(self, done: float) -> bool:
        """Whether something that finished at `done` is counted: by completion, not start."""
        return self.start <= done <= self.end


def _window(start_at: float, warmup: float, measure: float) -> Window:
    """Turn a wall-clock start (shared by all workers) into a local perf_counter window."""
    offset = time.perf_counter() - time.time()
    begin = start_at + offset + warmup
    return Window(begin, begin + measure)


async def _sleep_until(perf_t: float) -> None:
    delay = perf_t - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


@dataclass
class LiveInterview:
    """An interview socket, with the highest `seq` seen and every gap or repeat noted."""

    session: Session
    ws: ClientConnection
    question: dict[str, Any] = field(default_factory=dict)
    last_seq: int = 0
    seq_errors: list[str] = field(default_factory=list)

    async def frame(self, timeout: float = 60.0) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        seq = data.get("seq")
        if isinstance(seq, int):
            if seq != self.last_seq + 1:
                self.seq_errors.append(f"seq {seq} after {self.last_seq}")
            self.last_seq = max(self.last_seq, seq)
        return data


@dataclass
class Worker:
    pools: dict[str, list[ClientConnection]] = field(default_factory=dict)
    live: dict[str, list[LiveInterview]] = field(default_factory=dict)
    deflate: bool = True

    # --- sockets -------------------------------------------------------------------------------

    async def _open(self, url: str, session: Session | None) -> tuple[ClientConnection, float]:
        """Connect (and for the engine say hello and read up to the first question)."""
        t0 = time.perf_counter()
        ws = await connect(
            url,
            open_timeout=60,
            ping_interval=None,  # the servers ping; the client only answers
            close_timeout=5,
            compression="deflate" if self.deflate else None,
            proxy=None,  # never a proxy: the traffic stays on 127.0.0.1
            max_size=2**20,
        )
        if session is not None:
            hello = {"type": "hello", "token": session.token, "interviewId": session.interview_id}
            await ws.send(json.dumps(hello))
            async with asyncio.timeout(60):
                while True:
                    frame = json.loads(await ws.recv())
                    if frame["type"] in ("question", "snapshot"):
                        break
                    if frame["type"] == "error":
                        raise RuntimeError(f"hello refused: {frame}")
        return ws, time.perf_counter() - t0

    async def open(
        self,
        pool: str,
        url: str,
        count: int,
        sessions: list[Session] | None,
        parallel: int = 64,
    ) -> dict[str, Any]:
        """Open `count` sockets into `pool` (engine sockets cycle through `sessions`)."""
        gate = asyncio.Semaphore(parallel)
        opened = self.pools.setdefault(pool, [])
        times: list[float] = []
        errors: list[str] = []

        async def one(i: int) -> None:
            async with gate:
                try:
                    session = sessions[i % len(sessions)] if sessions else None
                    ws, took = await self._open(url, session)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
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
        alive = sum(1 for ws in sockets if ws.close_code is None)
        return {"alive": alive, "total": len(sockets)}

    # --- (a) round trips -----------------------------------------------------------------------

    async def ping(
        self, pool: str, count: int, start_at: float, warmup: float, measure: float
    ) -> dict[str, Any]:
        """Closed loop on `count` sockets: send a ping frame, wait for its answer, repeat."""
        sockets = self.pools[pool][:count]
        window = _window(start_at, warmup, measure)
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
                    # The same text to both servers: the echo server returns it, the engine
                    # answers {"type": "pong", "nonce": ...}; both replies are parsed.
                    await ws.send(f'{{"type":"ping","nonce":"{nonce}"}}')
                    while True:
                        reply = json.loads(await ws.recv())
                        if reply.get("nonce") == nonce:
                            break
                        unexpected += 1
                    t1 = time.perf_counter()
                    if window.holds(t1):
                        latencies.append(t1 - t0)

        await _sleep_until(window.start - warmup)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        results = await asyncio.gather(
            *(loop(k, ws) for k, ws in enumerate(sockets)), return_exceptions=True
        )
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        errors = [repr(r)[:200] for r in results if isinstance(r, BaseException)]
        return {
            "latencies": latencies,
            "round_trips": len(latencies),
            "seconds": measure,
            "unexpected": unexpected,
            "errors": errors[:20],
            "failed": len(errors),
            "cpu": cpu,
            "wall": wall,
        }

    # --- users and interviews ------------------------------------------------------------------

    async def prepare(self, base: str, sessions: list[Session], start: bool) -> dict[str, Any]:
        """Log every user in (and start an interview for each when `start`)."""
        gate = asyncio.Semaphore(32)
        errors: list[str] = []
        async with _http(base, 64) as http:

            async def one(s: Session) -> None:
                async with gate:
                    try:
                        r = await http.post(
                            "/api/v1/auth/login", json={"email": s.email, "password": s.password}
                        )
                        r.raise_for_status()
                        s.token = r.json()["token"]
                        if start:
                            r = await http.post(
                                "/api/v1/interviews/technical/start",
                                json={"level": "junior", "language": "ru"},
                                headers={"Authorization": f"Bearer {s.token}"},
                            )
                            r.raise_for_status()
                            s.interview_id = r.json()["interviewId"]
                    except Exception as exc:  # noqa: BLE001 - reported
                        errors.append(f"{s.email}: {type(exc).__name__}: {exc}"[:200])

            await asyncio.gather(*(one(s) for s in sessions))
        return {"sessions": sessions, "errors": errors[:20], "failed": len(errors)}

    async def open_interviews(
        self, pool: str, url: str, sessions: list[Session], parallel: int = 64
    ) -> dict[str, Any]:
        """Connect one socket per interview and read up to its current question."""
        gate = asyncio.Semaphore(parallel)
        conns = self.live.setdefault(pool, [])
        errors: list[str] = []

        async def one(s: Session) -> None:
            async with gate:
                try:
                    ws, _ = await self._open(url, None)
                    live = LiveInterview(s, ws)
                    await ws.send(
                        json.dumps(
                            {"type": "hello", "token": s.token, "interviewId": s.interview_id}
                        )
                    )
                    while not live.question:
                        f = await live.frame()
                        if f["type"] == "question":
                            live.question = f
                    conns.append(live)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

        await asyncio.gather(*(one(s) for s in sessions))
        return {"opened": len(conns), "errors": errors[:20], "failed": len(errors)}

    async def interviews(
        self, pool: str, start_at: float, duration: float, think: float, answers: int
    ) -> dict[str, Any]:
        """(c) Answer each question after a think time; time the replies to every answer."""
        accepted: list[float] = []
        first: list[float] = []
        done: list[float] = []
        errors: list[str] = []
        counts = {"answers": 0, "completed": 0}
        begin = start_at + time.perf_counter() - time.time()
        end = begin + duration

        async def one(live: LiveInterview) -> None:
            await _sleep_until(begin + random.uniform(0, think))
            for _ in range(answers):
                if time.perf_counter() > end:
                    return
                msg = {
                    "type": "answer",
                    "questionId": live.question["questionId"],
                    "answer": ANSWER,
                    "clientMsgId": uuid.uuid4().hex,
                }
                t0 = time.perf_counter()
                await live.ws.send(json.dumps(msg))
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

        async def guarded(live: LiveInterview) -> None:
            try:
                async with asyncio.timeout(end - time.perf_counter() + 60):
                    await one(live)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"{type(exc).__name__}: {exc}"[:200])

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
        conns = self.live.pop(pool, [])
        self.pools[pool + ":closing"] = [live.ws for live in conns]
        return await self.close(pool + ":closing")

    # --- (d) REST ------------------------------------------------------------------------------

    async def rest(
        self,
        base: str,
        sessions: list[Session],
        start_at: float,
        warmup: float,
        measure: float,
        think: float,
        mix: dict[str, float],
    ) -> dict[str, Any]:
        """Users that each call login, me or history (weights `mix`) with a think time."""
        window = _window(start_at, warmup, measure)
        latencies: dict[str, list[float]] = {name: [] for name in mix}
        statuses: dict[str, int] = {}
        names, weights = list(mix), list(mix.values())
        url = httpx.URL(base)
        host, port = url.host, url.port or 80

        async def call(name: str, s: Session, conn: Http1Connection) -> int:
            if name == "login":
                body = {"email": s.email, "password": s.password}
                return (await conn.request("POST", "/api/v1/auth/login", body=body))[0]
            path = "/api/v1/auth/me" if name == "me" else "/api/v1/interviews/history"
            return (await conn.request("GET", path, token=s.token))[0]

        async def user(s: Session) -> None:
            conn = Http1Connection(host, port)
            try:
                await _sleep_until(window.start - warmup + random.uniform(0, think))
                while time.perf_counter() < window.end:
                    name = random.choices(names, weights)[0]
                    t0 = time.perf_counter()
                    try:
                        status: int | str = await call(name, s, conn)
                    except HttpError as exc:
                        status = str(exc).split(":")[0]
                    t1 = time.perf_counter()
                    key = f"{name} {status}"
                    statuses[key] = statuses.get(key, 0) + 1
                    if window.holds(t1) and status == 200:
                        latencies[name].append(t1 - t0)
                    await asyncio.sleep(random.uniform(0.5, 1.5) * think)
            finally:
                await conn.close()

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(user(s) for s in sessions))
        return {
            "latencies": latencies,
            "statuses": statuses,
            "seconds": measure,
            "cpu": time.process_time() - cpu0,
            "wall": time.perf_counter() - wall0,
        }


def _http(base: str, connections: int) -> httpx.AsyncClient:
    """httpx for the setup, where the cost of the client does not matter."""
    return httpx.AsyncClient(
        base_url=base,
        timeout=60,
        trust_env=False,  # never a proxy: the traffic stays on 127.0.0.1
        limits=httpx.Limits(
            max_connections=connections,
            max_keepalive_connections=connections,
            # Under uvicorn's 5 s keep-alive timeout: the client lets an idle connection go first,
            # so a request never races the server closing it.
            keepalive_expiry=4.0,
        ),
    )


# --- the process side ----------------------------------------------------------------------------


def _serve(conn: Connection, deflate: bool) -> None:
    raise_nofile()
    worker = Worker(deflate=deflate)

    async def main() -> None:
        while True:
            message = await asyncio.to_thread(conn.recv)
            if message is None:
                for pool in list(worker.pools):
                    await worker.close(pool)
                return
            name, kwargs = message
            try:
                method: Callable[..., Any] = getattr(worker, name)
                result = method(**kwargs)
                if isinstance(result, Awaitable):
                    result = await result
                conn.send(("ok", result))
            except Exception as exc:  # noqa: BLE001 - the benchmark reports it
                conn.send(("error", f"{type(exc).__name__}: {exc}"))

    asyncio.run(main())


class Generator:
    """`procs` worker processes; `call` runs one command on all of them at once."""

    def __init__(self, procs: int, deflate: bool = True) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for _ in range(procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, deflate), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def call(self, name: str, per_worker: list[dict[str, Any]], timeout: float) -> list[Any]:
        """Send `name` with each worker's kwargs, then collect every answer."""
        return self.collect(self.send(name, per_worker), timeout)

    def send(self, name: str, per_worker: list[dict[str, Any]]) -> tuple[str, list[Connection]]:
        used = self.pipes[: len(per_worker)]
        for pipe, kwargs in zip(used, per_worker, strict=True):
            pipe.send((name, kwargs))
        return name, used

    def collect(self, sent: tuple[str, list[Connection]], timeout: float) -> list[Any]:
        name, used = sent
        results = []
        deadline = time.monotonic() + timeout
        for pipe in used:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"a load worker did not finish {name!r} in {timeout:.0f} s")
            status, result = pipe.recv()
            if status != "ok":
                raise RuntimeError(f"a load worker failed {name!r}: {result}")
            results.append(result)
        return results

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for proc in self.procs:
            proc.join(20)
            if proc.is_alive():
                proc.kill()
                proc.join(5)


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """Deal `items` round-robin into `parts` lists."""
    return [items[i::parts] for i in range(parts)]


def shares(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal counts."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
