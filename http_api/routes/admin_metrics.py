"""Operational figures for staff: this node's sockets and evaluations, model usage, totals."""

from __future__ import annotations

from typing import Any

from http_api.framework import Ctx, ResponseModel, Router

router = Router()


class MetricsResponse(ResponseModel):
    node: str
    evaluator: str
    breaker: str | None
    tokensToday: int | None
    dailyTokenBudget: int
    openSockets: int
    evaluationsRunning: int
    interviewsInProgress: int
    usersTotal: int


@router.add(
    "GET",
    "/admin/metrics",
    summary="Operational figures (this node and totals)",
    tags=["admin"],
    auth="admin",
    response=MetricsResponse,
)
async def metrics(ctx: Ctx[Any, Any]) -> MetricsResponse:
    services = ctx.services
    service = services.engine.service
    evaluator = service.evaluator
    usage = getattr(evaluator, "usage_today", None)
    breaker = getattr(evaluator, "breaker", None)
    db = services.infra.db
    return MetricsResponse(
        node=services.settings.node_id,
        evaluator=evaluator.name,
        breaker=breaker.state if breaker is not None else None,
        tokensToday=await usage() if usage is not None else None,
        dailyTokenBudget=services.settings.openai_daily_token_budget,
        openSockets=service.open_sockets,
        evaluationsRunning=service.evaluations_running,
        interviewsInProgress=await db["interviews"].count_documents({"status": "in-progress"}),
        usersTotal=await db["users"].estimated_document_count(),
    )
