"""The ASGI application factory: `uvicorn --factory http_api.app:create_app`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import swagger_ui
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from core.accounts import AccountService
from core.billing import build_billing, periodic_jobs
from core.campaigns import build_campaigns, register_campaign_jobs
from core.container import open_infrastructure
from core.errors import AppError
from core.logging import configure_logging
from core.security import AccessClaims, PasswordHasher, TokenService
from core.settings import Settings
from core.support import build_support
from core.tasks import periodic
from engine.bus.base import BusUnavailable
from engine.container import build_engine
from engine.questions.admin import QuestionAdmin
from engine.socket import SocketSession
from http_api import errors
from http_api.framework import Router
from http_api.middleware import (
    BodyLimitMiddleware,
    IpRateLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
    UnhandledErrorMiddleware,
)
from http_api.openapi import build_openapi
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
from http_api.services import AppServices
from protocol.v1.messages import PATH as SOCKET_PATH
from protocol.v1.schema import SCHEMA_PATH as PROTOCOL_SCHEMA

log = logging.getLogger(__name__)

VERSION = "0.1.0"
# Endpoints that take bulk bodies: a question-bank import, SendPulse's event batches.
BULK_PATHS = ("/admin/questions/import", "/mail/events")
SWAGGER_STATIC = Path(swagger_ui.__file__).parent / "static"

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Interview Platform API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>"""

DOCS_INIT = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
deepLinking: true, persistAuthorization: true});"""


def api_router() -> Router:
    router = Router()
    modules = (
        auth,
        users,
        interviews,
        billing,
        support,
        admin_campaigns,
        admin_questions,
        admin_metrics,
    )
    for module in modules:
        router.include(module.router)
    return router


async def _open_services(settings: Settings) -> AppServices:
    infra = await open_infrastructure(settings)
    hasher = PasswordHasher(settings.password_pepper.get_secret_value(), settings.bcrypt_rounds)
    tokens = TokenService(settings)
    accounts = AccountService(settings, infra.db, infra.cache, hasher, tokens, infra.mailer)
    billing_service = build_billing(infra)
    engine = build_engine(infra, start_guard=billing_service.start_guard)
    campaigns = build_campaigns(infra)
    register_campaign_jobs(infra.jobs, campaigns)
    services = AppServices(
        settings,
        infra,
        hasher,
        tokens,
        accounts,
        engine,
        support=build_support(infra),
        campaigns=campaigns,
        question_admin=QuestionAdmin(infra.db, engine.questions),
        billing=billing_service,
    )
    try:
        if settings.is_production:  # the seed step of a deployment updates the bank
            await engine.questions.seed_if_empty()
        else:
            await engine.questions.seed_if_changed()
        in_process = not settings.celery_broker_url
        await engine.start_background(abandon_in_process=in_process)
        if in_process:  # no Celery beat: run the periodic jobs here
            campaign_loop = periodic("campaigns", 60.0, campaigns.run_due)
            services.loops.append(asyncio.create_task(campaign_loop))
            billing_service.start_background(periodic_jobs(billing_service))
    except BaseException:
        await services.close()
        raise
    log.info(
        "node ready",
        extra={"components": infra.components, "evaluator": engine.service.evaluator.name},
    )
    return services


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the whole product from `settings` (the environment when omitted)."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.node_id)
    settings.check_production()
    router = api_router()
    spec = build_openapi(router.endpoints, VERSION)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await _open_services(settings)
        app.state.services = services
        app.state.support = services.support
        app.state.campaigns = services.campaigns
        app.state.question_admin = services.question_admin
        app.state.billing = services.billing
        try:
            yield
        finally:
            await services.close()

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(spec)

    async def protocol_schema(request: Request) -> FileResponse:
        return FileResponse(PROTOCOL_SCHEMA, media_type="application/schema+json")

    async def docs(request: Request) -> HTMLResponse:
        return HTMLResponse(DOCS_HTML)

    async def docs_init(request: Request) -> Response:
        return Response(DOCS_INIT, media_type="application/javascript")

    async def socket(websocket: WebSocket) -> None:
        services: AppServices = websocket.app.state.services

        async def still_valid(claims: AccessClaims) -> bool:
            return claims.issued_at >= await services.accounts.tokens_valid_after(claims.user_id)

        session = SocketSession(
            websocket, services.engine.service, services.tokens, still_valid, settings
        )
        await session.run()

    routes: list[BaseRoute] = [
        *health.routes,
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/protocol/v1/schema.json", protocol_schema, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/docs/init.js", docs_init, methods=["GET"]),
        Mount("/docs/static", StaticFiles(directory=SWAGGER_STATIC), name="docs-static"),
        WebSocketRoute(SOCKET_PATH, socket),
        *router.routes(),
        *admin_campaigns.unsubscribe_routes,
        *billing.sandbox_routes,
        *web.routes,
    ]
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
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            AppError: errors.app_error,
            BusUnavailable: errors.bus_unavailable,
            HTTPException: errors.http_error,
        },
    )
    app.state.settings = settings
    return app
