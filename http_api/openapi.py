"""OpenAPI 3.1 generated from the endpoint declarations and their pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from http_api.framework import API_PREFIX, Endpoint, ErrorResponse

_ERROR_TEXT = {
    400: "Bad request (malformed JSON, invalid token, ...)",
    401: "Missing, invalid or expired credentials",
    402: "A subscription is required",
    403: "Not allowed for this account",
    404: "Not found (or not yours)",
    409: "Conflict with the current state",
    413: "Body too large",
    422: "Validation failed",
    429: "Rate limited; see Retry-After",
}


def build_openapi(endpoints: list[Endpoint], version: str) -> dict[str, Any]:
    models: set[type[BaseModel]] = {ErrorResponse}
    for e in endpoints:
        for model in (e.body, e.response):
            if model is not None:
                models.add(model)
    ordered = sorted(models, key=lambda m: m.__name__)
    refs, defs = models_json_schema(
        [(m, "validation" if _is_request(m, endpoints) else "serialization") for m in ordered],
        ref_template="#/components/schemas/{model}",
    )
    components: dict[str, Any] = dict(defs.get("$defs", {}))

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return dict(refs[(model, mode)])  # type: ignore[index]

    paths: dict[str, Any] = {}
    for e in endpoints:
        path = API_PREFIX + e.path
        op: dict[str, Any] = {
            "operationId": _operation_id(e),
            "summary": e.summary,
            "tags": e.tags,
            "responses": {},
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", e.path)
        ]
        if e.query is not None:
            schema = e.query.model_json_schema()
            required = set(schema.get("required", []))
            for name, prop in schema.get("properties", {}).items():
                params.append(
                    {"name": name, "in": "query", "required": name in required, "schema": prop}
                )
        if params:
            op["parameters"] = params
        if e.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(e.body, "validation")}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if e.response is not None:
            ok["content"] = {"application/json": {"schema": ref(e.response, "serialization")}}
        op["responses"][str(e.status)] = ok
        statuses = set(e.errors) | {429}
        if e.body is not None or e.query is not None:
            statuses |= {400, 422}
        if e.body is not None:
            statuses.add(413)
        if e.auth in ("user", "admin"):
            statuses.add(401)
            op["security"] = [{"bearerAuth": []}]
        if e.auth == "admin":
            statuses.add(403)
        for status in sorted(statuses):
            op["responses"][str(status)] = {
                "description": _ERROR_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": ref(ErrorResponse, "serialization")}},
            }
        paths.setdefault(path, {})[e.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Interview Platform API",
            "version": version,
            "description": (
                "Accounts, interviews, billing and support. The live interview socket is at "
                "/ws/v1/interview (see docs/protocol.md). Paths under /api/ without a version "
                "are deprecated aliases of /api/v1/."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _is_request(model: type[BaseModel], endpoints: list[Endpoint]) -> bool:
    return any(e.body is model for e in endpoints)


def _operation_id(e: Endpoint) -> str:
    words = re.sub(r"[{}]", "", e.path).strip("/").replace("-", "_").split("/")
    return e.method.lower() + "_" + "_".join(w for w in words if w)
