"""The user's own profile and password."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, model_validator

from core.accounts import public_user
from http_api.framework import Ctx, RequestModel, ResponseModel, Router
from http_api.routes.auth import TokenResponse, token_response
from http_api.schemas import Age, Email, Gender, Language, Password, UserView

router = Router()
TAGS = ["users"]


class ProfileRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    email: Email | None = None
    gender: Gender | None = None
    age: Age | None = None
    language: Language | None = None
    marketingConsent: bool | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ProfileRequest:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        return self


class ProfileResponse(ResponseModel):
    success: bool
    user: UserView
    message: str


class PasswordRequest(RequestModel):
    currentPassword: str = Field(min_length=1, max_length=128)
    newPassword: Password


class PasswordResponse(ResponseModel):
    success: bool
    message: str
    tokens: TokenResponse


@router.add(
    "PUT",
    "/users/profile",
    summary="Update the profile; a new email must be verified",
    tags=TAGS,
    body=ProfileRequest,
    response=ProfileResponse,
    errors=[409],
)
async def update_profile(ctx: Ctx[ProfileRequest, Any]) -> ProfileResponse:
    changes = {k: getattr(ctx.body, k) for k in ctx.body.model_fields_set}
    changes = {k: v for k, v in changes.items() if v is not None}
    user = await ctx.services.accounts.update_profile(ctx.user_id, changes)
    message = (
        "Profile updated; confirm the new address with the link we sent to it."
        if "email" in changes and user.get("pendingEmail")
        else "Profile updated."
    )
    return ProfileResponse(
        success=True, user=UserView.model_validate(public_user(user)), message=message
    )


@router.add(
    "PUT",
    "/users/password",
    summary="Change the password; other sessions end",
    tags=TAGS,
    body=PasswordRequest,
    response=PasswordResponse,
    errors=[403],
)
async def change_password(ctx: Ctx[PasswordRequest, Any]) -> PasswordResponse:
    await ctx.limit(
        "auth-account:password", ctx.user_id, ctx.services.settings.rate_limit_auth_account
    )
    pair = await ctx.services.accounts.change_password(
        ctx.user_id, ctx.body.currentPassword, ctx.body.newPassword
    )
    return PasswordResponse(
        success=True,
        message="The password is changed; other sessions have ended.",
        tokens=token_response(pair),
    )
