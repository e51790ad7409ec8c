"""Domain errors with a stable machine-readable code; the HTTP layer maps them to responses."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An error the client caused or must know about; `code` never changes once published."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details
        self.headers = headers or {}


class ValidationFailed(AppError):
    status = 422
    code = "validation_error"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class RateLimited(AppError):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many requests; retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
            details={"retryAfter": retry_after},
        )


class PaymentRequired(AppError):
    status = 402
    code = "subscription_required"


class Unavailable(AppError):
    """A backing service (Redis, the database) cannot be reached right now; retrying may work."""

    status = 503
    code = "unavailable"

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(
            message, headers={"Retry-After": str(retry_after)}, details={"retryAfter": retry_after}
        )
