"""What a failed call to the model means: retry it (and when) or give up."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import openai
import pydantic


class StreamInterrupted(Exception):
    """The stream ended without the model finishing its answer."""


class MalformedStream(Exception):
    """A chunk of the stream is not what the Chat Completions API sends."""


@dataclass(frozen=True, slots=True)
class Failure:
    kind: str
    retryable: bool
    retry_after: float | None = None


def classify(exc: BaseException) -> Failure:
    """Sort an exception from one call: transient ones are retried, the rest are not."""
    if isinstance(exc, openai.RateLimitError):
        if _error_code(exc.body) == "insufficient_quota":
            return Failure("quota", retryable=False)
        return Failure("rate_limited", True, retry_after_seconds(exc.response.headers))
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        if status >= 500 or status in (408, 409):
            return Failure(f"http_{status}", True, retry_after_seconds(exc.response.headers))
        return Failure(f"http_{status}", retryable=False)
    if isinstance(exc, openai.APITimeoutError):
        return Failure("timeout", retryable=True)
    if isinstance(exc, openai.APIConnectionError | StreamInterrupted):
        return Failure("stream_interrupted", retryable=True)
    if isinstance(exc, json.JSONDecodeError | pydantic.ValidationError | MalformedStream):
        # The SDK parses each server-sent event as it comes: a garbled chunk lands here.
        return Failure("malformed_stream", retryable=True)
    if isinstance(exc, openai.APIError):
        # An `error` event in the middle of the stream.
        return Failure("stream_error", retryable=True)
    if isinstance(exc, TimeoutError):
        return Failure("deadline", retryable=False)
    return Failure(type(exc).__name__, retryable=False)


def _error_code(body: object) -> str | None:
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping):
            code = error.get("code")
            return code if isinstance(code, str) else None
    return None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """OpenAI's `retry-after-ms`, else the standard `Retry-After` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def backoff_delay(attempt: int, base_sec: float, cap_sec: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter before attempt `attempt + 1`."""
    return rng.uniform(0, min(cap_sec, base_sec * 2 ** (attempt - 1)))
