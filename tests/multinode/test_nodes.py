"""Two real nodes (uvicorn processes) sharing one Redis and one MongoDB-protocol server.

The tests that take nodes away (kill -9 mid-stream, SIGTERM hand-over) and the fan-out across
nodes run on a single Redis and on a 3-master Redis Cluster alike.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from redis import Redis
from redis.cluster import RedisCluster
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from load.harness import ProductNode, RedisClusterServers, RedisServer, product_env
from tests.helpers import PASSWORD, mail_text

pytestmark = pytest.mark.integration

BOTH = pytest.mark.parametrize("redis_target", ["redis", "redis-cluster"], indirect=True)


@dataclass
class RedisTarget:
    """The Redis both nodes use: a private server, or the shared private cluster."""

    url: str
    server: RedisServer | None = None
    cluster: RedisClusterServers | None = None

    def client(self) -> Redis | RedisCluster:
        if self.cluster is not None:
            return self.cluster.client()
        assert self.server is not None
        return self.server.client()


@dataclass
class Deployment:
    redis: RedisTarget
    a: ProductNode
    b: ProductNode
    data_dir: Path
    mongo_url: str
    db_name: str
    prefix: str
    seen: list[int] = field(default_factory=list)


@pytest.fixture
def redis_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisTarget]:
    """A private redis-server per test (a test may stop it), or, parametrized with
    "redis-cluster", the test process's private Redis Cluster."""
    if getattr(request, "param", "redis") == "redis-cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        yield RedisTarget(cluster.url, cluster=cluster)
        return
    with RedisServer(tmp_path / "redis.log") as server:
        server.start()
        yield RedisTarget(server.url, server=server)


@pytest.fixture
def node_env() -> dict[str, str]:
    """Extra settings for both nodes; a test overrides it by parametrizing `node_env`."""
    return {}


@pytest.fixture
async def deployment(
    mongo_url: str, redis_target: RedisTarget, tmp_path: Path, node_env: dict[str, str]
) -> AsyncIterator[Deployment]:
    db_name = f"t_{uuid.uuid4().hex[:16]}"
    prefix = f"mn:{uuid.uuid4().hex[:8]}:"
    env = product_env(
        {
            "APP_ENV": "test",
            "MONGODB_URL": mongo_url,
            "MONGODB_DB": db_name,
            "REDIS_URL": redis_target.url,
            "REDIS_KEY_PREFIX": prefix,
            "DATA_DIR": str(tmp_path),
            "BCRYPT_ROUNDS": "4",
            "LOCAL_EVALUATOR_DELAY_SEC": "0.04",
            "EVAL_LEASE_TTL_SEC": "1.5",
            "ORPHAN_SWEEP_SEC": "0.3",
            "QUESTIONS_PER_INTERVIEW": "3",
            "LOG_LEVEL": "WARNING",
            "PUBLIC_BASE_URL": "http://testserver",
            **node_env,
        }
    )
    a = ProductNode("node-a", env, tmp_path / "a.log", cwd=tmp_path)
    b = ProductNode("node-b", env, tmp_path / "b.log", cwd=tmp_path)
    try:
        a.launch()
        await a.wait_ready_async()  # the first node seeds the question bank; then the second
        b.launch()
        await b.wait_ready_async()
        yield Deployment(redis_target, a, b, tmp_path, mongo_url, db_name, prefix)
    finally:
        # SIGTERM, so that the nodes still alive write their coverage data.
        await asyncio.gather(asyncio.to_thread(a.stop), asyncio.to_thread(b.stop))
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
        await client.drop_database(db_name)
        await client.close()
        if redis_target.cluster is not None:
            with redis_target.client() as redis:
                for key in list(redis.scan_iter(match=f"{prefix}*")):
                    redis.delete(key)


async def verified_token(deployment: Deployment, node: ProductNode, email: str) -> str:
    import email as email_lib
    import re

    async with httpx.AsyncClient(base_url=f"http://{node.address}") as http:
        body = {"email": email, "password": PASSWORD, "gender": "male", "age": 30}
        assert (await http.post("/api/v1/auth/register", json=body)).status_code == 201
        token = None
        for _ in range(100):
            for path in sorted((deployment.data_dir / "outbox").glob("*verify_email*.eml")):
                message = email_lib.message_from_bytes(path.read_bytes())
                if email in str(message["To"]):
                    found = re.search(r"token=([A-Za-z0-9_-]+)", mail_text(message))
                    token = found.group(1) if found else None
            if token:
                break
            await asyncio.sleep(0.05)
        assert token, "no verification mail"
        assert (
            await http.post("/api/v1/auth/verify-email", json={"token": token})
        ).status_code == 200
        login = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        access: str = login.json()["token"]
        return access


async def start_interview(node: ProductNode, token: str) -> str:
    async with httpx.AsyncClient(base_url=f"http://{node.address}") as http:
        response = await http.post(
            "/api/v1/interviews/technical/start",
            json={"level": "junior"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 201, response.text
        interview_id: str = response.json()["interviewId"]
        return interview_id


async def hello(
    node: ProductNode, token: str, interview_id: str, last_seq: int | None = None
) -> ClientConnection:
    ws = await connect(f"ws://{node.address}/ws/v1/interview")
    frame: dict[str, Any] = {"type": "hello", "token": token, "interviewId": interview_id}
    if last_seq is not None:
        frame["lastSeq"] = last_seq
    await ws.send(json.dumps(frame))
    return ws


async def recv(ws: ClientConnection, timeout: float = 20.0) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout))
    return data


class Client:
    """A socket client as a browser would be: keeps lastSeq, answers, dedupes nothing itself."""

    def __init__(self, token: str, interview_id: str) -> None:
        self.token = token
        self.interview_id = interview_id
        self.seqs: list[int] = []
        self.frames: list[dict[str, Any]] = []
        self.answered: set[str] = set()

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    def take(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        if isinstance(frame.get("seq"), int):
            self.seqs.append(frame["seq"])

    async def answer_pending(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        if frame["type"] == "question" and frame["questionId"] not in self.answered:
            self.answered.add(frame["questionId"])
            await ws.send(
                json.dumps(
                    {
                        "type": "answer",
                        "questionId": frame["questionId"],
                        "answer": "индекс B-tree и транзакции",
                        "clientMsgId": frame["questionId"],
                    }
                )
            )

    async def run_until(self, ws: ClientConnection, stop: Any) -> dict[str, Any]:
        while True:
            frame = await recv(ws)
            self.take(frame)
            await self.answer_pending(ws, frame)
            if stop(frame):
                return frame


def assert_exactly_once(seqs: list[int]) -> None:
    assert seqs == list(range(1, len(seqs) + 1)), f"gaps or duplicates in {seqs}"


def interview_keys(deployment: Deployment, interview_id: str) -> list[str]:
    """The Redis keys that name the interview (on a cluster, read from every master)."""
    with deployment.redis.client() as redis:
        return [str(key) for key in redis.scan_iter(match=f"{deployment.prefix}*{interview_id}*")]


async def stored(deployment: Deployment, interview_id: str) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(deployment.mongo_url)
    try:
        doc = await client[deployment.db_name]["interviews"].find_one(
            {"_id": ObjectId(interview_id)}
        )
    finally:
        await client.close()
    assert doc is not None
    return doc


@BOTH
async def test_kill_node_mid_stream_then_finish_on_the_other(deployment: Deployment) -> None:
    token = await verified_token(deployment, deployment.a, "killed@example.ru")
    interview_id = await start_interview(deployment.a, token)
    client = Client(token, interview_id)
    ws = await hello(deployment.a, token, interview_id)
    assert (await recv(ws))["type"] == "welcome"
    deltas = 0

    def third_delta(frame: dict[str, Any]) -> bool:
        nonlocal deltas
        deltas += int(frame["type"] == "feedback.delta")
        return deltas >= 3

    await client.run_until(ws, third_delta)
    keys = interview_keys(deployment, interview_id)
    deployment.a.kill()  # kill -9 in the middle of the feedback stream
    with pytest.raises(ConnectionClosed):
        while True:  # frames already on their way are the client's as well
            client.take(await recv(ws, timeout=5))

    ws = await hello(deployment.b, token, interview_id, client.last_seq)
    assert (await recv(ws))["type"] == "welcome"
    await client.run_until(ws, lambda f: f["type"] == "interview.completed")
    await ws.close()

    assert_exactly_once(client.seqs)
    kinds = [f["type"] for f in client.frames]
    assert "feedback.reset" in kinds, "the restarted evaluation told the client to discard"
    reset_at = kinds.index("feedback.reset")
    assert kinds[reset_at + 1 :].index("feedback.done") >= 0
    doc = await stored(deployment, interview_id)
    assert doc["status"] == "completed"
    assert all(q["userAnswer"] for q in doc["questions"]), "no answer lost"
    assert all(q["aiEvaluation"]["source"] == "local" for q in doc["questions"])
    dones = [f for f in client.frames if f["type"] == "feedback.done"]
    assert sorted(f["questionId"] for f in dones) == sorted(
        str(q["questionId"]) for q in doc["questions"]
    ), "every answer scored exactly once"
    # Every key of the interview, the evaluation's lease included, carries its hash tag: on a
    # cluster they share one slot.
    assert f"{deployment.prefix}lease:eval:{{{interview_id}}}:0" in keys
    assert {"meta", "stream", "state"} <= {key.rsplit(":", 1)[1] for key in keys}
    assert all(f"{{{interview_id}}}" in key for key in keys), keys


@BOTH
async def test_sockets_on_two_nodes_see_the_same_events(deployment: Deployment) -> None:
    token = await verified_token(deployment, deployment.a, "tabs2@example.ru")
    interview_id = await start_interview(deployment.b, token)
    on_a = await hello(deployment.a, token, interview_id)
    on_b = await hello(deployment.b, token, interview_id)
    await recv(on_a)
    await recv(on_b)
    question = await recv(on_a)
    assert await recv(on_b) == question
    await on_a.send(
        json.dumps(
            {
                "type": "answer",
                "questionId": question["questionId"],
                "answer": "индекс",
                "clientMsgId": "x1",
            }
        )
    )
    frames_a: list[dict[str, Any]] = []
    frames_b: list[dict[str, Any]] = []
    while not frames_a or frames_a[-1]["type"] != "feedback.done":
        frames_a.append(await recv(on_a))
    while not frames_b or frames_b[-1]["type"] != "feedback.done":
        frames_b.append(await recv(on_b))
    assert frames_a == frames_b
    await on_b.send(
        json.dumps(
            {
                "type": "answer",
                "questionId": question["questionId"],
                "answer": "ещё",
                "clientMsgId": "x2",
            }
        )
    )
    while True:
        frame = await recv(on_b)
        if frame["type"] == "error":
            assert frame["code"] == "already_answered"
            break
    await on_a.close()
    await on_b.close()


async def test_redis_restart_mid_interview(deployment: Deployment) -> None:
    token = await verified_token(deployment, deployment.a, "redis@example.ru")
    interview_id = await start_interview(deployment.a, token)
    ws = await hello(deployment.a, token, interview_id)
    await recv(ws)
    first = Client(token, interview_id)
    await first.run_until(ws, lambda f: f["type"] == "feedback.done")
    question = await recv(ws)
    assert question["type"] == "question"

    redis = deployment.redis.server
    assert redis is not None
    redis.kill()  # kill -9: Redis loses everything
    async with httpx.AsyncClient() as http:
        live = await http.get(f"http://{deployment.a.address}/health/live")
        assert live.status_code == 200, "the node stays up without Redis"
        ready = await http.get(f"http://{deployment.a.address}/health/ready")
        assert ready.status_code == 503
    answer = {
        "type": "answer",
        "questionId": question["questionId"],
        "answer": "индекс",
        "clientMsgId": "during-outage",
    }
    await ws.send(json.dumps(answer))
    error = await recv(ws)
    assert error["type"] == "error" and error["code"] == "unavailable"
    doc = await stored(deployment, interview_id)
    assert doc["questions"][1]["userAnswer"] is None, "nothing half-written"

    redis.start()
    # The history went with Redis: the open socket is told to reconnect...
    with pytest.raises(ConnectionClosed):
        while True:
            await recv(ws, timeout=20)
    assert ws.close_code == 1013
    # ...and the reconnect gets a snapshot instead of a silent gap, then carries on.
    ws = await hello(deployment.b, token, interview_id, first.last_seq)
    assert (await recv(ws))["type"] == "welcome"
    snapshot = await recv(ws)
    assert snapshot["type"] == "snapshot"
    answered = [q for q in snapshot["questions"] if q["answer"]]
    assert len(answered) == 1 and answered[0]["score"] is not None
    assert snapshot["currentQuestionId"] == question["questionId"]
    await ws.send(json.dumps(answer))
    rest = Client(token, interview_id)
    rest.answered.add(question["questionId"])
    await rest.run_until(ws, lambda f: f["type"] == "interview.completed")
    await ws.close()
    doc = await stored(deployment, interview_id)
    assert doc["status"] == "completed"
    assert all(q["aiEvaluation"] for q in doc["questions"])


# A lease that would take ten minutes to run out: only a real hand-over lets node B finish
# before the test's reads time out.
@BOTH
@pytest.mark.parametrize("node_env", [{"EVAL_LEASE_TTL_SEC": "600"}])
async def test_sigterm_closes_with_1012_and_hands_over(deployment: Deployment) -> None:
    token = await verified_token(deployment, deployment.a, "sigterm@example.ru")
    interview_id = await start_interview(deployment.a, token)
    client = Client(token, interview_id)
    ws = await hello(deployment.a, token, interview_id)
    await recv(ws)
    await client.run_until(ws, lambda f: f["type"] == "feedback.delta")
    deployment.a.terminate()
    with pytest.raises(ConnectionClosed):
        while True:
            client.take(await recv(ws, timeout=15))
    assert ws.close_code == 1012
    ws = await hello(deployment.b, token, interview_id, client.last_seq)
    await recv(ws)
    await client.run_until(ws, lambda f: f["type"] == "feedback.done")
    await client.run_until(ws, lambda f: f["type"] == "interview.completed")
    await ws.close()
    assert_exactly_once(client.seqs)
