"""ASGI middleware: request ids and access logs, security headers, body limit, IP rate limit,
the deprecation headers of the /api aliases."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.errors import RateLimited
from core.logging import request_id_var, user_id_var
from core.settings import Settings, parse_rate

log = logging.getLogger("http_api.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def error_body(code: str, message: str, details: Any = None) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "details": details}}, ensure_ascii=False
    ).encode()


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: Any = None,
) -> None:
    body = error_body(code, message, details)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Gives every request an id (X-Request-ID when sane) and logs one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        user_token = user_id_var.set(None)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http" and not scope["path"].startswith("/health"):
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id_var.reset(token)
            user_id_var.reset(user_token)


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        headers = {
            b"x-content-type-options": b"nosniff",
            b"x-frame-options": b"DENY",
            b"referrer-policy": b"no-referrer",
            b"cross-origin-opener-policy": b"same-origin",
            b"permissions-policy": b"camera=(), microphone=(), geolocation=()",
            b"content-security-policy": (
                b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                b"img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
                b"base-uri 'none'; form-action 'self'"
            ),
        }
        self.headers = list(headers.items())
        # HSTS only on HTTPS: the scheme is https over TLS or behind a trusted proxy that says
        # X-Forwarded-Proto: https (uvicorn's proxy headers, FORWARDED_ALLOW_IPS).
        self.hsts = [(b"strict-transport-security", b"max-age=31536000; includeSubDomains")]
        self.production = settings.is_production

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = self.headers
        if self.production and scope.get("scheme") == "https":
            wanted = [*self.headers, *self.hsts]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in wanted if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimitMiddleware:
    """Refuses bodies over the limit with 413, by Content-Length or while streaming."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, large_paths: tuple[str, ...] = (), large_bytes: int = 0
    ) -> None:
        self.app = app
        self.default_bytes = max_bytes
        self.large_paths = large_paths
        self.large_bytes = max(large_bytes, max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Bulk endpoints (question import, mail event batches) take more than the rest.
        large = bool(self.large_paths) and scope["path"].endswith(self.large_paths)
        limit = self.large_bytes if large else self.default_bytes
        message = f"The body exceeds {limit} bytes"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await send_error(send, 413, "body_too_large", message)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await send_error(send, 413, "body_too_large", message)


class _BodyTooLarge(HTTPException):
    """Raised from `receive`: whoever is reading the body answers 413 through the handlers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The body exceeds {limit} bytes")


class IpRateLimitMiddleware:
    """The global per-IP limit, before any routing or parsing work."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limit, self.window = parse_rate(settings.rate_limit_global_ip)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(("/health", "/static", "/docs")):
            await self.app(scope, receive, send)
            return
        services = scope["app"].state.services
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        decision = await services.infra.limiter.hit(f"ip:{ip}", self.limit, self.window)
        if not decision.allowed:
            error = RateLimited(decision.retry_after)
            await send_error(send, 429, error.code, error.message, error.headers, error.details)
            return
        await self.app(scope, receive, send)


class UnhandledErrorMiddleware:
    """The innermost guard: an unexpected error becomes a 500 in the usual error shape.

    It sits inside the other middleware, so that response still carries the request id and the
    security headers, and the log line has the request's context.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except _BodyTooLarge:
            raise  # BodyLimitMiddleware, further out, answers 413
        except Exception:
            log.error("unhandled error", exc_info=True, extra={"path": scope["path"]})
            if started:
                raise
            await send_error(
                send, 500, "internal_error", "Something went wrong on our side; please retry."
            )


class DeprecatedAliasMiddleware:
    """Marks answers of the unversioned /api aliases as deprecated, errors included.

    An answer is an alias's when a route matched (the router put it in the scope) and the path
    is under `legacy_prefix` but not under `current_prefix`; `Link` names the concrete
    current URL.
    """

    def __init__(self, app: ASGIApp, legacy_prefix: str, current_prefix: str) -> None:
        self.app = app
        self.legacy = legacy_prefix + "/"
        self.current = current_prefix + "/"
        self.legacy_length = len(legacy_prefix)
        self.current_prefix = current_prefix.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or not path.startswith(self.legacy)
            or path.startswith(self.current)
        ):
            await self.app(scope, receive, send)
            return

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start" and isinstance(
                scope.get("route"), BaseRoute
            ):
                raw: bytes = scope.get("raw_path") or path.encode()
                successor = self.current_prefix + raw[self.legacy_length :]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"deprecation", b"true"),
                    (b"link", b"<" + successor + b'>; rel="successor-version"'),
                ]
            await send(message)

        await self.app(scope, receive, send_marked)
