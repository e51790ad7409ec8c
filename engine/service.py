"""Runs the state machine against storage: load, transition, persist, publish, run effects.

Order per input: the durable write (MongoDB) happens before the live state is saved and before
any event is published, so nothing a client was told can be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import weakref
from collections import Counter
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bson import ObjectId

from core.accounts import CandidateProfile
from core.errors import AppError, Conflict, Forbidden, NotFound
from core.logging import interview_id_var
from core.settings import Settings
from engine.bus.base import LiveStore, SessionBus
from engine.evaluator.base import (
    Delta,
    Done,
    Evaluation,
    EvaluationRequest,
    Evaluator,
    Reset,
    StreamItem,
)
from engine.evaluator.local import LocalEvaluator
from engine.evaluator.rubric import rubric_from_key_points
from engine.questions.repository import QuestionRepository
from engine.questions.selection import Candidate, select
from engine.state import (
    Abandoned,
    CancelDeadline,
    CompleteRequested,
    DeadlinePassed,
    EvaluationDone,
    EvaluationReset,
    EvaluationToken,
    Input,
    InterviewState,
    PersistAnswer,
    PersistEvaluation,
    PersistOutcome,
    ProtocolViolation,
    QuestionState,
    ScheduleDeadline,
    StartEvaluation,
    Status,
    Transition,
    handle,
    start,
)
from engine.store import InterviewStore

log = logging.getLogger(__name__)

EVALUATION_BUDGET_SEC = 120.0

# Hook for the billing rules: (user_id) -> raises when the user may not start another interview.
StartGuard = Callable[[str], Any]


class Candidates(Protocol):
    """Where the engine reads the users it interviews (the accounts service)."""

    async def candidate_profile(self, user_id: str) -> CandidateProfile | None: ...


@dataclass(frozen=True, slots=True)
class Started:
    interview_id: str
    state: InterviewState


class InterviewService:
    def __init__(
        self,
        settings: Settings,
        store: InterviewStore,
        questions: QuestionRepository,
        bus: SessionBus,
        live: LiveStore,
        evaluator: Evaluator,
        candidates: Candidates,
        start_guard: StartGuard | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.questions = questions
        self.bus = bus
        self.live = live
        self.evaluator = evaluator
        self.fallback = LocalEvaluator()
        self._candidates = candidates
        self.clock = clock  # Unix time; tests move it instead of sleeping
        self._start_guard = start_guard
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._evaluations: dict[tuple[str, int], asyncio.Task[None]] = {}
        self.node_id = settings.node_id
        self.lease_ttl = settings.eval_lease_ttl_sec
        self.open_sockets = 0
        self.socket_closes: Counter[int] = Counter()  # close code -> sockets this node closed

    # --- starting ----------------------------------------------------------------------------

    async def start_interview(self, user_id: str, level: str, language: str | None) -> Started:
        profile = await self._candidates.candidate_profile(user_id)
        if profile is None:
            raise NotFound("No such user", code="user_not_found")
        if not profile.verified:
            raise Forbidden("Confirm your email address first", code="email_not_verified")
        if self._start_guard is not None:
            await self._start_guard(user_id)
        lang = language or profile.language
        bank = await self.questions.active_for_level(level)
        history = await self.store.selection_history(user_id, level)
        candidates = [
            Candidate(q["id"], (q["tags"] or ["general"])[0], q["difficulty"]) for q in bank
        ]
        chosen = select(candidates, history, self.settings.questions_per_interview, random.Random())
        if not chosen:
            raise AppError(
                "No questions are available for this level yet", code="no_questions", status=503
            )
        by_id = {q["id"]: q for q in bank}
        limit = self.settings.time_limit_sec(level)
        state = InterviewState(
            interview_id=str(ObjectId()),
            user_id=user_id,
            level=level,
            language=lang,
            pass_threshold=self.settings.pass_threshold(level),
            questions=[
                QuestionState(
                    question_id=qid,
                    text=by_id[qid]["text"][lang],
                    tags=by_id[qid]["tags"],
                    time_limit_sec=limit,
                )
                for qid in chosen
            ],
        )
        now = self.clock()
        out = start(state, now)
        await self.store.create(state, now)
        await self.live.save(state.interview_id, state.to_dict(), 0)
        await self._publish_and_run(state, out)
        log.info("interview started", extra={"interview": state.interview_id, "level": level})
        return Started(state.interview_id, state)

    # --- applying inputs ---------------------------------------------------------------------

    def _lock(self, interview_id: str) -> asyncio.Lock:
        lock = self._locks.get(interview_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[interview_id] = lock
        return lock

    async def load(self, interview_id: str) -> InterviewState | None:
        """The live state; rebuilt from the durable record when the live copy is gone."""
        data = await self.live.load(interview_id)
        if data is not None:
            return InterviewState.from_dict(data)
        state = await self.store.load_state(interview_id)
        if state is not None:
            await self.live.save(interview_id, state.to_dict(), state.version)
        return state

    async def owned(self, interview_id: str, user_id: str) -> InterviewState:
        """The interview if `user_id` owns it; anyone else gets the same 404 as a missing one."""
        state = await self.load(interview_id)
        if state is None or state.user_id != user_id:
            raise NotFound("No such interview", code="interview_not_found")
        return state

    async def apply(self, interview_id: str, event: Input) -> Transition:
        """Feed one input to the machine and carry out what it asks, in a safe order."""
        token = interview_id_var.set(interview_id)
        try:
            async with self._lock(interview_id):
                for _ in range(5):
                    state = await self.load(interview_id)
                    if state is None:
                        raise NotFound("No such interview", code="interview_not_found")
                    before = state.version
                    out = handle(state, event)
                    if out.changed:
                        if not await self._persist(state, out):
                            await self._resync(interview_id)
                            continue
                        if not await self.live.save(interview_id, state.to_dict(), before):
                            continue
                    await self._publish_and_run(state, out)
                    return out
                raise Conflict("The interview changed meanwhile; retry", code="conflict")
        finally:
            interview_id_var.reset(token)

    async def _resync(self, interview_id: str) -> None:
        fresh = await self.store.load_state(interview_id)
        current = await self.live.load(interview_id)
        if fresh is not None:
            await self.live.save(
                interview_id, fresh.to_dict(), current["version"] if current else fresh.version
            )

    async def _persist(self, state: InterviewState, out: Transition) -> bool:
        now = self.clock()
        for effect in out.effects:
            if isinstance(effect, PersistAnswer):
                if not await self.store.persist_answer(state, effect.index, now):
                    return False
            elif isinstance(effect, PersistEvaluation):
                await self.store.persist_evaluation(state, effect.index, now)
            elif isinstance(effect, PersistOutcome):
                await self.store.persist_outcome(state, now)
        return True

    async def _publish_and_run(self, state: InterviewState, out: Transition) -> None:
        if out.events:
            out.published = await self.bus.append(state.interview_id, out.events)
        for effect in out.effects:
            if isinstance(effect, ScheduleDeadline):
                await self.live.schedule(state.interview_id, effect.at)
            elif isinstance(effect, CancelDeadline):
                await self.live.cancel(state.interview_id)
            elif isinstance(effect, StartEvaluation):
                self._spawn_evaluation(state.interview_id, effect.index, state=state)

    # --- evaluations -------------------------------------------------------------------------

    def _spawn_evaluation(
        self,
        interview_id: str,
        index: int,
        resumed: bool = False,
        state: InterviewState | None = None,
    ) -> None:
        """Evaluate one answer in a task; `state` is the interview as the answer left it."""
        key = (interview_id, index)
        if key in self._evaluations:
            return
        task = asyncio.create_task(
            self._evaluate(interview_id, index, resumed, state),
            name=f"eval:{interview_id}:{index}",
        )
        self._evaluations[key] = task
        task.add_done_callback(lambda _: self._evaluations.pop(key, None))

    @property
    def evaluations_running(self) -> int:
        return len(self._evaluations)

    async def wait_evaluation(self, interview_id: str, index: int, timeout: float) -> None:
        """Wait for this node's evaluation of one answer (the REST flow answers after it)."""
        task = self._evaluations.get((interview_id, index))
        if task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout)
            return
        # Another node evaluates it: watch the shared live state instead.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    state = await self.load(interview_id)
                    if state is None or state.questions[index].evaluation is not None:
                        return
                    await asyncio.sleep(0.1)

    async def _evaluate(
        self, interview_id: str, index: int, resumed: bool, known: InterviewState | None
    ) -> None:
        lease = f"eval:{{{interview_id}}}:{index}"  # {id}: the interview's Redis Cluster slot
        if not await self.live.acquire_lease(lease, self.node_id, self.lease_ttl):
            return
        interview_id_var.set(interview_id)
        renew = asyncio.create_task(self._keep_lease(lease))
        try:
            # The state the answer left needs no second read; a resumed evaluation reads it.
            state = known if known is not None else await self.load(interview_id)
            if state is None or state.status is not Status.EVALUATING or state.current != index:
                return
            q = state.questions[index]
            if resumed:
                await self.apply(
                    interview_id, EvaluationReset(q.question_id, "evaluation_restarted")
                )
            request = await self._request(state, q)
            evaluation = await self._stream(state, request)
            await self.apply(interview_id, EvaluationDone(q.question_id, evaluation, self.clock()))
        except asyncio.CancelledError:
            raise
        except AppError as exc:
            log.info("evaluation result not applied", extra={"code": exc.code})
        except Exception:
            log.exception("evaluation failed", extra={"index": index})
        finally:
            renew.cancel()
            await self.live.release_lease(lease, self.node_id)

    async def _keep_lease(self, lease: str) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            with contextlib.suppress(Exception):
                await self.live.renew_lease(lease, self.node_id, self.lease_ttl)

    async def _request(self, state: InterviewState, q: QuestionState) -> EvaluationRequest:
        found = await self.questions.by_ids(state.level, [q.question_id])
        doc = found.get(q.question_id)
        lang = state.language
        points = doc["keyPoints"] if doc else []
        return EvaluationRequest(
            question_id=q.question_id,
            question=q.text,
            answer=(q.answer or "")[: self.settings.answer_max_chars],
            level=state.level,
            language=lang,
            example_answer=doc["exampleAnswer"][lang] if doc else "",
            key_points=[p[lang] for p in points],
            keywords=[list(p["keywords"]) for p in points],
            tags=q.tags,
            rubric=rubric_from_key_points(points),
            slug=doc["slug"] if doc else "",
        )

    async def _stream(self, state: InterviewState, request: EvaluationRequest) -> Evaluation:
        """Stream the evaluator's feedback; on failure say so and let the local evaluator finish.

        Deltas and resets change no state, so they are checked against the snapshot taken when
        the evaluation started: no state read per token. Deltas that arrive within the coalescing
        window go out as one event: the first at once, the rest at most once a window.
        """
        question_id = request.question_id
        for evaluator in (self.evaluator, self.fallback):
            streamed = False
            try:
                async with (
                    asyncio.timeout(EVALUATION_BUDGET_SEC),
                    contextlib.aclosing(self._coalesced(evaluator, request)) as items,
                ):
                    async for item in items:
                        if isinstance(item, Delta):
                            streamed = True
                            await self._emit(state, EvaluationToken(question_id, item.text))
                        elif isinstance(item, Reset):
                            streamed = False
                            await self._emit(state, EvaluationReset(question_id, item.reason))
                        elif isinstance(item, Done):
                            return item.evaluation
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("evaluator failed; falling back", extra={"evaluator": evaluator.name})
            if streamed:
                await self._emit(state, EvaluationReset(question_id, "evaluator_unavailable"))
        raise RuntimeError("the local evaluator produced no result")

    async def _coalesced(
        self, evaluator: Evaluator, request: EvaluationRequest
    ) -> AsyncGenerator[StreamItem]:
        """The evaluator's items with deltas merged over `feedback_coalesce_ms`."""
        window = self.settings.feedback_coalesce_ms / 1000
        if window <= 0:
            async with contextlib.aclosing(evaluator.evaluate(request)) as items:
                async for item in items:
                    yield item
            return
        # A reader task feeds a queue, so that waiting for the window never cancels the
        # evaluator's own stream halfway through a read.
        queue: asyncio.Queue[StreamItem | BaseException | None] = asyncio.Queue()

        async def read() -> None:
            try:
                async with contextlib.aclosing(evaluator.evaluate(request)) as items:
                    async for item in items:
                        queue.put_nowait(item)
                queue.put_nowait(None)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # handed to the consumer, raised there
                queue.put_nowait(exc)

        reader = asyncio.create_task(read(), name="evaluator-reader")
        loop = asyncio.get_running_loop()
        pending: list[str] = []
        due = 0.0  # when the held deltas must go out
        got: StreamItem | BaseException | None
        try:
            while True:
                try:
                    if pending:
                        async with asyncio.timeout_at(due):
                            got = await queue.get()
                    else:
                        got = await queue.get()
                except TimeoutError:
                    yield Delta("".join(pending))
                    pending, due = [], loop.time() + window
                    continue
                if isinstance(got, Delta):
                    if pending or loop.time() < due:
                        pending.append(got.text)
                    else:
                        yield got
                        due = loop.time() + window
                    continue
                if pending:
                    yield Delta("".join(pending))
                    pending = []
                if got is None:
                    return
                if isinstance(got, BaseException):
                    raise got
                yield got
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def _emit(self, state: InterviewState, event: EvaluationToken | EvaluationReset) -> None:
        out = handle(state, event)
        await self.bus.append(state.interview_id, out.events)

    # --- timers and maintenance --------------------------------------------------------------

    async def fire_due_deadlines(self) -> int:
        fired = 0
        for interview_id in await self.live.claim_due(self.clock()):
            state = await self.load(interview_id)
            if state is None or state.current_question is None:
                continue
            try:
                await self.apply(
                    interview_id, DeadlinePassed(state.current_question.question_id, self.clock())
                )
                fired += 1
            except (AppError, ProtocolViolation):
                log.warning("deadline not applied", exc_info=True)
        return fired

    async def rearm(self) -> None:
        """After a restart: re-arm timers and resume evaluations nobody holds."""
        await self.rearm_deadlines()
        await self.resume_orphaned_evaluations()

    async def rearm_deadlines(self) -> None:
        """Schedule every stored deadline again (idempotent; covers a Redis that lost them)."""
        for interview_id, at in await self.store.with_deadlines():
            await self.live.schedule(interview_id, at)

    async def resume_orphaned_evaluations(self) -> None:
        """Restart evaluations whose owner is gone (its lease ran out or was handed over)."""
        # The owner stores the answer and starts evaluating within milliseconds; an answer that
        # has waited a few seconds with its lease free has lost its owner.
        idle_since = datetime.fromtimestamp(self.clock(), UTC) - timedelta(
            seconds=min(self.lease_ttl, 3.0)
        )
        for interview_id, index in await self.store.evaluating(idle_since):
            if (interview_id, index) not in self._evaluations:
                self._spawn_evaluation(interview_id, index, resumed=True)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def abandon_stale(self) -> int:
        before = datetime.fromtimestamp(self.clock(), UTC) - timedelta(
            seconds=self.settings.abandon_after_sec
        )
        count = 0
        for interview_id in await self.store.stale_in_progress(before):
            with contextlib.suppress(AppError, ProtocolViolation):
                await self.apply(interview_id, Abandoned("inactive", self.clock()))
                count += 1
        return count

    async def complete(self, interview_id: str) -> Transition:
        return await self.apply(interview_id, CompleteRequested(self.clock()))

    async def close(self) -> None:
        tasks = list(self._evaluations.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
