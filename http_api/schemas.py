"""Request and response models shared by the REST routes, and the error envelope."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field


class RequestModel(BaseModel):
    """Request bodies: unknown fields and type coercion are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ResponseModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class QueryModel(BaseModel):
    """Query strings: unknown parameters are refused; values are parsed from their text."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorBody(ResponseModel):
    code: str = Field(description="Stable and machine-readable, e.g. `validation_error`")
    message: str = Field(description="For people; may change between releases")
    details: Any = Field(
        default=None,
        description="Structured context: the invalid fields for `validation_error`, "
        "`retryAfter` for `rate_limited`, otherwise usually null",
    )


class ErrorResponse(ResponseModel):
    """Every error: `{"error": {"code", "message", "details"}}`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "validation_error",
                        "message": "The request is invalid",
                        "details": [{"loc": ["email"], "msg": "Field required", "type": "missing"}],
                    }
                }
            ]
        }
    )

    error: ErrorBody


class PageQuery(QueryModel):
    page: int = Field(default=1, ge=1, le=10_000, description="1-based page number")
    pageSize: int = Field(default=20, ge=1, le=100, description="Items per page")


# The server's rule, also published as the schema's `pattern`: surrounding whitespace is
# trimmed, then a local part, an `@`, a domain with a dot and a top-level domain of 2-63
# letters, digits or hyphens (any script: .рф is one), and never two dots in a row.
EMAIL_PATTERN = (
    r"^\s*(?!.*\.\.)[^@\s]{1,64}@[^@\s]{1,189}\.(?:[A-Za-z0-9-]|[^\x00-\x7F\s]){2,63}\s*$"
)
_EMAIL = re.compile(EMAIL_PATTERN)


def _check_email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value.strip()


def _check_password(value: str) -> str:
    if not value.strip():
        raise ValueError("the password cannot be blank")
    if "\x00" in value:
        raise ValueError("the password cannot contain NUL characters")
    return value


def _integral_number(value: object) -> object:
    # JSON has one number type: 27.0 is the integer 27 (JSON Schema agrees), 27.5 is not.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# "format: email" tells clients what kind of string this is; the pattern is the exact rule
# `_check_email` applies, so a schema-valid address is never refused.
Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=254,
        json_schema_extra={"format": "email", "pattern": EMAIL_PATTERN},
    ),
    AfterValidator(_check_email),
]
Password = Annotated[
    str,
    Field(min_length=8, max_length=128, description="8-128 characters, not blank, no NUL"),
    AfterValidator(_check_password),
]
Token = Annotated[str, Field(min_length=16, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")]
Gender = Literal["male", "female", "other", "unspecified"]
Age = Annotated[int, Field(ge=14, le=100), BeforeValidator(_integral_number)]
Language = Literal["ru", "en"]
Role = Literal["user", "admin"]
Level = Literal["intern", "junior", "middle"]
InterviewStatus = Literal["in-progress", "completed", "abandoned"]


class SuccessResponse(ResponseModel):
    success: bool = True
    message: str


class SubscriptionView(ResponseModel):
    isActive: bool
    plan: str | None = Field(description="A plan id from `GET /subscriptions/plans`")
    endDate: datetime | None
    autoRenew: bool


class UserView(ResponseModel):
    id: str
    email: str
    pendingEmail: str | None = Field(description="A new address waiting for confirmation")
    gender: Gender | None
    age: int | None
    language: Language
    role: Role
    isEmailVerified: bool
    registrationDate: datetime | None
    lastLoginDate: datetime | None
    marketingConsent: bool
    subscription: SubscriptionView


class UserResponse(ResponseModel):
    user: UserView
