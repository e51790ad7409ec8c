"""The user's own profile and password."""

from __future__ import annotations

from fastapi import Depends
from pydantic import ConfigDict, Field, model_validator

from core.accounts import public_user
from http_api.deps import Accounts, CurrentUser, limit_per_user
from http_api.routes.auth import TokenResponse, token_response
from http_api.routing import area_router, errors
from http_api.schemas import (
    Age,
    Email,
    Gender,
    Language,
    Password,
    RequestModel,
    ResponseModel,
    UserView,
)

router = area_router("users")


class ProfileRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "minProperties": 1,
            "examples": [{"language": "en", "marketingConsent": True}],
        }
    )

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


@router.put(
    "/users/profile",
    summary="Update the profile; a new email must be verified",
    responses=errors(409),
)
async def update_profile(
    body: ProfileRequest, user: CurrentUser, accounts: Accounts
) -> ProfileResponse:
    """Change any of the given fields; the others stay as they are.

    A new address is not used until the link mailed to it is followed (`pendingEmail` until
    then); 409 `email_taken` if another account has it.
    """
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    changes = {k: v for k, v in changes.items() if v is not None}
    doc = await accounts.update_profile(user.user_id, changes)
    message = (
        "Profile updated; confirm the new address with the link we sent to it."
        if "email" in changes and doc.get("pendingEmail")
        else "Profile updated."
    )
    return ProfileResponse(
        success=True, user=UserView.model_validate(public_user(doc)), message=message
    )


@router.put(
    "/users/password",
    summary="Change the password; other sessions end",
    responses=errors(403),
    dependencies=[
        Depends(limit_per_user("auth-account:password", lambda s: s.rate_limit_auth_account))
    ],
)
async def change_password(
    body: PasswordRequest, user: CurrentUser, accounts: Accounts
) -> PasswordResponse:
    """Change the password (the current one is required, 403 if wrong).

    Every session ends, this one included; the answer carries a new token pair for this client.
    """
    pair = await accounts.change_password(user.user_id, body.currentPassword, body.newPassword)
    return PasswordResponse(
        success=True,
        message="The password is changed; other sessions have ended.",
        tokens=token_response(pair),
    )
