"""Real processes for the benchmarks and the tests: product nodes, a private `redis-server`, the
SecantusDB server (the MongoDB wire protocol), and the CPU and memory of a process tree.

Every process runs on 127.0.0.1, writes its output to a log file, and is waited for on a
condition with a deadline (a health endpoint, a PING), never for a fixed time. Stopping a process
stops its whole tree. The product is driven only from the outside: its command line, its
environment and its public HTTP endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import psutil
from pymongo import MongoClient
from redis import Redis
from redis.exceptions import RedisError

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
# Variables that would connect a product process to real services or another database.
FOREIGN_SETTINGS = ("OPENAI_", "SENDPULSE_", "CLOUDPAYMENTS_", "REDIS_", "MONGODB_", "CELERY_")
EMBEDDED = {
    "MONGODB_URL": "",
    "REDIS_URL": "",
    "CELERY_BROKER_URL": "",
    "OPENAI_API_KEY": "",
    "SENDPULSE_CLIENT_ID": "",
    "CLOUDPAYMENTS_PUBLIC_ID": "",
}
# Coverage measures Python subprocesses that inherit this variable; third-party servers are
# not the product's code, and tracing them would only slow them down.
COVERAGE_VARIABLE = "COVERAGE_PROCESS_CONFIG"


class ProcessFailed(RuntimeError):
    """A process exited, or did not become ready in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def raise_nofile() -> int:
    """Raise this process's open-files limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    check: Callable[[], None] | None = None,
    interval: float = 0.05,
) -> None:
    """Poll `condition` until it holds; `check` may raise first (a process that died)."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        if condition():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


async def wait_until_async(
    condition: Callable[[], Awaitable[bool]],
    timeout: float,
    what: str,
    *,
    check: Callable[[], None] | None = None,
    interval: float = 0.05,
) -> None:
    """`wait_until` for an event loop: the condition is awaited, the loop keeps running."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        if await condition():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(interval)


def inherited_env(
    unset: Sequence[str] = (), base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment (`base`, default this process's) without the variables starting with any
    of `unset`."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if not k.startswith(tuple(unset))}


# --- the CPU and memory of a process tree ----------------------------------------------------


class ProcessTree:
    """A process and its descendants, as they are at each reading."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def cpu_seconds(self) -> float:
        """User + system seconds of the processes alive now."""
        total = 0.0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def rss_bytes(self) -> int:
        total = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total


# --- processes --------------------------------------------------------------------------------


class Process:
    """A child process in a session of its own, its output appended to `log`."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        *,
        env: Mapping[str, str],
        log: Path,
        cwd: Path = ROOT,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = dict(env)
        self.log = log
        self.cwd = cwd
        self.popen: subprocess.Popen[bytes] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the process without waiting for it to be ready."""
        if self.alive():
            raise RuntimeError(f"{self.name} is already running")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a terminal's Ctrl-C reaches the runner only
            )

    def ready(self) -> bool:
        """Whether the process serves; subclasses probe their protocol."""
        return self.alive()

    def start(self, timeout: float = 90.0) -> None:
        """Launch and wait until `ready()`; a process that exits or times out is stopped and
        reported with the end of its log."""
        self.launch()
        try:
            wait_until(self.ready, timeout, f"{self.name} ready", check=self.check, interval=0.1)
        except TimeoutError as exc:
            self.stop()
            raise ProcessFailed(f"{exc}\n{self.tail()}") from None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.popen.pid

    def check(self) -> None:
        """Raise `ProcessFailed` if the process was started and has exited."""
        if self.popen is None or self.popen.poll() is None:
            return
        code = self.popen.returncode
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        raise ProcessFailed(f"{self.name} (pid {self.popen.pid}) ended: {how}\n{self.tail()}")

    def finish(self, timeout: float) -> None:
        """Wait for a process that ends by itself; raise `ProcessFailed` if it fails or runs
        past `timeout` (it is stopped then)."""
        if self.popen is None:
            raise RuntimeError(f"{self.name} was never started")
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise ProcessFailed(f"{self.name} still running after {timeout:g} s") from None
        if code != 0:
            self.check()

    def stop(self, timeout: float = 20.0, sig: signal.Signals = signal.SIGTERM) -> None:
        """Ask the process to end (`sig`), kill it after `timeout`, then kill what is left of
        its tree (a child it could not stop)."""
        popen, self.popen = self.popen, None
        if popen is None:
            return
        leftovers = ProcessTree(popen.pid).processes()[1:]
        if popen.poll() is None:
            popen.send_signal(sig)
            try:
                popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(10)
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.kill()

    def kill(self) -> None:
        """SIGKILL, as a process that dies would end: no goodbye to anyone."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)

    def terminate(self) -> None:
        """SIGTERM without waiting: a graceful shutdown the caller watches."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()

    # --- what it did -------------------------------------------------------------------------

    @property
    def tree(self) -> ProcessTree:
        return ProcessTree(self.pid)

    def tail(self, chars: int = 3000) -> str:
        if not self.log.exists():
            return "(no log)"
        return self.log.read_text("utf-8", "replace")[-chars:]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ProductNode(Process):
    """The product, `python -m core.cli run`, on a port of its own.

    `env` is the whole environment of the process (see `product_env`); PORT, HOST and NODE_ID
    are set here. Ready when `ready_path` answers 200.
    """

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        log: Path,
        *,
        port: int | None = None,
        cwd: Path = ROOT,
        ready_path: str = "/health/ready",
    ) -> None:
        self.port = port or free_port()
        self.ready_path = ready_path
        full = {**env, "HOST": HOST, "PORT": str(self.port), "NODE_ID": name}
        super().__init__(
            name, [sys.executable, "-m", "core.cli", "run"], env=full, log=log, cwd=cwd
        )

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def ready(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(self.url + self.ready_path, timeout=2, trust_env=False)
            return response.status_code == 200
        return False

    def restart(self, timeout: float = 90.0) -> None:
        """Stop gracefully (SIGTERM: uvicorn closes live sockets with 1012), start again on the
        same port."""
        self.stop()
        self.start(timeout)

    async def wait_ready_async(self, timeout: float = 90.0) -> None:
        """Wait for readiness without blocking the event loop (a node restarted mid-test)."""
        async with httpx.AsyncClient(timeout=2, trust_env=False) as http:

            async def answers() -> bool:
                with contextlib.suppress(httpx.HTTPError):
                    return (await http.get(self.url + self.ready_path)).status_code == 200
                return False

            try:
                await wait_until_async(answers, timeout, f"{self.name} ready", check=self.check)
            except TimeoutError as exc:
                raise ProcessFailed(f"{exc}\n{self.tail()}") from None


def product_env(
    settings: Mapping[str, str], base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a product process: the caller's (`base`, default this process's)
    without anything that points at real services or another database, the embedded
    implementations chosen explicitly (a developer's `.env` cannot override the environment),
    and `settings` on top."""
    return {**inherited_env(FOREIGN_SETTINGS, base), **EMBEDDED, **settings}


class RedisServer(Process):
    """A private `redis-server` without persistence, so that it can be restarted, monitored or
    flushed without touching anyone else's data."""

    def __init__(self, log: Path, *, port: int | None = None, max_clients: int = 10_000) -> None:
        self.port = port or free_port()
        args = ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", ""]
        args += ["--appendonly", "no", "--maxclients", str(max_clients)]
        super().__init__("redis-server", args, env=inherited_env([COVERAGE_VARIABLE]), log=log)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def client(self) -> Redis:
        return Redis(host=HOST, port=self.port, socket_timeout=30, decode_responses=True)

    def ready(self) -> bool:
        with contextlib.suppress(RedisError), self.client() as redis:
            return bool(redis.ping())
        return False

    def restart(self) -> None:
        """Stop (SIGKILL) and start again on the same port: every client connection drops."""
        self.kill()
        self.popen = None
        self.start()

    def version(self) -> str:
        with self.client() as redis:
            return str(redis.info("server").get("redis_version", "?"))


class MongoServer(Process):
    """SecantusDB's `secantusd-py`: a MongoDB-wire-protocol server storing under `storage`."""

    EXECUTABLE = "secantusd-py"

    def __init__(self, storage: Path, log: Path, *, port: int | None = None) -> None:
        self.port = port or free_port()
        storage.mkdir(parents=True, exist_ok=True)
        args = [self._executable(), "--host", HOST, "--port", str(self.port)]
        args += ["--storage-path", str(storage), "--log-level", "WARNING"]
        env = {**inherited_env([COVERAGE_VARIABLE]), "PYTHONUNBUFFERED": "1"}
        super().__init__("secantusd", args, env=env, log=log)

    @classmethod
    def _executable(cls) -> str:
        beside_python = Path(sys.executable).parent / cls.EXECUTABLE
        if beside_python.exists():
            return str(beside_python)
        found = shutil.which(cls.EXECUTABLE)
        if found is None:
            raise ProcessFailed(
                f"{cls.EXECUTABLE} not found: install the dev extras (pip install -e '.[dev]')"
            )
        return found

    @property
    def url(self) -> str:
        return f"mongodb://{HOST}:{self.port}/?directConnection=true"

    def ready(self) -> bool:
        client: MongoClient[dict[str, object]] = MongoClient(
            self.url, serverSelectionTimeoutMS=500, connectTimeoutMS=500
        )
        try:
            return bool(client.admin.command("ping").get("ok"))
        except Exception:  # any failure means "not yet"
            return False
        finally:
            client.close()
