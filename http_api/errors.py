"""Every error leaves as `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from core.errors import AppError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


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


async def app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    return _json(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return _json(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))


async def bus_unavailable(request: Request, exc: Exception) -> Response:
    log.warning("session bus unavailable", extra={"path": request.url.path})
    message = "Live sessions are unavailable; retry shortly"
    return _json(503, "unavailable", message, headers={"Retry-After": "2"})
