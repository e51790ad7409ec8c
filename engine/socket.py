"""The live interview socket (protocol v1): hello, replay from `lastSeq`, then live events.

Each socket has a bounded send queue: a client that stops reading is closed with 4429 instead of
growing the node's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from core.errors import AppError, Unavailable
from core.logging import interview_id_var, user_id_var
from core.security import AccessClaims, InvalidToken, TokenService
from core.settings import Settings, parse_rate
from engine.bus.base import BusUnavailable, Event, Subscription
from engine.service import InterviewService
from engine.state import AnswerSubmitted, DraftSaved, InterviewState, ProtocolViolation, iso
from protocol.v1.messages import (
    CLIENT_TYPES,
    Answer,
    CloseCode,
    Complete,
    Draft,
    ErrorCode,
    Hello,
    Ping,
    client_adapter,
)

log = logging.getLogger(__name__)

TokenCheck = Callable[[AccessClaims], Awaitable[bool]]


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def snapshot(state: InterviewState, seq: int) -> dict[str, Any]:
    """The whole visible state of an interview, for a client whose history is gone."""
    current = state.current_question
    return {
        "type": "snapshot",
        "seq": seq,
        "status": state.status.public,
        "currentQuestionId": current.question_id if current else None,
        "deadline": iso(state.deadline) if state.deadline else None,
        "total": len(state.questions),
        "questions": [
            {
                "questionId": q.question_id,
                "index": i,
                "text": q.text,
                "tags": q.tags,
                "answer": q.answer,
                "score": q.evaluation["score"] if q.evaluation else None,
                "scores": q.evaluation["scores"] if q.evaluation else None,
                "feedback": q.evaluation["feedback"] if q.evaluation else None,
            }
            for i, q in enumerate(state.questions)
            if i <= state.current or q.answer is not None
        ],
        "score": state.result["score"] if state.result else None,
        "passed": state.result["passed"] if state.result else None,
        "feedback": state.result["feedback"] if state.result else None,
    }


class SocketSession:
    def __init__(
        self,
        websocket: WebSocket,
        service: InterviewService,
        tokens: TokenService,
        token_still_valid: TokenCheck,
        settings: Settings,
    ) -> None:
        self.ws = websocket
        self.service = service
        self.tokens = tokens
        self.token_still_valid = token_still_valid
        self.settings = settings
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=settings.ws_send_queue_limit)
        self.last_sent = 0
        self.interview_id = ""
        self.user_id = ""
        self._rate_limit, self._rate_window = parse_rate(settings.rate_limit_socket_messages)
        self._window_start = time.monotonic()
        self._window_count = 0
        self._handlers: dict[str, Callable[[Any], Awaitable[None]]] = {
            "answer": self.on_answer,
            "draft": self.on_draft,
            "complete": self.on_complete,
            "ping": self.on_ping,
            "hello": self.on_second_hello,
        }

    # --- sending -------------------------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        """Queue a frame; a full queue means the client stopped reading."""
        try:
            self.queue.put_nowait(_dumps(frame))
        except asyncio.QueueFull:
            raise _Close(
                CloseCode.SLOW_CONSUMER, "send queue full: the client is not reading"
            ) from None

    def send_event(self, event: Event) -> None:
        seq = event.get("seq")
        if isinstance(seq, int):
            if seq <= self.last_sent:
                return  # already delivered by the replay
            self.last_sent = seq
        self.send(event)

    def error(self, code: str, message: str, retry_after: int | None = None) -> None:
        frame: dict[str, Any] = {"type": "error", "code": code, "message": message}
        if retry_after is not None:
            frame["retryAfter"] = retry_after
        self.send(frame)

    async def _writer(self) -> None:
        while True:
            text = await self.queue.get()
            if text is None:
                return
            await self.ws.send_text(text)

    # --- receiving -----------------------------------------------------------------------------

    async def _receive_text(self) -> str | None:
        message = await self.ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None:
            data = message.get("bytes") or b""
            if len(data) > self.settings.ws_max_frame_bytes:
                raise _Close(CloseCode.TOO_LARGE, "frame too large")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                return ""
        if len(text) > self.settings.ws_max_frame_bytes:
            raise _Close(CloseCode.TOO_LARGE, "frame too large")
        return str(text)

    def _parse(self, text: str) -> Any:
        """A validated client frame, or None after telling the client what was wrong."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            self.error(ErrorCode.BAD_FRAME, "The frame is not valid JSON")
            return None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            self.error(ErrorCode.BAD_FRAME, "A frame is a JSON object with a string 'type'")
            return None
        if data["type"] not in CLIENT_TYPES:
            self.error(ErrorCode.UNKNOWN_TYPE, f"Unknown frame type {data['type'][:40]!r}")
            return None
        try:
            return client_adapter.validate_python(data)
        except ValidationError as exc:
            fields = ", ".join(
                ".".join(str(p) for p in e["loc"][1:]) or "frame" for e in exc.errors()
            )
            self.error(ErrorCode.BAD_FRAME, f"Invalid '{data['type']}' frame: check {fields}")
            return None

    def _allow(self) -> bool:
        now = time.monotonic()
        if now - self._window_start >= self._rate_window:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        return self._window_count <= self._rate_limit

    # --- the session ---------------------------------------------------------------------------

    async def run(self) -> None:
        self.service.open_sockets += 1
        try:
            await self._run()
        finally:
            self.service.open_sockets -= 1

    async def _run(self) -> None:
        await self.ws.accept()
        writer: asyncio.Task[None] | None = None
        pump: asyncio.Task[None] | None = None
        subscription: Subscription | None = None
        try:
            hello = await self._hello()
            state = await self._authorize(hello)
            subscription = await self.service.bus.subscribe(self.interview_id)
            await self._welcome(hello, state)
            writer = asyncio.create_task(self._writer())
            pump = asyncio.create_task(self._pump(subscription))
            await self._read_loop(pump, writer)
        except _Close as close:
            await self._close(close.code, close.reason, writer)
        except (BusUnavailable, Unavailable):
            await self._close(CloseCode.TRY_AGAIN_LATER, "live sessions are unavailable", writer)
        except WebSocketDisconnect:
            pass
        except Exception:
            # Whatever went wrong, the client gets a close frame and may reconnect.
            log.exception("socket session failed")
            await self._close(CloseCode.INTERNAL_ERROR, "internal error; reconnect", writer)
        finally:
            for task in (pump, writer):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
            if subscription is not None:
                await subscription.close()

    async def _close(self, code: int, reason: str, writer: asyncio.Task[None] | None) -> None:
        if writer is not None and not writer.done() and code != CloseCode.SLOW_CONSUMER:
            # Let queued frames (an error explaining the close) go out first.
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(writer, 2.0)
        await self._send_close(code, reason)

    async def _send_close(self, code: int, reason: str) -> None:
        # A client that stopped reading blocks every send, the close frame included: give up
        # after a while and let the server drop the connection.
        self.service.socket_closes[code] += 1
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await self.ws.close(code, reason[:120])

    async def _hello(self) -> Hello:
        try:
            async with asyncio.timeout(self.settings.ws_hello_timeout_sec):
                text = await self._receive_text()
        except TimeoutError:
            raise _Close(CloseCode.HELLO_TIMEOUT, "no hello in time") from None
        if text is None:
            raise WebSocketDisconnect(1000)
        try:
            frame = client_adapter.validate_json(text)
        except ValidationError:
            raise _Close(CloseCode.BAD_HELLO, "the first frame must be a valid hello") from None
        if not isinstance(frame, Hello):
            raise _Close(CloseCode.BAD_HELLO, "the first frame must be hello")
        return frame

    async def _authorize(self, hello: Hello) -> InterviewState:
        token = hello.token
        if not token:
            header = self.ws.headers.get("authorization", "")
            scheme, _, value = header.partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else None
        if not token:
            raise _Close(CloseCode.BAD_TOKEN, "missing token")
        try:
            claims = self.tokens.verify(token)
        except InvalidToken:
            raise _Close(CloseCode.BAD_TOKEN, "invalid or expired token") from None
        if not await self.token_still_valid(claims):
            raise _Close(CloseCode.BAD_TOKEN, "the session has ended")
        state = await self.service.load(hello.interviewId)
        if state is None:
            raise _Close(CloseCode.NO_SUCH_INTERVIEW, "no such interview")
        if state.user_id != claims.user_id:
            raise _Close(CloseCode.NOT_OWNER, "not your interview")
        self.interview_id = hello.interviewId
        self.user_id = claims.user_id
        interview_id_var.set(self.interview_id)
        user_id_var.set(self.user_id)
        return state

    async def _welcome(self, hello: Hello, state: InterviewState) -> None:
        """Welcome, then the history after `lastSeq` (or a snapshot), sent with backpressure.

        The replay does not go through the bounded queue: a long history is not a slow client.
        Live events that arrive meanwhile wait in the subscription and are deduplicated by seq.
        """
        after = hello.lastSeq or 0
        replay = await self.service.bus.replay(self.interview_id, after)
        welcome = {
            "type": "welcome",
            "protocol": 1,
            "interviewId": self.interview_id,
            "status": state.status.public,
            "lastSeq": replay.head,
            "epoch": replay.epoch,
        }
        await self.ws.send_text(_dumps(welcome))
        stale_epoch = hello.epoch is not None and hello.epoch != replay.epoch
        if stale_epoch or not replay.complete or after > replay.head:
            fresh = await self.service.load(self.interview_id) or state
            await self.ws.send_text(_dumps(snapshot(fresh, replay.head)))
            self.last_sent = replay.head
            return
        self.last_sent = after
        for event in replay.events:
            if event["seq"] > self.last_sent:
                self.last_sent = event["seq"]
                await self.ws.send_text(_dumps(event))

    async def _pump(self, subscription: Subscription) -> None:
        try:
            async for event in subscription:
                self.send_event(event)
        except _Close as close:
            log.info("closing slow socket", extra={"reason": close.reason})
            await self._send_close(close.code, close.reason)

    async def _read_loop(self, pump: asyncio.Task[None], writer: asyncio.Task[None]) -> None:
        while True:
            receive = asyncio.ensure_future(self._receive_text())
            done, _ = await asyncio.wait(
                {receive, pump, writer},
                timeout=self.settings.ws_idle_timeout_sec,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not done:
                receive.cancel()
                raise _Close(CloseCode.GOING_AWAY, "idle: no frame from the client")
            if receive not in done:
                receive.cancel()
                with contextlib.suppress(BaseException):
                    await receive
                for task in done:
                    task.result()
                if pump in done:
                    # The live feed ended (the bus lost this interview's history): reconnecting
                    # with lastSeq gets the client a replay or a snapshot.
                    raise _Close(CloseCode.TRY_AGAIN_LATER, "live feed interrupted; reconnect")
                return
            text = receive.result()
            if text is None:
                return
            if not self._allow():
                self.error(ErrorCode.RATE_LIMITED, "Too many frames; slow down", self._rate_window)
                continue
            frame = self._parse(text)
            if frame is None:
                continue
            try:
                await self._handlers[frame.type](frame)
            except ProtocolViolation as exc:
                self.error(exc.code, exc.message)
            except AppError as exc:
                self.error(exc.code, exc.message)
            except BusUnavailable:
                self.error(ErrorCode.UNAVAILABLE, "Live sessions are unavailable; retry shortly", 2)

    # --- handlers --------------------------------------------------------------------------------

    async def on_answer(self, frame: Answer) -> None:
        if len(frame.answer) > self.settings.answer_max_chars:
            self.error(
                ErrorCode.ANSWER_TOO_LONG,
                f"Answers are limited to {self.settings.answer_max_chars} characters",
            )
            return
        out = await self.service.apply(
            self.interview_id,
            AnswerSubmitted(frame.questionId, frame.answer, frame.clientMsgId, time.time()),
        )
        for reply in out.reply:
            self.send(reply)

    async def on_draft(self, frame: Draft) -> None:
        if len(frame.answer) > self.settings.answer_max_chars:
            self.error(ErrorCode.ANSWER_TOO_LONG, "The draft is too long")
            return
        await self.service.apply(self.interview_id, DraftSaved(frame.questionId, frame.answer))

    async def on_complete(self, frame: Complete) -> None:
        await self.service.complete(self.interview_id)

    async def on_ping(self, frame: Ping) -> None:
        self.send({"type": "pong", "nonce": frame.nonce})

    async def on_second_hello(self, frame: Hello) -> None:
        self.error(ErrorCode.ALREADY_HELLO, "This socket has already said hello")
