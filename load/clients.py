"""The interview socket as the benchmarks' clients speak it (protocol v1, docs/protocol.md):
connect, `hello`, frames with their `seq` checked, answers."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

SOCKET_PATH = "/ws/v1/interview"
OPEN_TIMEOUT_SEC = 120.0
ANSWER = (
    "Хеш-таблица отображает ключ в индекс корзины через хеш-функцию; коллизии решаются "
    "цепочками или открытой адресацией, поиск и вставка в среднем за O(1), в худшем за O(n). "
    "При росте заполнения таблицу расширяют и перехешируют элементы."
)

Frame = dict[str, Any]


async def open_socket(
    url: str, *, deflate: bool = True, max_queue: int | None = 16
) -> ClientConnection:
    """A client connection with the benchmarks' settings."""
    return await connect(
        url,
        open_timeout=OPEN_TIMEOUT_SEC,
        ping_interval=None,  # the servers ping; client pings would only add load
        close_timeout=5,
        compression="deflate" if deflate else None,
        proxy=None,  # never a proxy: the traffic stays on 127.0.0.1
        max_size=2**20,
        max_queue=max_queue,
    )


def hello(
    token: str, interview_id: str, last_seq: int | None = None, epoch: str | None = None
) -> str:
    frame: Frame = {"type": "hello", "token": token, "interviewId": interview_id}
    if last_seq is not None:
        frame["lastSeq"] = last_seq
    if epoch is not None:
        frame["epoch"] = epoch
    return json.dumps(frame)


def answer(question_id: str, client_msg_id: str | None = None, text: str = ANSWER) -> str:
    return json.dumps(
        {
            "type": "answer",
            "questionId": question_id,
            "answer": text,
            "clientMsgId": client_msg_id or uuid.uuid4().hex,
        }
    )


def describe(exc: BaseException) -> str:
    """An exception in a few words, with the close code of a closed socket."""
    name = type(exc).__name__
    if isinstance(exc, ConnectionClosed):
        name += f" (close {exc.rcvd.code}: {exc.rcvd.reason})" if exc.rcvd else " (no close frame)"
    return name


@dataclass
class Interview:
    """An interview socket, with the highest `seq` seen and every gap or repeat noted."""

    ws: ClientConnection
    question: Frame = field(default_factory=dict)
    last_seq: int = 0
    seq_errors: list[str] = field(default_factory=list)

    @classmethod
    async def join(
        cls, url: str, token: str, interview_id: str, *, deflate: bool = True
    ) -> Interview:
        """Connect, say hello, and read up to the interview's current question."""
        live = cls(await open_socket(url, deflate=deflate))
        await live.ws.send(hello(token, interview_id))
        while not live.question:
            frame = await live.frame()
            if frame["type"] == "question":
                live.question = frame
            elif frame["type"] == "error":
                raise RuntimeError(f"hello refused: {frame}")
        return live

    async def frame(self, timeout: float = 60.0) -> Frame:
        data: Frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        seq = data.get("seq")
        if isinstance(seq, int) and data.get("type") != "snapshot":
            if seq != self.last_seq + 1:
                self.seq_errors.append(f"seq {seq} after {self.last_seq}")
            self.last_seq = max(self.last_seq, seq)
        return data
