"""A local HTTP server that speaks the slice of SendPulse's API the mail adapter uses."""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.server import ThreadedServer


@dataclass(frozen=True)
class ReceivedEmail:
    """One email the fake accepted, with the html already decoded from base64."""

    id: str
    token: str
    subject: str
    text: str
    html: str
    from_name: str
    from_email: str
    to: list[tuple[str, str]]


@dataclass(frozen=True)
class TokenRequest:
    client_id: str
    granted: bool


@dataclass
class _Failure:
    status: int
    body: dict[str, Any]


@dataclass
class _State:
    tokens: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    emails: list[ReceivedEmail] = field(default_factory=list)
    token_requests: list[TokenRequest] = field(default_factory=list)
    send_attempts: int = 0
    unauthorized_sends: int = 0
    send_failures: deque[_Failure] = field(default_factory=deque)
    token_failures: deque[_Failure] = field(default_factory=deque)
    send_delay: float = 0.0


class FakeSendPulse:
    """Run with `with FakeSendPulse() as fake:`; point the adapter at `fake.url`."""

    def __init__(
        self,
        *,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        expires_in: int = 3600,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self._state = _State()
        # Handlers run on the server's thread while tests read and arm the fake from theirs.
        self._lock = threading.Lock()
        self._runner: ThreadedServer | None = None
        self.url = ""

    # --- arming -------------------------------------------------------------------------

    def fail_next_sends(self, count: int, status: int, body: dict[str, Any] | None = None) -> None:
        """Answer the next `count` authorised sends with `status` and `body`."""
        failure = _Failure(status, body if body is not None else {"message": f"HTTP {status}"})
        with self._lock:
            self._state.send_failures.extend([failure] * count)

    def fail_next_token_requests(
        self, count: int, status: int, body: dict[str, Any] | None = None
    ) -> None:
        """Answer the next `count` token requests with `status` and `body`."""
        failure = _Failure(status, body if body is not None else {"message": f"HTTP {status}"})
        with self._lock:
            self._state.token_failures.extend([failure] * count)

    def invalidate_tokens(self) -> None:
        """Forget every issued token, as SendPulse does when one expires or is revoked."""
        with self._lock:
            self._state.tokens.clear()

    def delay_sends(self, seconds: float) -> None:
        """Hold every send this long before answering."""
        with self._lock:
            self._state.send_delay = seconds

    # --- what happened ------------------------------------------------------------------

    @property
    def emails(self) -> list[ReceivedEmail]:
        with self._lock:
            return list(self._state.emails)

    @property
    def token_requests(self) -> list[TokenRequest]:
        with self._lock:
            return list(self._state.token_requests)

    @property
    def send_attempts(self) -> int:
        with self._lock:
            return self._state.send_attempts

    @property
    def unauthorized_sends(self) -> int:
        with self._lock:
            return self._state.unauthorized_sends

    # --- the API ------------------------------------------------------------------------

    async def _access_token(self, request: Request) -> JSONResponse:
        body = await _json_body(request)
        with self._lock:
            if self._state.token_failures:
                failure = self._state.token_failures.popleft()
                return JSONResponse(failure.body, status_code=failure.status)
            granted = (
                body is not None
                and body.get("grant_type") == "client_credentials"
                and body.get("client_id") == self.client_id
                and body.get("client_secret") == self.client_secret
            )
            client_id = body.get("client_id") if body is not None else None
            self._state.token_requests.append(
                TokenRequest(client_id=str(client_id), granted=granted)
            )
            if not granted:
                return JSONResponse(
                    {
                        "error": "invalid_client",
                        "error_description": "Client authentication failed",
                        "message": "Client authentication failed",
                    },
                    status_code=401,
                )
            token = secrets.token_urlsafe(24)
            self._state.tokens[token] = time.monotonic() + self.expires_in
            return JSONResponse(
                {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
            )

    async def _send(self, request: Request) -> JSONResponse:
        with self._lock:
            delay = self._state.send_delay
        if delay:
            await asyncio.sleep(delay)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        body = await _json_body(request)
        with self._lock:
            self._state.send_attempts += 1
            expiry = self._state.tokens.get(token)
            if scheme != "Bearer" or expiry is None or expiry <= time.monotonic():
                self._state.unauthorized_sends += 1
                return JSONResponse(
                    {"error": "invalid_token", "message": "The access token is invalid"},
                    status_code=401,
                )
            if self._state.send_failures:
                failure = self._state.send_failures.popleft()
                return JSONResponse(failure.body, status_code=failure.status)
            email = _parse_email(body, token)
            if isinstance(email, str):
                return JSONResponse({"error_code": 400, "message": email}, status_code=400)
            self._state.emails.append(email)
            return JSONResponse({"result": True, "id": email.id})

    # --- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> FakeSendPulse:
        app = Starlette(
            routes=[
                Route("/oauth/access_token", self._access_token, methods=["POST"]),
                Route("/smtp/emails", self._send, methods=["POST"]),
            ]
        )
        self._runner = ThreadedServer(app, "fake-sendpulse")
        self.url = self._runner.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()
            self._runner = None


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = await request.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _parse_email(body: dict[str, Any] | None, token: str) -> ReceivedEmail | str:
    """Check the body the way SendPulse would; return the email or what is wrong with it."""
    email = body.get("email") if body is not None else None
    if not isinstance(email, dict):
        return "email is required"
    try:
        html = base64.b64decode(str(email.get("html", "")), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "html must be base64 of UTF-8 text"
    sender = email.get("from")
    if not isinstance(sender, dict) or not sender.get("email"):
        return "from.email is required"
    recipients = email.get("to")
    if (
        not isinstance(recipients, list)
        or not recipients
        or not all(isinstance(r, dict) and r.get("email") for r in recipients)
    ):
        return "to must list recipients with an email"
    if not html or not isinstance(email.get("subject"), str) or not email["subject"]:
        return "subject and html are required"
    return ReceivedEmail(
        id=secrets.token_hex(8),
        token=token,
        subject=email["subject"],
        text=str(email.get("text", "")),
        html=html,
        from_name=str(sender.get("name", "")),
        from_email=str(sender["email"]),
        to=[(str(r.get("name", "")), str(r["email"])) for r in recipients],
    )
