"""Socket clients for `load.bench_nodes`, each run in its own process (the machine has few cores,
and one asyncio loop holding thousands of sockets would measure itself instead of the nodes).

Every worker is a plain function of picklable arguments: it runs its own event loop, reports
"ready" on the results queue, waits for the parent's `go`, and puts one result dict on the queue.
Times are `time.monotonic()`, which is one clock for every process on the machine (Linux
CLOCK_MONOTONIC), so the parent can compare arrivals across workers. Every wait has a deadline.
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
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from load.clients import OPEN_TIMEOUT_SEC, answer, hello
from load.clients import describe as _describe
from load.clients import open_socket as _connect
from load.harness import raise_nofile

JOIN_CONCURRENCY = 20  # setting up the measured sockets is not what is measured


async def open_socket(
    address: str,
    token: str,
    interview_id: str,
    last_seq: int | None = None,
    epoch: str | None = None,
) -> ClientConnection:
    """Connect and say hello (the welcome is the caller's to read); the reader always drains,
    so the client never pushes back on the node."""
    ws = await _connect(f"ws://{address}/ws/v1/interview", max_queue=None)
    await ws.send(hello(token, interview_id, last_seq, epoch))
    return ws


def answer_frame(question_id: str, client_msg_id: str) -> str:
    return answer(question_id, client_msg_id)


async def _wait_flag(flag: Any, deadline: float) -> bool:
    """Wait for a multiprocessing.Event without blocking the loop."""
    return bool(await asyncio.to_thread(flag.wait, max(0.0, deadline - time.monotonic())))


async def _close_all(sockets: list[ClientConnection]) -> None:
    gate = asyncio.Semaphore(200)

    async def close(ws: ClientConnection) -> None:
        async with gate:
            with contextlib.suppress(Exception):
                await ws.close()

    await asyncio.gather(*(close(ws) for ws in sockets))


@dataclass
class Tracked:
    """One socket's view of one interview: the frames it got and what the driver needs."""

    key: int
    token: str
    interview_id: str
    address: str
    drives: bool
    start_seq: int = 0  # the hello's lastSeq: the replay starts after it
    ws: ClientConnection | None = None
    head_at_welcome: int = 0
    epoch: str | None = None
    # (seq, type, arrival, live: after the welcome's head, questionId)
    frames: list[tuple[int | None, str, float, bool, str | None]] = field(default_factory=list)
    sends: dict[str, float] = field(default_factory=dict)
    question: str | None = None  # the current question
    accepted: set[str] = field(default_factory=set)
    done: set[str] = field(default_factory=set)
    completed: bool = False
    join_retries: int = 0
    errors: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last_seq(self) -> int:
        seqs = [f[0] for f in self.frames if f[0] is not None]
        return max(seqs) if seqs else 0

    def take(self, frame: dict[str, Any], at: float, live: bool) -> None:
        kind = str(frame.get("type"))
        seq = frame.get("seq") if isinstance(frame.get("seq"), int) else None
        self.frames.append((seq, kind, at, live, frame.get("questionId")))
        if kind == "question":
            self.question = frame["questionId"]
        elif kind == "answer.accepted" and seq is not None:
            self.accepted.add(frame["questionId"])
        elif kind == "feedback.done":
            self.done.add(frame["questionId"])
        elif kind in ("interview.completed", "interview.abandoned"):
            self.completed = True
        elif kind == "snapshot":
            self.question = frame.get("currentQuestionId")
        elif kind == "error":
            self.errors.append(str(frame.get("code")))
        self.changed.set()

    async def welcome(self, after: int, timeout: float) -> None:
        """Read the welcome and the replay after `after` (events up to the welcome's head)."""
        assert self.ws is not None
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        if frame.get("type") != "welcome":
            raise RuntimeError(f"expected welcome, got {frame.get('type')}")
        self.head_at_welcome = int(frame["lastSeq"])
        self.epoch = frame.get("epoch")
        floor = max(self.last_seq, after)
        while floor < self.head_at_welcome:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            self.take(frame, time.monotonic(), live=False)
            if frame.get("type") == "snapshot":
                break
            floor = max(floor, frame.get("seq") or floor)

    async def join(self, address: str, deadline: float) -> None:
        """Connect from `start_seq`, retrying as a client would when the node refuses."""
        delay = 0.2
        while True:
            try:
                self.ws = await open_socket(address, self.token, self.interview_id, self.start_seq)
                await self.welcome(self.start_seq, 60)
                return
            except (ConnectionClosed, OSError, TimeoutError, InvalidHandshake) as exc:
                self.join_retries += 1
                self.errors.append(f"join: {_describe(exc)}")
                if time.monotonic() + delay > deadline:
                    raise
                self.frames.clear()
                await asyncio.sleep(delay)
                delay = min(2.0, delay * 2)

    async def read(self) -> None:
        """Record every frame until the socket closes."""
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                at = time.monotonic()
                self.take(json.loads(raw), at, live=True)

    async def until(self, check: Any, deadline: float) -> bool:
        while not check():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    def result(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "drives": self.drives,
            "frames": self.frames,
            "sends": self.sends,
            "errors": self.errors,
            "join_retries": self.join_retries,
            "completed": self.completed,
        }


# --- 1. cross-node delivery latency ----------------------------------------------------------


def latency_worker(
    specs: list[tuple[int, str, str, str, bool, int]],
    answers: int,
    think: tuple[float, float],
    ready: Any,
    go: Any,
    drivers_done: Any,
    total_drivers: int,
    results: Any,
    budget_sec: float,
) -> None:
    """Watch interviews; the sockets marked as drivers answer `answers` questions each."""
    raise_nofile()
    results.put(
        asyncio.run(
            _latency(specs, answers, think, ready, go, drivers_done, total_drivers, budget_sec)
        )
    )


async def _latency(
    specs: list[tuple[int, str, str, str, bool, int]],
    answers: int,
    think: tuple[float, float],
    ready: Any,
    go: Any,
    drivers_done: Any,
    total_drivers: int,
    budget_sec: float,
) -> dict[str, Any]:
    deadline = time.monotonic() + budget_sec
    tracked = [Tracked(*spec[:5], start_seq=spec[5]) for spec in specs]
    gate = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def join(t: Tracked) -> None:
        async with gate:
            await t.join(t.address, deadline)

    await asyncio.gather(*(join(t) for t in tracked))
    readers = [asyncio.create_task(t.read()) for t in tracked]
    ready.put(len(tracked))
    if not await _wait_flag(go, deadline):
        raise RuntimeError("no go from the parent")

    async def drive(t: Tracked) -> None:
        assert t.ws is not None
        try:
            for _ in range(answers):
                if not await t.until(
                    lambda: t.completed or (t.question is not None and t.question not in t.sends),
                    deadline,
                ):
                    t.errors.append("timeout waiting for a question")
                    return
                if t.completed:
                    return
                await asyncio.sleep(random.uniform(*think))
                question = t.question
                assert question is not None
                t.sends[question] = time.monotonic()
                await t.ws.send(answer_frame(question, f"lat-{question}"))
                if not await t.until(lambda q=question: q in t.done or t.completed, deadline):
                    t.errors.append("timeout waiting for feedback.done")
                    return
        finally:
            with drivers_done.get_lock():
                drivers_done.value += 1

    await asyncio.gather(*(drive(t) for t in tracked if t.drives))
    # Keep watching until every driver of every worker is done, then a little longer for the
    # cross-node copies of the last events.
    while drivers_done.value < total_drivers and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    closing_at = time.time()  # wall clock, to line up with Redis MONITOR timestamps
    await _close_all([t.ws for t in tracked if t.ws is not None])
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return {"sockets": [t.result() for t in tracked], "closing_at": closing_at}


# --- 2. resume after a node is killed --------------------------------------------------------


def kill_worker(
    specs: list[tuple[int, str, str, int]],
    first: str,
    second: str,
    answer_within: float,
    ready: Any,
    go: Any,
    results: Any,
    budget_sec: float,
) -> None:
    """Clients on `first` answer once after `go`; when that node dies they resume on `second`."""
    raise_nofile()
    results.put(asyncio.run(_kill(specs, first, second, answer_within, ready, go, budget_sec)))


async def _kill(
    specs: list[tuple[int, str, str, int]],
    first: str,
    second: str,
    answer_within: float,
    ready: Any,
    go: Any,
    budget_sec: float,
) -> dict[str, Any]:
    deadline = time.monotonic() + budget_sec
    tracked = [Tracked(k, token, iv, first, True, start) for k, token, iv, start in specs]
    gate = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def join(t: Tracked) -> None:
        async with gate:
            await t.join(first, deadline)

    await asyncio.gather(*(join(t) for t in tracked))
    ready.put(len(tracked))
    if not await _wait_flag(go, deadline):
        raise RuntimeError("no go from the parent")
    outcomes = await asyncio.gather(
        *(_survive(t, second, answer_within, deadline) for t in tracked)
    )
    await _close_all([t.ws for t in tracked if t.ws is not None])
    return {"clients": [{**t.result(), **o} for t, o in zip(tracked, outcomes, strict=True)]}


async def _survive(
    t: Tracked, second: str, answer_within: float, deadline: float
) -> dict[str, Any]:
    """Answer the pending question, lose the node, resume on `second`, finish the evaluation."""
    assert t.ws is not None
    outcome: dict[str, Any] = {"disconnect": None, "welcome": None, "first_new": None}
    reader = asyncio.create_task(t.read())

    async def answer_soon() -> None:
        await asyncio.sleep(random.uniform(0, answer_within))
        if t.question is not None and t.question not in t.accepted and not t.completed:
            t.sends[t.question] = time.monotonic()
            with contextlib.suppress(ConnectionClosed):
                assert t.ws is not None
                await t.ws.send(answer_frame(t.question, f"kill-{t.question}"))

    answering = asyncio.create_task(answer_soon())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(reader), max(0.0, deadline - time.monotonic()))
    if not reader.done():
        reader.cancel()
        outcome["error"] = "the first node never went away"
        return outcome
    outcome["disconnect"] = time.monotonic()
    answering.cancel()  # not sent yet: it goes to the second node after the welcome
    await asyncio.gather(answering, return_exceptions=True)
    outcome["at_kill"] = t.frames[-1][1] if t.frames else None
    before = t.last_seq
    attempts = 0
    while time.monotonic() < deadline:
        attempts += 1
        tried = time.monotonic()
        try:
            t.ws = await open_socket(second, t.token, t.interview_id, before, t.epoch)
            await t.welcome(before, 30)
            break
        except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, RuntimeError) as exc:
            t.errors.append(f"reconnect: {_describe(exc)}")
            outcome.setdefault("refused_after_sec", []).append(round(time.monotonic() - tried, 2))
            await asyncio.sleep(0.1)
    else:
        outcome["error"] = "could not reconnect"
        return outcome
    outcome["welcome"] = time.monotonic()
    outcome["attempts"] = attempts
    reader = asyncio.create_task(t.read())
    new_after = max((f[2] for f in t.frames if f[0] is not None and f[0] > before), default=None)
    pending = t.question
    if pending is not None and pending not in t.accepted and not t.completed:
        # Never acknowledged before the node died: resend under the same clientMsgId.
        t.sends.setdefault(pending, time.monotonic())
        await t.ws.send(answer_frame(pending, f"kill-{pending}"))
    if new_after is None:
        await t.until(lambda: t.last_seq > before, deadline)
    firsts = [f for f in t.frames if f[0] is not None and f[0] > before]
    if firsts:
        outcome["first_new"] = firsts[0][2]
        outcome["first_new_type"] = firsts[0][1]
    finished = await t.until(
        lambda: t.completed or all(q in t.done for q in t.accepted | set(t.sends)), deadline
    )
    outcome["finished"] = finished
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    return outcome


# --- 3. reconnect storm ------------------------------------------------------------------------


def storm_worker(
    specs: list[tuple[str, str, int]],
    address: str,
    ready: Any,
    go_at: Any,
    release: Any,
    results: Any,
    budget_sec: float,
) -> None:
    """Open every socket at `go_at` (a shared monotonic time), hello, wait for the welcomes."""
    raise_nofile()
    results.put(asyncio.run(_storm(specs, address, ready, go_at, release, budget_sec)))


async def _storm(
    specs: list[tuple[str, str, int]],
    address: str,
    ready: Any,
    go_at: Any,
    release: Any,
    budget_sec: float,
) -> dict[str, Any]:
    deadline = time.monotonic() + budget_sec
    ready.put(len(specs))
    while go_at.value <= 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    await asyncio.sleep(max(0.0, go_at.value - time.monotonic()))
    sockets: list[ClientConnection] = []
    opened: list[float | None] = [None] * len(specs)
    welcomed: list[float | None] = [None] * len(specs)
    failures: dict[str, int] = {}

    async def one(i: int, token: str, interview_id: str, last_seq: int) -> None:
        try:
            ws = await open_socket(address, token, interview_id, last_seq)
            opened[i] = time.monotonic()
            sockets.append(ws)
            frame = json.loads(await asyncio.wait_for(ws.recv(), OPEN_TIMEOUT_SEC))
            if frame.get("type") != "welcome":
                raise RuntimeError(f"got {frame.get('type')}")
            welcomed[i] = time.monotonic()
        except Exception as exc:  # every failure is counted by kind, none stops the storm
            name = _describe(exc)
            failures[name] = failures.get(name, 0) + 1

    await asyncio.gather(*(one(i, *spec) for i, spec in enumerate(specs)))
    ready.put(sum(w is not None for w in welcomed))
    await _wait_flag(release, deadline)
    still_open = sum(1 for ws in sockets if ws.close_code is None)
    await _close_all(sockets)
    return {"opened": opened, "welcomed": welcomed, "failures": failures, "open_at_end": still_open}
