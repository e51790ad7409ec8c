"""Every error leaves as `{"error": {"code", "message", "details"}}`: the exception handlers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from core.errors import AppError
from engine.bus.base import BusUnavailable

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}
# What a body that is not a JSON object at all looks like to the validator.
_NOT_AN_OBJECT = {"missing", "model_type", "model_attributes_type", "dict_type"}


def _json(
    status: int,
    code: str,
    message: str,
    details: object = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "details": details}}, status, headers=headers
    )


def _malformed(message: str) -> JSONResponse:
    return _json(400, "malformed_json", message)


async def app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return _json(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def validation_error(request: Request, exc: Exception) -> Response:
    """422 with the invalid fields; a body that is not a JSON object at all is a 400."""
    assert isinstance(exc, RequestValidationError)
    found = exc.errors()
    for error in found:
        if error["type"] == "json_invalid":
            return _malformed("The body is not valid JSON")
        if tuple(error["loc"]) == ("body",) and error["type"] in _NOT_AN_OBJECT:
            return _malformed("The body must be a JSON object")
    # Never echo the input back: it may be a password. `loc` starts below body/query/path.
    details = [
        {
            "loc": [str(part) for part in error["loc"][1:]],
            "msg": error["msg"],
            "type": error["type"],
        }
        for error in found
    ]
    in_query = all(error["loc"][:1] == ("query",) for error in found)
    message = "The query is invalid" if in_query else "The request is invalid"
    return _json(422, "validation_error", message, details)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 400 and isinstance(exc.__cause__, (ValueError, RecursionError)):
        # The body could not be decoded at all: bad UTF-8, an integer past Python's digit
        # limit, arrays nested past the recursion limit.
        return _malformed("The body is not valid JSON")
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request.app.router.routes, request))
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return _json(exc.status_code, code, str(exc.detail), headers=headers)


def allowed_methods(routes: Sequence[BaseRoute], request: Request) -> list[str]:
    """Every method some route serves at this path (a path often has more than one route)."""
    path: str = request.scope["path"]
    root_path: str = request.scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    methods: set[str] = set()
    for route in iter_route_contexts(routes):
        regex = getattr(route, "path_regex", None)
        route_methods = getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(path):
            methods |= set(route_methods)
    return sorted(methods)


async def bus_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("session bus unavailable", extra={"path": request.url.path})
    message = "Live sessions are unavailable; retry shortly"
    return _json(503, "unavailable", message, headers={"Retry-After": "2"})


Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]

HANDLERS: dict[int | type[Exception], Handler] = {
    AppError: app_error,
    RequestValidationError: validation_error,
    HTTPException: http_error,
    BusUnavailable: bus_unavailable,
}
