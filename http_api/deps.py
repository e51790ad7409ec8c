"""What routes depend on: the services, the current user, roles and rate limits.

Routes reach services only through the functions here, so what builds them can change in
one place. FastAPI caches each dependency per request: the token is checked and the user's
session looked up once however many dependencies need the current user. Every dependency is
`async def`: FastAPI runs plain functions in a worker thread, a thread hop per call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from core.accounts import AccountService
from core.billing import BillingService
from core.campaigns import CampaignService
from core.errors import Forbidden, RateLimited, Unauthorized
from core.logging import user_id_var
from core.security import AccessClaims, InvalidToken
from core.settings import Settings, parse_rate
from core.support import SupportService
from engine.container import Engine
from engine.questions.admin import QuestionAdmin
from http_api.services import AppServices


async def get_services(request: Request) -> AppServices:
    """What the app's lifespan opened."""
    services: AppServices = request.app.state.services
    return services


Services = Annotated[AppServices, Depends(get_services)]


async def get_settings(services: Services) -> Settings:
    return services.settings


async def get_accounts(services: Services) -> AccountService:
    return services.accounts


async def get_engine(services: Services) -> Engine:
    return services.engine


async def get_billing(services: Services) -> BillingService:
    return services.billing


async def get_support(services: Services) -> SupportService:
    return services.support


async def get_campaigns(services: Services) -> CampaignService:
    return services.campaigns


async def get_question_admin(services: Services) -> QuestionAdmin:
    return services.question_admin


AppSettings = Annotated[Settings, Depends(get_settings)]
Accounts = Annotated[AccountService, Depends(get_accounts)]
Billing = Annotated[BillingService, Depends(get_billing)]
Support = Annotated[SupportService, Depends(get_support)]
Campaigns = Annotated[CampaignService, Depends(get_campaigns)]
Questions = Annotated[QuestionAdmin, Depends(get_question_admin)]
EngineDep = Annotated[Engine, Depends(get_engine)]


class BearerToken(HTTPBearer):
    """`Authorization: Bearer <token>`: the raw header, judged by `current_user`.

    It is an HTTPBearer so that the OpenAPI document carries the `bearerAuth` scheme and the
    operations' security requirement; the header is read here so that a malformed one gets its
    own error code.
    """

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return request.headers.get("authorization")


bearer = BearerToken(scheme_name="bearerAuth", bearerFormat="JWT", auto_error=False)


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def enforce_rate(services: AppServices, key: str, spec: str) -> None:
    """Count one request against `spec` ("count/seconds") for `key`; 429 past it."""
    limit, window = parse_rate(spec)
    decision = await services.infra.limiter.hit(key, limit, window)
    if not decision.allowed:
        raise RateLimited(decision.retry_after)


async def current_user(
    header: Annotated[str | None, Depends(bearer)], services: Services
) -> AccessClaims:
    """The caller's verified access token; every authenticated request counts per user."""
    if not header:
        raise Unauthorized("Log in first", code="unauthorized")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Use 'Authorization: Bearer <token>'", code="invalid_token")
    try:
        claims = services.tokens.verify(token.strip())
    except InvalidToken:
        raise Unauthorized("The access token is invalid or expired", code="invalid_token") from None
    if claims.issued_at < await services.accounts.tokens_valid_after(claims.user_id):
        raise Unauthorized("The session has ended; log in again", code="invalid_token")
    user_id_var.set(claims.user_id)
    await enforce_rate(services, f"user:{claims.user_id}", services.settings.rate_limit_user)
    return claims


CurrentUser = Annotated[AccessClaims, Depends(current_user)]


async def require_admin(claims: CurrentUser) -> AccessClaims:
    if claims.role != "admin":
        raise Forbidden("Staff only", code="forbidden")
    return claims


Admin = Annotated[AccessClaims, Depends(require_admin)]

RateSpec = Callable[[Settings], str]


def limit_per_ip(scope: str, spec: RateSpec) -> Callable[..., Awaitable[None]]:
    """A dependency counting the request against `spec(settings)` for (scope, client IP)."""

    async def limit(request: Request, services: Services) -> None:
        await enforce_rate(services, f"{scope}:{client_ip(request)}", spec(services.settings))

    return limit


def limit_per_user(scope: str, spec: RateSpec) -> Callable[..., Awaitable[None]]:
    """A dependency counting the request against `spec(settings)` for (scope, user)."""

    async def limit(claims: CurrentUser, services: Services) -> None:
        await enforce_rate(services, f"{scope}:{claims.user_id}", spec(services.settings))

    return limit


class AccountLimit:
    """Counts auth actions per account (the address in the body), after the body is valid."""

    def __init__(self, services: AppServices) -> None:
        self._services = services

    async def hit(self, action: str, account: str, spec: str) -> None:
        await enforce_rate(self._services, f"auth-account:{action}:{account}", spec)


async def get_account_limit(services: Services) -> AccountLimit:
    return AccountLimit(services)


AccountLimits = Annotated[AccountLimit, Depends(get_account_limit)]
