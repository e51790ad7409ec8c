"""Benchmark: model feedback streamed over the socket to many concurrent interviews.

Starts the local OpenAI-speaking server (one token every 20 ms by default) and the product's
embedded run pointed at it, then drives N concurrent interviews over WebSockets and prints:

- answer sent -> first `feedback.delta` received, minus the fake's own delay before the first
  character of feedback (its first-token delay plus the tokens that open the JSON): p50 / p99;
- the gap between consecutive `feedback.delta` frames of one answer: p50 / p99;
- CPU seconds of the server process per 1,000 streamed tokens.

Beside it, a baseline from the same run: the same number of streams read straight from the fake
with the OpenAI SDK, no product in between. Figures are printed, never asserted.

    .venv/bin/python load/bench_llm.py              # 1,000 interviews
    .venv/bin/python load/bench_llm.py -n 200 --procs 2
    MONGODB_URL=mongodb://... .venv/bin/python load/bench_llm.py   # a real MongoDB
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.embedded_mongo import EmbeddedMongo, free_port  # noqa: E402
from engine.evaluator.jsonstream import FieldStream  # noqa: E402
from tests.fakes.openai_server import API_KEY  # noqa: E402

PASSWORD = "correct horse battery"
FEEDBACK_PREFIX = '{"feedback": "'  # how the fake's JSON opens, before the first feedback char


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass
class Stats:
    first: list[float] = field(default_factory=list)  # seconds, already minus the fake's delay
    stored: list[float] = field(default_factory=list)  # answer -> answer.accepted (persisted)
    after_store: list[float] = field(default_factory=list)  # accepted -> first delta, minus delay
    gaps: list[float] = field(default_factory=list)
    deltas: int = 0
    answers: int = 0
    sources: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def merge(self, other: Stats) -> None:
        self.first += other.first
        self.stored += other.stored
        self.after_store += other.after_store
        self.gaps += other.gaps
        self.deltas += other.deltas
        self.answers += other.answers
        for key, count in other.sources.items():
            self.sources[key] = self.sources.get(key, 0) + count
        self.errors += other.errors


# --- the processes under test ------------------------------------------------------------------


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def app_env(
    args: argparse.Namespace, port: int, fake_url: str, mongo_url: str, data: Path
) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REDIS_", "MONGODB_"))
    }
    env.update(
        {
            "APP_ENV": "development",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "NODE_ID": "bench",
            "LOG_LEVEL": "WARNING",
            "DATA_DIR": str(data),
            "MONGODB_URL": mongo_url,
            "MONGODB_DB": "bench",
            "REDIS_URL": "",
            "CELERY_BROKER_URL": "",
            "SENDPULSE_CLIENT_ID": "",
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": fake_url + "/v1",
            "OPENAI_DAILY_TOKEN_BUDGET": str(10**12),
            "BCRYPT_ROUNDS": "4",
            "ACCESS_TOKEN_TTL_SEC": "7200",
            "QUESTIONS_PER_INTERVIEW": str(args.answers),
            "FREE_INTERVIEWS_PER_MONTH": "1000",
            "RATE_LIMIT_AUTH_IP": "100000000/60",
            "RATE_LIMIT_AUTH_ACCOUNT": "100000000/60",
            "RATE_LIMIT_GLOBAL_IP": "100000000/60",
            "RATE_LIMIT_USER": "100000000/60",
            "RATE_LIMIT_SOCKET_MESSAGES": "100000/10",
            "WS_SEND_QUEUE_LIMIT": "4096",
        }
    )
    return env


# --- users -------------------------------------------------------------------------------------


async def make_users(base: str, count: int, mongo_url: str) -> list[str]:
    """Register `count` users, mark them verified in the database, log them in: their tokens."""
    from pymongo import AsyncMongoClient

    emails = [f"bench-{uuid.uuid4().hex[:10]}@example.ru" for _ in range(count)]
    gate = asyncio.Semaphore(32)
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:

        async def register(email: str) -> None:
            async with gate:
                body = {"email": email, "password": PASSWORD, "gender": "male", "age": 30}
                response = await http.post("/api/v1/auth/register", json=body)
                assert response.status_code == 201, response.text

        async def login(email: str) -> str:
            async with gate:
                body = {"email": email, "password": PASSWORD}
                response = await http.post("/api/v1/auth/login", json=body)
                assert response.status_code == 200, response.text
                return str(response.json()["token"])

        await asyncio.gather(*(register(e) for e in emails))
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        try:
            await mongo["bench"]["users"].update_many(
                {"email": {"$in": emails}}, {"$set": {"isEmailVerified": True}}
            )
        finally:
            await mongo.close()
        return list(await asyncio.gather(*(login(e) for e in emails)))


# --- the load generator ------------------------------------------------------------------------


async def interviews(
    base: str, tokens: list[str], args: argparse.Namespace, conn: Connection | None
) -> Stats:
    """Open every interview and its socket, report ready, wait for go, then answer."""
    stats = Stats()
    nominal = args.first_token_delay + (len(FEEDBACK_PREFIX) // args.chunk_chars) * args.token_delay
    ws_base = base.replace("http://", "ws://")
    gate = asyncio.Semaphore(64)

    async def open_one(token: str) -> tuple[ClientConnection, dict[str, Any]]:
        async with gate:
            started = await http.post(
                "/api/v1/interviews/technical/start",
                json={"level": "intern"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert started.status_code == 201, started.text
            interview_id = started.json()["interviewId"]
            ws = await connect(f"{ws_base}/ws/v1/interview", max_queue=None, open_timeout=60)
            await ws.send(
                json.dumps({"type": "hello", "token": token, "interviewId": interview_id})
            )
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if frame["type"] == "question":
                    return ws, frame

    async def answer_all(index: int, ws: ClientConnection, question: dict[str, Any]) -> None:
        await asyncio.sleep(random.uniform(0, args.ramp))
        for n in range(args.answers):
            answer = (
                f"Ответ {index}-{n}-{uuid.uuid4().hex[:6]}: хеш-таблица отображает ключ в "
                "индекс корзины, коллизии решаются цепочками, поиск в среднем за O(1)."
            )
            frame = {
                "type": "answer",
                "questionId": question["questionId"],
                "answer": answer,
                "clientMsgId": uuid.uuid4().hex,
            }
            sent = time.monotonic()
            await ws.send(json.dumps(frame))
            last: float | None = None
            accepted = sent
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
                now = time.monotonic()
                if frame["type"] == "answer.accepted":
                    accepted = now
                    stats.stored.append(now - sent)
                elif frame["type"] == "feedback.delta":
                    stats.deltas += 1
                    if last is None:
                        stats.first.append(now - sent - nominal)
                        stats.after_store.append(now - accepted - nominal)
                    else:
                        stats.gaps.append(now - last)
                    last = now
                elif frame["type"] == "feedback.reset":
                    last = None
                elif frame["type"] == "feedback.done":
                    stats.answers += 1
                    stats.sources[frame["source"]] = stats.sources.get(frame["source"], 0) + 1
                    break
            while n + 1 < args.answers:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if frame["type"] == "question":
                    question = frame
                    break

    def failed(results: list[Any]) -> None:
        stats.errors.extend(
            f"{type(r).__name__}: {r}"[:200] for r in results if isinstance(r, BaseException)
        )

    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
        opened = await asyncio.gather(*(open_one(t) for t in tokens), return_exceptions=True)
    failed(opened)
    sessions = [o for o in opened if not isinstance(o, BaseException)]
    if conn is not None:
        conn.send("ready")
        await asyncio.to_thread(conn.recv)  # "go", once every worker is ready
    try:
        failed(
            await asyncio.gather(
                *(answer_all(i, ws, q) for i, (ws, q) in enumerate(sessions)),
                return_exceptions=True,
            )
        )
    finally:
        await asyncio.gather(*(ws.close() for ws, _ in sessions), return_exceptions=True)
    return stats


def worker(base: str, tokens: list[str], args: argparse.Namespace, conn: Connection) -> None:
    raise_nofile()
    stats = asyncio.run(interviews(base, tokens, args, conn))
    conn.send(stats)


# --- the baseline: the fake read directly with the SDK -----------------------------------------


async def baseline(fake_url: str, count: int, args: argparse.Namespace) -> Stats:
    import openai

    stats = Stats()
    nominal = args.first_token_delay + (len(FEEDBACK_PREFIX) // args.chunk_chars) * args.token_delay
    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=fake_url + "/v1", max_retries=0)
    user = (
        "Level: intern\n<key_points>\n- Хеш-функция отображает ключ в индекс корзины\n"
        "- Коллизии решаются цепочками\n</key_points>\n<candidate_answer>\nКлюч в индекс "
        "корзины.\n</candidate_answer>"
    )

    async def one(into: Stats, ramp: float) -> None:
        await asyncio.sleep(random.uniform(0, ramp))
        sent = time.monotonic()
        # The request the product makes (chunks as dicts, no pydantic model per chunk).
        stream = await client.post(
            "/chat/completions",
            body={
                "model": "gpt-4o",
                "stream": True,
                "stream_options": {"include_usage": True},
                "messages": [
                    {"role": "system", "content": "Оцените ответ <candidate_answer>."},
                    {"role": "user", "content": user},
                ],
            },
            cast_to=object,
            stream=True,
            stream_cls=openai.AsyncStream[object],
        )
        decoder = FieldStream("feedback")
        last: float | None = None
        async for chunk in stream:
            assert isinstance(chunk, dict)
            choices = chunk.get("choices") or [{}]
            content = (choices[0].get("delta") or {}).get("content")
            if not content or not decoder.feed(content):
                continue
            now = time.monotonic()
            into.deltas += 1
            if last is None:
                into.first.append(now - sent - nominal)
            else:
                into.gaps.append(now - last)
            last = now
        into.answers += 1

    await one(Stats(), ramp=0)  # warm the client up (the SDK builds its types on first use)
    try:
        results = await asyncio.gather(
            *(one(stats, args.ramp) for _ in range(count)), return_exceptions=True
        )
        stats.errors += [repr(r)[:200] for r in results if isinstance(r, BaseException)]
    finally:
        await client.close()
    return stats


# --- the run -----------------------------------------------------------------------------------


def report(name: str, stats: Stats, cpu: float | None) -> None:
    ms = 1000
    line = (
        f"{name:<34} answers {stats.answers:>5}  first-delta overhead p50 "
        f"{pct(stats.first, 50) * ms:7.1f} ms  p99 {pct(stats.first, 99) * ms:7.1f} ms  "
        f"inter-arrival p50 {pct(stats.gaps, 50) * ms:6.1f} ms  "
        f"p99 {pct(stats.gaps, 99) * ms:6.1f} ms"
    )
    if cpu is not None and stats.deltas:
        line += f"  CPU {cpu / (stats.deltas / 1000):.3f} s/1k tokens"
    print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--interviews", type=int, default=1000)
    parser.add_argument("--answers", type=int, default=2, help="answers per interview")
    parser.add_argument("--procs", type=int, default=1, help="load generator processes")
    parser.add_argument("--fake-procs", type=int, default=1, help="fake OpenAI processes")
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--first-token-delay", type=float, default=0.2)
    parser.add_argument("--chunk-chars", type=int, default=4)
    parser.add_argument("--ramp", type=float, default=1.0, help="spread the first answers (s)")
    parser.add_argument("--keep", action="store_true", help="keep the logs and data directory")
    args = parser.parse_args()
    raise_nofile()

    tmp = tempfile.mkdtemp(prefix="bench-llm-")
    with contextlib.ExitStack() as cleanup:
        if not args.keep:
            cleanup.callback(shutil.rmtree, tmp, ignore_errors=True)
        data = Path(tmp)
        # A real MongoDB when MONGODB_URL is set (as in the tests); else the embedded store.
        mongo_url = os.environ.get("MONGODB_URL", "")
        mongo = None if mongo_url else EmbeddedMongo(data / "mongo")
        if mongo is not None:
            mongo.start()
            mongo_url = mongo.url
        fake_port, app_port = free_port(), free_port()
        fake_url, base = f"http://127.0.0.1:{fake_port}", f"http://127.0.0.1:{app_port}"
        fake_cmd = [
            sys.executable,
            "-m",
            "tests.fakes.openai_server",
            "--port",
            str(fake_port),
            "--token-delay",
            str(args.token_delay),
            "--first-token-delay",
            str(args.first_token_delay),
            "--chunk-chars",
            str(args.chunk_chars),
            "--reuse-port",
        ]
        try:
            with contextlib.ExitStack() as stack:
                fakes = [
                    stack.enter_context(process(fake_cmd, dict(os.environ), data / f"fake{i}.log"))
                    for i in range(args.fake_procs)
                ]
                app = stack.enter_context(
                    process(
                        [sys.executable, "-m", "core.cli", "run"],
                        app_env(args, app_port, fake_url, mongo_url, data),
                        data / "app.log",
                    )
                )
                wait_http(base + "/health/live", app)
                for fake in fakes:
                    if fake.poll() is not None:
                        raise RuntimeError("the fake OpenAI server exited")
                run(args, base, fake_url, mongo_url, app, fakes, data)
        finally:
            if mongo is not None:
                mongo.stop()


def run(
    args: argparse.Namespace,
    base: str,
    fake_url: str,
    mongo_url: str,
    app: subprocess.Popen[bytes],
    fakes: list[subprocess.Popen[bytes]],
    data: Path,
) -> None:
    n = args.interviews
    print(
        f"{n} interviews x {args.answers} answers; the fake streams {args.chunk_chars}-character "
        f"tokens every {args.token_delay * 1000:.0f} ms after {args.first_token_delay * 1000:.0f} "
        f"ms; {args.procs} load process(es), {args.fake_procs} fake process(es), "
        f"{os.cpu_count()} CPUs"
    )
    fake_procs = [psutil.Process(f.pid) for f in fakes]

    def cpu(procs: list[psutil.Process]) -> float:
        return float(sum(p.cpu_times().user + p.cpu_times().system for p in procs))

    base_stats = asyncio.run(baseline(fake_url, n, args))
    report("baseline: SDK straight to the fake", base_stats, None)

    started = time.monotonic()
    warm_token, *tokens = asyncio.run(make_users(base, n + 1, mongo_url))
    print(f"(set up {n} users in {time.monotonic() - started:.1f} s)")
    # One answer first: the server's SDK client and code paths warm up outside the figures.
    warm = argparse.Namespace(**{**vars(args), "answers": 1, "ramp": 0.0})
    asyncio.run(interviews(base, [warm_token], warm, None))

    ctx = mp.get_context("spawn")
    parts = [tokens[i :: args.procs] for i in range(args.procs)]
    pipes: list[Connection] = []
    workers = []
    for part in parts:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=worker, args=(base, part, args, child), daemon=True)
        proc.start()
        pipes.append(parent)
        workers.append(proc)
    for pipe in pipes:
        if pipe.recv() != "ready":
            raise RuntimeError("a load worker failed to start")
    server = psutil.Process(app.pid)
    cpu_before, fake_before = cpu([server]), cpu(fake_procs)
    load_before = cpu([psutil.Process(w.pid) for w in workers if w.pid is not None])
    wall = time.monotonic()
    for pipe in pipes:
        pipe.send("go")
    total = Stats()
    for pipe in pipes:
        total.merge(pipe.recv())
    wall = time.monotonic() - wall
    server_cpu = cpu([server]) - cpu_before
    fake_cpu = cpu(fake_procs) - fake_before
    load_cpu = (
        sum(
            p.cpu_times().user + p.cpu_times().system
            for p in (psutil.Process(w.pid) for w in workers if w.pid is not None)
        )
        - load_before
    )
    for proc in workers:
        proc.join(10)

    report("product: answer -> socket", total, server_cpu)
    print(
        f"  of which answer -> answer.accepted (the answer persisted) p50 "
        f"{pct(total.stored, 50) * 1000:.1f} ms p99 {pct(total.stored, 99) * 1000:.1f} ms; "
        f"answer.accepted -> first delta, minus the fake's delay p50 "
        f"{pct(total.after_store, 50) * 1000:.1f} ms p99 {pct(total.after_store, 99) * 1000:.1f} ms"
    )
    print(
        f"  {total.deltas} feedback.delta frames in {wall:.1f} s "
        f"({total.deltas / wall:.0f}/s); sources {total.sources}; "
        f"CPU s: server {server_cpu:.1f}, fake {fake_cpu:.1f}, load generator {load_cpu:.1f}"
    )
    if total.errors or base_stats.errors:
        print(f"  errors: {len(total.errors)} (e.g. {(total.errors or base_stats.errors)[:3]})")
    if args.keep:
        print(f"  (logs and data kept in {data})")


if __name__ == "__main__":
    main()
