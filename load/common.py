"""Shared by the benchmark and the locustfile: limits, percentiles, the processes under test."""

from __future__ import annotations

import contextlib
import math
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
PASSWORD = "load-test password 1"
# Set explicitly for the processes under test, so that a developer's .env cannot make the users
# the benchmark inserts unreadable (another database) or their hashes wrong (another pepper).
LOAD_DB = "bench"
LOAD_PEPPER = "load-test-pepper"

# The product's limits, raised so that the load is measured instead of refused.
LOAD_SETTINGS: dict[str, str] = {
    "APP_ENV": "development",
    "HOST": HOST,
    "MONGODB_DB": LOAD_DB,
    "PASSWORD_PEPPER": LOAD_PEPPER,
    "LOG_LEVEL": "WARNING",
    "REDIS_URL": "",
    "MONGODB_URL": "",
    "CELERY_BROKER_URL": "",
    "OPENAI_API_KEY": "",
    "SENDPULSE_CLIENT_ID": "",
    "LOCAL_EVALUATOR_DELAY_SEC": "0",
    "ACCESS_TOKEN_TTL_SEC": "7200",
    "FREE_INTERVIEWS_PER_MONTH": "1000000",
    "RATE_LIMIT_GLOBAL_IP": "100000000/60",
    "RATE_LIMIT_AUTH_IP": "100000000/60",
    "RATE_LIMIT_AUTH_ACCOUNT": "100000000/60",
    "RATE_LIMIT_USER": "100000000/60",
    "RATE_LIMIT_SOCKET_MESSAGES": "100000000/10",
    "WS_SEND_QUEUE_LIMIT": "4096",
    # No deadline may fire in the middle of a measurement.
    "TIME_LIMIT_INTERN_SEC": "3600",
    "TIME_LIMIT_JUNIOR_SEC": "3600",
    "TIME_LIMIT_MIDDLE_SEC": "3600",
}


def raise_nofile() -> int:
    """Raise this process's open-files limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def latency_summary(seconds: list[float]) -> dict[str, float]:
    """Count and p50/p95/p99/max in milliseconds."""
    ordered = sorted(seconds)
    ms = 1000.0
    return {
        "n": len(ordered),
        "p50_ms": percentile(ordered, 50) * ms,
        "p95_ms": percentile(ordered, 95) * ms,
        "p99_ms": percentile(ordered, 99) * ms,
        "max_ms": (ordered[-1] * ms) if ordered else float("nan"),
    }


def cpu_seconds(procs: Iterable[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def machine() -> dict[str, Any]:
    """The machine the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "loadavg_at_start": os.getloadavg(),
    }


def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --- the processes under test ------------------------------------------------------------------


class Server:
    """A server process on 127.0.0.1 that is stopped, children included, on exit."""

    def __init__(
        self, name: str, args: list[str], env: Mapping[str, str], log: Path, port: int
    ) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.log = log
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.pid)

    def start(self, ready_path: str | None, timeout: float = 90.0) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=raise_nofile,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
            if self._ready(ready_path):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not come up within {timeout:.0f} s; see {self.log}")

    def _ready(self, path: str | None) -> bool:
        if path is None:
            import socket

            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.5):
                return True
            return False
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://{HOST}:{self.port}{path}", timeout=2).status_code == 200
        return False

    def check(self) -> None:
        """Raise, with the end of its log, if the process is gone."""
        if self.proc is None or self.proc.poll() is None:
            return
        code = self.proc.returncode
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        tail = self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""
        raise RuntimeError(f"{self.name} (pid {self.proc.pid}) died: {how}\n{tail}")

    def children(self) -> list[psutil.Process]:
        kids: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            kids = list(self.ps.children(recursive=True))
        return kids

    def stop(self, timeout: float = 20.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        kids = []
        with contextlib.suppress(psutil.Error):
            kids = psutil.Process(proc.pid).children(recursive=True)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for kid in kids:  # the embedded MongoDB, if the product could not stop it
            with contextlib.suppress(psutil.Error):
                kid.kill()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def product(data_dir: Path, extra: Mapping[str, str] | None = None) -> Server:
    """The product (`python -m core.cli run`) with embedded defaults and raised limits."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "REDIS_", "MONGODB_", "RATE_LIMIT_", "SENDPULSE_"))
    }
    env.update(LOAD_SETTINGS)
    env.update({"PORT": str(port), "DATA_DIR": str(data_dir), "NODE_ID": "bench"})
    env.update(extra or {})
    data_dir.mkdir(parents=True, exist_ok=True)
    return Server(
        "the product",
        [sys.executable, "-m", "core.cli", "run"],
        env,
        data_dir / "product.log",
        port,
    )


def echo_server(log: Path) -> Server:
    port = free_port()
    return Server(
        "the echo server",
        [sys.executable, "-m", "load.echo_server", "--port", str(port)],
        dict(os.environ),
        log,
        port,
    )


def embedded_mongo_url(pid: int | None = None, data_dir: Path | None = None) -> str:
    """The URL of the product's embedded MongoDB-protocol server, found by its command line.

    Give the product's pid (its child) or its DATA_DIR (the server's storage path).
    """
    candidates: list[psutil.Process] = []
    if pid is not None:
        candidates = psutil.Process(pid).children(recursive=True)
    else:
        candidates = list(psutil.process_iter())
    storage = str((data_dir / "mongo").resolve()) if data_dir is not None else None
    for proc in candidates:
        with contextlib.suppress(psutil.Error):
            cmd = proc.cmdline()
            if not any(part.endswith("secantusd-py") for part in cmd) or "--port" not in cmd:
                continue
            if storage is not None and storage not in cmd:
                continue
            port = cmd[cmd.index("--port") + 1]
            return f"mongodb://{HOST}:{port}/?directConnection=true"
    raise RuntimeError("the embedded MongoDB-protocol server was not found")
