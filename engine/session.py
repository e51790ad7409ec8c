"""One live interview socket, sans I/O: protocol v1 as a state machine over text and time.

Like `websockets`' `Protocol`, it does no I/O and keeps no clock. The adapter (`http_api/ws.py`)
feeds it what happens - a text frame arrived, time passed, a request it asked for was answered, a
live event came from the bus, frames were written - and carries out what it asks for: frames to
send (`data_to_send`), requests to run in order (`requests_to_run`) and, at the end, `close`.
Parsing, limits, resume, deduplication and close codes all live here, tested without a server.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum, auto
from typing import Any

from pydantic import BaseModel, ValidationError

from core.settings import Settings, parse_rate
from engine.bus.base import Replay, Stamped
from engine.model import InterviewState, snapshot
from engine.state import AnswerSubmitted, CompleteRequested, DraftSaved
from protocol.v1.messages import (
    CLIENT_TYPES,
    Answer,
    AnswerAccepted,
    Auth,
    ClientFrame,
    CloseCode,
    Complete,
    Draft,
    Error,
    ErrorCode,
    Hello,
    Ping,
    Pong,
    SavedDraft,
    Welcome,
    client_adapter,
)


class Phase(Enum):
    HELLO = auto()  # waiting for the first frame
    AUTHENTICATING = auto()  # the adapter checks the token and loads the interview
    OPEN = auto()
    CLOSED = auto()


@dataclass(frozen=True, slots=True)
class Limits:
    max_frame_chars: int
    hello_timeout: float
    idle_timeout: float
    rate_count: int
    rate_window: float
    send_queue: int
    answer_max_chars: int
    auth_grace: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        count, window = parse_rate(settings.rate_limit_socket_messages)
        return cls(
            max_frame_chars=settings.ws_max_frame_bytes,
            hello_timeout=settings.ws_hello_timeout_sec,
            idle_timeout=settings.ws_idle_timeout_sec,
            rate_count=count,
            rate_window=window,
            send_queue=settings.ws_send_queue_limit,
            answer_max_chars=settings.answer_max_chars,
            auth_grace=settings.ws_auth_grace_sec,
        )


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


# --- what the session asks the adapter to do, in this order --------------------------------


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Check the token, load the interview, subscribe, replay: answer with `authenticated`."""

    token: str
    interview_id: str
    last_seq: int


@dataclass(frozen=True, slots=True)
class Apply:
    """Feed this input to the interview: answer with `applied` or `rejected`."""

    input: AnswerSubmitted | DraftSaved | CompleteRequested


@dataclass(frozen=True, slots=True)
class Reauthenticate:
    """A fresh token for this socket: answer with `reauthenticated` or `reauth_refused`."""

    token: str


@dataclass(frozen=True, slots=True)
class Resnapshot:
    """The history cannot cover the client's gap: load the state and answer with `snapshot_of`."""

    head: int


Request = Authenticate | Apply | Reauthenticate | Resnapshot


def _frame(message: BaseModel) -> str:
    return message.model_dump_json()


class SocketSession:
    """The protocol state of one socket. Every method is synchronous and returns quickly."""

    def __init__(self, limits: Limits, now: float, header_token: str | None = None) -> None:
        self.limits = limits
        self.phase = Phase.HELLO
        self.close: Close | None = None
        self.user_id = ""
        self.interview_id = ""
        self._header_token = header_token
        self._opened_at = now
        self._last_heard = now
        self._hello: Hello | None = None
        self._early: list[tuple[str | None, float]] = []  # frames that came while authenticating
        self._last_sent = 0
        self._token_expires = float("inf")  # when the token in use expires (session clock)
        self._awaiting_snapshot = False
        self._held: list[Stamped] = []  # live events that wait for a snapshot
        self._window_start = now
        self._window_count = 0
        self._requests: list[Request] = []
        self._outbox: deque[tuple[str, bool]] = deque()
        self._in_flight: deque[bool] = deque()
        self._counted = 0  # frames queued or in flight that count against the send queue
        self._handlers: dict[str, Callable[[Any, float], None]] = {
            "answer": self._on_answer,
            "draft": self._on_draft,
            "complete": self._on_complete,
            "ping": self._on_ping,
            "hello": self._on_second_hello,
            "auth": self._on_auth,
        }

    # --- outputs ---------------------------------------------------------------------------

    def requests_to_run(self) -> list[Request]:
        """Requests to carry out, in order; each is answered before the next is run."""
        requests, self._requests = self._requests, []
        return requests

    def data_to_send(self) -> list[str]:
        """Frames to write, in order; report each written one with `written`."""
        frames: list[str] = []
        while self._outbox:
            frame, counted = self._outbox.popleft()
            self._in_flight.append(counted)
            frames.append(frame)
        return frames

    @property
    def pending(self) -> int:
        """Frames queued or being written."""
        return len(self._outbox) + len(self._in_flight)

    def next_tick(self) -> float | None:
        """When `tick` must be called next (a timeout may have passed by then)."""
        if self.phase is Phase.HELLO:
            return self._opened_at + self.limits.hello_timeout
        if self.phase is Phase.OPEN:
            return min(
                self._last_heard + self.limits.idle_timeout,
                self._token_expires + self.limits.auth_grace,
            )
        return None

    # --- inputs ----------------------------------------------------------------------------

    def receive_text(self, text: str, now: float) -> None:
        if self.phase is Phase.CLOSED:
            return
        if len(text) > self.limits.max_frame_chars:
            self._close(CloseCode.TOO_LARGE, "frame too large")
        elif self.phase is Phase.HELLO:
            self._on_hello(text)
        elif self.phase is Phase.AUTHENTICATING:
            # Kept for after the welcome, within the rate limit; the rest are refused then.
            self._early.append((text if len(self._early) < self.limits.rate_count else None, now))
        else:
            self._last_heard = now
            self._on_frame(text, now)

    def receive_bytes(self, data: bytes, now: float) -> None:
        if len(data) > self.limits.max_frame_chars:
            self._close(CloseCode.TOO_LARGE, "frame too large")
            return
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = ""  # not JSON either: answered as a bad frame
        self.receive_text(text, now)

    def tick(self, now: float) -> None:
        if self.phase is Phase.HELLO and now >= self._opened_at + self.limits.hello_timeout:
            self._close(CloseCode.HELLO_TIMEOUT, "no hello in time")
        elif self.phase is Phase.OPEN and now >= self._token_expires + self.limits.auth_grace:
            self._close(CloseCode.BAD_TOKEN, "the token expired: send auth with a fresh one")
        elif self.phase is Phase.OPEN and now >= self._last_heard + self.limits.idle_timeout:
            self._close(CloseCode.GOING_AWAY, "idle: no frame from the client")

    def authenticated(
        self,
        user_id: str,
        interview_id: str,
        status: str,
        replay: Replay,
        token_expires: float = float("inf"),
        draft: SavedDraft | None = None,
    ) -> None:
        """The token is good and the interview is the user's: welcome, then replay or snapshot.

        `token_expires` is when the token expires, on the session's clock: past it (and the
        grace), a socket that sent no fresh token with `auth` is closed with 4401.
        """
        assert self._hello is not None
        self.user_id, self.interview_id = user_id, interview_id
        self._token_expires = token_expires
        self.phase = Phase.OPEN
        welcome = Welcome(
            interviewId=interview_id,
            status=status,
            lastSeq=replay.head,
            epoch=replay.epoch,
            draft=draft,
        )
        self._queue(_frame(welcome), counted=False)
        after = self._hello.lastSeq or 0
        stale_epoch = self._hello.epoch is not None and self._hello.epoch != replay.epoch
        if stale_epoch or not replay.complete or after > replay.head:
            self._last_sent = replay.head
            self._awaiting_snapshot = True
            self._requests.append(Resnapshot(replay.head))
        else:
            # A long history is not a slow client: the replay does not count against the queue.
            self._last_sent = after
            for event in replay.events:
                self._send_event(event, counted=False)
        early, self._early = self._early, []
        for text, now in early:
            if text is None:
                window = max(1, round(self.limits.rate_window))
                self._error(ErrorCode.RATE_LIMITED, "Too many frames; slow down", window)
            else:
                self.receive_text(text, now)

    def snapshot_of(self, state: InterviewState) -> None:
        """The state loaded for a `Resnapshot`: send it, then the live events held meanwhile."""
        if not self._awaiting_snapshot or self.phase is not Phase.OPEN:
            return
        self._awaiting_snapshot = False
        self._queue(_frame(snapshot(state, self._last_sent)), counted=False)
        held, self._held = self._held, []
        for event in held:
            self.event(event)

    def refused(self, close: Close) -> None:
        """Authentication failed, or the connection cannot go on: close with this code."""
        self._close(close.code, close.reason)

    def reauthenticated(self, token_expires: float) -> None:
        """The token from `auth` is good: the socket lives on until it expires."""
        self._token_expires = token_expires

    def reauth_refused(self, message: str) -> None:
        """The token from `auth` is not good; the one in use still counts until it expires."""
        self._error(ErrorCode.BAD_TOKEN, message)

    def revoked(self) -> None:
        """The session this socket belongs to has ended (a logout, a password change...)."""
        self._close(CloseCode.BAD_TOKEN, "the session has ended")

    def evicted(self) -> None:
        """The user opened more sockets than allowed: this one, the oldest, goes."""
        self._close(CloseCode.TOO_MANY_SOCKETS, "too many open sockets for this account")

    def applied(self, replies: Sequence[AnswerAccepted]) -> None:
        for reply in replies:
            self._queue(_frame(reply))

    def rejected(self, code: str, message: str, retry_after: int | None = None) -> None:
        self._error(code, message, retry_after)

    def event(self, event: Stamped) -> None:
        """A live event of the interview; ones the client already has are dropped."""
        if self.phase is not Phase.OPEN:
            return
        if self._awaiting_snapshot:
            self._held.append(event)
            return
        self._send_event(event, counted=True)

    def feed_ended(self) -> None:
        # The bus lost this interview's live feed: reconnecting with lastSeq gets a replay or
        # a snapshot.
        self._close(CloseCode.TRY_AGAIN_LATER, "live feed interrupted; reconnect")

    def written(self, count: int = 1) -> None:
        for _ in range(count):
            if self._in_flight.popleft():
                self._counted -= 1

    # --- frames from the client ------------------------------------------------------------

    def _on_hello(self, text: str) -> None:
        try:
            frame = client_adapter.validate_json(text)
        except (ValidationError, ValueError):
            self._close(CloseCode.BAD_HELLO, "the first frame must be a valid hello")
            return
        if not isinstance(frame, Hello):
            self._close(CloseCode.BAD_HELLO, "the first frame must be hello")
            return
        token = frame.token or self._header_token
        if not token:
            self._close(CloseCode.BAD_TOKEN, "missing token")
            return
        self._hello = frame
        self.phase = Phase.AUTHENTICATING
        self._requests.append(Authenticate(token, frame.interviewId, frame.lastSeq or 0))

    def _on_frame(self, text: str, now: float) -> None:
        if not self._allow(now):
            window = max(1, round(self.limits.rate_window))
            self._error(ErrorCode.RATE_LIMITED, "Too many frames; slow down", window)
            return
        frame = self._parse(text)
        if frame is not None:
            self._handlers[frame.type](frame, now)  # type: ignore[attr-defined]

    def _parse(self, text: str) -> ClientFrame | None:
        """A validated client frame, or None after telling the client what was wrong."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # bad JSON, an integer too long to convert, nesting
            self._error(ErrorCode.BAD_FRAME, "The frame is not valid JSON")
            return None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            self._error(ErrorCode.BAD_FRAME, "A frame is a JSON object with a string 'type'")
            return None
        if data["type"] not in CLIENT_TYPES:
            self._error(ErrorCode.UNKNOWN_TYPE, f"Unknown frame type {data['type'][:40]!r}")
            return None
        try:
            frame: ClientFrame = client_adapter.validate_python(data)
        except ValidationError as exc:
            fields = ", ".join(
                ".".join(str(p) for p in e["loc"][1:]) or "frame" for e in exc.errors()
            )
            self._error(ErrorCode.BAD_FRAME, f"Invalid '{data['type']}' frame: check {fields}")
            return None
        return frame

    def _allow(self, now: float) -> bool:
        if now - self._window_start >= self.limits.rate_window:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        return self._window_count <= self.limits.rate_count

    def _on_answer(self, frame: Answer, now: float) -> None:
        if len(frame.answer) > self.limits.answer_max_chars:
            self._error(
                ErrorCode.ANSWER_TOO_LONG,
                f"Answers are limited to {self.limits.answer_max_chars} characters",
            )
            return
        submitted = AnswerSubmitted(frame.questionId, frame.answer, frame.clientMsgId, now)
        self._requests.append(Apply(submitted))

    def _on_draft(self, frame: Draft, now: float) -> None:
        if len(frame.answer) > self.limits.answer_max_chars:
            self._error(ErrorCode.ANSWER_TOO_LONG, "The draft is too long")
            return
        self._requests.append(Apply(DraftSaved(frame.questionId, frame.answer)))

    def _on_complete(self, frame: Complete, now: float) -> None:
        self._requests.append(Apply(CompleteRequested(now)))

    def _on_ping(self, frame: Ping, now: float) -> None:
        self._queue(_frame(Pong(nonce=frame.nonce)))

    def _on_auth(self, frame: Auth, now: float) -> None:
        self._requests.append(Reauthenticate(frame.token))

    def _on_second_hello(self, frame: Hello, now: float) -> None:
        self._error(ErrorCode.ALREADY_HELLO, "This socket has already said hello")

    # --- frames to the client --------------------------------------------------------------

    def _send_event(self, event: Stamped, *, counted: bool) -> None:
        if event.seq <= self._last_sent:
            return  # the client has it already (replayed, or delivered twice)
        self._last_sent = event.seq
        self._queue(event.frame, counted=counted)

    def _error(self, code: str, message: str, retry_after: int | None = None) -> None:
        self._queue(_frame(Error(code=code, message=message, retryAfter=retry_after)))

    def _queue(self, frame: str, counted: bool = True) -> None:
        if self.phase is Phase.CLOSED:
            return
        if counted:
            if self._counted >= self.limits.send_queue:
                # The client stopped reading: close instead of buffering for it forever.
                self._close(CloseCode.SLOW_CONSUMER, "send queue full: the client is not reading")
                return
            self._counted += 1
        self._outbox.append((frame, counted))

    def _close(self, code: int, reason: str) -> None:
        if self.close is None:
            self.close = Close(code, reason)
        self.phase = Phase.CLOSED
        self._requests.clear()
        if code == CloseCode.SLOW_CONSUMER:
            self._outbox.clear()  # nothing more is written to a client that does not read
