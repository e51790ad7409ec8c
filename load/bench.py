"""The benchmark: the engine against a bare `websockets` echo server, under one load generator.

    .venv/bin/python -m load.bench            # the full run (`make bench`), under ~10 minutes
    .venv/bin/python -m load.bench --quick    # a smoke run with everything scaled down

In one run on this machine it starts the echo server (`load/echo_server.py`) and the product
(`python -m core.cli run`, embedded defaults, a temporary DATA_DIR, the instant local evaluator,
BCRYPT_ROUNDS=4 so that setting users up is quick), and measures with the same generator
(`load/generator.py`: asyncio `websockets` and HTTP/1.1 clients in worker processes):

(a) round trips at a fixed concurrency (and the latency curve over several): a text frame echoed,
    against `ping` -> `pong` on authenticated interview sockets;
(b) memory per idle socket: the server's RSS delta over N open sockets (engine: after welcome);
(c) answer -> first `feedback.delta` at 1,000 concurrent interviews;
(d) REST login, me and history at 1,000 concurrent users, and the login rate at bcrypt cost 12
    (production's) on a second product process.

It prints a table with the figures, their ratios and the targets, and writes the numbers as JSON
and a plot (latency against concurrency) under load/results/. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from load.common import (
    HOST,
    LOAD_DB,
    LOAD_PEPPER,
    PASSWORD,
    ROOT,
    Server,
    cpu_seconds,
    echo_server,
    embedded_mongo_url,
    latency_summary,
    machine,
    product,
    raise_nofile,
)
from load.generator import Generator, Session, shares, split
from load.report import render_table, write_plot
from load.users import create_users

RESULTS = ROOT / "load" / "results"


@dataclass
class Config:
    procs: int = 2
    users: int = 1000  # users with one interview each: the REST users and the interviews
    levels: list[int] = field(default_factory=lambda: [10, 50, 200, 500])
    fixed: int = 200  # the concurrency of the headline round-trip figures
    repeats: int = 3
    warmup: float = 0.5
    measure: float = 2.5
    idle_sockets: int = 10_000
    interviews: int = 1000
    questions: int = 3
    answer_think: float = 60.0  # mean seconds between an interview's answers
    answer_duration: float = 60.0
    rest_users: int = 1000
    rest_think: float = 30.0  # mean seconds between a REST user's requests
    rest_warmup: float = 3.0
    rest_measure: float = 20.0
    login_concurrency: int = 8
    login_measure: float = 10.0
    deflate: bool = True
    phases: str = "abcd"

    @classmethod
    def quick(cls) -> Config:
        return cls(
            users=200,
            levels=[10, 200],
            repeats=1,
            measure=2.0,
            idle_sockets=1000,
            interviews=200,
            questions=2,
            answer_think=12.0,
            answer_duration=12.0,
            rest_users=200,
            rest_think=6.0,
            rest_warmup=2.0,
            rest_measure=5.0,
            login_measure=4.0,
        )


# --- measuring CPU -------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    cpu: dict[str, float]
    busy: float  # every CPU's non-idle seconds, whoever spent them


class Meter:
    """CPU seconds of named groups of processes, and of the whole machine."""

    def __init__(self, groups: dict[str, list[psutil.Process]]) -> None:
        self.groups = groups

    def sample(self) -> Sample:
        t = psutil.cpu_times()
        # guest time is already inside user time; iowait is idle
        busy = t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)
        return Sample(time.monotonic(), {k: cpu_seconds(v) for k, v in self.groups.items()}, busy)

    @staticmethod
    def cores(a: Sample, b: Sample) -> dict[str, float]:
        """Cores each group kept busy between two samples; `others` is everyone else."""
        wall = max(b.t - a.t, 1e-9)
        used = {k: (b.cpu[k] - a.cpu[k]) / wall for k in a.cpu}
        used["machine"] = (b.busy - a.busy) / wall
        used["others"] = max(
            0.0, used["machine"] - sum(v for k, v in used.items() if k != "machine")
        )
        return {k: round(v, 3) for k, v in used.items()}


def _procs(*pids: int) -> list[psutil.Process]:
    return [psutil.Process(pid) for pid in pids]


# --- phases --------------------------------------------------------------------------------------


class Bench:
    def __init__(self, config: Config, gen: Generator, echo: Server, engine: Server) -> None:
        self.c = config
        self.gen = gen
        self.echo = echo
        self.engine = engine
        self.sessions: list[Session] = []
        self.meter = Meter(
            {
                "echo": [echo.ps],
                "engine": [engine.ps],
                "engine_mongo": engine.children(),
                "generator": _procs(*gen.pids),
            }
        )

    @property
    def engine_http(self) -> str:
        return f"http://{HOST}:{self.engine.port}"

    def ws_url(self, server: Server) -> str:
        return f"ws://{HOST}:{server.port}" + ("/ws/v1/interview" if server is self.engine else "/")

    def per_worker(self, count: int) -> list[int]:
        return shares(count, self.c.procs)

    # --- setup -----------------------------------------------------------------------------------

    def setup_users(self) -> dict[str, Any]:
        """Verified users straight in MongoDB; each logs in and starts one interview."""
        t0 = time.monotonic()
        users = create_users(
            embedded_mongo_url(pid=self.engine.pid),
            LOAD_DB,
            self.c.users,
            pepper=LOAD_PEPPER,
            rounds=4,
            password=PASSWORD,
        )
        sessions = [Session(u["email"], u["password"]) for u in users]
        parts = split(sessions, self.c.procs)
        results = self.gen.call(
            "prepare",
            [{"base": self.engine_http, "sessions": part, "start": True} for part in parts],
            timeout=600,
        )
        self.sessions = [s for r in results for s in r["sessions"] if s.interview_id]
        failed = sum(r["failed"] for r in results)
        took = time.monotonic() - t0
        print(
            f"  {len(self.sessions)} users logged in with an interview each in {took:.1f} s"
            + (f" ({failed} failed: {results[0]['errors'][:1]})" if failed else "")
        )
        return {"users": len(self.sessions), "failed": failed, "seconds": round(took, 1)}

    # --- (b) memory per idle socket --------------------------------------------------------------

    def memory(self, server: Server, count: int) -> dict[str, Any]:
        engine = server is self.engine
        pool = "idle"
        server.check()
        rss0 = self._rss(server)
        parts = split(self.sessions, self.c.procs) if engine else [None] * self.c.procs
        t0 = time.monotonic()
        opened = self.gen.call(
            "open",
            [
                {"pool": pool, "url": self.ws_url(server), "count": n, "sessions": part}
                for n, part in zip(self.per_worker(count), parts, strict=True)
            ],
            timeout=900,
        )
        took = time.monotonic() - t0
        time.sleep(2.0)
        server.check()
        alive = sum(r["alive"] for r in self.gen.call("alive", [{"pool": pool}] * self.c.procs, 60))
        rss1 = self._rss(server)
        connect = [t for r in opened for t in r["connect"]]
        self.gen.call("close", [{"pool": pool}] * self.c.procs, timeout=600)
        failed = sum(r["failed"] for r in opened)
        errors = [e for r in opened for e in r["errors"]][:5]
        per_socket = (rss1 - rss0) / alive if alive else float("nan")
        print(
            f"  {'engine' if engine else 'echo'}: {alive} of {count} sockets open "
            f"(connected in {took:.1f} s), RSS {rss0 / 2**20:.1f} -> {rss1 / 2**20:.1f} MiB, "
            f"{per_socket / 1024:.1f} KiB per socket"
            + (f"; {failed} failed {errors[:1]}" if failed else "")
        )
        return {
            "target_sockets": count,
            "sockets": alive,
            "failed": failed,
            "errors": errors,
            "rss_before": rss0,
            "rss_after": rss1,
            "bytes_per_socket": per_socket,
            "connect": latency_summary(connect),
            "connect_seconds": round(took, 2),
        }

    @staticmethod
    def _rss(server: Server) -> float:
        samples = []
        for _ in range(3):
            samples.append(server.ps.memory_info().rss)
            time.sleep(0.3)
        return float(statistics.median(samples))

    # --- (a) round trips -------------------------------------------------------------------------

    def open_ping_pools(self) -> dict[str, Any]:
        top = max(self.c.levels)
        out: dict[str, Any] = {}
        for name, server in (("echo", self.echo), ("engine", self.engine)):
            parts = (
                split(self.sessions, self.c.procs)
                if server is self.engine
                else [None] * self.c.procs
            )
            results = self.gen.call(
                "open",
                [
                    {"pool": name, "url": self.ws_url(server), "count": n, "sessions": part}
                    for n, part in zip(self.per_worker(top), parts, strict=True)
                ],
                timeout=300,
            )
            out[name] = sum(r["opened"] for r in results)
            if out[name] < top:
                raise RuntimeError(
                    f"only {out[name]} of {top} {name} sockets opened: {results[0]['errors'][:1]}"
                )
        return out

    def ping(self, name: str, concurrency: int) -> dict[str, Any]:
        c = self.c
        start_at = time.time() + 0.3
        sent = self.gen.send(
            "ping",
            [
                {
                    "pool": name,
                    "count": n,
                    "start_at": start_at,
                    "warmup": c.warmup,
                    "measure": c.measure,
                }
                for n in self.per_worker(concurrency)
            ],
        )
        _sleep_until_wall(start_at + c.warmup)
        a = self.meter.sample()
        _sleep_until_wall(start_at + c.warmup + c.measure)
        b = self.meter.sample()
        results = self.gen.collect(sent, timeout=c.warmup + c.measure + 120)
        latencies = [x for r in results for x in r["latencies"]]
        cores = Meter.cores(a, b)
        rate = len(latencies) / c.measure
        server_cores = cores[name]
        return {
            "concurrency": concurrency,
            "round_trips_per_s": rate,
            **latency_summary(latencies),
            "server_cpu_us_per_round_trip": server_cores / rate * 1e6 if rate else float("nan"),
            "cores": cores,
            "generator_worker_cpu": [round(r["cpu"] / r["wall"], 3) for r in results],
            "failed": sum(r["failed"] for r in results),
            "unexpected": sum(r["unexpected"] for r in results),
        }

    def ping_sweep(self) -> dict[str, Any]:
        runs: dict[str, dict[int, list[dict[str, Any]]]] = {"echo": {}, "engine": {}}
        for rep in range(self.c.repeats):
            for level in self.c.levels:
                for name in ("echo", "engine"):
                    run = self.ping(name, level)
                    runs[name].setdefault(level, []).append(run)
                    print(
                        f"  [{rep + 1}/{self.c.repeats}] {name:>6} x{level:<4} "
                        f"{run['round_trips_per_s']:8.0f}/s  p50 {run['p50_ms']:7.2f} ms  "
                        f"p99 {run['p99_ms']:7.2f} ms  server {run['cores'][name]:.2f} cores, "
                        f"{run['server_cpu_us_per_round_trip']:.0f} us/rt; generator "
                        f"{run['cores']['generator']:.2f} cores (max worker "
                        f"{max(run['generator_worker_cpu']):.2f}); "
                        f"others {run['cores']['others']:.2f}"
                    )
        return {
            name: {
                str(level): {"median": _median_run(reps), "runs": reps}
                for level, reps in by.items()
            }
            for name, by in runs.items()
        }

    # --- (c) interviews --------------------------------------------------------------------------

    def interviews(self) -> dict[str, Any]:
        c = self.c
        sessions = self.sessions[: c.interviews]
        parts = split(sessions, c.procs)
        t0 = time.monotonic()
        opened = self.gen.call(
            "open_interviews",
            [{"pool": "answering", "url": self.ws_url(self.engine), "sessions": p} for p in parts],
            timeout=600,
        )
        n_open = sum(r["opened"] for r in opened)
        print(f"  {n_open} interview sockets open in {time.monotonic() - t0:.1f} s")
        start_at = time.time() + 0.5
        sent = self.gen.send(
            "interviews",
            [
                {
                    "pool": "answering",
                    "start_at": start_at,
                    "duration": c.answer_duration,
                    "think": c.answer_think,
                    "answers": c.questions,
                }
                for _ in parts
            ],
        )
        _sleep_until_wall(start_at)
        a = self.meter.sample()
        _sleep_until_wall(start_at + c.answer_duration)
        b = self.meter.sample()
        results = self.gen.collect(sent, timeout=c.answer_duration + 180)
        self.gen.call("close_interviews", [{"pool": "answering"}] * len(parts), timeout=300)
        answers = sum(r["answers"] for r in results)
        out = {
            "interviews": n_open,
            "answers": answers,
            "answers_per_s": answers / c.answer_duration,
            "completed": sum(r["completed"] for r in results),
            "accepted": latency_summary([x for r in results for x in r["accepted"]]),
            "first_delta": latency_summary([x for r in results for x in r["first_delta"]]),
            "done": latency_summary([x for r in results for x in r["done"]]),
            "seq_errors": sum(r["seq_error_count"] for r in results),
            "seq_error_examples": [e for r in results for e in r["seq_errors"]][:5],
            "failed": sum(r["failed"] for r in results) + sum(r["failed"] for r in opened),
            "errors": [e for r in results + opened for e in r["errors"]][:5],
            "cores": Meter.cores(a, b),
            "generator_worker_cpu": [round(r["cpu"] / r["wall"], 3) for r in results],
        }
        out["cpu_ms_per_answer"] = {
            k: out["cores"][k] * c.answer_duration / answers * 1000 if answers else float("nan")
            for k in ("engine", "engine_mongo")
        }
        print(
            f"  {answers} answers ({out['answers_per_s']:.0f}/s): answer -> first delta p50 "
            f"{out['first_delta']['p50_ms']:.1f} ms p99 {out['first_delta']['p99_ms']:.1f} ms; "
            f"seq errors {out['seq_errors']}, failures {out['failed']} {out['errors'][:1]}; "
            f"cores {out['cores']}"
        )
        return out

    # --- (d) REST --------------------------------------------------------------------------------

    def rest(
        self,
        base: str,
        sessions: list[Session],
        mix: dict[str, float],
        think: float,
        warmup: float,
        measure: float,
        server: str,
    ) -> dict[str, Any]:
        parts = split(sessions, self.c.procs)
        start_at = time.time() + 0.5
        sent = self.gen.send(
            "rest",
            [
                {
                    "base": base,
                    "sessions": p,
                    "start_at": start_at,
                    "warmup": warmup,
                    "measure": measure,
                    "think": think,
                    "mix": mix,
                }
                for p in parts
            ],
        )
        _sleep_until_wall(start_at + warmup)
        a = self.meter.sample()
        _sleep_until_wall(start_at + warmup + measure)
        b = self.meter.sample()
        results = self.gen.collect(sent, timeout=warmup + measure + 300)
        statuses: dict[str, int] = {}
        for r in results:
            for k, v in r["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
        by_name = {
            name: latency_summary([x for r in results for x in r["latencies"][name]])
            for name in mix
        }
        total = sum(s["n"] for s in by_name.values())
        cores = Meter.cores(a, b)
        out = {
            "users": len(sessions),
            "think_s": think,
            "requests_per_s": total / measure,
            "latency": by_name,
            "statuses": statuses,
            "cores": cores,
            "server_cores": cores.get(server, float("nan")),
            "cpu_ms_per_request": {
                k: cores[k] * measure / total * 1000 if total else float("nan")
                for k in (server, "engine_mongo")
                if k in cores
            },
            "generator_worker_cpu": [round(r["cpu"] / r["wall"], 3) for r in results],
        }
        summary = ", ".join(
            f"{n} p50/p95/p99 {s['p50_ms']:.1f}/{s['p95_ms']:.1f}/{s['p99_ms']:.1f} ms"
            for n, s in by_name.items()
        )
        print(
            f"  {len(sessions)} users, {out['requests_per_s']:.0f} req/s: {summary}; "
            f"{statuses}; cores {cores}"
        )
        return out


def _sleep_until_wall(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("round_trips_per_s", "p50_ms", "p95_ms", "p99_ms", "server_cpu_us_per_round_trip")
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["generator_cores"] = statistics.median(r["cores"]["generator"] for r in runs)
    out["max_generator_worker_cpu"] = max(max(r["generator_worker_cpu"]) for r in runs)
    out["others_cores"] = statistics.median(r["cores"]["others"] for r in runs)
    return out


# --- the run -------------------------------------------------------------------------------------


def login_rate(config: Config, gen: Generator, tmp: Path) -> dict[str, Any]:
    """Logins/s at production's bcrypt cost 12, on a product process of its own."""
    with product(tmp / "engine-cost12", {"BCRYPT_ROUNDS": "12"}) as app:
        app.start("/health/live")
        users = create_users(
            embedded_mongo_url(pid=app.pid),
            LOAD_DB,
            config.login_concurrency,
            pepper=LOAD_PEPPER,
            rounds=12,
            password=PASSWORD,
        )
        sessions = [Session(u["email"], u["password"]) for u in users]
        bench = Bench.__new__(Bench)
        bench.c, bench.gen = config, gen
        bench.meter = Meter({"engine12": [app.ps], "generator": _procs(*gen.pids)})
        out = bench.rest(
            f"http://{HOST}:{app.port}",
            sessions,
            {"login": 1.0},
            think=0.0,
            warmup=2.0,
            measure=config.login_measure,
            server="engine12",
        )
    lat = out["latency"]["login"]
    rate = lat["n"] / config.login_measure
    out["logins_per_s"] = rate
    out["logins_per_core_s"] = rate / out["server_cores"] if out["server_cores"] else float("nan")
    out["concurrency"] = config.login_concurrency
    print(
        f"  cost 12: {rate:.1f} logins/s on {out['server_cores']:.2f} cores = "
        f"{out['logins_per_core_s']:.1f} logins/s per core"
    )
    return out


def run(config: Config, label: str) -> dict[str, Any]:
    raise_nofile()
    started = time.monotonic()
    results: dict[str, Any] = {"label": label, "machine": machine(), "config": asdict(config)}
    print(
        f"{label}: {results['machine']['cpus']} x {results['machine']['cpu_model']}, Python "
        f"{results['machine']['python']}, load average {os.getloadavg()[0]:.1f}, "
        f"{config.procs} generator processes"
    )
    gen = Generator(config.procs, deflate=config.deflate)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name:
            tmp = Path(tmp_name)
            with (
                echo_server(tmp / "echo.log") as echo,
                product(
                    tmp / "engine",
                    {"BCRYPT_ROUNDS": "4", "QUESTIONS_PER_INTERVIEW": str(config.questions)},
                ) as engine,
            ):
                echo.start(None)
                engine.start("/health/live")
                bench = Bench(config, gen, echo, engine)
                print("setup")
                results["setup"] = bench.setup_users()
                echo.check()
                engine.check()
                if "b" in config.phases:
                    print(f"(b) memory per idle socket, {config.idle_sockets} sockets")
                    results["memory"] = {
                        "echo": bench.memory(echo, config.idle_sockets),
                        "engine": bench.memory(engine, config.idle_sockets),
                    }
                echo.check()
                engine.check()
                if "a" in config.phases:
                    print(
                        f"(a) round trips at concurrency {config.levels}, "
                        f"{config.repeats} repeat(s)"
                    )
                    bench.open_ping_pools()
                    results["ping"] = bench.ping_sweep()
                    for pool in ("echo", "engine"):
                        gen.call("close", [{"pool": pool}] * config.procs, timeout=300)
                echo.check()
                engine.check()
                if "c" in config.phases:
                    print(f"(c) {config.interviews} concurrent interviews, instant evaluator")
                    results["interviews"] = bench.interviews()
                echo.check()
                engine.check()
                if "d" in config.phases:
                    print(f"(d) REST at {config.rest_users} concurrent users")
                    results["rest"] = bench.rest(
                        bench.engine_http,
                        bench.sessions[: config.rest_users],
                        {"login": 1.0, "me": 1.0, "history": 1.0},
                        think=config.rest_think,
                        warmup=config.rest_warmup,
                        measure=config.rest_measure,
                        server="engine",
                    )
            if "d" in config.phases:
                print("(d) login at bcrypt cost 12")
                results["login_cost12"] = login_rate(config, gen, tmp)
    finally:
        gen.close()
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    results["seconds"] = round(time.monotonic() - started, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load.bench", description="engine vs a bare websockets echo server"
    )
    parser.add_argument("--quick", action="store_true", help="a scaled-down smoke run")
    parser.add_argument("--procs", type=int, help="load generator processes")
    parser.add_argument("--sockets", type=int, help="idle sockets for the memory figure")
    parser.add_argument("--interviews", type=int, help="concurrent interviews for (c)")
    parser.add_argument("--rest-users", type=int, help="concurrent REST users for (d)")
    parser.add_argument("--repeats", type=int, help="repeats of each round-trip run")
    parser.add_argument(
        "--answer-think", type=float, help="mean seconds between an interview's answers (c)"
    )
    parser.add_argument(
        "--rest-think", type=float, help="mean seconds between a REST user's requests (d)"
    )
    parser.add_argument("--no-deflate", action="store_true", help="clients offer no compression")
    parser.add_argument(
        "--phases", default="abcd", help="which of the figures a, b, c, d to measure (default all)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write JSON and PNG")
    args = parser.parse_args(argv)

    config = Config.quick() if args.quick else Config()
    if args.procs:
        config.procs = args.procs
    if args.sockets:
        config.idle_sockets = args.sockets
    if args.interviews:
        config.interviews = args.interviews
    if args.rest_users:
        config.rest_users = args.rest_users
    if args.repeats:
        config.repeats = args.repeats
    if args.answer_think is not None:
        config.answer_think = args.answer_think
    if args.rest_think is not None:
        config.rest_think = args.rest_think
    config.deflate = not args.no_deflate
    config.phases = args.phases
    config.users = max(config.users, config.interviews, config.rest_users)
    if config.fixed not in config.levels:
        config.levels = sorted({*config.levels, config.fixed})

    label = "bench-quick" if args.quick else "bench"
    results = run(config, label)
    print()
    print(render_table(results))
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{label}.json"
    json_path.write_text(json.dumps(results, indent=1, default=str) + "\n")
    png_path = args.out / f"{label}.png"
    print()
    for path in [json_path, png_path] if write_plot(results, png_path) else [json_path]:
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
