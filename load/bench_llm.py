"""Benchmark (`make bench-llm`): model feedback streamed over the socket to many interviews.

Starts the local OpenAI-speaking server (tests/fakes/openai_server.py: a token every 20 ms by
default), the SecantusDB server (or uses MONGODB_URL) and the product pointed at both, then
drives N concurrent interviews over WebSockets and measures:

- answer sent -> first `feedback.delta` received, minus the fake's own delay before the first
  character of feedback (its first-token delay plus the tokens that open the JSON);
- the gap between consecutive `feedback.delta` frames of one answer;
- the product's CPU per 1,000 streamed tokens.

The baseline, in the same run: the same number of streams read straight from the fake with the
OpenAI SDK, no product in between. Figures are printed beside it, never asserted.

    .venv/bin/python -m load.bench_llm              # 1,000 interviews
    .venv/bin/python -m load.bench_llm --quick      # 100 interviews, one answer each
    .venv/bin/python -m load.bench_llm -n 200 --procs 2
    MONGODB_URL=mongodb://... .venv/bin/python -m load.bench_llm   # a real MongoDB
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import socket
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from load.clients import Interview, answer
from load.harness import (
    COVERAGE_VARIABLE,
    HOST,
    MongoServer,
    Process,
    ProductNode,
    free_port,
    inherited_env,
    product_env,
    raise_nofile,
)
from load.measure import (
    RAISED_LIMITS,
    RESULTS,
    Meter,
    Row,
    Table,
    Workers,
    describe_machine,
    log,
    machine,
    ms,
    percentile,
    ratio,
    split,
    write_results,
)
from load.users import register_users, start_interviews

FAKE_API_KEY = "sk-fake-openai-test-key"  # the key tests/fakes/openai_server.py accepts
FEEDBACK_PREFIX = '{"feedback": "'  # how the fake's JSON opens, before the first feedback char


@dataclass
class Options:
    interviews: int = 1000
    answers: int = 2
    procs: int = 1
    fake_procs: int = 1
    token_delay: float = 0.02
    first_token_delay: float = 0.2
    chunk_chars: int = 4
    ramp: float = 1.0  # the first answers spread over this many seconds

    @property
    def nominal_delay(self) -> float:
        """The fake's own delay before the first character of feedback."""
        tokens = len(FEEDBACK_PREFIX) // self.chunk_chars
        return self.first_token_delay + tokens * self.token_delay


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


# --- the product: interviews in worker processes -----------------------------------------------


@dataclass
class StreamLoad:
    """One worker's interviews: opened by `open`, answered all at once by `answer_all`."""

    options: Options
    sessions: list[Interview] = field(default_factory=list)

    async def open(self, url: str, tickets: list[tuple[str, str]]) -> dict[str, Any]:
        gate = asyncio.Semaphore(64)
        errors: list[str] = []

        async def one(token: str, interview_id: str) -> None:
            async with gate:
                try:
                    self.sessions.append(await Interview.join(url, token, interview_id))
                except Exception as exc:  # counted and reported
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])

        await asyncio.gather(*(one(*t) for t in tickets))
        return {"opened": len(self.sessions), "errors": errors}

    async def answer_all(self) -> Stats:
        stats = Stats()
        nominal = self.options.nominal_delay

        async def one(index: int, live: Interview) -> None:
            await asyncio.sleep(random.uniform(0, self.options.ramp))
            for n in range(self.options.answers):
                text = (
                    f"Ответ {index}-{n}-{uuid.uuid4().hex[:6]}: хеш-таблица отображает ключ в "
                    "индекс корзины, коллизии решаются цепочками, поиск в среднем за O(1)."
                )
                sent = accepted = time.monotonic()
                await live.ws.send(answer(live.question["questionId"], text=text))
                last: float | None = None
                while True:
                    frame = await live.frame(120)
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
                        source = str(frame["source"])
                        stats.sources[source] = stats.sources.get(source, 0) + 1
                        break
                while n + 1 < self.options.answers:
                    frame = await live.frame()
                    if frame["type"] == "question":
                        live.question = frame
                        break

        results = await asyncio.gather(
            *(one(i, live) for i, live in enumerate(self.sessions)), return_exceptions=True
        )
        stats.errors += [
            f"{type(r).__name__}: {r}"[:200] for r in results if isinstance(r, BaseException)
        ]
        return stats

    async def shutdown(self) -> None:
        await asyncio.gather(*(s.ws.close() for s in self.sessions), return_exceptions=True)


class StreamLoadFactory:
    def __init__(self, options: Options) -> None:
        self.options = options

    def __call__(self) -> StreamLoad:
        return StreamLoad(self.options)


# --- the baseline: the fake read directly with the SDK -------------------------------------------


class FeedbackField:
    """The characters of the `feedback` string in a JSON text that arrives in pieces."""

    OPENING = re.compile(r'"feedback"\s*:\s*"')

    def __init__(self) -> None:
        self.buffer = ""
        self.state = "seek"  # seek -> inside -> done
        self.escaped = False

    def feed(self, piece: str) -> int:
        """How many characters of the field `piece` carried."""
        if self.state == "seek":
            self.buffer += piece
            found = self.OPENING.search(self.buffer)
            if found is None:
                return 0
            self.state = "inside"
            piece, self.buffer = self.buffer[found.end() :], ""
        count = 0
        for char in piece if self.state == "inside" else "":
            if self.escaped:
                self.escaped = False
            elif char == "\\":
                self.escaped = True
                continue
            elif char == '"':
                self.state = "done"
                break
            count += 1
        return count


async def baseline(fake_url: str, options: Options) -> Stats:
    import openai

    stats = Stats()
    client = openai.AsyncOpenAI(api_key=FAKE_API_KEY, base_url=fake_url + "/v1", max_retries=0)
    user = (
        "Level: intern\n<key_points>\n- Хеш-функция отображает ключ в индекс корзины\n"
        "- Коллизии решаются цепочками\n</key_points>\n<candidate_answer>\nКлюч в индекс "
        "корзины.\n</candidate_answer>"
    )

    async def one(into: Stats, ramp: float) -> None:
        await asyncio.sleep(random.uniform(0, ramp))
        sent = time.monotonic()
        # The request the product makes, read as it reads it (chunks as dicts, no model
        # object per chunk).
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
        field_chars = FeedbackField()
        last: float | None = None
        async for chunk in stream:
            if not isinstance(chunk, dict):
                raise RuntimeError(f"unexpected chunk {chunk!r}")
            choices = chunk.get("choices") or [{}]
            content = (choices[0].get("delta") or {}).get("content")
            if not content or not field_chars.feed(content):
                continue
            now = time.monotonic()
            into.deltas += 1
            if last is None:
                into.first.append(now - sent - options.nominal_delay)
            else:
                into.gaps.append(now - last)
            last = now
        into.answers += 1

    await one(Stats(), ramp=0)  # warm the client up (the SDK builds its types on first use)
    try:
        results = await asyncio.gather(
            *(one(stats, options.ramp) for _ in range(options.interviews)),
            return_exceptions=True,
        )
        stats.errors += [repr(r)[:200] for r in results if isinstance(r, BaseException)]
    finally:
        await client.close()
    return stats


# --- the run -------------------------------------------------------------------------------------


class FakeOpenAI(Process):
    """The OpenAI-speaking fake, ready once it accepts connections."""

    def __init__(self, port: int, options: Options, log: Path) -> None:
        self.port = port
        args = [sys.executable, "-m", "tests.fakes.openai_server", "--port", str(port)]
        args += ["--token-delay", str(options.token_delay)]
        args += ["--first-token-delay", str(options.first_token_delay)]
        args += ["--chunk-chars", str(options.chunk_chars), "--reuse-port"]
        super().__init__("the fake OpenAI", args, env=inherited_env([COVERAGE_VARIABLE]), log=log)

    def ready(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.5):
            return True
        return False


def run(options: Options, tmp: Path, mongo_url: str) -> dict[str, Any]:
    fake_port = free_port()
    fake_url = f"http://{HOST}:{fake_port}"
    fakes = [
        FakeOpenAI(fake_port, options, tmp / f"fake{i}.log") for i in range(options.fake_procs)
    ]
    settings = {
        **RAISED_LIMITS,
        "APP_ENV": "development",
        "DATA_DIR": str(tmp / "product"),
        "MONGODB_URL": mongo_url,
        "MONGODB_DB": f"bench_llm_{uuid.uuid4().hex[:8]}",
        "OPENAI_API_KEY": FAKE_API_KEY,
        "OPENAI_BASE_URL": fake_url + "/v1",
        "OPENAI_DAILY_TOKEN_BUDGET": str(10**12),
        "BCRYPT_ROUNDS": "4",
        "QUESTIONS_PER_INTERVIEW": str(options.answers),
    }
    product = ProductNode("bench-llm", product_env(settings), tmp / "product.log")
    results: dict[str, Any] = {}
    try:
        for fake in fakes:
            fake.start()
        product.start()
        log("baseline: the SDK straight to the fake")
        results["baseline"] = asdict(asyncio.run(baseline(fake_url, options)))

        started = time.monotonic()
        accounts = asyncio.run(
            register_users(product.url, options.interviews + 1, outbox=tmp / "product" / "outbox")
        )
        asyncio.run(start_interviews(product.url, accounts, level="intern"))
        log(f"{options.interviews} users set up in {time.monotonic() - started:.1f} s")
        url = f"ws://{product.address}/ws/v1/interview"
        tickets = [(a.token, a.interview_id) for a in accounts]
        warm, tickets = tickets[:1], tickets[1:]
        # One answer first: the product's SDK client and code paths warm up outside the figures.
        with Workers(1, StreamLoadFactory(Options(**{**asdict(options), "answers": 1}))) as w:
            w.call("open", [{"url": url, "tickets": warm}], 120)
            w.call("answer_all", [{}], 300)

        with Workers(options.procs, StreamLoadFactory(options)) as workers:
            parts = split(tickets, options.procs)
            opened = workers.call("open", [{"url": url, "tickets": p} for p in parts], 600)
            meter = Meter(
                {
                    "product": [product.tree],
                    "fake": [f.tree for f in fakes],
                    "clients": workers.trees,
                }
            )
            a = meter.sample()
            stats = workers.call("answer_all", [{}] * len(parts), 900)
            b = meter.sample()
        total = Stats()
        for part in stats:
            total.merge(part)
        total.errors += [e for r in opened for e in r["errors"]]
        wall = b.at - a.at
        results["product"] = asdict(total)
        results["wall_s"] = wall
        results["cpu_s"] = {k: b.cpu[k] - a.cpu[k] for k in a.cpu}
        product.check()
    finally:
        product.stop()
        for fake in fakes:
            fake.stop()
    return results


def table(results: dict[str, Any]) -> Table:
    base, prod = results["baseline"], results["product"]
    cpu = results["cpu_s"]["product"]

    def pair(values: list[float]) -> str:
        return f"{ms(percentile(values, 50) * 1000)} / {ms(percentile(values, 99) * 1000)}"

    t = Table(("SDK to the fake",), "product")
    t.add(
        Row(
            "answers streamed",
            (str(base["answers"]),),
            str(prod["answers"]),
        ),
        Row(
            "first-delta overhead p50 / p99",
            (pair(base["first"]),),
            pair(prod["first"]),
            ratio(percentile(prod["first"], 99), percentile(base["first"], 99)),
        ),
        Row(
            "delta inter-arrival p50 / p99",
            (pair(base["gaps"]),),
            pair(prod["gaps"]),
            ratio(percentile(prod["gaps"], 99), percentile(base["gaps"], 99)),
        ),
        Row("answer -> answer.accepted p50 / p99", product=pair(prod["stored"])),
        Row(
            "answer.accepted -> first delta, minus the fake's delay",
            product=pair(prod["after_store"]),
        ),
        Row(
            "server CPU per 1,000 streamed tokens",
            product=f"{cpu / (prod['deltas'] / 1000):.3f} s" if prod["deltas"] else "-",
        ),
        Row(
            "feedback.delta frames / s",
            product=f"{prod['deltas'] / results['wall_s']:.0f}",
        ),
        Row("errors", (str(len(base["errors"])),), str(len(prod["errors"])), target="0"),
    )
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="100 interviews, one answer each")
    parser.add_argument("-n", "--interviews", type=int)
    parser.add_argument("--answers", type=int, help="answers per interview (default 2)")
    parser.add_argument("--procs", type=int, default=1, help="client processes")
    parser.add_argument("--fake-procs", type=int, default=1, help="fake OpenAI processes")
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--first-token-delay", type=float, default=0.2)
    parser.add_argument("--chunk-chars", type=int, default=4)
    parser.add_argument("--ramp", type=float, default=1.0, help="spread the first answers (s)")
    parser.add_argument("--out", type=Path, default=RESULTS / "bench-llm.json")
    args = parser.parse_args(argv)
    options = Options(
        interviews=args.interviews or (100 if args.quick else 1000),
        answers=args.answers or (1 if args.quick else 2),
        procs=args.procs,
        fake_procs=args.fake_procs,
        token_delay=args.token_delay,
        first_token_delay=args.first_token_delay,
        chunk_chars=args.chunk_chars,
        ramp=args.ramp,
    )
    raise_nofile()
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "options": asdict(options)}
    print(
        f"{options.interviews} interviews x {options.answers} answers; the fake streams "
        f"{options.chunk_chars}-character tokens every {options.token_delay * 1000:.0f} ms after "
        f"{options.first_token_delay * 1000:.0f} ms; {options.procs} client process(es), "
        f"{options.fake_procs} fake process(es)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as tmp_name:
        tmp = Path(tmp_name)
        # A real MongoDB when MONGODB_URL is set (as in the tests); else SecantusDB.
        mongo_url = os.environ.get("MONGODB_URL", "")
        if mongo_url:
            results.update(run(options, tmp, mongo_url))
        else:
            with MongoServer(tmp / "mongo", tmp / "mongo.log") as mongo:
                mongo.start()
                results.update(run(options, tmp, mongo.url))
    results["seconds"] = round(time.monotonic() - started, 1)
    print()
    print(f"bench-llm: {describe_machine(results['machine'])}; {results['seconds']:.0f} s")
    print()
    print(table(results).render())
    cpu = results["cpu_s"]
    print(
        f"\nCPU seconds while streaming: product {cpu['product']:.1f}, fake {cpu['fake']:.1f}, "
        f"clients {cpu['clients']:.1f}; sources {results['product']['sources']}"
    )
    errors = results["product"]["errors"] or results["baseline"]["errors"]
    if errors:
        print(f"errors, e.g.: {errors[:3]}")
    print(f"wrote {write_results(results, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
