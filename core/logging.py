"""Structured JSON logs with request, interview and user context; secrets are scrubbed."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
user_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_id", default=None)
interview_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "interview_id", default=None
)

_SENSITIVE = ("password", "token", "secret", "authorization", "answer", "cookie", "apikey", "key")
_node_id = "-"


def _is_sensitive(key: str) -> bool:
    lowered = key.lower().replace("_", "").replace("-", "")
    return any(word in lowered for word in _SENSITIVE)


def scrub(value: Any) -> Any:
    """Replace the values of sensitive keys, recursively."""
    if isinstance(value, dict):
        return {k: ("***" if _is_sensitive(str(k)) else scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "node": _node_id,
        }
        for key, var in (
            ("request_id", request_id_var),
            ("user_id", user_id_var),
            ("interview_id", interview_id_var),
        ):
            current = var.get()
            if current is not None:
                entry[key] = current
        extra = {k: v for k, v in vars(record).items() if k not in _RESERVED}
        entry.update(scrub(extra))
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, node_id: str) -> None:
    """Send every log line to stderr as one JSON object."""
    global _node_id
    _node_id = node_id
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "pymongo", "httpx", "httpx2", "httpcore", "openai"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    uvicorn_loggers = ("uvicorn", "uvicorn.error")
    for name in uvicorn_loggers:
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
