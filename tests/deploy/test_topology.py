"""The compose topology run natively: a whole interview through nginx while nodes die.

What compose.yaml runs, on loopback: SecantusDB for MongoDB, a private redis-server, RabbitMQ
(this machine's, at 127.0.0.1:5672, on a queue of this test's own), the one-shot seed step, two
API nodes (`python -m core.cli run`, APP_ENV=production, no CloudPayments, no SendPulse), a
Celery worker and beat, and Debian's nginx running deploy/nginx.conf with only the upstream
addresses and the listen address changed.

The interview's socket node is SIGKILLed in the middle of a feedback stream; it comes back and
then the other node is killed in the middle of the next one. Meanwhile a prober sends GETs
through nginx; every request refused while a healthy node is up is counted and printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import json
import re
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from kombu import Connection
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from core.backup import verify_archive
from core.embedded_mongo import EmbeddedMongo
from tests.deploy.processes import (
    Nginx,
    Node,
    Proc,
    RedisServer,
    clean_env,
    python,
    run_command,
    until,
)
from tests.helpers import PASSWORD, mail_text

pytestmark = pytest.mark.integration

BROKER = "amqp://guest:guest@127.0.0.1:5672//"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def broker_reachable() -> None:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=3).close()
    except OSError as exc:
        raise AssertionError(f"RabbitMQ is needed at 127.0.0.1:5672 (guest/guest): {exc}") from None


@dataclass
class Topology:
    data: Path
    nginx: Nginx
    nodes: dict[str, Node]
    worker: Proc
    beat: Proc
    env: dict[str, str]

    def death(self) -> str | None:
        for proc in (self.worker, self.beat, *self.nodes.values()):
            dead = proc.death()
            if dead:
                return dead
        return None


def topology_env(
    mongo_url: str, redis_url: str, queue: str, public_url: str, data: Path
) -> dict[str, str]:
    """compose's environment of the app services, with loopback addresses; faster timers."""
    return clean_env(
        APP_ENV="production",
        JWT_SECRET="topology-jwt-secret-" + uuid.uuid4().hex,
        PASSWORD_PEPPER="topology pepper " + uuid.uuid4().hex,
        PAYMENT_REFERENCE_KEY="topology payment key " + uuid.uuid4().hex,
        PUBLIC_BASE_URL=public_url,
        MONGODB_URL=mongo_url,
        MONGODB_DB="interview_platform",
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=BROKER,
        CELERY_QUEUE=queue,
        DATA_DIR=str(data),
        FORWARDED_ALLOW_IPS="127.0.0.1",
        GRACEFUL_SHUTDOWN_SEC="20",
        LOG_LEVEL="INFO",
        BCRYPT_ROUNDS="4",
        QUESTIONS_PER_INTERVIEW="3",
        LOCAL_EVALUATOR_DELAY_SEC="0.05",
        EVAL_LEASE_TTL_SEC="1.5",
        ORPHAN_SWEEP_SEC="0.3",
        RATE_LIMIT_GLOBAL_IP="100000/60",
        BACKUP_INTERVAL_SEC="4",
        BACKUP_KEEP="2",
    )


@pytest.fixture
async def topology(tmp_path: Path) -> AsyncIterator[Topology]:
    broker_reachable()
    data = tmp_path / "data"
    data.mkdir()
    mongo = EmbeddedMongo(tmp_path / "mongo")
    mongo.start()
    redis = RedisServer(tmp_path)
    await redis.start()
    queue = f"topology-{uuid.uuid4().hex[:12]}"
    nginx = Nginx(tmp_path, [])
    env = topology_env(mongo.url, redis.url, queue, nginx.url, data)
    procs: list[Proc] = []
    nodes: dict[str, Node] = {}
    try:
        # compose's `seed` service: runs to its end before the nodes start.
        seeded = run_command(["seed"], env)
        assert seeded.returncode == 0, seeded.stderr
        nodes.update({name: Node.create(name, env, tmp_path) for name in ("api1", "api2")})
        celery = ["celery", "-A", "workers.celery_app:celery_app"]
        worker = python(
            "worker",
            [*celery, "worker", "--loglevel=INFO", "--concurrency=1", "--without-mingle"],
            {**env, "NODE_ID": "worker"},
            tmp_path / "worker.log",
        )
        beat = python(
            "beat",
            [*celery, "beat", "--loglevel=INFO", "--schedule", str(tmp_path / "beat-schedule")],
            {**env, "NODE_ID": "beat"},
            tmp_path / "beat.log",
        )
        procs = [worker, beat]
        for proc in [*nodes.values(), *procs]:
            proc.start()
        for node in nodes.values():
            await node.wait_ready()
        nginx.upstreams = [f"127.0.0.1:{node.port}" for node in nodes.values()]
        await nginx.start()
        yield Topology(data, nginx, nodes, worker, beat, env)
    finally:
        nginx.stop()
        # The test replaces a node it restarts in `nodes`: stop whatever runs now.
        for proc in [*nodes.values(), *procs]:
            proc.stop(timeout=20)
        redis.stop()
        mongo.stop()
        with contextlib.suppress(Exception), Connection(BROKER) as conn:
            conn.default_channel.queue_delete(queue)


# --- the client side ------------------------------------------------------------------------------


async def verified_token(topology: Topology, http: httpx.AsyncClient, address: str) -> str:
    """Register through nginx, read the mail the Celery worker wrote, verify, log in."""
    body = {"email": address, "password": PASSWORD, "gender": "male", "age": 30}
    assert (await http.post("/api/v1/auth/register", json=body)).status_code == 201
    found: list[str] = []

    def mailed() -> bool:
        for path in sorted((topology.data / "outbox").glob("*verify_email*.eml")):
            message = email.message_from_bytes(path.read_bytes())
            if address in str(message["To"]):
                match = re.search(r"token=([A-Za-z0-9_-]+)", mail_text(message))
                if match:
                    found.append(match.group(1))
        return bool(found)

    await until(mailed, 90, "the worker wrote the verification mail", topology.death)
    verified = await http.post("/api/v1/auth/verify-email", json={"token": found[-1]})
    assert verified.status_code == 200, verified.text
    login = await http.post("/api/v1/auth/login", json={"email": address, "password": PASSWORD})
    assert login.status_code == 200, login.text
    token: str = login.json()["token"]
    return token


@dataclass
class Prober:
    """GETs through nginx one after another; counts every answer that is not a 200."""

    base: str
    answered_by: dict[str, int] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    total: int = 0

    async def run(self) -> None:
        paths = ("/health/live", "/api/v1/subscriptions/plans")
        async with httpx.AsyncClient(base_url=self.base, timeout=10) as http:
            while True:
                path = paths[self.total % 2]
                self.total += 1
                try:
                    response = await http.get(path)
                except httpx.TransportError as exc:
                    self.refused.append(f"{path}: {exc!r}")
                else:
                    if response.status_code != 200:
                        self.refused.append(f"{path}: {response.status_code} {response.text}")
                    elif path == "/health/live":
                        node = response.json()["node"]
                        self.answered_by[node] = self.answered_by.get(node, 0) + 1
                await asyncio.sleep(0.02)


def established(node: Node) -> set[int]:
    """Peer ports of the node's established connections (nginx's side of each)."""
    conns = psutil.Process(node.pid).net_connections(kind="tcp")
    return {
        c.raddr.port
        for c in conns
        if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == node.port and c.raddr
    }


class Interview:
    """The browser's side of the socket: keeps lastSeq, reconnects through nginx."""

    def __init__(self, ws_url: str, token: str, interview_id: str) -> None:
        self.ws_url = ws_url
        self.token = token
        self.interview_id = interview_id
        self.frames: list[dict[str, Any]] = []
        self.ws: ClientConnection | None = None

    @property
    def seqs(self) -> list[int]:
        return [f["seq"] for f in self.frames if isinstance(f.get("seq"), int)]

    async def connect(self) -> None:
        self.ws = await connect(self.ws_url)
        hello: dict[str, Any] = {
            "type": "hello",
            "token": self.token,
            "interviewId": self.interview_id,
        }
        if self.seqs:
            hello["lastSeq"] = self.seqs[-1]
        await self.ws.send(json.dumps(hello))
        welcome = await self.recv()
        assert welcome["type"] == "welcome", welcome

    async def recv(self, timeout: float = 30.0) -> dict[str, Any]:
        assert self.ws is not None
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        if frame["type"] != "welcome":
            self.frames.append(frame)
        return frame

    async def until(self, kind: str, count: int = 1) -> dict[str, Any]:
        """Frames up to the `count`-th new one of `kind`."""
        seen = 0
        while True:
            frame = await self.recv()
            if frame["type"] == kind:
                seen += 1
                if seen >= count:
                    return frame

    async def answer(self, question: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(
            json.dumps(
                {
                    "type": "answer",
                    "questionId": question["questionId"],
                    "answer": "индексы B-tree, транзакции и изоляция",
                    "clientMsgId": question["questionId"],
                }
            )
        )

    async def lose_socket(self) -> None:
        """Read what is left until the dead node's socket closes."""
        with pytest.raises(ConnectionClosed):
            while True:
                await self.recv(timeout=30)


def socket_node(topology: Topology, before: dict[str, set[int]]) -> Node:
    """The node holding the socket just opened: the one with a new connection from nginx."""
    new = {name: established(node) - before[name] for name, node in topology.nodes.items()}
    holders = [name for name, ports in new.items() if ports]
    assert len(holders) == 1, f"cannot tell the socket's node: {new}"
    return topology.nodes[holders[0]]


@contextlib.contextmanager
def probing(prober: Prober) -> Iterator[None]:
    task = asyncio.get_running_loop().create_task(prober.run())
    try:
        yield
    finally:
        task.cancel()


# --- the test -------------------------------------------------------------------------------------


# Eight processes start and two restart: a loaded machine needs more than the default limit.
@pytest.mark.timeout(300)
async def test_a_whole_interview_through_nginx_survives_a_node_killed_mid_stream(
    topology: Topology,
) -> None:
    base = topology.nginx.url
    ws_url = base.replace("http://", "ws://") + "/ws/v1/interview"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        token = await verified_token(topology, http, "shape@example.ru")
        auth = {"Authorization": f"Bearer {token}"}
        await edges_of_the_proxy(topology, http, auth)
        started = await http.post(
            "/api/v1/interviews/technical/start", json={"level": "junior"}, headers=auth
        )
        assert started.status_code == 201, started.text
        interview_id = started.json()["interviewId"]

        before = {name: established(node) for name, node in topology.nodes.items()}
        client = Interview(ws_url, token, interview_id)
        await client.connect()
        first = socket_node(topology, before)
        other = next(n for n in topology.nodes.values() if n is not first)
        prober = Prober(base)
        with probing(prober):
            question = await client.until("question")
            await client.answer(question)
            await client.until("feedback.delta", 3)
            first.kill()  # SIGKILL in the middle of the feedback stream
            await client.lose_socket()
            await client.connect()  # through nginx: only `other` is up
            await client.until("feedback.done")
            question = await client.until("question")

            # The killed node comes back; then the other one dies mid-stream.
            restarted = Node(first.name, first.args, first.env, first.log, port=first.port)
            topology.nodes[first.name] = restarted.start()
            await restarted.wait_ready()
            await client.answer(question)
            await client.until("feedback.delta", 3)
            other.kill()
            await client.lose_socket()
            await client.connect()  # through nginx: only the restarted node is up
            await client.until("feedback.done")
            question = await client.until("question")
            await client.answer(question)
            await client.until("interview.completed")
            assert client.ws is not None
            await client.ws.close()
        figure = (
            f"failover: {len(prober.refused)} of {prober.total} requests through nginx refused "
            f"while a healthy node was up (answered by {prober.answered_by})"
        )
        print("\n" + figure, file=sys.stderr)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "failover.txt").write_text(figure + "\n")
        assert prober.refused == [], prober.refused[:5]
        assert prober.total >= 20 and len(prober.answered_by) == 2, prober.answered_by

        seqs = client.seqs
        assert seqs == list(range(1, len(seqs) + 1)), f"gaps or duplicates in {seqs}"
        kinds = [f["type"] for f in client.frames]
        assert kinds.count("feedback.reset") >= 2, "each killed stream was restarted"
        assert kinds.count("feedback.done") >= 3
        report = await http.get(f"/api/v1/interviews/{interview_id}/report", headers=auth)
        assert report.status_code == 200, report.text
        assert report.json()["status"] == "completed"
        assert all(q["userAnswer"] for q in report.json()["questions"]), "no answer lost"

        # Beat scheduled the backup job; the worker wrote it where BACKUP_DIR says.
        backups = topology.data / "backups"
        await until(
            lambda: any(backups.glob("backup-interview_platform-*.tar.gz")),
            60,
            "a scheduled backup",
            topology.death,
        )
        newest = sorted(backups.glob("backup-interview_platform-*.tar.gz"))[-1]
        assert verify_archive(newest).database == "interview_platform"

        # With no node left, nginx's own 502 comes in the app's error envelope.
        for node in topology.nodes.values():
            node.kill()
        down = await http.get("/api/v1/subscriptions/plans")
        assert down.status_code == 502
        assert down.json()["error"]["code"] == "unavailable"
        assert down.headers["content-type"] == "application/json"


async def edges_of_the_proxy(
    topology: Topology, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """Body limits, the Host port, HSTS and payments through nginx."""
    too_big = await http.post(
        "/api/v1/admin/questions/import",
        content=b"x" * (4 * 1024 * 1024 + 1),
        headers={"Content-Type": "application/json", **auth},
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "body_too_large", "nginx's 413 as JSON"
    import_sized = await http.post(
        "/api/v1/admin/questions/import",
        content=b"[" + b" " * (2 * 1024 * 1024) + b"]",
        headers={"Content-Type": "application/json", **auth},
    )
    assert import_sized.status_code == 403, "2 MiB reaches the app (which refuses a non-admin)"
    assert import_sized.json()["error"]["code"] != "body_too_large"

    slash = await http.get("/api/v1/interviews/history/", headers=auth)
    if slash.is_redirect and slash.headers["location"].startswith("http"):
        assert slash.headers["location"].startswith(topology.nginx.url + "/"), "port kept"

    plain = await http.get("/api/v1/subscriptions/plans")
    assert "strict-transport-security" not in plain.headers, "plain HTTP: no HSTS"
    node = next(iter(topology.nodes.values()))
    async with httpx.AsyncClient(base_url=node.url) as direct:
        behind_tls = await direct.get(
            "/api/v1/subscriptions/plans", headers={"X-Forwarded-Proto": "https"}
        )
    assert "strict-transport-security" in behind_tls.headers

    bought = await http.post("/api/v1/subscriptions/create", json={"plan": "month"}, headers=auth)
    assert bought.status_code == 503
    assert bought.json()["error"]["code"] == "payments_unavailable"
