"""The benchmark (`make bench`): the product against two baselines, measured in the same run by
the same clients.

    .venv/bin/python -m load.bench            # the full run, about 10 minutes on 2 cores
    .venv/bin/python -m load.bench --quick    # everything scaled down, a few minutes

It starts the SecantusDB server, the product (`python -m core.cli run` on it, the instant local
evaluator, BCRYPT_ROUNDS=4 so that setting users up is quick, raised limits) and the baselines
(`load/baselines.py`): a bare `websockets` echo server, and a bare Starlette app on uvicorn
configured as the product runs it (a WebSocket echo and the three REST paths, answered from
memory). Then:

(a) round trips at several concurrencies: a text frame echoed by each baseline, `ping` -> `pong`
    on the product's authenticated interview sockets;
(b) memory per idle socket: each server's RSS delta over N open sockets;
(c) answer -> first `feedback.delta` at 1,000 concurrent interviews;
(d) REST login, me and history at 1,000 concurrent users (Locust's FastHttpUser), the product
    against the Starlette app; logins at bcrypt cost 12 (production's) on a second product
    process, against bcrypt alone.

It prints each figure as it is measured, then a table with the baselines, the ratios and the
targets, and writes the numbers as JSON and a plot under load/results/. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from load.baselines import BaselineServer
from load.bench_clients import SocketLoadFactory, Ticket
from load.bench_report import render, write_plot
from load.harness import (
    HOST,
    ROOT,
    MongoServer,
    ProcessTree,
    ProductNode,
    product_env,
    raise_nofile,
)
from load.measure import (
    RAISED_LIMITS,
    RESULTS,
    Meter,
    Workers,
    log,
    machine,
    rss_median,
    shares,
    sleep_until_wall,
    split,
    summary,
    write_results,
)
from load.rest import Spec, accounts_spec, run_rest
from load.users import Account, register_users, start_interviews

SERVERS = ("echo", "starlette", "product")


@dataclass
class Config:
    procs: int = 2  # client processes (socket workers, and Locust processes for REST)
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


class Bench:
    def __init__(
        self,
        config: Config,
        workers: Workers,
        servers: dict[str, ProductNode | BaselineServer],
        mongo: MongoServer,
        logs: Path,
    ) -> None:
        self.c = config
        self.workers = workers
        self.servers = servers
        self.logs = logs
        self.tickets: list[Ticket] = []
        self.accounts: list[Account] = []
        self.servers_cpu: dict[str, list[ProcessTree]] = {
            **{name: [server.tree] for name, server in servers.items()},
            "mongo": [mongo.tree],
        }
        self.meter = Meter({**self.servers_cpu, "clients": workers.trees})

    @property
    def product(self) -> ProductNode:
        server = self.servers["product"]
        assert isinstance(server, ProductNode)
        return server

    def ws_url(self, name: str) -> str:
        port = self.servers[name].port
        path = {"echo": "/", "starlette": "/ws", "product": "/ws/v1/interview"}[name]
        return f"ws://{HOST}:{port}{path}"

    def check(self) -> None:
        """Stop the run, with the end of its log, if a server has died."""
        for server in self.servers.values():
            server.check()

    def per_worker(self, count: int) -> list[int]:
        return shares(count, self.c.procs)

    def tickets_for(self, name: str) -> list[list[Ticket] | None]:
        if name == "product":
            return list(split(self.tickets, self.c.procs))
        return [None] * self.c.procs

    # --- setup -----------------------------------------------------------------------------------

    def setup_users(self) -> dict[str, Any]:
        """Users registered, verified and logged in over the API; one interview each."""
        t0 = time.monotonic()
        outbox = Path(self.product.env["DATA_DIR"]) / "outbox"
        self.accounts = asyncio.run(register_users(self.product.url, self.c.users, outbox=outbox))
        asyncio.run(start_interviews(self.product.url, self.accounts))
        self.tickets = [Ticket(a.token, a.interview_id) for a in self.accounts]
        took = time.monotonic() - t0
        print(f"  {len(self.accounts)} users registered with an interview each in {took:.1f} s")
        return {"users": len(self.accounts), "seconds": round(took, 1)}

    # --- (b) memory per idle socket --------------------------------------------------------------

    def memory(self, name: str, count: int) -> dict[str, Any]:
        server, pool = self.servers[name], "idle"
        self.check()
        rss0 = rss_median(server.tree)
        t0 = time.monotonic()
        opened = self.workers.call(
            "open",
            [
                {"pool": pool, "url": self.ws_url(name), "count": n, "tickets": part}
                for n, part in zip(self.per_worker(count), self.tickets_for(name), strict=True)
            ],
            timeout=900,
        )
        took = time.monotonic() - t0
        time.sleep(2.0)  # let the server settle: a measured pause, not a wait for a condition
        self.check()
        alive_answers = self.workers.call("alive", [{"pool": pool}] * self.c.procs, 60)
        alive = sum(r["alive"] for r in alive_answers)
        rss1 = rss_median(server.tree)
        self.workers.call("close", [{"pool": pool}] * self.c.procs, timeout=600)
        failed = sum(r["failed"] for r in opened)
        errors = [e for r in opened for e in r["errors"]][:5]
        per_socket = (rss1 - rss0) / alive if alive else math.nan
        print(
            f"  {name}: {alive} of {count} sockets open (connected in {took:.1f} s), RSS "
            f"{rss0 / 2**20:.1f} -> {rss1 / 2**20:.1f} MiB, {per_socket / 1024:.1f} KiB per socket"
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
            "connect": summary(t for r in opened for t in r["connect"]),
            "connect_seconds": round(took, 2),
        }

    # --- (a) round trips -------------------------------------------------------------------------

    def open_ping_pools(self) -> None:
        top = max(self.c.levels)
        for name in SERVERS:
            results = self.workers.call(
                "open",
                [
                    {"pool": name, "url": self.ws_url(name), "count": n, "tickets": part}
                    for n, part in zip(self.per_worker(top), self.tickets_for(name), strict=True)
                ],
                timeout=300,
            )
            opened = sum(r["opened"] for r in results)
            if opened < top:
                raise RuntimeError(
                    f"only {opened} of {top} {name} sockets opened: {results[0]['errors'][:1]}"
                )

    def ping(self, name: str, concurrency: int) -> dict[str, Any]:
        c = self.c
        start_at = time.time() + 0.3
        sent = self.workers.send(
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
        sleep_until_wall(start_at + c.warmup)
        a = self.meter.sample()
        sleep_until_wall(start_at + c.warmup + c.measure)
        b = self.meter.sample()
        results = self.workers.collect(sent, timeout=c.warmup + c.measure + 120)
        latencies = [x for r in results for x in r["latencies"]]
        cores = Meter.cores(a, b)
        rate = len(latencies) / c.measure
        return {
            "concurrency": concurrency,
            "round_trips_per_s": rate,
            **summary(latencies),
            "server_cpu_us_per_round_trip": cores[name] / rate * 1e6 if rate else math.nan,
            "cores": cores,
            "client_worker_cpu": [round(r["cpu"] / r["wall"], 3) for r in results],
            "failed": sum(r["failed"] for r in results),
            "unexpected": sum(r["unexpected"] for r in results),
        }

    def ping_sweep(self) -> dict[str, Any]:
        runs: dict[str, dict[int, list[dict[str, Any]]]] = {name: {} for name in SERVERS}
        for rep in range(self.c.repeats):
            for level in self.c.levels:
                for name in SERVERS:
                    run = self.ping(name, level)
                    runs[name].setdefault(level, []).append(run)
                    print(
                        f"  [{rep + 1}/{self.c.repeats}] {name:>9} x{level:<4} "
                        f"{run['round_trips_per_s']:8.0f}/s  p50 {run['p50_ms']:7.2f} ms  "
                        f"p99 {run['p99_ms']:7.2f} ms  server {run['cores'][name]:.2f} cores, "
                        f"{run['server_cpu_us_per_round_trip']:.0f} us/rt; clients "
                        f"{run['cores']['clients']:.2f} cores (max worker "
                        f"{max(run['client_worker_cpu']):.2f}); others {run['cores']['others']:.2f}"
                    )
        return {
            name: {
                str(level): {"median": _median_run(reps, name), "runs": reps}
                for level, reps in by.items()
            }
            for name, by in runs.items()
        }

    # --- (c) interviews --------------------------------------------------------------------------

    def interviews(self) -> dict[str, Any]:
        c = self.c
        parts = split(self.tickets[: c.interviews], c.procs)
        t0 = time.monotonic()
        opened = self.workers.call(
            "open_interviews",
            [{"pool": "answering", "url": self.ws_url("product"), "tickets": p} for p in parts],
            timeout=600,
        )
        n_open = sum(r["opened"] for r in opened)
        print(f"  {n_open} interview sockets open in {time.monotonic() - t0:.1f} s")
        start_at = time.time() + 0.5
        sent = self.workers.send(
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
        sleep_until_wall(start_at)
        a = self.meter.sample()
        sleep_until_wall(start_at + c.answer_duration)
        b = self.meter.sample()
        results = self.workers.collect(sent, timeout=c.answer_duration + 180)
        self.workers.call("close_interviews", [{"pool": "answering"}] * len(parts), timeout=300)
        answers = sum(r["answers"] for r in results)
        out: dict[str, Any] = {
            "interviews": n_open,
            "answers": answers,
            "answers_per_s": answers / c.answer_duration,
            "completed": sum(r["completed"] for r in results),
            "accepted": summary(x for r in results for x in r["accepted"]),
            "first_delta": summary(x for r in results for x in r["first_delta"]),
            "done": summary(x for r in results for x in r["done"]),
            "seq_errors": sum(r["seq_error_count"] for r in results),
            "seq_error_examples": [e for r in results for e in r["seq_errors"]][:5],
            "failed": sum(r["failed"] for r in results) + sum(r["failed"] for r in opened),
            "errors": [e for r in results + opened for e in r["errors"]][:5],
            "cores": Meter.cores(a, b),
            "client_worker_cpu": [round(r["cpu"] / r["wall"], 3) for r in results],
        }
        out["cpu_ms_per_answer"] = {
            k: out["cores"][k] * c.answer_duration / answers * 1000 if answers else math.nan
            for k in ("product", "mongo")
        }
        print(
            f"  {answers} answers ({out['answers_per_s']:.0f}/s): answer -> first delta p50 "
            f"{out['first_delta']['p50_ms']:.1f} ms p99 {out['first_delta']['p99_ms']:.1f} ms; "
            f"seq errors {out['seq_errors']}, failures {out['failed']} {out['errors'][:1]}; "
            f"cores {out['cores']}"
        )
        return out

    # --- (d) REST --------------------------------------------------------------------------------

    def rest(self, name: str, mix: dict[str, float]) -> dict[str, Any]:
        c = self.c
        base = f"http://{HOST}:{self.servers[name].port}"
        spec = Spec(
            base=base,
            accounts=accounts_spec(self.accounts[: c.rest_users]),
            mix=mix,
            think=c.rest_think,
            start_at=time.time() + 3.0,  # the Locust processes start meanwhile
            warmup=c.rest_warmup,
            measure=c.rest_measure,
        )
        out = run_rest(spec, c.procs, self.servers_cpu, name, self.logs)
        summary_text = ", ".join(
            f"{n} p50/p95/p99 {s['p50_ms']:.1f}/{s['p95_ms']:.1f}/{s['p99_ms']:.1f} ms"
            for n, s in out["latency"].items()
        )
        print(
            f"  {name}: {out['users']} users, {out['requests_per_s']:.0f} req/s: {summary_text}; "
            f"{out['statuses']}; cores {out['cores']}"
        )
        return out


def _median_run(runs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    keys = ("round_trips_per_s", "p50_ms", "p95_ms", "p99_ms", "server_cpu_us_per_round_trip")
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in keys}
    out["server_cores"] = statistics.median(r["cores"][name] for r in runs)
    out["client_cores"] = statistics.median(r["cores"]["clients"] for r in runs)
    out["max_client_worker_cpu"] = max(max(r["client_worker_cpu"]) for r in runs)
    out["others_cores"] = statistics.median(r["cores"]["others"] for r in runs)
    return out


# --- logins at production's bcrypt cost ----------------------------------------------------------


def bcrypt_checks_per_core_second(rounds: int = 12, checks: int = 4) -> float:
    """The baseline of logins: bcrypt alone, checking a password at `rounds`, in this process."""
    import bcrypt

    hashed = bcrypt.hashpw(b"load-test password 1", bcrypt.gensalt(rounds))
    cpu0 = time.process_time()
    for _ in range(checks):
        bcrypt.checkpw(b"load-test password 1", hashed)
    return checks / (time.process_time() - cpu0)


def login_rate(config: Config, mongo: MongoServer, tmp: Path) -> dict[str, Any]:
    """Logins/s at bcrypt cost 12, on a product process of its own."""
    settings = product_settings(
        mongo, tmp / "product-cost12", "bench_cost12", {"BCRYPT_ROUNDS": "12"}
    )
    with ProductNode("bench-cost12", product_env(settings), tmp / "product-cost12.log") as app:
        app.start()
        outbox = tmp / "product-cost12" / "outbox"
        accounts = asyncio.run(register_users(app.url, config.login_concurrency, outbox=outbox))
        spec = Spec(
            base=app.url,
            accounts=accounts_spec(accounts),
            mix={"login": 1.0},
            think=0.0,
            start_at=time.time() + 3.0,
            warmup=2.0,
            measure=config.login_measure,
        )
        out = run_rest(spec, 1, {"product": [app.tree], "mongo": [mongo.tree]}, "product", tmp)
    rate = out["latency"]["login"]["n"] / config.login_measure
    out["logins_per_s"] = rate
    out["logins_per_core_s"] = rate / out["server_cores"] if out["server_cores"] else math.nan
    out["bcrypt_checks_per_core_s"] = bcrypt_checks_per_core_second()
    out["concurrency"] = config.login_concurrency
    print(
        f"  cost 12: {rate:.1f} logins/s on {out['server_cores']:.2f} cores = "
        f"{out['logins_per_core_s']:.1f} logins/s per core; bcrypt alone "
        f"{out['bcrypt_checks_per_core_s']:.1f} checks/s per core"
    )
    return out


# --- the run -------------------------------------------------------------------------------------


def product_settings(
    mongo: MongoServer, data_dir: Path, db: str, extra: dict[str, str]
) -> dict[str, str]:
    return {
        **RAISED_LIMITS,
        "APP_ENV": "development",
        "MONGODB_URL": mongo.url,
        "MONGODB_DB": db,
        "DATA_DIR": str(data_dir),
        "LOCAL_EVALUATOR_DELAY_SEC": "0",
        **extra,
    }


def run(config: Config, label: str) -> dict[str, Any]:
    raise_nofile()
    started = time.monotonic()
    results: dict[str, Any] = {"label": label, "machine": machine(), "config": asdict(config)}
    print(f"{label}: {config.procs} client processes")
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp_name,
        Workers(config.procs, SocketLoadFactory(config.deflate)) as workers,
    ):
        tmp = Path(tmp_name)
        with MongoServer(tmp / "mongo", tmp / "mongo.log") as mongo:
            mongo.start()
            settings = product_settings(
                mongo,
                tmp / "product",
                "bench",
                {"BCRYPT_ROUNDS": "4", "QUESTIONS_PER_INTERVIEW": str(config.questions)},
            )
            servers: dict[str, ProductNode | BaselineServer] = {
                "echo": BaselineServer("echo", tmp / "echo.log"),
                "starlette": BaselineServer("starlette", tmp / "starlette.log"),
                "product": ProductNode("bench", product_env(settings), tmp / "product.log"),
            }
            try:
                for server in servers.values():
                    server.start()
                bench = Bench(config, workers, servers, mongo, tmp)
                run_phases(bench, config, results)
            finally:
                for server in servers.values():
                    server.stop()
            if "d" in config.phases:
                print("(d) login at bcrypt cost 12")
                results["login_cost12"] = login_rate(config, mongo, tmp)
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = round(time.monotonic() - started, 1)
    return results


def run_phases(bench: Bench, config: Config, results: dict[str, Any]) -> None:
    print("setup")
    results["setup"] = bench.setup_users()
    if "b" in config.phases:
        bench.check()
        print(f"(b) memory per idle socket, {config.idle_sockets} sockets")
        results["memory"] = {name: bench.memory(name, config.idle_sockets) for name in SERVERS}
    if "a" in config.phases:
        bench.check()
        print(f"(a) round trips at concurrency {config.levels}, {config.repeats} repeat(s)")
        bench.open_ping_pools()
        results["ping"] = bench.ping_sweep()
        for pool in SERVERS:
            bench.workers.call("close", [{"pool": pool}] * config.procs, timeout=300)
    if "c" in config.phases:
        bench.check()
        print(f"(c) {config.interviews} concurrent interviews, instant evaluator")
        results["interviews"] = bench.interviews()
    if "d" in config.phases:
        bench.check()
        mix = {"login": 1.0, "me": 1.0, "history": 1.0}
        print(f"(d) REST at {config.rest_users} concurrent users")
        results["rest"] = {name: bench.rest(name, mix) for name in ("starlette", "product")}
    bench.check()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m load.bench", description="the product against bare baselines"
    )
    parser.add_argument("--quick", action="store_true", help="a scaled-down smoke run")
    parser.add_argument("--procs", type=int, help="client processes")
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
    for key in ("procs", "repeats", "interviews", "rest_users", "answer_think", "rest_think"):
        if getattr(args, key) is not None:
            setattr(config, key, getattr(args, key))
    if args.sockets is not None:
        config.idle_sockets = args.sockets
    config.deflate = not args.no_deflate
    config.phases = args.phases
    config.users = max(config.users, config.interviews, config.rest_users)
    if config.fixed not in config.levels:
        config.levels = sorted({*config.levels, config.fixed})

    label = "bench-quick" if args.quick else "bench"
    results = run(config, label)
    print()
    print(render(results))
    written = [write_results(results, args.out / f"{label}.json")]
    png = args.out / f"{label}.png"
    if write_plot(results, png):
        written.append(png.relative_to(ROOT) if png.is_relative_to(ROOT) else png)
    print()
    for path in written:
        print(f"wrote {path}")
    log(f"done in {results['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
