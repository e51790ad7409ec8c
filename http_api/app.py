"""The ASGI application factory: `uvicorn --factory http_api.app:create_app`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from app_services import open_services
from core.logging import configure_logging
from core.security import AccessClaims
from core.settings import Settings
from http_api import docs, errors
from http_api.middleware import (
    BodyLimitMiddleware,
    DeprecatedAliasMiddleware,
    IpRateLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
    UnhandledErrorMiddleware,
)
from http_api.routes import (
    admin_campaigns,
    admin_metrics,
    admin_questions,
    auth,
    billing,
    health,
    interviews,
    support,
    users,
    web,
)
from http_api.routing import API_PREFIX, LEGACY_PREFIX, operation_id
from http_api.services import AppServices
from http_api.ws import serve_socket
from protocol.v1.asyncapi import ASYNCAPI_PATH as PROTOCOL_ASYNCAPI
from protocol.v1.messages import PATH as SOCKET_PATH
from protocol.v1.schema import SCHEMA_PATH as PROTOCOL_SCHEMA

log = logging.getLogger(__name__)

VERSION = "0.1.0"
# Endpoints that take bulk bodies: a question-bank import, SendPulse's event batches.
BULK_PATHS = ("/admin/questions/import", "/mail/events")
# One router per area, in the order the document lists them.
AREAS = (
    auth.router,
    users.router,
    interviews.router,
    billing.router,
    billing.webhooks,
    support.router,
    admin_campaigns.mail_router,
    admin_metrics.router,
    support.admin_router,
    admin_campaigns.router,
    admin_questions.router,
)
# Bodies that routes read themselves are documented with these schemas.
DOCUMENTED_MODELS = (
    *billing.DOCUMENTED_MODELS,
    *admin_campaigns.DOCUMENTED_MODELS,
    *admin_questions.DOCUMENTED_MODELS,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the whole product from `settings` (the environment when omitted)."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.node_id)
    settings.check_production()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await open_services(settings)
        try:
            await services.start_node()
        except BaseException:
            await services.close()
            raise
        app.state.services = services
        app.state.support = services.support
        app.state.campaigns = services.campaigns
        app.state.question_admin = services.question_admin
        app.state.billing = services.billing
        try:
            yield
        finally:
            await services.close()

    async def protocol_schema(request: Request) -> FileResponse:
        return FileResponse(PROTOCOL_SCHEMA, media_type="application/schema+json")

    async def protocol_asyncapi(request: Request) -> FileResponse:
        return FileResponse(PROTOCOL_ASYNCAPI, media_type="application/json")

    async def socket(websocket: WebSocket) -> None:
        services: AppServices = websocket.app.state.services

        async def still_valid(claims: AccessClaims) -> bool:
            return claims.issued_at >= await services.accounts.tokens_valid_after(claims.user_id)

        await serve_socket(
            websocket, services.engine.service, services.tokens, still_valid, settings
        )

    middleware = [
        Middleware(RequestContextMiddleware),
        Middleware(SecurityHeadersMiddleware, settings=settings),
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            max_age=600,
        ),
        Middleware(
            BodyLimitMiddleware,
            max_bytes=settings.max_body_bytes,
            large_paths=BULK_PATHS,
            large_bytes=settings.max_bulk_body_bytes,
        ),
        Middleware(IpRateLimitMiddleware, settings=settings),
        Middleware(UnhandledErrorMiddleware),
        Middleware(
            DeprecatedAliasMiddleware, legacy_prefix=LEGACY_PREFIX, current_prefix=API_PREFIX
        ),
    ]
    app = FastAPI(
        title=docs.TITLE,
        version=VERSION,
        lifespan=lifespan,
        middleware=middleware,
        exception_handlers=errors.HANDLERS,
        # A JSON body without a Content-Type is still JSON here, as it always was.
        strict_content_type=False,
        generate_unique_id_function=operation_id,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.router.routes.extend(
        [
            *health.routes,
            *docs.routes,
            Route("/protocol/v1/schema.json", protocol_schema, methods=["GET"]),
            Route("/protocol/v1/asyncapi.json", protocol_asyncapi, methods=["GET"]),
            WebSocketRoute(SOCKET_PATH, socket),
        ]
    )
    # Each area's router is included directly (no router of routers: every level of nesting
    # is matched again on every request), under /api/v1 and again under the unversioned
    # alias, out of the document and marked deprecated.
    for area in AREAS:
        app.include_router(area, prefix=API_PREFIX)
    for area in AREAS:
        app.include_router(area, prefix=LEGACY_PREFIX, include_in_schema=False, deprecated=True)
    app.router.routes.extend(
        [*admin_campaigns.unsubscribe_routes, *billing.sandbox_routes, *web.routes]
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = docs.build_openapi(
                app.routes, settings, VERSION, DOCUMENTED_MODELS
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
