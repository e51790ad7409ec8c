"""Builds the interview engine on the infrastructure: store, bank, bus, evaluator, timers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from core.container import Infrastructure
from core.tasks import periodic
from engine.bus.base import BusUnavailable, LiveStore, SessionBus
from engine.bus.memory import MemoryBus, MemoryLiveStore
from engine.evaluator.base import Evaluator
from engine.evaluator.local import LocalEvaluator
from engine.questions.repository import QuestionRepository
from engine.service import Candidates, InterviewService, StartGuard
from engine.store import InterviewStore

log = logging.getLogger(__name__)

ABANDON_JOB = "interviews.abandon_stale"
DEADLINE_TICK_SEC = 0.25
QUIET = (BusUnavailable,)  # Redis away: the loops wait for it without a traceback each tick


def build_evaluator(infra: Infrastructure) -> Evaluator:
    settings = infra.settings
    if settings.openai_enabled:
        from engine.evaluator.openai import OpenAIEvaluator

        return OpenAIEvaluator.from_settings(settings, infra.cache)
    return LocalEvaluator(delay_sec=settings.local_evaluator_delay_sec)


def build_session_ports(infra: Infrastructure) -> tuple[SessionBus, LiveStore]:
    if infra.redis is not None:
        from engine.bus.redis import RedisBus, RedisLiveStore

        prefix = infra.settings.redis_key_prefix
        return RedisBus(infra.redis, prefix), RedisLiveStore(infra.redis, prefix)
    return MemoryBus(), MemoryLiveStore()


@dataclass
class Engine:
    infra: Infrastructure
    service: InterviewService
    questions: QuestionRepository
    store: InterviewStore
    loops: list[asyncio.Task[None]] = field(default_factory=list)

    async def start_background(self, *, abandon_in_process: bool) -> None:
        """Timers every node runs; the abandon sweep runs here only without Celery beat."""
        await self.service.rearm()
        self.loops.append(
            asyncio.create_task(
                periodic("deadlines", DEADLINE_TICK_SEC, self.service.fire_due_deadlines, QUIET)
            )
        )
        self.loops.append(
            asyncio.create_task(
                periodic(
                    "orphaned-evaluations",
                    self.infra.settings.orphan_sweep_sec,
                    self.service.resume_orphaned_evaluations,
                    QUIET,
                )
            )
        )
        self.loops.append(
            asyncio.create_task(
                periodic("rearm-deadlines", 30.0, self.service.rearm_deadlines, QUIET)
            )
        )
        if abandon_in_process:
            self.loops.append(
                asyncio.create_task(periodic("abandon", 60.0, self.service.abandon_stale))
            )

    async def close(self) -> None:
        for task in self.loops:
            task.cancel()
        for task in self.loops:
            with contextlib.suppress(BaseException):
                await task
        await self.service.close()
        await self.service.evaluator.close()
        await self.service.bus.close()
        await self.service.live.close()


def build_engine(
    infra: Infrastructure, candidates: Candidates, start_guard: StartGuard | None = None
) -> Engine:
    settings = infra.settings
    store = InterviewStore(infra.db)
    questions = QuestionRepository(infra.db, infra.cache, settings.question_cache_ttl_sec)
    bus, live = build_session_ports(infra)
    service = InterviewService(
        settings,
        store,
        questions,
        bus,
        live,
        build_evaluator(infra),
        candidates,
        start_guard,
    )

    async def abandon_job(payload: dict[str, Any]) -> None:
        count = await service.abandon_stale()
        log.info("stale interviews abandoned", extra={"count": count})

    infra.jobs.register(ABANDON_JOB, abandon_job)
    return Engine(infra, service, questions, store)
