"""The OpenAI adapter of the evaluator port: the model grades, its feedback streams as it writes.

The model answers with one JSON object (Chat Completions streaming with a strict JSON schema): the
candidate's claims judged against the rubric, then the feedback. The feedback's characters are
decoded from the partial JSON as chunks arrive and yielded at once; the complete object is
validated at the end, and the scores are computed from the judged claims in code, on the local
evaluator's scale (`modelgrade.py`). An answer in the other language is graded on its content.

Before the model: empty, "I don't know" and instruction-only answers score 0 locally
("precheck"); a
cached result for the same model, prompt version, question and normalised answer is replayed as a
stream ("openai-cache", no tokens); past the daily token budget the local evaluator grades
("local-budget"). Around the model: retries with backoff and jitter on 429 (honouring Retry-After),
5xx, timeouts, broken streams; one retry of an invalid result; a circuit breaker; an overall
deadline. A broken stream yields Reset before the retry; when the model stays unavailable the
local evaluator grades ("local-fallback"). Tokens of every attempt, failed ones included, are
reported on the final evaluation and counted against the daily budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

import openai
from openai.types.chat import ChatCompletionMessageParam

from core.kv import Cache
from core.settings import Settings
from engine.evaluator.base import Delta, Done, Evaluation, EvaluationRequest, Reset, StreamItem
from engine.evaluator.breaker import CircuitBreaker
from engine.evaluator.chunks import StreamedCall
from engine.evaluator.language import is_off_language
from engine.evaluator.local import LocalEvaluator, chunks, with_rubric
from engine.evaluator.modelgrade import scores_of
from engine.evaluator.precheck import precheck
from engine.evaluator.prompting import PROMPT_VERSION, RESPONSE_FORMAT, build_messages, parse_output
from engine.evaluator.result_cache import ResultCache, cache_key
from engine.evaluator.retry import Failure, StreamInterrupted, backoff_delay, classify
from engine.evaluator.usage import DailyUsage

log = logging.getLogger(__name__)

SOURCE = "openai"
SOURCE_CACHE = "openai-cache"
SOURCE_FALLBACK = "local-fallback"
SOURCE_BUDGET = "local-budget"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
CLOSE_TIMEOUT_SEC = 1.0


@dataclass(frozen=True, slots=True)
class Tuning:
    """Knobs with sane defaults that settings do not expose."""

    deadline_sec: float = 90.0  # the whole evaluation, retries included; below the service's 120
    backoff_base_sec: float = 0.5
    backoff_cap_sec: float = 8.0
    retry_after_cap_sec: float = 20.0  # asked to wait longer: give up and grade locally
    max_completion_tokens: int = 800
    temperature: float | None = 0.2
    replay_words_per_delta: int = 3


# Tokens a call is expected to write: set aside with the prompt's before the call, so that calls
# in flight cannot take the day past its budget; settled with the real figure afterwards.
EXPECTED_OUTPUT_TOKENS = 600


class OpenAIEvaluator:
    name = "openai"

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        cache: Cache,
        cache_ttl_sec: int,
        max_attempts: int,
        breaker: CircuitBreaker,
        usage: DailyUsage,
        fallback: LocalEvaluator,
        tuning: Tuning | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self.model = model
        self._results = ResultCache(cache, cache_ttl_sec, model)
        self._max_attempts = max(1, max_attempts)
        self.breaker = breaker
        self.usage = usage
        self._fallback = fallback
        self._tuning = tuning or Tuning()
        self._rng = rng or random.Random()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        cache: Cache,
        tuning: Tuning | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> OpenAIEvaluator:
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
        client = openai.AsyncOpenAI(
            api_key=key,
            base_url=settings.openai_base_url or DEFAULT_BASE_URL,
            timeout=openai.Timeout(
                settings.openai_read_timeout_sec, connect=settings.openai_connect_timeout_sec
            ),
            max_retries=0,  # retries are ours: they must see the breaker and the deadline
        )
        return cls(
            client=client,
            model=settings.openai_model,
            cache=cache,
            cache_ttl_sec=settings.openai_cache_ttl_sec,
            max_attempts=settings.openai_max_attempts,
            breaker=CircuitBreaker(
                "openai",
                settings.openai_breaker_failures,
                settings.openai_breaker_cooldown_sec,
                clock=clock,
            ),
            usage=DailyUsage(
                cache, settings.openai_daily_token_budget, settings.openai_budget_alert_ratio
            ),
            fallback=LocalEvaluator(delay_sec=settings.local_evaluator_delay_sec),
            tuning=tuning,
        )

    async def usage_today(self) -> int:
        """Tokens used today (UTC) across the nodes sharing the cache, for metrics."""
        return await self.usage.usage_today()

    async def close(self) -> None:
        await self._client.close()

    # --- the port ------------------------------------------------------------------------------

    async def evaluate(self, request: EvaluationRequest) -> AsyncGenerator[StreamItem]:
        # Closing this stream closes the inner one at once (not when it is garbage collected),
        # so a consumer that leaves early releases the HTTP stream and the breaker's trial.
        async with contextlib.aclosing(await self._source(request)) as items:
            async for item in items:
                yield item

    async def _source(self, request: EvaluationRequest) -> AsyncGenerator[StreamItem]:
        """Who grades: the precheck, the cache, the local evaluator (past the budget), the model."""
        checked = precheck(request)
        if checked is not None:
            return self._replay(*checked)
        key = cache_key(self.model, request)
        cached = await self._results.get(key)
        if cached is not None:
            hit = dataclasses.replace(cached, source=SOURCE_CACHE, tokens_in=0, tokens_out=0)
            return self._replay(hit, hit.feedback)
        return self._graded_by_model(request, key)

    # --- the model -----------------------------------------------------------------------------

    async def _graded_by_model(
        self, request: EvaluationRequest, key: str
    ) -> AsyncGenerator[StreamItem]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self._tuning.deadline_sec
        request = with_rubric(request)
        other_language = is_off_language(request.answer, request.language)
        messages = build_messages(request, other_language)
        prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
        estimate = prompt_chars // 4 + 1 + EXPECTED_OUTPUT_TOKENS
        reservation = await self.usage.reserve(estimate)
        if reservation is None:
            log.warning("openai daily token budget spent; grading locally")
            async with contextlib.aclosing(self._local(request, SOURCE_BUDGET, (0, 0))) as items:
                async for item in items:
                    yield item
            return
        spent_in = spent_out = attempts = invalid = 0
        outcome = "unavailable"
        while True:
            permit = self.breaker.allow()
            if permit is None:
                outcome = "circuit_open"
                break
            if attempts and not await self.usage.extend(reservation, estimate):
                self.breaker.release(permit)
                outcome = "budget"
                break
            attempts += 1
            call = StreamedCall()
            try:
                async with contextlib.aclosing(self._stream(messages, deadline, call)) as pieces:
                    async for text in pieces:
                        yield Delta(text)
            except Exception as exc:
                self.breaker.failure(permit)
                tokens_in, tokens_out = call.tokens(prompt_chars)
                spent_in, spent_out = spent_in + tokens_in, spent_out + tokens_out
                failure = classify(exc)
                # The exception's text may quote the model's output: log its type only.
                log.warning(
                    "openai call failed",
                    extra={
                        "failure": failure.kind,
                        "attempt": attempts,
                        "error": type(exc).__name__,
                        "cause": type(exc.__cause__).__name__ if exc.__cause__ else None,
                    },
                )
                if call.streamed:
                    yield Reset("stream_interrupted")
                delay = self._retry_delay(failure, attempts, deadline - loop.time())
                if delay is None:
                    outcome = failure.kind
                    break
                await asyncio.sleep(delay)
                continue
            except BaseException:
                self.breaker.release(permit)
                raise
            self.breaker.success(permit)
            tokens_in, tokens_out = call.tokens(prompt_chars)
            spent_in, spent_out = spent_in + tokens_in, spent_out + tokens_out
            output = parse_output(call.text)
            if output is None or output.feedback != call.shown:
                invalid += 1
                log.warning(
                    "openai result failed validation",
                    extra={
                        "attempt": attempts,
                        "finishReason": call.finish_reason,
                        "refused": call.refused,
                    },
                )
                if call.streamed:
                    yield Reset("invalid_result")
                if invalid >= 2 or loop.time() >= deadline:
                    outcome = "invalid_result"
                    break
                continue
            scores = scores_of(request, output, other_language)
            evaluation = Evaluation(
                score=scores.score,
                correctness=scores.correctness,
                completeness=scores.completeness,
                clarity=scores.clarity,
                feedback=output.feedback,
                source=SOURCE,
                tokens_in=spent_in,
                tokens_out=spent_out,
            )
            await self.usage.settle(reservation, spent_in + spent_out)
            await self._results.put(key, evaluation)
            log.info(
                "openai graded",
                extra={
                    "model": self.model,
                    "promptVersion": PROMPT_VERSION,
                    "attempts": attempts,
                    "usageIn": spent_in,
                    "usageOut": spent_out,
                    "ms": round((loop.time() - started) * 1000),
                },
            )
            yield Done(evaluation)
            return
        await self.usage.settle(reservation, spent_in + spent_out)
        log.warning(
            "openai unavailable; the local evaluator grades",
            extra={"reason": outcome, "attempts": attempts, "breaker": self.breaker.state},
        )
        async with contextlib.aclosing(
            self._local(request, SOURCE_FALLBACK, (spent_in, spent_out))
        ) as items:
            async for item in items:
                yield item

    def _retry_delay(self, failure: Failure, attempts: int, remaining: float) -> float | None:
        """Seconds to wait before the next attempt, or None to stop trying."""
        if not failure.retryable or attempts >= self._max_attempts:
            return None
        t = self._tuning
        delay = backoff_delay(attempts, t.backoff_base_sec, t.backoff_cap_sec, self._rng)
        if failure.retry_after is not None:
            if failure.retry_after > t.retry_after_cap_sec:
                return None
            delay = max(delay, failure.retry_after)
        return delay if delay < remaining else None

    async def _stream(
        self, messages: list[ChatCompletionMessageParam], deadline: float, call: StreamedCall
    ) -> AsyncGenerator[str]:
        """The feedback's text as the model writes it; fills `call` with everything else."""
        t = self._tuning
        body: dict[str, object] = {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            "response_format": RESPONSE_FORMAT,
            "max_completion_tokens": t.max_completion_tokens,
        }
        if t.temperature is not None:
            body["temperature"] = t.temperature
        async with asyncio.timeout_at(deadline):
            # `chat.completions.create` builds a pydantic model per chunk (~0.3 ms of CPU, most
            # of the server's cost per streamed token under load); the SDK's documented raw
            # request keeps its auth, errors and SSE parsing and hands over the chunks as dicts.
            stream = await self._client.post(
                "/chat/completions",
                body=body,
                cast_to=object,
                stream=True,
                stream_cls=openai.AsyncStream[object],
            )
        try:
            while True:
                # The SDK's read timeout bounds each chunk; the deadline bounds a slow trickle.
                async with asyncio.timeout_at(deadline):
                    try:
                        chunk = await anext(stream)
                    except StopAsyncIteration:
                        break
                text = call.take(chunk)
                if text:
                    yield text
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CLOSE_TIMEOUT_SEC):
                    await stream.close()
        if call.finish_reason is None:
            raise StreamInterrupted("the stream ended before the model finished")

    # --- without the model ---------------------------------------------------------------------

    async def _replay(self, evaluation: Evaluation, feedback: str) -> AsyncGenerator[StreamItem]:
        for piece in chunks(feedback, self._tuning.replay_words_per_delta):
            yield Delta(piece)
        yield Done(evaluation)

    async def _local(
        self, request: EvaluationRequest, source: str, spent: tuple[int, int]
    ) -> AsyncGenerator[StreamItem]:
        async for item in self._fallback.evaluate(request):
            if isinstance(item, Done):
                item = Done(
                    dataclasses.replace(
                        item.evaluation, source=source, tokens_in=spent[0], tokens_out=spent[1]
                    )
                )
            yield item
