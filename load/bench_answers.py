"""Server CPU per answer and per 1,000 characters of streamed feedback, with the in-process bus
and with Redis, beside the bare websockets echo server's CPU per round trip in the same run.

    .venv/bin/python -m load.bench_answers [--interviews 40] [--profile load/results]

Each interview is answered question by question over one socket, the local evaluator streaming
instantly (LOCAL_EVALUATOR_DELAY_SEC=0), a few interviews at a time so that the machine is not
the limit. The product node's CPU (its process tree, not SecantusDB's, not Redis') is read
before and after; with `--profile` py-spy samples the node meanwhile and the top frames are
written beside the results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from load.baselines import BaselineServer
from load.clients import Interview, answer
from load.harness import MongoServer, ProductNode, RedisServer, raise_nofile
from load.measure import (
    Row,
    Table,
    describe_machine,
    machine,
    median,
    ratio,
    verdict,
    write_results,
)
from load.users import Account, register_users, start_interviews

TARGET_MS_PER_ANSWER = 5.0
TARGET_MS_PER_1000_CHARS = 5.0
ECHO_ROUND_TRIPS = 2000


async def _prepare(base: str, outbox: Path, count: int) -> list[Account]:
    """Users with an interview started each: set up before the measured window."""
    accounts = await register_users(base, count, outbox=outbox)
    await start_interviews(base, accounts)
    return accounts


async def _run_interviews(
    url: str, accounts: list[Account], parallel: int, deflate: bool
) -> dict[str, int]:
    totals = {"answers": 0, "chars": 0, "deltas": 0, "seq_errors": 0}
    gate = asyncio.Semaphore(parallel)

    async def one(token: str, interview_id: str) -> None:
        async with gate:
            live = await Interview.join(url, token, interview_id, deflate=deflate)
            try:
                while True:
                    await live.ws.send(answer(live.question["questionId"]))
                    while True:
                        frame = await live.frame()
                        if frame["type"] == "feedback.delta":
                            totals["deltas"] += 1
                        elif frame["type"] == "feedback.done":
                            totals["answers"] += 1
                            totals["chars"] += len(frame["feedback"])
                        elif frame["type"] == "question":
                            live.question = frame
                            break
                        elif frame["type"] == "interview.completed":
                            return
                        elif frame["type"] == "error":
                            raise RuntimeError(f"refused: {frame}")
            finally:
                totals["seq_errors"] += len(live.seq_errors)
                await live.ws.close()

    await asyncio.gather(*(one(a.token, a.interview_id) for a in accounts))
    return totals


def _echo_cpu_per_round_trip(tmp: Path) -> float:
    """CPU seconds of the bare websockets echo server per round trip of a small frame."""
    from websockets.sync.client import connect

    with BaselineServer("echo", tmp / "echo.log") as echo:
        echo.start()
        with connect(f"ws://127.0.0.1:{echo.port}/ws/v1/interview") as ws:
            ws.send("warm-up")
            ws.recv()
            before = echo.tree.cpu_seconds()
            frame = json.dumps({"type": "ping", "nonce": "x" * 32})
            for _ in range(ECHO_ROUND_TRIPS):
                ws.send(frame)
                ws.recv()
            return (echo.tree.cpu_seconds() - before) / ECHO_ROUND_TRIPS


def _profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--output",
            str(out),
            "--rate",
            "200",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _top_frames(raw: Path, count: int = 20) -> list[tuple[str, float]]:
    """Inclusive share of the busy samples per function (idle waits left out): where the CPU
    goes, from py-spy's collapsed stacks."""
    inclusive: dict[str, int] = {}
    busy = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        if not stack or "select (selectors.py" in frames[-1] or "_worker (" in stack:
            continue  # the event loop or a worker thread waiting for work
        n = int(samples)
        busy += n
        for name in set(frames):
            inclusive[name] = inclusive.get(name, 0) + n
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])[:count]
    return [(name, n / busy) for name, n in ranked] if busy else []


def measure(tmp: Path, label: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    with MongoServer(tmp / f"mongo-{label}", tmp / f"mongo-{label}.log") as mongo:
        mongo.start()
        data_dir = tmp / f"data-{label}"
        node_env = {
            "MONGODB_URL": mongo.url,
            "MONGODB_DB": "bench",
            "DATA_DIR": str(data_dir),
            "LOCAL_EVALUATOR_DELAY_SEC": "0",
            "BCRYPT_ROUNDS": "4",
            "RATE_LIMIT_AUTH_IP": "100000/60",
            "RATE_LIMIT_GLOBAL_IP": "1000000/60",
            "RATE_LIMIT_USER": "1000000/60",
            "FREE_INTERVIEWS_PER_MONTH": "1000",
            **env,
        }
        with ProductNode(label, node_env, tmp / f"node-{label}.log") as node:
            node.start()
            url = f"ws://{node.address}/ws/v1/interview"
            deflate = not args.no_deflate
            outbox = data_dir / "outbox"
            # A first round warms the node up (imports, caches, the question bank).
            warm = asyncio.run(_prepare(node.url, outbox, 2))
            asyncio.run(_run_interviews(url, warm, 2, deflate))
            accounts = asyncio.run(_prepare(node.url, outbox, args.interviews))
            raw = args.profile / f"bench_answers-{label}.collapsed" if args.profile else None
            profiler = _profile(node.pid, raw) if raw else None
            before = node.tree.cpu_seconds()
            started = time.monotonic()
            totals = asyncio.run(_run_interviews(url, accounts, args.parallel, deflate))
            wall = time.monotonic() - started
            cpu = node.tree.cpu_seconds() - before
            top: list[tuple[str, float]] = []
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its file on an interrupt
                profiler.wait(timeout=60)
                assert raw is not None
                top = _top_frames(raw)
    # The window holds the sockets' hello and welcome besides the answers: the figure is an
    # upper bound of an answer's own cost.
    answers = max(1, totals["answers"])
    return {
        **totals,
        "wall_s": wall,
        "cpu_s": cpu,
        "ms_per_answer": cpu / answers * 1000,
        "ms_per_1000_chars": cpu / max(1, totals["chars"]) * 1_000_000,
        "chars_per_answer": totals["chars"] / answers,
        "deltas_per_answer": totals["deltas"] / answers,
        "top_frames": top,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interviews", type=int, default=40)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--no-deflate", action="store_true", help="clients offer no compression")
    parser.add_argument("--profile", type=Path, help="write py-spy's top frames here")
    parser.add_argument("--out", type=Path, default=Path("load/results"))
    args = parser.parse_args(argv)
    raise_nofile()
    results: dict[str, Any] = {"machine": machine(), "config": vars(args) | {"out": str(args.out)}}
    print(describe_machine(results["machine"]))
    with tempfile.TemporaryDirectory(prefix="bench-answers-") as name:
        tmp = Path(name)
        echo = [_echo_cpu_per_round_trip(tmp) for _ in range(3)]
        results["echo_ms_per_round_trip"] = median(echo) * 1000
        results["memory"] = measure(tmp, "memory", {}, args)
        with RedisServer(tmp / "redis.log") as redis:
            redis.start()
            results["redis"] = measure(tmp, "redis", {"REDIS_URL": redis.url}, args)
    mem, red = results["memory"], results["redis"]
    echo_ms = results["echo_ms_per_round_trip"]
    table = Table(baselines=("echo, per round trip",), product="in-process bus / Redis")

    def pair(key: str, fmt: str = "{:.2f}") -> str:
        return f"{fmt.format(mem[key])} / {fmt.format(red[key])}"

    table.add(
        Row(
            "server CPU per answer incl. its feedback, ms",
            (f"{echo_ms:.3f}",),
            pair("ms_per_answer"),
            ratio(red["ms_per_answer"], echo_ms, 0),
            f"<= {TARGET_MS_PER_ANSWER}",
            verdict(max(mem["ms_per_answer"], red["ms_per_answer"]) <= TARGET_MS_PER_ANSWER),
        ),
        Row(
            "server CPU per 1,000 characters of feedback, ms",
            (),
            pair("ms_per_1000_chars"),
            "",
            f"<= {TARGET_MS_PER_1000_CHARS}",
            verdict(
                max(mem["ms_per_1000_chars"], red["ms_per_1000_chars"]) <= TARGET_MS_PER_1000_CHARS
            ),
        ),
        Row("feedback characters per answer", (), pair("chars_per_answer", "{:.0f}")),
        Row("delta frames per answer", (), pair("deltas_per_answer", "{:.1f}")),
        Row("answers / seq errors", (), f"{pair('answers', '{}')} / {pair('seq_errors', '{}')}"),
    )
    print(table.render())
    for label in ("memory", "redis"):
        if results[label]["top_frames"]:
            print(f"\npy-spy, {label}: share of the busy samples under each function")
            for frame, share in results[label]["top_frames"]:
                print(f"  {share:6.1%}  {frame}")
    print(f"\nresults: {write_results(results, args.out / 'bench_answers.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
