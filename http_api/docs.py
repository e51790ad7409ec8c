"""The OpenAPI 3.1 document and the offline API explorer at /docs.

FastAPI generates the paths, parameters, bodies and schemas from the routes. This module adds
what the annotations cannot say: the error answers every operation shares (one envelope,
`Retry-After` on 429), the schemas of bodies that routes read themselves (signed webhooks, bulk
imports), and the limits that come from the settings the server runs with.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import swagger_ui
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from core.settings import Settings
from http_api.deps import current_user, require_admin
from http_api.routing import ERROR_TEXT
from http_api.schemas import ErrorResponse

REF = "#/components/schemas/{model}"
ERROR_REF = {"$ref": REF.format(model="ErrorResponse")}
# A schema node with this key documents a limit that is a setting: the key names the setting.
LIMIT_SETTING = "x-max-length-setting"

TITLE = "Interview Platform API"
DESCRIPTION = (
    "Accounts, interviews, billing and support of a platform where candidates practise "
    "technical interviews. The live interview socket is at /ws/v1/interview (see "
    "docs/protocol.md and /protocol/v1/schema.json). Paths under /api/ without a version are "
    "deprecated aliases of /api/v1/: they answer the same and carry `Deprecation` and "
    '`Link` headers.\n\nEvery error is `{"error": {"code", "message", "details"}}` '
    "with a stable `code`. Every request counts against a per-address limit, and every "
    "authenticated one against a per-user limit: past it the answer is 429 with "
    "`Retry-After`."
)
TAGS: list[dict[str, Any]] = [
    {
        "name": "auth",
        "description": "Register, confirm the address, log in, refresh, log out, "
        "recover the password",
    },
    {"name": "users", "description": "The user's own profile and password"},
    {
        "name": "interviews",
        "description": "Technical interviews over REST (the same interviews "
        "the live socket serves), history, reports and share links",
    },
    {"name": "billing", "description": "Plans, subscriptions and payments"},
    {
        "name": "billing webhooks",
        "description": "CloudPayments notifications, authenticated by "
        "their `Content-HMAC` signature",
    },
    {"name": "support", "description": "The user's support tickets"},
    {"name": "mail", "description": "SendPulse's event webhook"},
    {"name": "admin", "description": "Operational figures for staff"},
    {"name": "admin: support", "description": "The staff support desk"},
    {"name": "admin: campaigns", "description": "Marketing campaigns and their delivery"},
    {
        "name": "admin: questions",
        "description": "The question bank: edit, (de)activate, import and export",
    },
]

RETRY_AFTER = {
    "description": "Seconds until the limit lets the next request through",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}


def max_length_from(setting: str) -> dict[str, Any]:
    """`json_schema_extra` for a string whose documented maxLength is `settings.<setting>`."""
    return {LIMIT_SETTING: setting}


def build_openapi(
    routes: Sequence[BaseRoute],
    settings: Settings,
    version: str,
    extra_models: Sequence[type[BaseModel]] = (),
) -> dict[str, Any]:
    """The document for `routes` as a server running with `settings` answers."""
    spec = get_openapi(
        title=TITLE,
        version=version,
        description=DESCRIPTION,
        routes=routes,
        tags=TAGS,
        servers=[{"url": "/"}],
        contact={"name": "Interview Platform", "url": settings.public_base_url},
    )
    components = spec.setdefault("components", {})
    schemas: dict[str, Any] = components.setdefault("schemas", {})
    # FastAPI's own 422 shape is not what this API answers: the handlers use the envelope.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    _add_models(schemas, [ErrorResponse, *extra_models])
    for route in iter_route_contexts(routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = spec["paths"][route.path_format][method.lower()]
            _add_error_responses(operation, route.dependant, route.body_field is not None)
    _apply_setting_limits(spec, settings)
    return spec


def _add_models(schemas: dict[str, Any], models: Sequence[type[BaseModel]]) -> None:
    _, definitions = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    for name, schema in definitions.get("$defs", {}).items():
        # FastAPI leaves out null values (`default: null` among them); so do these.
        schema = jsonable_encoder(schema, exclude_none=True)
        if schemas.setdefault(name, schema) != schema:
            raise RuntimeError(f"two different schemas are named {name}")


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _add_error_responses(operation: dict[str, Any], dependant: Dependant, body: bool) -> None:
    """The errors an operation answers because of what it takes: body, query, login, role."""
    calls = {d.call for d in _dependants(dependant)}
    query = any(d.query_params for d in _dependants(dependant))
    statuses = {429}
    if body or query:
        statuses |= {400, 422}
    if body:
        statuses.add(413)
    if current_user in calls:
        statuses.add(401)
    if require_admin in calls:
        statuses.add(403)
    responses: dict[str, Any] = operation["responses"]
    default_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
    if "HTTPValidationError" in str(default_422.get("schema", {})):
        del responses["422"]
    for status in sorted(statuses):
        responses.setdefault(
            str(status),
            {
                "description": ERROR_TEXT[status],
                "content": {"application/json": {"schema": dict(ERROR_REF)}},
            },
        )
    responses["429"]["headers"] = {"Retry-After": RETRY_AFTER}
    operation["responses"] = dict(sorted(responses.items()))


def _apply_setting_limits(node: Any, settings: Settings) -> None:
    if isinstance(node, dict):
        setting = node.pop(LIMIT_SETTING, None)
        if setting is not None:
            limit = int(getattr(settings, setting))
            node["maxLength"] = min(limit, node.get("maxLength", limit))
        for value in node.values():
            _apply_setting_limits(value, settings)
    elif isinstance(node, list):
        for value in node:
            _apply_setting_limits(value, settings)


# --- /docs: Swagger UI from the swagger-ui-py package's files, nothing from a CDN ----------------

SWAGGER_STATIC = Path(swagger_ui.__file__).parent / "static"

DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Interview Platform API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>"""

DOCS_INIT = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui",
deepLinking: true, persistAuthorization: true});"""


async def docs_page(request: Request) -> HTMLResponse:
    return HTMLResponse(DOCS_HTML)


async def docs_init(request: Request) -> Response:
    return Response(DOCS_INIT, media_type="application/javascript")


routes: list[BaseRoute] = [
    Route("/docs", docs_page, methods=["GET"]),
    Route("/docs/init.js", docs_init, methods=["GET"]),
    Mount("/docs/static", StaticFiles(directory=SWAGGER_STATIC), name="docs-static"),
]
