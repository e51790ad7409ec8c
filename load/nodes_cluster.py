"""What `load.bench_nodes` runs against: a private `redis-server` (or a private 3-master Redis
Cluster), the SecantusDB server and two product nodes sharing them, all on 127.0.0.1 in a
temporary folder removed afterwards; and the interviews the scenarios share, set up over the
public API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from load.clients import hello, open_socket
from load.harness import (
    MongoServer,
    ProductNode,
    RedisClusterServers,
    RedisServer,
    product_env,
)
from load.measure import RAISED_LIMITS
from load.users import Account, bounded, http_client, register_users

Pool = list[tuple[str, str]]  # (access token, interview id)
# A `lastSeq` beyond any history: the welcome says where the history stands, and the replay
# that follows is a snapshot instead of every event (docs/protocol.md).
BEYOND_HISTORY = 2**31 - 1


class Cluster:
    """Redis (one server, or a cluster of 3 masters) + a MongoDB-protocol server + nodes A and
    B sharing them."""

    def __init__(
        self, overrides: dict[str, str], redis_options: str = "", *, redis_cluster: bool = False
    ) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-nodes-"))
        self.redis_cluster: RedisClusterServers | None = None
        self.redis: RedisServer | None = None
        if redis_cluster:
            self.redis_cluster = RedisClusterServers(self.tmp / "redis-cluster", max_clients=20_000)
        else:
            self.redis = RedisServer(self.tmp / "redis.log", max_clients=20_000)
        self.mongo = MongoServer(self.tmp / "mongo", self.tmp / "mongo.log")
        self.db_name = f"bench_{uuid.uuid4().hex[:10]}"
        self.prefix = f"bn:{uuid.uuid4().hex[:8]}:"
        self.overrides = overrides
        self.redis_options = redis_options  # query options of REDIS_URL, e.g. the pool size
        self.a: ProductNode | None = None
        self.b: ProductNode | None = None

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def redis_servers(self) -> list[RedisServer]:
        """Every Redis server (the masters, on a cluster)."""
        if self.redis_cluster is not None:
            return self.redis_cluster.servers
        assert self.redis is not None
        return [self.redis]

    def redis_version(self) -> str:
        version = self.redis_servers[0].version()
        return f"{version}, cluster of {len(self.redis_servers)}" if self.redis_cluster else version

    def env(self) -> dict[str, str]:
        base = (
            self.redis_cluster.url if self.redis_cluster is not None else self.redis_servers[0].url
        )
        redis_url = base + (f"?{self.redis_options}" if self.redis_options else "")
        return product_env(
            {
                **RAISED_LIMITS,
                "APP_ENV": "test",
                "BCRYPT_ROUNDS": "4",
                "RATE_LIMIT_SOCKET_MESSAGES": "100000000/1",
                "PUBLIC_BASE_URL": "http://127.0.0.1",
                "MONGODB_URL": self.mongo.url,
                "MONGODB_DB": self.db_name,
                "REDIS_URL": redis_url,
                "REDIS_KEY_PREFIX": self.prefix,
                "DATA_DIR": str(self.tmp / "data"),
                **self.overrides,
            }
        )

    def node(self, name: str, extra: dict[str, str] | None = None) -> ProductNode:
        return ProductNode(
            f"node-{name}", {**self.env(), **(extra or {})}, self.tmp / f"{name}.log"
        )

    def start(self) -> None:
        if self.redis_cluster is not None:
            self.redis_cluster.start()
        else:
            assert self.redis is not None
            self.redis.start()
        self.mongo.start()
        self.a = self.node("a")
        self.a.start()  # the first node seeds the question bank; then the second starts
        self.b = self.node("b")
        self.b.start()

    def restart(self, name: str, extra: dict[str, str] | None = None) -> ProductNode:
        """Start node `name` ("a" or "b") again (killing it first), on a new port."""
        old = self.a if name == "a" else self.b
        if old is not None:
            old.kill()
        node = self.node(name, extra)
        node.start()
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
        for server in (self.redis, self.redis_cluster, self.mongo):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


# --- users and interviews ------------------------------------------------------------------------


def build_pool(cluster: Cluster, users: int, interviews: int) -> Pool:
    """`users` verified users, logged in, and `interviews` interviews started over REST,
    round-robin over the users and the two nodes; shuffled."""
    assert cluster.a is not None and cluster.b is not None
    outbox = cluster.tmp / "data" / "outbox"
    accounts = asyncio.run(register_users(cluster.a.url, users, outbox=outbox))
    pool = asyncio.run(_start(accounts, [cluster.a.url, cluster.b.url], interviews))
    random.Random(7).shuffle(pool)
    return pool


async def _start(accounts: list[Account], bases: list[str], count: int) -> Pool:
    clients = [http_client(base) for base in bases]
    try:

        async def begin(i: int) -> tuple[str, str]:
            token = accounts[i % len(accounts)].token
            response = await clients[i % len(clients)].post(
                "/api/v1/interviews/technical/start",
                json={"level": "junior"},
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code != 201:
                raise RuntimeError(f"start failed: {response.status_code} {response.text[:200]}")
            return token, str(response.json()["interviewId"])

        return await bounded((begin(i) for i in range(count)), 16)
    finally:
        for client in clients:
            await client.aclose()


def heads(node: ProductNode, pool: Pool) -> list[int]:
    """Where each interview's history stands (`lastSeq` of a welcome), asked over the socket."""

    async def head(token: str, interview_id: str) -> int:
        ws = await open_socket(f"ws://{node.address}/ws/v1/interview", max_queue=None)
        try:
            await ws.send(hello(token, interview_id, BEYOND_HISTORY))
            welcome = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if welcome.get("type") != "welcome":
                raise RuntimeError(f"expected welcome, got {welcome}")
            return int(welcome["lastSeq"])
        finally:
            await ws.close()

    async def all_heads() -> list[int]:
        return await bounded((head(*entry) for entry in pool), 32)

    return asyncio.run(all_heads())


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


def describe(cluster: Cluster) -> dict[str, Any]:
    return {"redis": cluster.redis_version(), "db": cluster.db_name, "prefix": cluster.prefix}
