"""The measurement runner shared by the benchmarks: latency summaries, CPU and memory of the
processes under test, the machine, load workers in processes of their own, the table that puts
each figure beside its baseline, and the results file.

Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import psutil

from load.harness import ROOT, ProcessTree, raise_nofile

RESULTS = ROOT / "load" / "results"

# The product's limits, raised for a benchmark so that the load is measured instead of refused,
# and hour-long question time limits so that no deadline fires in the middle of a measurement.
RAISED_LIMITS: dict[str, str] = {
    "LOG_LEVEL": "WARNING",
    "ACCESS_TOKEN_TTL_SEC": "7200",
    "FREE_INTERVIEWS_PER_MONTH": "1000000",
    "RATE_LIMIT_GLOBAL_IP": "100000000/60",
    "RATE_LIMIT_AUTH_IP": "100000000/60",
    "RATE_LIMIT_AUTH_ACCOUNT": "100000000/60",
    "RATE_LIMIT_USER": "100000000/60",
    "RATE_LIMIT_SOCKET_MESSAGES": "100000000/10",
    "WS_SEND_QUEUE_LIMIT": "4096",
    "TIME_LIMIT_INTERN_SEC": "3600",
    "TIME_LIMIT_JUNIOR_SEC": "3600",
    "TIME_LIMIT_MIDDLE_SEC": "3600",
}


# --- latencies -------------------------------------------------------------------------------


def percentile(values: Iterable[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(seconds: Iterable[float]) -> dict[str, float]:
    """Count, p50/p95/p99 and max, in milliseconds, of durations in seconds."""
    ordered = sorted(seconds)
    return {
        "n": len(ordered),
        "p50_ms": percentile(ordered, 50) * 1000,
        "p95_ms": percentile(ordered, 95) * 1000,
        "p99_ms": percentile(ordered, 99) * 1000,
        "max_ms": ordered[-1] * 1000 if ordered else math.nan,
    }


def median(values: Iterable[float | None]) -> float:
    """The median of the values present (NaN when none is)."""
    present = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(present) if present else math.nan


# --- CPU and memory ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float
    cpu: dict[str, float]
    busy: float  # every CPU's non-idle seconds, whoever spent them


class Meter:
    """CPU seconds of named groups of process trees, and of the whole machine."""

    def __init__(self, groups: Mapping[str, Iterable[ProcessTree]]) -> None:
        self.groups = {name: list(trees) for name, trees in groups.items()}

    def sample(self) -> Sample:
        t = psutil.cpu_times()
        # guest time is already inside user time; iowait is idle
        busy = t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)
        cpu = {k: sum(tree.cpu_seconds() for tree in v) for k, v in self.groups.items()}
        return Sample(time.monotonic(), cpu, busy)

    @staticmethod
    def cores(a: Sample, b: Sample) -> dict[str, float]:
        """Cores each group kept busy between two samples; `others` is everyone else."""
        wall = max(b.at - a.at, 1e-9)
        used = {k: (b.cpu[k] - a.cpu[k]) / wall for k in a.cpu}
        machine_cores = (b.busy - a.busy) / wall
        used["others"] = max(0.0, machine_cores - sum(used.values()))
        used["machine"] = machine_cores
        return {k: round(v, 3) for k, v in used.items()}


def rss_median(tree: ProcessTree, samples: int = 3, interval: float = 0.3) -> float:
    """The resident memory of a process tree, median of a few readings."""
    readings = []
    for i in range(samples):
        if i:
            time.sleep(interval)
        readings.append(tree.rss_bytes())
    return float(statistics.median(readings))


def machine() -> dict[str, Any]:
    """The machine the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    import resource

    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "code": code_version(),
    }


def code_version() -> dict[str, Any]:
    """The commit measured, and the product files that differed from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    product = ("engine/", "core/", "http_api/", "protocol/", "workers/")
    return {
        "commit": git("rev-parse", "HEAD"),
        "changed": [p for p in changed if p.startswith(product)],
    }


def describe_machine(m: Mapping[str, Any]) -> str:
    code = m["code"]
    changed = " + uncommitted changes" if code["changed"] else ""
    return (
        f"{m['cpus']} x {m['cpu_model']}, Python {m['python']}, {m['memory_gb']} GB, "
        f"load average {m['loadavg_at_start'][0]:.1f} at the start; code {code['commit'][:12]}"
        f"{changed}"
    )


# --- timing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """The measured part of a run, in this process's perf_counter time: what completes inside it
    counts, whenever it started."""

    start: float
    end: float

    @classmethod
    def from_wall(cls, start_at: float, warmup: float, measure: float) -> Window:
        """A window that opens `warmup` after the wall-clock `start_at` shared by all workers."""
        begin = start_at + time.perf_counter() - time.time() + warmup
        return cls(begin, begin + measure)

    def holds(self, done: float) -> bool:
        return self.start <= done <= self.end


def sleep_until_wall(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


async def sleep_until(perf_t: float) -> None:
    delay = perf_t - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


# --- load workers in processes of their own ----------------------------------------------------


def _serve(conn: Connection, factory: Callable[[], object]) -> None:
    """A worker process: build the command object, then run each command sent on `conn`."""
    raise_nofile()
    target = factory()

    async def main() -> None:
        while True:
            message = await asyncio.to_thread(conn.recv)
            if message is None:
                closer = getattr(target, "shutdown", None)
                if closer is not None:
                    await closer()
                return
            name, kwargs = message
            try:
                result = getattr(target, name)(**kwargs)
                if isinstance(result, Awaitable):
                    result = await result
                conn.send(("ok", result))
            except Exception as exc:  # reported to the runner, which stops the run
                conn.send(("error", f"{type(exc).__name__}: {exc}"))

    asyncio.run(main())


class Workers:
    """`count` worker processes (spawned, so each has its own event loop and interpreter), each
    holding one object built by `factory` (a module-level callable). `call` runs one of its
    methods on every worker at once; a worker keeps its sockets open between calls."""

    def __init__(self, count: int, factory: Callable[[], object]) -> None:
        ctx = mp.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[BaseProcess] = []
        for _ in range(count):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, factory), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    @property
    def trees(self) -> list[ProcessTree]:
        return [ProcessTree(p.pid) for p in self.procs if p.pid is not None]

    def call(self, name: str, per_worker: list[dict[str, Any]], timeout: float) -> list[Any]:
        """Run `name` with each worker's keyword arguments; every worker's result."""
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

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split[T](items: list[T], parts: int) -> list[list[T]]:
    """Deal `items` round-robin into `parts` lists."""
    return [items[i::parts] for i in range(parts)]


def shares(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal counts."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# --- the table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One figure: the baselines' values (in the table's order), the product's, the ratio of the
    product to the first baseline, the target and whether it was met."""

    figure: str
    baselines: tuple[str, ...] = ()
    product: str = ""
    ratio: str = ""
    target: str = ""
    verdict: str = ""


@dataclass
class Table:
    """Figures of the product beside baselines measured in the same run."""

    baselines: tuple[str, ...]  # the baseline columns, e.g. ("echo", "Starlette")
    product: str = "product"
    rows: list[Row] = field(default_factory=list)

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)

    def header(self) -> list[str]:
        return ["figure", *self.baselines, self.product, "ratio", "target", ""]

    def cells(self, row: Row) -> list[str]:
        padded = [*row.baselines, *[""] * (len(self.baselines) - len(row.baselines))]
        return [row.figure, *padded, row.product, row.ratio, row.target, row.verdict]

    def render(self) -> str:
        table = [self.header(), *(self.cells(r) for r in self.rows)]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        lines = []
        for i, row in enumerate(table):
            lines.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def markdown(self) -> str:
        header = self.header()
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.strip() for c in self.cells(r)) + " |" for r in self.rows]
        return "\n".join(lines)


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f} ms"


def ratio(product: float, baseline: float, digits: int = 2) -> str:
    if not baseline or math.isnan(baseline) or math.isnan(product):
        return "-"
    return f"{product / baseline:.{digits}f}x"


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("met" if ok else "MISSED")


# --- results -----------------------------------------------------------------------------------


def write_results(results: Mapping[str, Any], path: Path) -> Path:
    """The raw numbers as JSON; returns the path relative to the repository when inside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str, ensure_ascii=False) + "\n")
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def log(message: str) -> None:
    """Progress on stderr, so that stdout holds the figures."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
