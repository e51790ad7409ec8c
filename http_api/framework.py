"""Typed endpoints: one declaration gives the route, its validation and its OpenAPI entry."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.errors import AppError, Forbidden, RateLimited, Unauthorized, ValidationFailed
from core.logging import user_id_var
from core.security import AccessClaims, InvalidToken
from core.settings import parse_rate

if TYPE_CHECKING:
    from http_api.services import AppServices

API_PREFIX = "/api/v1"
LEGACY_PREFIX = "/api"

Auth = Literal["none", "optional", "user", "admin"]
B = TypeVar("B", bound=BaseModel)
Q = TypeVar("Q", bound=BaseModel)


class RequestModel(BaseModel):
    """Request bodies: unknown fields and type coercion are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class QueryModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorBody(ResponseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(ResponseModel):
    error: ErrorBody


@dataclass
class Ctx[B: BaseModel, Q: BaseModel]:
    request: Request
    services: AppServices
    body: B
    query: Q
    claims: AccessClaims | None

    @property
    def user_id(self) -> str:
        if self.claims is None:
            raise Unauthorized("Log in first", code="unauthorized")
        return self.claims.user_id

    @property
    def client_ip(self) -> str:
        return self.request.client.host if self.request.client else "unknown"

    async def limit(self, scope: str, key: str, spec: str) -> None:
        """Count this request against `spec` ("count/seconds") for (scope, key)."""
        await enforce_rate(self.services, f"{scope}:{key}", spec)

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])


class _Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


Handler = Callable[[Ctx[Any, Any]], Awaitable[BaseModel | Response]]


@dataclass
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tags: list[str]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    auth: Auth = "user"
    errors: list[int] = field(default_factory=list)


async def enforce_rate(services: AppServices, key: str, spec: str) -> None:
    limit, window = parse_rate(spec)
    decision = await services.infra.limiter.hit(key, limit, window)
    if not decision.allowed:
        raise RateLimited(decision.retry_after)


def _clean_errors(exc: ValidationError) -> list[dict[str, Any]]:
    # Never echo input back: it may be a password.
    return [
        {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


async def authenticate(request: Request, services: AppServices) -> AccessClaims | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Use 'Authorization: Bearer <token>'", code="invalid_token")
    try:
        claims = services.tokens.verify(token.strip())
    except InvalidToken:
        raise Unauthorized("The access token is invalid or expired", code="invalid_token") from None
    if claims.issued_at < await services.accounts.tokens_valid_after(claims.user_id):
        raise Unauthorized("The session has ended; log in again", code="invalid_token")
    return claims


async def _parse_body(request: Request, model: type[BaseModel]) -> BaseModel:
    raw = await request.body()
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        # ValueError covers bad syntax, bad UTF-8 and integers past Python's digit limit;
        # RecursionError is what deeply nested arrays raise.
        raise AppError("The body is not valid JSON", code="malformed_json") from None
    if not isinstance(data, dict):
        raise AppError("The body must be a JSON object", code="malformed_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("The request is invalid", details=_clean_errors(exc)) from None


def _parse_query(request: Request, model: type[BaseModel]) -> BaseModel:
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise ValidationFailed("The query is invalid", details=_clean_errors(exc)) from None


def make_route(endpoint: Endpoint, path: str, deprecated: bool) -> Route:
    async def run(request: Request) -> Response:
        if not deprecated:
            return await handle(request)
        # The concrete v1 URL (path parameters filled in), on errors as well as on successes.
        v1_name = f"{endpoint.method} {API_PREFIX}{endpoint.path}"
        successor = request.url_for(v1_name, **request.path_params).path
        headers = {"Deprecation": "true", "Link": f'<{successor}>; rel="successor-version"'}
        try:
            response = await handle(request)
        except AppError as exc:
            exc.headers.update(headers)
            raise
        response.headers.update(headers)
        return response

    async def handle(request: Request) -> Response:
        services: AppServices = request.app.state.services
        claims = await authenticate(request, services) if endpoint.auth != "none" else None
        if endpoint.auth in ("user", "admin"):
            if claims is None:
                raise Unauthorized("Log in first", code="unauthorized")
            if endpoint.auth == "admin" and claims.role != "admin":
                raise Forbidden("Staff only", code="forbidden")
        if claims is not None:
            user_id_var.set(claims.user_id)
            await enforce_rate(
                services, f"user:{claims.user_id}", services.settings.rate_limit_user
            )
        body = await _parse_body(request, endpoint.body) if endpoint.body else _Empty()
        query = _parse_query(request, endpoint.query) if endpoint.query else _Empty()
        result = await endpoint.handler(Ctx(request, services, body, query, claims))
        if isinstance(result, Response):
            return result
        return JSONResponse(result.model_dump(mode="json", by_alias=True), endpoint.status)

    return Route(path, run, methods=[endpoint.method], name=f"{endpoint.method} {path}")


class Router:
    """Collects endpoints; mounts each under /api/v1 and its deprecated /api alias."""

    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    def add(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tags: list[str],
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        auth: Auth = "user",
        errors: list[int] | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method,
                    path,
                    handler,
                    summary,
                    tags,
                    body,
                    query,
                    response,
                    status,
                    auth,
                    errors or [],
                )
            )
            return handler

        return register

    def include(self, other: Router) -> None:
        self.endpoints.extend(other.endpoints)

    def routes(self) -> list[Route]:
        routes = [make_route(e, API_PREFIX + e.path, deprecated=False) for e in self.endpoints]
        routes += [make_route(e, LEGACY_PREFIX + e.path, deprecated=True) for e in self.endpoints]
        return routes
