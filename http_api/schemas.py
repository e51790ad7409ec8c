"""Request and response models shared by the REST routes."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field

from http_api.framework import ResponseModel

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{2,63}$")


def _check_email(value: str) -> str:
    value = value.strip()
    if not _EMAIL.match(value) or ".." in value:
        raise ValueError("not a valid email address")
    return value


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


# "format: email" tells clients (and the schema fuzzer) what `_check_email` will accept.
Email = Annotated[
    str,
    Field(min_length=3, max_length=254, json_schema_extra={"format": "email"}),
    AfterValidator(_check_email),
]
Password = Annotated[str, Field(min_length=8, max_length=128), AfterValidator(_check_password)]
Token = Annotated[str, Field(min_length=16, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")]
Gender = Literal["male", "female", "other", "unspecified"]
Age = Annotated[int, Field(ge=14, le=100), BeforeValidator(_integral_number)]
Language = Literal["ru", "en"]


class SuccessResponse(ResponseModel):
    success: bool = True
    message: str


class SubscriptionView(ResponseModel):
    isActive: bool
    plan: str | None
    endDate: datetime | None
    autoRenew: bool


class UserView(ResponseModel):
    id: str
    email: str
    pendingEmail: str | None
    gender: str | None
    age: int | None
    language: str
    role: str
    isEmailVerified: bool
    registrationDate: datetime | None
    lastLoginDate: datetime | None
    marketingConsent: bool
    subscription: SubscriptionView


class UserResponse(ResponseModel):
    user: UserView
