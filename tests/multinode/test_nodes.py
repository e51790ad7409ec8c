"""Two real nodes (uvicorn processes) sharing one Redis and one MongoDB-protocol server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from core.embedded_mongo import free_port
from tests.helpers import PASSWORD, mail_text

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class RedisServer:
    """A private redis-server, so a test can restart it without touching anyone else's."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                subprocess.run(
                    ["redis-cli", "-p", str(self.port), "ping"],
                    check=True,
                    capture_output=True,
                    timeout=2,
                )
                return
            except subprocess.CalledProcessError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@dataclass
class Node:
    name: str
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        assert self.log is not None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "run"],
            cwd=ROOT,
            env={**self.env, "PORT": str(self.port), "NODE_ID": self.name},
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout: float = 60.0) -> None:
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                assert self.process is not None and self.process.poll() is None, self.tail()
                try:
                    if (await http.get(f"http://{self.address}/health/ready")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"node {self.name} not ready:\n{self.tail()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def tail(self) -> str:
        return (
            self.log.read_text(errors="replace")[-3000:] if self.log and self.log.exists() else ""
        )


@dataclass
class Cluster:
    redis: RedisServer
    a: Node
    b: Node
    data_dir: Path
    mongo_url: str
    db_name: str
    seen: list[int] = field(default_factory=list)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def cluster_env() -> dict[str, str]:
    """Extra settings for both nodes; a test overrides it by parametrizing `cluster_env`."""
    return {}


@pytest.fixture
async def cluster(
    mongo_url: str, redis_server: RedisServer, tmp_path: Path, cluster_env: dict[str, str]
) -> AsyncIterator[Cluster]:
    db_name = f"t_{uuid.uuid4().hex[:16]}"
    env = {
        **os.environ,
        "APP_ENV": "test",
        "MONGODB_URL": mongo_url,
        "MONGODB_DB": db_name,
        "REDIS_URL": redis_server.url,
        "REDIS_KEY_PREFIX": f"mn:{uuid.uuid4().hex[:8]}:",
        "CELERY_BROKER_URL": "",
        "DATA_DIR": str(tmp_path),
        "BCRYPT_ROUNDS": "4",
        "LOCAL_EVALUATOR_DELAY_SEC": "0.04",
        "EVAL_LEASE_TTL_SEC": "1.5",
        "ORPHAN_SWEEP_SEC": "0.3",
        "QUESTIONS_PER_INTERVIEW": "3",
        "LOG_LEVEL": "WARNING",
        "PUBLIC_BASE_URL": "http://testserver",
        **cluster_env,
    }
    for key in ("OPENAI_API_KEY", "SENDPULSE_CLIENT_ID", "CLOUDPAYMENTS_PUBLIC_ID"):
        env.pop(key, None)
    a = Node("node-a", free_port(), env, log=tmp_path / "a.log")
    b = Node("node-b", free_port(), env, log=tmp_path / "b.log")
    a.start()
    await a.wait_ready()  # the first node seeds the question bank; then the second starts
    b.start()
    await b.wait_ready()
    yield Cluster(redis_server, a, b, tmp_path, mongo_url, db_name)
    a.kill()
    b.kill()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    await client.drop_database(db_name)
    await client.close()


async def verified_token(cluster: Cluster, node: Node, email: str) -> str:
    import email as email_lib
    import re

    async with httpx.AsyncClient(base_url=f"http://{node.address}") as http:
        body = {"email": email, "password": PASSWORD, "gender": "male", "age": 30}
        assert (await http.post("/api/v1/auth/register", json=body)).status_code == 201
        token = None
        for _ in range(100):
            for path in sorted((cluster.data_dir / "outbox").glob("*verify_email*.eml")):
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


async def start_interview(node: Node, token: str) -> str:
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
    node: Node, token: str, interview_id: str, last_seq: int | None = None
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


async def stored(cluster: Cluster, interview_id: str) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(cluster.mongo_url)
    try:
        doc = await client[cluster.db_name]["interviews"].find_one({"_id": ObjectId(interview_id)})
    finally:
        await client.close()
    assert doc is not None
    return doc


async def test_kill_node_mid_stream_then_finish_on_the_other(cluster: Cluster) -> None:
    token = await verified_token(cluster, cluster.a, "killed@example.ru")
    interview_id = await start_interview(cluster.a, token)
    client = Client(token, interview_id)
    ws = await hello(cluster.a, token, interview_id)
    assert (await recv(ws))["type"] == "welcome"
    deltas = 0

    def third_delta(frame: dict[str, Any]) -> bool:
        nonlocal deltas
        deltas += frame["type"] == "feedback.delta"
        return deltas >= 3

    await client.run_until(ws, third_delta)
    cluster.a.kill()  # kill -9 in the middle of the feedback stream
    with pytest.raises(ConnectionClosed):
        await recv(ws, timeout=5)

    ws = await hello(cluster.b, token, interview_id, client.last_seq)
    assert (await recv(ws))["type"] == "welcome"
    await client.run_until(ws, lambda f: f["type"] == "interview.completed")
    await ws.close()

    assert_exactly_once(client.seqs)
    kinds = [f["type"] for f in client.frames]
    assert "feedback.reset" in kinds, "the restarted evaluation told the client to discard"
    reset_at = kinds.index("feedback.reset")
    assert kinds[reset_at + 1 :].index("feedback.done") >= 0
    doc = await stored(cluster, interview_id)
    assert doc["status"] == "completed"
    assert all(q["userAnswer"] for q in doc["questions"]), "no answer lost"
    assert all(q["aiEvaluation"]["source"] == "local" for q in doc["questions"])
    dones = [f for f in client.frames if f["type"] == "feedback.done"]
    assert sorted(f["questionId"] for f in dones) == sorted(
        str(q["questionId"]) for q in doc["questions"]
    ), "every answer scored exactly once"


async def test_sockets_on_two_nodes_see_the_same_events(cluster: Cluster) -> None:
    token = await verified_token(cluster, cluster.a, "tabs2@example.ru")
    interview_id = await start_interview(cluster.b, token)
    on_a = await hello(cluster.a, token, interview_id)
    on_b = await hello(cluster.b, token, interview_id)
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
    frames_a, frames_b = [], []
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


async def test_redis_restart_mid_interview(cluster: Cluster) -> None:
    token = await verified_token(cluster, cluster.a, "redis@example.ru")
    interview_id = await start_interview(cluster.a, token)
    ws = await hello(cluster.a, token, interview_id)
    await recv(ws)
    first = Client(token, interview_id)
    await first.run_until(ws, lambda f: f["type"] == "feedback.done")
    question = await recv(ws)
    assert question["type"] == "question"

    cluster.redis.stop()
    async with httpx.AsyncClient() as http:
        live = await http.get(f"http://{cluster.a.address}/health/live")
        assert live.status_code == 200, "the node stays up without Redis"
        ready = await http.get(f"http://{cluster.a.address}/health/ready")
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
    doc = await stored(cluster, interview_id)
    assert doc["questions"][1]["userAnswer"] is None, "nothing half-written"

    cluster.redis.start()
    # The history went with Redis: the open socket is told to reconnect...
    with pytest.raises(ConnectionClosed):
        while True:
            await recv(ws, timeout=20)
    assert ws.close_code == 1013
    # ...and the reconnect gets a snapshot instead of a silent gap, then carries on.
    ws = await hello(cluster.b, token, interview_id, first.last_seq)
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
    doc = await stored(cluster, interview_id)
    assert doc["status"] == "completed"
    assert all(q["aiEvaluation"] for q in doc["questions"])


# A lease that would take ten minutes to run out: only a real hand-over lets node B finish
# before the test's reads time out.
@pytest.mark.parametrize("cluster_env", [{"EVAL_LEASE_TTL_SEC": "600"}])
async def test_sigterm_closes_with_1012_and_hands_over(cluster: Cluster) -> None:
    token = await verified_token(cluster, cluster.a, "sigterm@example.ru")
    interview_id = await start_interview(cluster.a, token)
    client = Client(token, interview_id)
    ws = await hello(cluster.a, token, interview_id)
    await recv(ws)
    await client.run_until(ws, lambda f: f["type"] == "feedback.delta")
    cluster.a.terminate()
    with pytest.raises(ConnectionClosed):
        while True:
            client.take(await recv(ws, timeout=15))
    assert ws.close_code == 1012
    ws = await hello(cluster.b, token, interview_id, client.last_seq)
    await recv(ws)
    await client.run_until(ws, lambda f: f["type"] == "feedback.done")
    await client.run_until(ws, lambda f: f["type"] == "interview.completed")
    await ws.close()
    assert_exactly_once(client.seqs)
