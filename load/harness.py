"""Real processes for the benchmarks and the tests: product nodes, a private `redis-server` (or a
private Redis Cluster of them), the SecantusDB server (the MongoDB wire protocol), and the CPU and
memory of a process tree.

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
from redis.cluster import RedisCluster
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
    flushed without touching anyone else's data; `extra` adds configuration (`--name value`)."""

    def __init__(
        self,
        log: Path,
        *,
        port: int | None = None,
        max_clients: int = 10_000,
        extra: Sequence[str] = (),
    ) -> None:
        self.port = port or free_port()
        args = ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", ""]
        args += ["--appendonly", "no", "--maxclients", str(max_clients), *extra]
        super().__init__(
            f"redis-server:{self.port}", args, env=inherited_env([COVERAGE_VARIABLE]), log=log
        )

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


class RedisClusterServers:
    """A private Redis Cluster on loopback ports: `masters` `redis-server` processes in cluster
    mode (and `replicas` replicas of each), the slots assigned by `redis-cli --cluster create`.

    Ready when every node says `cluster_state:ok` and knows every other node, every slot is
    served and each master has its replicas. `node_timeout_ms` is `cluster-node-timeout`: how long
    a master may be unreachable before its replica takes over (Redis's default is 15 s; a shorter
    one makes failover tests quick, a longer one keeps a busy machine from failing nodes over).
    """

    SLOTS = 16384

    def __init__(
        self,
        folder: Path,
        *,
        masters: int = 3,
        replicas: int = 0,
        node_timeout_ms: int = 15_000,
        max_clients: int = 10_000,
    ) -> None:
        if masters < 3:
            raise ValueError("redis-cli --cluster create needs at least 3 masters")
        self.folder = folder
        self.masters = masters
        self.replicas = replicas
        self.servers: list[RedisServer] = []
        for _ in range(masters * (1 + replicas)):
            port = free_port()
            config = folder / f"nodes-{port}.conf"
            extra = ["--cluster-enabled", "yes", "--cluster-config-file", str(config)]
            # The cluster bus port: by default port + 10000, which a free port may not allow.
            extra += ["--cluster-port", str(free_port())]
            extra += ["--cluster-node-timeout", str(node_timeout_ms), "--dir", str(folder)]
            # A replica answers for its slots right after a takeover; nothing waits for a
            # full resync of data that no test needs from before the failover.
            extra += ["--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0"]
            server = RedisServer(
                folder / f"redis-{port}.log", port=port, max_clients=max_clients, extra=extra
            )
            self.servers.append(server)

    @property
    def url(self) -> str:
        """REDIS_URL for the product: one node is enough, the client finds the others."""
        return f"redis+cluster://{HOST}:{self.servers[0].port}/0"

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    def client(self) -> RedisCluster:
        """A cluster client (blocking, text replies), as a test or a benchmark inspects it."""
        return RedisCluster(host=HOST, port=self.alive()[0].port, decode_responses=True)

    def start(self, timeout: float = 60.0) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            for server in self.servers:
                server.start(timeout)
            create = ["redis-cli", "--cluster", "create"]
            create += [f"{HOST}:{port}" for port in self.ports]
            create += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
            done = subprocess.run(
                create, capture_output=True, text=True, timeout=timeout, check=False
            )
            if done.returncode != 0:
                raise ProcessFailed(
                    f"redis-cli --cluster create failed:\n{done.stdout}{done.stderr}"
                )
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise

    def alive(self) -> list[RedisServer]:
        return [server for server in self.servers if server.alive()]

    def healthy(self) -> bool:
        """Every running node sees the cluster ok, all slots served and the expected masters."""
        running = self.alive()
        try:
            for server in running:
                with server.client() as redis:
                    info = redis.execute_command("CLUSTER", "INFO")
                    state = _cluster_info(info)
                    if state.get("cluster_state") != "ok":
                        return False
                    if int(state.get("cluster_known_nodes", 0)) < len(running):
                        return False
                    if int(state.get("cluster_slots_ok", 0)) != self.SLOTS:
                        return False
                    if int(state.get("cluster_size", 0)) != self.masters:
                        return False
                    replication = redis.info("replication")
                    if replication.get("role") == "master" and self.replicas:
                        online = [
                            value
                            for name, value in replication.items()
                            if name.startswith("slave")
                            and isinstance(value, dict)
                            and value.get("state") == "online"
                        ]
                        if len(online) < self.replicas:
                            return False
        except RedisError:
            return False
        return True

    def wait_healthy(self, timeout: float = 60.0) -> None:
        def check() -> None:
            for server in self.servers:
                server.check()

        try:
            wait_until(self.healthy, timeout, "redis cluster ok", check=check, interval=0.1)
        except TimeoutError as exc:
            logs = "\n".join(server.tail(800) for server in self.servers)
            raise ProcessFailed(f"{exc}\n{logs}") from None

    def master_of(self, key: str) -> RedisServer:
        """The server that holds `key`'s slot now, as the first live node sees it."""
        slot, nodes = self._slot_table(key)
        for start, end, host, port in nodes:
            if start <= slot <= end:
                return next(s for s in self.servers if s.port == port and HOST == host)
        raise LookupError(f"no node serves slot {slot}")

    def replicas_of(self, master: RedisServer) -> list[RedisServer]:
        with master.client() as redis:
            replication = redis.info("replication")
        ports = {
            int(value["port"])
            for name, value in replication.items()
            if name.startswith("slave") and isinstance(value, dict)
        }
        return [server for server in self.servers if server.port in ports]

    def move_slot(self, key: str, target: RedisServer, timeout: float = 30.0) -> None:
        """Migrate the slot of `key`, with its keys, to the master `target`, as a resharding
        does (IMPORTING/MIGRATING, MIGRATE, then SETSLOT NODE on every master)."""
        source = self.master_of(key)
        if source is target:
            return
        with source.client() as src, target.client() as dst:
            slot = int(src.execute_command("CLUSTER", "KEYSLOT", key))
            source_id = src.execute_command("CLUSTER", "MYID")
            target_id = dst.execute_command("CLUSTER", "MYID")
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", HOST, target.port, "", 0, 5000, "KEYS", *keys)
        for server in self.alive():
            with server.client() as redis:
                if redis.info("replication").get("role") == "master":
                    redis.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        wait_until(lambda: self.master_of(key) is target, timeout, f"slot {slot} moved")

    def fail_over(self, key: str, timeout: float = 60.0) -> RedisServer:
        """Kill (SIGKILL) the master that serves `key`; return its replica once that serves the
        slot and every live node sees the cluster ok."""
        old = self.master_of(key)
        if not self.replicas_of(old):
            raise ValueError("a master without replicas cannot fail over")
        old.kill()

        def taken_over() -> bool:
            try:
                if self.master_of(key) is old:
                    return False
                for server in self.alive():
                    with server.client() as redis:
                        info = _cluster_info(redis.execute_command("CLUSTER", "INFO"))
                        if info.get("cluster_state") != "ok":
                            return False
            except (RedisError, LookupError, StopIteration):
                return False
            return True

        wait_until(taken_over, timeout, "replica took over", interval=0.1)
        return self.master_of(key)

    def _slot_table(self, key: str) -> tuple[int, list[tuple[int, int, str, int]]]:
        server = self.alive()[0]
        with server.client() as redis:
            slot = int(redis.execute_command("CLUSTER", "KEYSLOT", key))
            table = redis.execute_command("CLUSTER", "SLOTS")
        rows = [(int(r[0]), int(r[1]), str(r[2][0]), int(r[2][1])) for r in table]
        return slot, rows

    def version(self) -> str:
        return self.alive()[0].version()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _cluster_info(info: object) -> dict[str, str]:
    if isinstance(info, dict):
        return {str(k): str(v) for k, v in info.items()}
    pairs = (line.split(":", 1) for line in str(info).splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


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
