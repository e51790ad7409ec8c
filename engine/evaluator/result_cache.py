"""Model results by (model, prompt version, question, normalised answer), in the cache port."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

from core.kv import Cache
from engine.evaluator.base import Evaluation, EvaluationRequest
from engine.evaluator.local import normalize
from engine.evaluator.prompting import PROMPT_VERSION

log = logging.getLogger(__name__)

KEY_PREFIX = "openai:eval:"
TIMEOUT_SEC = 1.0


def cache_key(model: str, request: EvaluationRequest) -> str:
    """Answers equal up to case and whitespace share a key; language and level are part of it."""
    parts = [
        model,
        PROMPT_VERSION,
        request.language,
        request.level,
        request.question_id,
        normalize(request.answer),
    ]
    digest = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()
    return KEY_PREFIX + digest


class ResultCache:
    """Best effort: an unreachable cache costs a warning and a model call, never an error."""

    def __init__(self, cache: Cache, ttl_sec: int, model: str) -> None:
        self._cache = cache
        self._ttl = ttl_sec
        self._model = model

    async def get(self, key: str) -> Evaluation | None:
        try:
            async with asyncio.timeout(TIMEOUT_SEC):
                raw = await self._cache.get(key)
            if raw is None:
                return None
            data = json.loads(raw)
            if data.get("promptVersion") != PROMPT_VERSION:
                return None
            return Evaluation.from_dict(data)
        except Exception:
            log.warning("evaluation cache unreadable", exc_info=True)
            return None

    async def put(self, key: str, evaluation: Evaluation) -> None:
        value = {**evaluation.to_dict(), "model": self._model, "promptVersion": PROMPT_VERSION}
        try:
            async with asyncio.timeout(TIMEOUT_SEC):
                await self._cache.set(key, json.dumps(value).encode(), self._ttl)
        except Exception:
            log.warning("evaluation not cached", exc_info=True)
