"""The WebSocket endpoint: moves text between the ASGI socket and `engine.session.SocketSession`.

Everything the socket does arrives in one mailbox, in order: frames from the client (a reader
task), live events of the interview (a pump task) and the end of either. One loop feeds them to
the session, runs the requests it makes against the interview service, and wakes a writer task
that sends what the session queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from core.errors import AppError, Unavailable
from core.logging import interview_id_var, user_id_var
from core.revocations import Revocation, Revocations
from core.security import AccessClaims, InvalidToken, TokenService
from core.settings import Settings
from core.socket_limits import SocketLimits
from engine.bus.base import BusUnavailable, Subscription
from engine.model import InterviewState, ProtocolViolation, Status
from engine.service import InterviewService
from engine.session import (
    Apply,
    Authenticate,
    Close,
    Limits,
    Reauthenticate,
    Request,
    Resnapshot,
    SocketSession,
)
from protocol.v1.messages import CloseCode, ErrorCode, SavedDraft

log = logging.getLogger(__name__)

TokenCheck = Callable[[AccessClaims], Awaitable[bool]]

FLUSH_TIMEOUT_SEC = 2.0  # queued frames (an error explaining the close) before the close frame
CLOSE_TIMEOUT_SEC = 5.0  # a client that stopped reading blocks even the close frame


class _Signal:
    """A note to the main loop from the pump."""


FEED_ENDED = _Signal()  # the interview's live feed ended (the subscription's iterator finished)
WAKE = _Signal()  # the session closed while the pump fed it
Item = MutableMapping[str, Any] | _Signal  # an ASGI message from the client, or a signal


class SocketRegistry:
    """This node's open sockets by user: ended sessions and evictions reach them here."""

    def __init__(self, limits: SocketLimits, revocations: Revocations) -> None:
        self.limits = limits
        self.revocations = revocations
        self._by_user: dict[str, set[SocketConnection]] = {}
        self._stop_listening = revocations.listen(self.revoke)

    def add(self, connection: SocketConnection) -> None:
        self._by_user.setdefault(connection.session.user_id, set()).add(connection)

    def remove(self, connection: SocketConnection) -> None:
        mine = self._by_user.get(connection.session.user_id)
        if mine is not None:
            mine.discard(connection)
            if not mine:
                del self._by_user[connection.session.user_id]

    def revoke(self, revocation: Revocation) -> None:
        for connection in list(self._by_user.get(revocation.user_id, ())):
            if revocation.covers(
                connection.session.user_id, connection.session_id, connection.connection_id
            ):
                connection.end(revocation)

    def entries(self) -> list[tuple[str, str, int]]:
        return [
            (user, c.connection_id, c.opened_ms)
            for user, connections in self._by_user.items()
            for c in connections
        ]

    async def keep_alive(self) -> None:
        """Tell the shared count that this node's sockets are still open (a periodic job)."""
        await self.limits.keep_alive(self.entries())

    def close(self) -> None:
        self._stop_listening()


class SocketConnection:
    """One accepted socket: the session, its tasks, and the service calls it asks for."""

    def __init__(
        self,
        websocket: WebSocket,
        service: InterviewService,
        tokens: TokenService,
        token_still_valid: TokenCheck,
        settings: Settings,
        registry: SocketRegistry,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ws = websocket
        self.service = service
        self.tokens = tokens
        self.token_still_valid = token_still_valid
        self.settings = settings
        self.registry = registry
        self.clock = clock
        self.connection_id = uuid.uuid4().hex
        self.opened_ms = int(time.time() * 1000)
        self.session_id: str | None = None
        self.address = websocket.client.host if websocket.client else "unknown"
        scheme, _, value = websocket.headers.get("authorization", "").partition(" ")
        header_token = value.strip() if scheme.lower() == "bearer" and value.strip() else None
        self.session = SocketSession(Limits.from_settings(settings), clock(), header_token)
        self.mailbox: asyncio.Queue[Item] = asyncio.Queue()
        self.wake_writer = asyncio.Event()
        self.subscription: Subscription | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.disconnected = False
        self.pending = False

    async def _leave_pending(self) -> None:
        if self.pending:
            self.pending = False
            with contextlib.suppress(Exception):
                await self.registry.limits.close_pending(self.address)

    def end(self, revocation: Revocation) -> None:
        """Its session ended, or it is the user's oldest socket past the limit: close it."""
        if revocation.connection_id is not None:
            self.session.evicted()
        else:
            self.session.revoked()
        self.mailbox.put_nowait(WAKE)

    async def run(self) -> None:
        limits = self.registry.limits
        if not await limits.open_pending(self.address, self.settings.ws_max_pending_per_ip):
            await self.ws.accept()
            await self.ws.close(CloseCode.POLICY, "too many sockets from this address")
            self.service.socket_closes[CloseCode.POLICY] += 1
            return
        self.pending = True
        await self.ws.accept()
        self.service.open_sockets += 1
        try:
            await self._serve()
        finally:
            self.service.open_sockets -= 1
            await self._leave_pending()
            if self.session.user_id:
                self.registry.remove(self)
                with contextlib.suppress(Exception):
                    await limits.unregister(
                        self.session.user_id, self.connection_id, self.opened_ms
                    )
            for task in self.tasks:
                task.cancel()
            for task in self.tasks:
                with contextlib.suppress(BaseException):
                    await task
            if self.subscription is not None:
                await self.subscription.close()

    async def _serve(self) -> None:
        writer = asyncio.create_task(self._write_loop(), name="ws-writer")
        self.tasks += [asyncio.create_task(self._read_loop(), name="ws-reader"), writer]
        try:
            await self._main_loop()
        except (BusUnavailable, Unavailable):
            self.session.refused(Close(CloseCode.TRY_AGAIN_LATER, "live sessions are unavailable"))
        except Exception:
            # Whatever went wrong, the client gets a close frame and may reconnect.
            log.exception("socket session failed")
            self.session.refused(Close(CloseCode.INTERNAL_ERROR, "internal error; reconnect"))
        if self.disconnected or self.session.close is None:
            return
        close = self.session.close
        self.service.socket_closes[close.code] += 1
        if close.code != CloseCode.SLOW_CONSUMER:
            # Let queued frames (an error explaining the close) go out first.
            self.wake_writer.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._flushed(), FLUSH_TIMEOUT_SEC)
        writer.cancel()
        if self.ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_SEC):
                    await self.ws.close(close.code, close.reason[:120])

    async def _flushed(self) -> None:
        while self.session.pending:
            await asyncio.sleep(0.01)

    # --- the loops ---------------------------------------------------------------------------

    async def _main_loop(self) -> None:
        session = self.session
        while session.close is None:
            deadline = session.next_tick()
            try:
                if deadline is None:
                    item = await self.mailbox.get()
                else:
                    async with asyncio.timeout(max(0.0, deadline - self.clock())):
                        item = await self.mailbox.get()
            except TimeoutError:
                session.tick(self.clock())
                continue
            if item is FEED_ENDED:
                session.feed_ended()
            elif isinstance(item, _Signal):
                continue
            elif item["type"] == "websocket.disconnect":
                self.disconnected = True
                return
            elif (text := item.get("text")) is not None:
                session.receive_text(text, self.clock())
            else:
                session.receive_bytes(item.get("bytes") or b"", self.clock())
            await self._run_requests()
            self.wake_writer.set()

    async def _read_loop(self) -> None:
        while True:
            message = await self.ws.receive()
            self.mailbox.put_nowait(message)
            if message["type"] == "websocket.disconnect":
                return

    async def _pump(self, subscription: Subscription) -> None:
        session = self.session
        async for event in subscription:
            session.event(event)
            self.wake_writer.set()
            if session.close is not None:
                self.mailbox.put_nowait(WAKE)  # the main loop ends the connection
                return
        self.mailbox.put_nowait(FEED_ENDED)

    async def _write_loop(self) -> None:
        while True:
            await self.wake_writer.wait()
            self.wake_writer.clear()
            for frame in self.session.data_to_send():
                await self.ws.send_text(frame)
                self.session.written()

    # --- requests ----------------------------------------------------------------------------

    async def _run_requests(self) -> None:
        while requests := self.session.requests_to_run():
            for request in requests:
                await self._run(request)

    async def _run(self, request: Request) -> None:
        session = self.session
        if isinstance(request, Apply):
            try:
                out = await self.service.apply(session.interview_id, request.input)
            except (ProtocolViolation, AppError) as exc:
                session.rejected(exc.code, exc.message)
            except BusUnavailable:
                session.rejected(
                    ErrorCode.UNAVAILABLE, "Live sessions are unavailable; retry shortly", 2
                )
            else:
                # This client's own events now, before anything it sent later is answered; the
                # same events arriving from the bus are dropped by their seq.
                for event in out.published:
                    session.event(event)
                session.applied(out.reply)
        elif isinstance(request, Authenticate):
            await self._authenticate(request)
        elif isinstance(request, Reauthenticate):
            await self._reauthenticate(request)
        elif isinstance(request, Resnapshot):
            state = await self.service.load(session.interview_id)
            if state is None:
                session.refused(Close(CloseCode.NO_SUCH_INTERVIEW, "no such interview"))
            else:
                session.snapshot_of(state)

    async def _authenticate(self, request: Authenticate) -> None:
        session = self.session
        try:
            claims = self.tokens.verify(request.token)
        except InvalidToken:
            session.refused(Close(CloseCode.BAD_TOKEN, "invalid or expired token"))
            return
        if not await self.token_still_valid(claims):
            session.refused(Close(CloseCode.BAD_TOKEN, "the session has ended"))
            return
        state = await self.service.load(request.interview_id)
        if state is None:
            session.refused(Close(CloseCode.NO_SUCH_INTERVIEW, "no such interview"))
            return
        if state.user_id != claims.user_id:
            session.refused(Close(CloseCode.NOT_OWNER, "not your interview"))
            return
        interview_id_var.set(request.interview_id)
        user_id_var.set(claims.user_id)
        self.session_id = claims.session_id
        # Subscribed before the replay is read: nothing published in between is missed, and
        # what both carry is delivered once (the session drops seqs the client has).
        self.subscription = await self.service.bus.subscribe(request.interview_id)
        replay = await self.service.bus.replay(request.interview_id, request.last_seq)
        session.authenticated(
            claims.user_id,
            request.interview_id,
            state.status.public,
            replay,
            self._expires(claims),
            _draft_of(state),
        )
        self.tasks.append(asyncio.create_task(self._pump(self.subscription), name="ws-pump"))
        await self._leave_pending()
        self.registry.add(self)
        older = await self.registry.limits.register(
            claims.user_id,
            self.connection_id,
            self.opened_ms,
            self.settings.ws_max_sockets_per_user,
        )
        for connection_id in older:
            revocation = Revocation(claims.user_id, connection_id=connection_id)
            await self.registry.revocations.publish(revocation)

    def _expires(self, claims: AccessClaims) -> float:
        """When the token expires, on the session's clock (Unix time, as the token's)."""
        return claims.expires_at.timestamp()

    async def _reauthenticate(self, request: Reauthenticate) -> None:
        session = self.session
        try:
            claims = self.tokens.verify(request.token)
        except InvalidToken:
            session.reauth_refused("The token is invalid or expired")
            return
        if claims.user_id != session.user_id:
            session.reauth_refused("The token belongs to another account")
            return
        if not await self.token_still_valid(claims):
            session.reauth_refused("The session of that token has ended")
            return
        self.session_id = claims.session_id
        session.reauthenticated(self._expires(claims))


def _draft_of(state: InterviewState) -> SavedDraft | None:
    current = state.current_question
    if current is None or not state.draft or state.status is not Status.AWAITING_ANSWER:
        return None
    return SavedDraft(questionId=current.question_id, answer=state.draft)


async def serve_socket(
    websocket: WebSocket,
    service: InterviewService,
    tokens: TokenService,
    token_still_valid: TokenCheck,
    settings: Settings,
    registry: SocketRegistry,
) -> None:
    """The `/ws/v1/interview` endpoint."""
    connection = SocketConnection(websocket, service, tokens, token_still_valid, settings, registry)
    try:
        await connection.run()
    except WebSocketDisconnect:
        pass
