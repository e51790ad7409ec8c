"""The benchmark's REST load: Locust's `FastHttpUser`, run as a library in processes of its own.

`run_rest` (called by the benchmark) writes one spec per process and starts
`python -m load.rest SPEC OUT` for each; such a process imports Locust (which patches the
standard library with gevent as it is imported, hence the process of its own), starts one user
per account at once, and writes the exact time of every request that completed inside the
measured window, by name, to OUT. Locust's own statistics round percentiles; these are exact.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from load.harness import COVERAGE_VARIABLE, Process, ProcessTree, inherited_env
from load.measure import Meter, sleep_until_wall, split, summary
from load.users import Account

PATHS = {"me": "/api/v1/auth/me", "history": "/api/v1/interviews/history"}


@dataclass(frozen=True)
class Spec:
    base: str
    accounts: list[dict[str, str]]
    mix: dict[str, float]  # request name -> weight: "login", "me", "history"
    think: float  # mean seconds between a user's requests
    start_at: float  # wall clock, shared by every process
    warmup: float
    measure: float


def run_rest(
    spec: Spec, procs: int, servers: dict[str, list[ProcessTree]], server: str, logs: Path
) -> dict[str, Any]:
    """Drive `spec` from `procs` Locust processes; latencies by name, statuses, and the cores
    used by each group of `servers`, by the Locust processes (`clients`) and by the rest of the
    machine. `server` names the group the per-request CPU is charged to."""
    parts = [p for p in split(spec.accounts, procs) if p]
    with tempfile.TemporaryDirectory(prefix="rest-") as tmp:
        folder = Path(tmp)
        runs: list[tuple[Process, Path]] = []
        for i, part in enumerate(parts):
            spec_path, out = folder / f"spec{i}.json", folder / f"out{i}.json"
            spec_path.write_text(json.dumps(asdict(Spec(**{**asdict(spec), "accounts": part}))))
            process = Process(
                f"REST load {i}",
                [sys.executable, "-m", "load.rest", str(spec_path), str(out)],
                env=inherited_env([COVERAGE_VARIABLE]),
                log=logs / f"rest{i}.log",
            )
            process.launch()
            runs.append((process, out))
        meter = Meter({**servers, "clients": [p.tree for p, _ in runs]})
        sleep_until_wall(spec.start_at + spec.warmup)
        a = meter.sample()
        sleep_until_wall(spec.start_at + spec.warmup + spec.measure)
        b = meter.sample()
        results = []
        for process, out in runs:
            process.finish(spec.measure + 120)
            results.append(json.loads(out.read_text()))
    cores = Meter.cores(a, b)
    statuses: dict[str, int] = {}
    for r in results:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    latency = {name: summary(x for r in results for x in r["latencies"][name]) for name in spec.mix}
    total = sum(s["n"] for s in latency.values())
    return {
        "users": len(spec.accounts),
        "think_s": spec.think,
        "requests_per_s": total / spec.measure,
        "latency": latency,
        "statuses": statuses,
        "cores": cores,
        "server_cores": cores.get(server, math.nan),
        "cpu_ms_per_request": {
            k: cores[k] * spec.measure / total * 1000 if total else math.nan
            for k in cores
            if k not in ("machine", "others", "clients")
        },
        "client_process_cpu": [round(r["cpu"] / spec.measure, 3) for r in results],
    }


def accounts_spec(accounts: list[Account]) -> list[dict[str, str]]:
    return [{"email": a.email, "password": a.password, "token": a.token} for a in accounts]


# --- inside a Locust process --------------------------------------------------------------------


def _locust_main(spec_path: Path, out_path: Path) -> None:
    import random

    # Importing Locust turns time.sleep into a cooperative (gevent) sleep.
    from locust import FastHttpUser, task
    from locust.env import Environment

    spec = Spec(**json.loads(spec_path.read_text()))
    offset = time.perf_counter() - time.time()
    window_start = spec.start_at + offset + spec.warmup
    window_end = window_start + spec.measure
    latencies: dict[str, list[float]] = {name: [] for name in spec.mix}
    statuses: dict[str, int] = {}
    accounts = iter(spec.accounts)
    names, weights = list(spec.mix), list(spec.mix.values())

    class BenchUser(FastHttpUser):
        host = spec.base

        def wait_time(self) -> float:
            return random.uniform(0.5, 1.5) * spec.think

        def on_start(self) -> None:
            self.account = next(accounts)
            start = spec.start_at + random.uniform(0, spec.think)
            time.sleep(max(0.0, start - time.time()))

        @task
        def call(self) -> None:
            name = random.choices(names, weights)[0]
            if time.perf_counter() > window_end:
                return
            if name == "login":
                body = {"email": self.account["email"], "password": self.account["password"]}
                self.client.post("/api/v1/auth/login", json=body, name=name)
            else:
                headers = {"Authorization": f"Bearer {self.account['token']}"}
                self.client.get(PATHS[name], headers=headers, name=name)

    def on_request(
        name: str, response_time: float, exception: Exception | None, response: Any, **_: Any
    ) -> None:
        status = getattr(response, "status_code", None) or type(exception).__name__
        key = f"{name} {status}"
        statuses[key] = statuses.get(key, 0) + 1
        if exception is None and window_start <= time.perf_counter() <= window_end:
            latencies[name].append(response_time / 1000)

    env = Environment(user_classes=[BenchUser])
    env.events.request.add_listener(on_request)  # type: ignore[no-untyped-call]
    runner = env.create_local_runner()
    count = len(spec.accounts)
    runner.start(count, spawn_rate=count)

    time.sleep(max(0.0, window_start - time.perf_counter()))
    cpu_start = time.process_time()
    time.sleep(max(0.0, window_end - time.perf_counter()))
    cpu_used = time.process_time() - cpu_start
    runner.quit()
    out_path.write_text(json.dumps({"latencies": latencies, "statuses": statuses, "cpu": cpu_used}))


if __name__ == "__main__":
    _locust_main(Path(sys.argv[1]), Path(sys.argv[2]))
