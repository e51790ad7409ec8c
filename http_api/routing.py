"""The REST API's routers: one per area, mounted under /api/v1 and again under the /api alias."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel

from core.errors import AppError
from http_api.schemas import ErrorResponse

API_PREFIX = "/api/v1"
LEGACY_PREFIX = "/api"

ERROR_TEXT = {
    400: "Bad request (malformed JSON, an unreadable notification, ...)",
    401: "Missing, invalid or expired credentials",
    402: "A subscription is required",
    403: "Not allowed for this account",
    404: "Not found (or not yours)",
    409: "Conflict with the current state",
    413: "Body too large",
    422: "Validation failed; `details` lists the invalid fields",
    429: "Rate limited; retry after `Retry-After` seconds",
    503: "Temporarily unavailable; retry shortly",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers an operation gives besides the ones every operation of its kind has."""
    return {
        status: {"model": ErrorResponse, "description": ERROR_TEXT.get(status, "Error")}
        for status in statuses
    }


def operation_id(route: APIRoute) -> str:
    """`post_auth_register`: the method and the path below the API prefix."""
    path = route.path_format
    for prefix in (API_PREFIX, LEGACY_PREFIX):
        if path.startswith(prefix + "/"):
            path = path[len(prefix) :]
            break
    words = re.sub(r"[{}]", "", path).strip("/").replace("-", "_").split("/")
    method = min(route.methods or {"GET"})
    return method.lower() + "_" + "_".join(w for w in words if w)


def area_router(tag: str) -> APIRouter:
    """The router of one area of the API: its paths (below the API prefix) share a tag."""
    return APIRouter(tags=[tag], generate_unique_id_function=operation_id)


def schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def raw_body(
    schema: dict[str, Any],
    description: str,
    content_types: Sequence[str] = ("application/json",),
) -> dict[str, Any]:
    """`openapi_extra` documenting the body of an operation that reads the bytes itself.

    Such operations (signed webhooks, bulk imports) validate the body their own way; the
    models named by `schema` must be given to the document builder as extra models.
    """
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {content_type: {"schema": schema} for content_type in content_types},
        }
    }


async def read_json(request: Request) -> Any:
    """The body as JSON, or a 400 `malformed_json`."""
    try:
        return json.loads(await request.body())
    except (ValueError, RecursionError):
        # ValueError covers bad syntax, bad UTF-8 and integers past Python's digit limit;
        # RecursionError is what deeply nested arrays raise.
        raise AppError("The body is not valid JSON", code="malformed_json") from None
