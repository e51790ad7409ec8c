"""Liveness and readiness probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def live(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "node": request.app.state.services.settings.node_id})


async def ready(request: Request) -> JSONResponse:
    services = request.app.state.services
    checks = {"mongo": await services.infra.db.ping()}
    redis = services.infra.redis
    if redis is not None:
        try:
            checks["redis"] = bool(await redis.ping())
        except Exception:  # noqa: BLE001 - a probe reports, never raises
            checks["redis"] = False
    ok = all(checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503
    )


routes = [
    Route("/health/live", live, methods=["GET"]),
    Route("/health/ready", ready, methods=["GET"]),
]
