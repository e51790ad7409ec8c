"""Operational figures for staff: this node's sockets and evaluations, model usage, totals."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from http_api.deps import Admin, Services
from http_api.routing import area_router
from http_api.schemas import ResponseModel

router = area_router("admin")


class MetricsResponse(ResponseModel):
    node: str
    evaluator: Literal["local", "openai"]
    breaker: Literal["closed", "open", "half-open"] | None = Field(
        description="The OpenAI circuit breaker; null with the local evaluator"
    )
    tokensToday: int | None = Field(description="OpenAI tokens spent today (UTC)")
    dailyTokenBudget: int
    openSockets: int
    evaluationsRunning: int
    interviewsInProgress: int
    usersTotal: int


@router.get("/admin/metrics", summary="Operational figures (this node and totals)")
async def metrics(admin: Admin, services: Services) -> MetricsResponse:
    """This node's sockets and evaluations, the model's usage today, and a few totals."""
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
