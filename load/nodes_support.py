"""The processes under test for `load.bench_nodes`: a private Redis, a MongoDB-protocol server and
two API nodes, plus verified users, interviews, percentiles and a description of the machine.

Everything listens on 127.0.0.1 and lives in a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from pymongo import MongoClient

from core.embedded_mongo import EmbeddedMongo, free_port
from core.security import PasswordHasher
from core.settings import DEFAULT_PEPPER
from load.users import user_doc

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
PASSWORD = "nodes-bench password 1"
BCRYPT_ROUNDS = 4

# Limits raised so that the load is measured instead of refused; no deadline fires meanwhile.
LOAD_ENV: dict[str, str] = {
    "APP_ENV": "test",
    "HOST": HOST,
    "LOG_LEVEL": "WARNING",
    "CELERY_BROKER_URL": "",
    "BCRYPT_ROUNDS": str(BCRYPT_ROUNDS),
    "ACCESS_TOKEN_TTL_SEC": "7200",
    "FREE_INTERVIEWS_PER_MONTH": "1000000",
    "RATE_LIMIT_GLOBAL_IP": "100000000/60",
    "RATE_LIMIT_AUTH_IP": "100000000/60",
    "RATE_LIMIT_AUTH_ACCOUNT": "100000000/60",
    "RATE_LIMIT_USER": "100000000/60",
    "RATE_LIMIT_SOCKET_MESSAGES": "100000000/1",
    "TIME_LIMIT_INTERN_SEC": "3600",
    "TIME_LIMIT_JUNIOR_SEC": "3600",
    "TIME_LIMIT_MIDDLE_SEC": "3600",
    "PUBLIC_BASE_URL": "http://127.0.0.1",
}
# Vendor credentials of the caller's shell must not turn real services on.
UNSET = ("OPENAI_API_KEY", "SENDPULSE_CLIENT_ID", "CLOUDPAYMENTS_PUBLIC_ID", "PASSWORD_PEPPER")


def raise_nofile() -> int:
    """Raise the open-files limit to the hard limit (children inherit it); returns the new one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank) or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def summary(values: list[float]) -> dict[str, Any]:
    """n, p50, p99 and max, in the unit given."""
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def median(values: list[float | None]) -> float | None:
    present = sorted(v for v in values if v is not None)
    if not present:
        return None
    mid = len(present) // 2
    return present[mid] if len(present) % 2 else (present[mid - 1] + present[mid]) / 2


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "redis": redis_version.split(" v=")[1].split()[0] if " v=" in redis_version else "?",
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "somaxconn": _read_int("/proc/sys/net/core/somaxconn"),
    }


def _read_int(path: str) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(Path(path).read_text().strip())
    return None


class RedisServer:
    """A private redis-server with no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", ""]
            + ["--appendonly", "no", "--maxclients", "20000"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            if self.cli("ping", check=False) == "PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def cli(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["redis-cli", "-h", HOST, "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )
        return done.stdout.strip()

    def info(self, section: str) -> dict[str, str]:
        pairs = (line.split(":", 1) for line in self.cli("info", section).splitlines())
        return {k: v for k, v in (p for p in pairs if len(p) == 2)}

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


class Node:
    """One API node: `python -m core.cli run` with its own port and NODE_ID."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "run"],
            cwd=ROOT,
            env={**self.env, "PORT": str(self.port), "NODE_ID": self.name},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client() as http:
            while time.monotonic() < deadline:
                if self.process is None or self.process.poll() is not None:
                    raise RuntimeError(f"node {self.name} exited:\n{self.tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get(f"http://{self.address}/health/ready").status_code == 200:
                        return
                time.sleep(0.1)
        raise RuntimeError(f"node {self.name} not ready in {timeout} s:\n{self.tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9, as a node that dies would."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def cpu_seconds(self) -> float:
        if not self.alive() or self.pid is None:
            return 0.0
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(self.pid).cpu_times()
            return float(times.user + times.system)
        return 0.0

    def rss_mb(self) -> float:
        if not self.alive() or self.pid is None:
            return 0.0
        with contextlib.suppress(psutil.Error):
            return float(psutil.Process(self.pid).memory_info().rss) / 2**20
        return 0.0

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


class Cluster:
    """Redis + a MongoDB-protocol server + nodes A and B sharing them."""

    def __init__(self, overrides: dict[str, str], redis_options: str = "") -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-nodes-"))
        self.redis = RedisServer()
        self.mongo = EmbeddedMongo(self.tmp / "mongo")
        self.db_name = f"bench_{uuid.uuid4().hex[:10]}"
        self.prefix = f"bn:{uuid.uuid4().hex[:8]}:"
        self.overrides = overrides
        self.redis_options = redis_options  # query options of REDIS_URL, e.g. the pool size
        self.a: Node | None = None
        self.b: Node | None = None

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k not in UNSET}
        return {
            **base,
            **LOAD_ENV,
            "MONGODB_URL": self.mongo.url,
            "MONGODB_DB": self.db_name,
            "REDIS_URL": self.redis.url + (f"?{self.redis_options}" if self.redis_options else ""),
            "REDIS_KEY_PREFIX": self.prefix,
            "DATA_DIR": str(self.tmp / "data"),
            **self.overrides,
        }

    def start(self) -> None:
        self.redis.start()
        self.mongo.start()
        env = self.env()
        self.a = Node("node-a", env, self.tmp / "a.log")
        self.b = Node("node-b", env, self.tmp / "b.log")
        self.a.start()
        self.a.wait_ready()  # the first node seeds the question bank; then the second starts
        self.b.start()
        self.b.wait_ready()

    def restart(self, name: str, extra: dict[str, str] | None = None) -> Node:
        """Start node `name` ("a" or "b") again (killing it first), on a new port."""
        old = self.a if name == "a" else self.b
        if old is not None:
            old.kill()
        node = Node(f"node-{name}", {**self.env(), **(extra or {})}, self.tmp / f"{name}.log")
        node.start()
        node.wait_ready()
        if name == "a":
            self.a = node
        else:
            self.b = node
        return node

    def stop(self) -> None:
        for node in (self.a, self.b):
            if node is not None:
                with contextlib.suppress(Exception):
                    node.kill()
        with contextlib.suppress(Exception):
            self.redis.stop()
        with contextlib.suppress(Exception):
            self.mongo.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


# --- users and interviews ------------------------------------------------------------------------


def create_users(mongo_url: str, db_name: str, count: int) -> list[str]:
    """Insert `count` verified users as `AccountService.register` + `verify_email` leave them."""
    prefix = f"nodes-{uuid.uuid4().hex[:6]}"
    password_hash = PasswordHasher(DEFAULT_PEPPER, BCRYPT_ROUNDS).hash_sync(PASSWORD)
    now = datetime.now(UTC)
    emails = [f"{prefix}-{i}@example.ru" for i in range(count)]
    docs = [user_doc(email, password_hash, now) for email in emails]
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, serverSelectionTimeoutMS=10_000)
    try:
        for start in range(0, len(docs), 500):
            client[db_name]["users"].insert_many(docs[start : start + 500], ordered=False)
    finally:
        client.close()
    return emails


async def _bounded(jobs: list[Any], limit: int) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def run(job: Any) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(run(job) for job in jobs)))


async def login_all(address: str, emails: list[str], concurrency: int = 16) -> list[str]:
    """Access tokens, one per email, through the real login endpoint."""
    async with httpx.AsyncClient(base_url=f"http://{address}", timeout=60) as http:

        async def login(email: str) -> str:
            body = {"email": email, "password": PASSWORD}
            response = await http.post("/api/v1/auth/login", json=body)
            response.raise_for_status()
            return str(response.json()["token"])

        return await _bounded([login(e) for e in emails], concurrency)


async def start_interviews(
    addresses: list[str], tokens: list[str], count: int, concurrency: int = 16
) -> list[tuple[str, str]]:
    """`count` junior interviews started over REST, round-robin over the users and the nodes."""
    clients = [httpx.AsyncClient(base_url=f"http://{a}", timeout=120) for a in addresses]
    try:

        async def begin(i: int) -> tuple[str, str]:
            token = tokens[i % len(tokens)]
            response = await clients[i % len(clients)].post(
                "/api/v1/interviews/technical/start",
                json={"level": "junior"},
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code != 201:
                raise RuntimeError(f"start failed: {response.status_code} {response.text[:200]}")
            return token, str(response.json()["interviewId"])

        return await _bounded([begin(i) for i in range(count)], concurrency)
    finally:
        for client in clients:
            await client.aclose()


# --- node logs -----------------------------------------------------------------------------------


def log_counts(cluster: Cluster) -> dict[str, int]:
    """Warnings and errors the nodes logged so far, by node, level and message."""
    counts: dict[str, int] = {}
    for name in ("a", "b"):
        path = cluster.tmp / f"{name}.log"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                if "Error" in line and ":" in line and not line.startswith(" "):
                    key = f"{name}: {line.split(':')[0][:80]}"  # a traceback's last line
                    counts[key] = counts.get(key, 0) + 1
                continue
            if isinstance(record, dict) and record.get("level") in ("warning", "error"):
                key = f"{name}: {record['level']}: {str(record.get('msg'))[:80]}"
                counts[key] = counts.get(key, 0) + 1
    return counts


def count_diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
