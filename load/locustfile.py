"""Locust load test: REST users, and socket users that take whole interviews.

    .venv/bin/python -m load.users --base http://127.0.0.1:8000 --outbox .data/outbox \\
        --count 200 --out load/results/users.json
    .venv/bin/locust -f load/locustfile.py --host http://127.0.0.1:8000 \\
        --users-file load/results/users.json --headless -u 100 -r 20 -t 60s \\
        --csv load/results/locust

Both kinds of user log in as pre-created verified users (`--users-file`, written by
`load/users.py`), so registration does not dominate; `RestUser` also registers a few new
accounts, as real traffic does. REST goes through Locust's `FastHttpUser` client
(geventhttpclient), which costs the load generator a fraction of what `HttpUser` does.

`InterviewUser` is a plain Locust `User` over the synchronous `websocket-client` library (Locust's
gevent patches its sockets). Besides the REST calls it reports, as request type `WS`:

- `connect: upgrade + hello -> welcome`
- `answer -> answer.accepted`, `answer -> first feedback.delta`, `answer -> feedback.done`
- `resume: reconnect + hello(lastSeq) -> welcome`: every `--resume-every` answers the socket is
  dropped right after the first `feedback.delta` and reopened with `lastSeq`
- `seq check`: one success per interview; every `seq` gap or repeat is a failure, and so is
  feedback text that does not add up to `feedback.done.feedback`.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from itertools import cycle
from pathlib import Path
from typing import Any

import websocket
from locust import FastHttpUser, User, between, events, task
from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment
from locust.exception import StopUser

SOCKET_PATH = "/ws/v1/interview"
ANSWER = (
    "Хеш-таблица отображает ключ в индекс корзины через хеш-функцию; коллизии решаются "
    "цепочками или открытой адресацией, поиск в среднем за O(1), в худшем за O(n)."
)
WS = "WS"

_accounts: Iterator[dict[str, str]] | None = None


def _options(parser: Any) -> None:
    parser.add_argument(
        "--users-file",
        default="load/results/users.json",
        help="pre-created verified users (python -m load.users)",
    )
    parser.add_argument(
        "--answer-think", type=float, default=1.0, help="mean seconds between answers"
    )
    parser.add_argument(
        "--resume-every",
        type=int,
        default=2,
        help="drop and resume the socket after every Nth answer (0: never)",
    )
    parser.add_argument("--level", default="junior", choices=["intern", "junior", "middle"])


def _load_accounts(environment: Environment, **_: Any) -> None:
    global _accounts
    options = environment.parsed_options
    if options is None:
        return
    path = Path(options.users_file)
    if not path.exists():
        raise SystemExit(
            f"{path} not found: create verified users first, e.g. "
            "`python -m load.users --base http://127.0.0.1:8000 --outbox .data/outbox "
            "--count 200 --out load/results/users.json`"
        )
    accounts = json.loads(path.read_text())
    if not accounts:
        raise SystemExit(f"{path} holds no users")
    random.shuffle(accounts)
    _accounts = cycle(accounts)


# Locust's hooks are untyped: registered here rather than by decorating (mypy --strict).
events.init_command_line_parser.add_listener(_options)  # type: ignore[no-untyped-call]
events.init.add_listener(_load_accounts)  # type: ignore[no-untyped-call]


def _next_account() -> dict[str, str]:
    assert _accounts is not None, "the users file was not loaded"
    return next(_accounts)


class Session:
    """Logs in as a pre-created user and logs in again when the access token runs out."""

    def __init__(self, client: FastHttpSession) -> None:
        self.client = client
        self.account = _next_account()
        self.token = ""
        self.login()

    def login(self) -> None:
        body = {"email": self.account["email"], "password": self.account["password"]}
        with self.client.post(
            "/api/v1/auth/login", json=body, name="/auth/login", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"login {response.status_code}: {response.text[:200]}")
                raise StopUser()
            self.token = response.json()["token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, name: str) -> Any:
        response = self.client.get(path, headers=self.headers, name=name)
        if response.status_code == 401:
            self.login()
            response = self.client.get(path, headers=self.headers, name=name)
        return response


class RestUser(FastHttpUser):
    """Register, log in, history, profile: the REST side of the product."""

    weight = 1
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.session = Session(self.client)

    @task(6)
    def history(self) -> None:
        self.session.get("/api/v1/interviews/history", "/interviews/history")

    @task(4)
    def me(self) -> None:
        self.session.get("/api/v1/auth/me", "/auth/me")

    @task(2)
    def profile(self) -> None:
        self.client.put(
            "/api/v1/users/profile",
            json={"age": random.randint(18, 60), "marketingConsent": random.random() < 0.5},
            headers=self.session.headers,
            name="/users/profile",
        )

    @task(1)
    def login(self) -> None:
        self.session.login()

    @task(1)
    def register(self) -> None:
        body = {
            "email": f"locust-{uuid.uuid4().hex[:12]}@example.ru",
            "password": "locust password 1",
            "gender": "female",
            "age": 30,
            "language": "ru",
        }
        self.client.post("/api/v1/auth/register", json=body, name="/auth/register")


class SocketBroken(Exception):
    """The interview socket failed; the interview is abandoned by this user."""


class InterviewUser(User):
    """Takes whole interviews over the live socket, dropping and resuming it now and then."""

    weight = 1
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        assert self.host, "give --host"
        self.http = FastHttpSession(self.host, self.environment.events.request, self)
        self.session = Session(self.http)
        self.ws_url = self.host.replace("https://", "wss://").replace("http://", "ws://")
        self.ws_url = self.ws_url.rstrip("/") + SOCKET_PATH
        options = self.environment.parsed_options
        self.think = options.answer_think if options else 1.0
        self.resume_every = options.resume_every if options else 2
        self.level = options.level if options else "junior"
        self.answers = 0
        self.ws: websocket.WebSocket | None = None
        self.last_seq = 0
        self.interview_id = ""

    def on_stop(self) -> None:
        self._drop()

    # --- reporting -------------------------------------------------------------------------------

    def _report(
        self, name: str, started: float, length: int = 0, error: Exception | None = None
    ) -> None:
        self.environment.events.request.fire(
            request_type=WS,
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=error,
            context={"interview": self.interview_id},
        )

    # --- the socket ------------------------------------------------------------------------------

    def _drop(self) -> None:
        if self.ws is not None:
            try:
                self.ws.close(timeout=1)
            except Exception:  # noqa: BLE001 - dropping it on purpose
                pass
            self.ws = None

    def _connect(self, name: str) -> dict[str, Any]:
        """Open the socket, say hello with lastSeq, return `welcome`; reports `name`."""
        started = time.perf_counter()
        try:
            self.ws = websocket.create_connection(self.ws_url, timeout=30)
            hello = {
                "type": "hello",
                "token": self.session.token,
                "interviewId": self.interview_id,
                "lastSeq": self.last_seq,
            }
            self.ws.send(json.dumps(hello))
            welcome = json.loads(self.ws.recv())
            if welcome.get("type") != "welcome":
                raise SocketBroken(f"expected welcome, got {str(welcome)[:200]}")
        except Exception as exc:  # noqa: BLE001 - reported as this request's failure
            self._report(name, started, error=exc)
            self._drop()
            raise SocketBroken(str(exc)) from exc
        self._report(name, started, len(json.dumps(welcome)))
        return dict(welcome)

    def _frame(self) -> dict[str, Any]:
        """The next frame; checks that `seq` grows by exactly one."""
        assert self.ws is not None
        try:
            data: dict[str, Any] = json.loads(self.ws.recv())
        except Exception as exc:  # noqa: BLE001 - the socket is gone
            raise SocketBroken(f"{type(exc).__name__}: {exc}") from exc
        seq = data.get("seq")
        if data.get("type") == "snapshot" and isinstance(seq, int):
            self.last_seq = seq  # the documented replacement for a lost history
        elif isinstance(seq, int):
            if seq != self.last_seq + 1:
                kind = "repeat" if seq <= self.last_seq else "gap"
                self._report(
                    "seq check",
                    time.perf_counter(),
                    error=AssertionError(f"seq {kind}: {seq} after {self.last_seq}"),
                )
            self.last_seq = max(self.last_seq, seq)
        if data.get("type") == "error":
            raise SocketBroken(f"error frame: {data.get('code')}: {data.get('message')}")
        return data

    # --- the interview ---------------------------------------------------------------------------

    @task
    def take_interview(self) -> None:
        response = self.http.post(
            "/api/v1/interviews/technical/start",
            json={"level": self.level},
            headers=self.session.headers,
            name="/interviews/technical/start",
        )
        if response.status_code == 401:
            self.session.login()
            return
        if response.status_code != 201:
            return
        self.interview_id = response.json()["interviewId"]
        self.last_seq = 0
        try:
            self._connect("connect: upgrade + hello -> welcome")
            self._interview()
        except SocketBroken:
            pass  # already reported where it happened
        finally:
            self._drop()

    def _interview(self) -> None:
        question = self._next_question()
        while question is not None:
            time.sleep(random.uniform(0.5, 1.5) * self.think)  # gevent-patched: cooperative
            self.answers += 1
            resume = self.resume_every > 0 and self.answers % self.resume_every == 0
            self._answer(question, resume)
            question = self._next_question()
        self._report("seq check", time.perf_counter())

    def _next_question(self) -> dict[str, Any] | None:
        while True:
            frame = self._frame()
            if frame["type"] == "question":
                return frame
            if frame["type"] in ("interview.completed", "interview.abandoned"):
                return None

    def _answer(self, question: dict[str, Any], resume: bool) -> None:
        assert self.ws is not None
        msg = {
            "type": "answer",
            "questionId": question["questionId"],
            "answer": ANSWER,
            "clientMsgId": uuid.uuid4().hex,
        }
        started = time.perf_counter()
        self.ws.send(json.dumps(msg))
        text = ""
        first = False
        while True:
            frame = self._frame()
            kind = frame["type"]
            if kind == "answer.accepted":
                self._report("answer -> answer.accepted", started)
            elif kind == "feedback.reset":
                text = ""
            elif kind == "feedback.delta":
                text += frame["delta"]
                if not first:
                    first = True
                    self._report("answer -> first feedback.delta", started)
                    if resume:
                        self._drop()
                        self._connect("resume: reconnect + hello(lastSeq) -> welcome")
            elif kind == "feedback.done":
                self._report("answer -> feedback.done", started)
                if text != frame["feedback"]:
                    self._report(
                        "seq check",
                        time.perf_counter(),
                        error=AssertionError("feedback deltas do not add up to feedback.done"),
                    )
                return
            elif kind == "snapshot":
                return  # the whole state replaced the stream; nothing more to time
