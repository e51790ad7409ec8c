"""Accounts: register, verify, log in, refresh, log out, recover the password, who am I."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import Depends
from pydantic import ConfigDict, Field

from core.accounts import TokenPair, normalize_email, public_user
from http_api.deps import (
    AccountLimits,
    Accounts,
    AppSettings,
    CurrentUser,
    limit_per_ip,
)
from http_api.routing import area_router, errors
from http_api.schemas import (
    Age,
    Email,
    Gender,
    Language,
    Password,
    RequestModel,
    ResponseModel,
    SuccessResponse,
    Token,
    UserResponse,
    UserView,
)

router = area_router("auth")
EXAMPLE_TOKEN = "q3Xb2mS0yWc9vJ1kT7pZr4dN8hL6gF5eA0sU2iO9wE1"


class RegisterRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "anna@example.ru",
                    "password": "correct horse battery",
                    "gender": "female",
                    "age": 27,
                    "language": "ru",
                    "marketingConsent": False,
                }
            ]
        }
    )

    email: Email
    password: Password
    gender: Gender
    age: Age
    language: Language = "ru"
    marketingConsent: bool = False


class RegisterResponse(ResponseModel):
    success: bool
    message: str
    userId: str


class VerifyEmailRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"token": EXAMPLE_TOKEN}]})

    token: Token = Field(description="The token from the link in the confirmation mail")


class LoginRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "anna@example.ru", "password": "correct horse battery"}]
        }
    )

    email: Email
    password: str = Field(min_length=1, max_length=128)


class LoginResponse(ResponseModel):
    token: str = Field(description="The access token (a JWT) for `Authorization: Bearer`")
    refreshToken: str = Field(description="Exchange it at /auth/refresh; each one works once")
    tokenType: Literal["Bearer"] = "Bearer"
    expiresIn: int = Field(description="Seconds the access token stays valid")
    user: UserView


class RefreshRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"refreshToken": EXAMPLE_TOKEN}]})

    refreshToken: Token


class TokenResponse(ResponseModel):
    token: str = Field(description="The access token (a JWT) for `Authorization: Bearer`")
    refreshToken: str = Field(description="Exchange it at /auth/refresh; each one works once")
    tokenType: Literal["Bearer"] = "Bearer"
    expiresIn: int = Field(description="Seconds the access token stays valid")


class ForgotPasswordRequest(RequestModel):
    email: Email


class ResetPasswordRequest(RequestModel):
    token: Token
    newPassword: Password


def token_response(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        token=pair.access_token, refreshToken=pair.refresh_token, expiresIn=pair.expires_in
    )


def _auth_limit(action: str) -> Any:
    """The per-address limit of one auth action, counted before the body is looked at."""
    return Depends(limit_per_ip(f"auth-ip:{action}", lambda s: s.rate_limit_auth_ip))


@router.post(
    "/auth/register",
    summary="Register a new account",
    status_code=201,
    dependencies=[_auth_limit("register")],
)
async def register(
    body: RegisterRequest, accounts: Accounts, limits: AccountLimits, settings: AppSettings
) -> RegisterResponse:
    """Create an account and mail a confirmation link to the address.

    The answer is the same whether or not the address already has an account, so this cannot
    be used to find out who is registered.
    """
    await limits.hit("register", normalize_email(body.email), settings.rate_limit_auth_account)
    user_id = await accounts.register(
        body.email, body.password, body.gender, body.age, body.language, body.marketingConsent
    )
    return RegisterResponse(
        success=True,
        message="Check your inbox: we sent a link to confirm the address.",
        userId=user_id,
    )


@router.post(
    "/auth/verify-email",
    summary="Confirm an email address with the mailed token",
    responses=errors(409),
    dependencies=[_auth_limit("verify")],
)
async def verify_email(body: VerifyEmailRequest, accounts: Accounts) -> SuccessResponse:
    """Confirm the address the token was mailed to (a new account's, or a changed one).

    A token works once and expires after `VERIFICATION_TOKEN_TTL_SEC`; 409 `email_taken` when
    someone else confirmed the same address first.
    """
    await accounts.verify_email(body.token)
    return SuccessResponse(message="The email address is confirmed.")


@router.post(
    "/auth/login",
    summary="Log in; returns an access token and a refresh token",
    responses=errors(401),
    dependencies=[_auth_limit("login")],
)
async def login(
    body: LoginRequest, accounts: Accounts, limits: AccountLimits, settings: AppSettings
) -> LoginResponse:
    """Exchange the address and password for a short-lived access token and a refresh token.

    Unknown addresses and wrong passwords get the same 401 `invalid_credentials`, in the same
    time.
    """
    await limits.hit("login", normalize_email(body.email), settings.rate_limit_auth_account)
    pair, user = await accounts.login(body.email, body.password)
    return LoginResponse(
        token=pair.access_token,
        refreshToken=pair.refresh_token,
        expiresIn=pair.expires_in,
        user=UserView.model_validate(public_user(user)),
    )


@router.post(
    "/auth/refresh",
    summary="Exchange a refresh token for a new pair (rotation)",
    responses=errors(401),
    dependencies=[_auth_limit("refresh")],
)
async def refresh(body: RefreshRequest, accounts: Accounts) -> TokenResponse:
    """Rotate the session: the refresh token is spent and a new pair returned.

    Presenting a spent refresh token again ends the whole session (it looks stolen).
    """
    return token_response(await accounts.refresh(body.refreshToken))


@router.post(
    "/auth/logout",
    summary="End the session that owns this refresh token",
)
async def logout(body: RefreshRequest, accounts: Accounts) -> SuccessResponse:
    """Revoke the refresh token's session; its access tokens expire on their own."""
    await accounts.logout(body.refreshToken)
    return SuccessResponse(message="Logged out.")


@router.post(
    "/auth/forgot-password",
    summary="Mail a password-reset link",
    dependencies=[_auth_limit("forgot")],
)
async def forgot_password(
    body: ForgotPasswordRequest, accounts: Accounts, limits: AccountLimits, settings: AppSettings
) -> SuccessResponse:
    """Mail a reset link if the address has an account; the answer is the same either way."""
    await limits.hit("forgot", normalize_email(body.email), settings.rate_limit_auth_account)
    await accounts.forgot_password(body.email)
    return SuccessResponse(message="If this address has an account, a reset link is on its way.")


@router.post(
    "/auth/reset-password",
    summary="Set a new password with the mailed token",
    dependencies=[_auth_limit("reset")],
)
async def reset_password(body: ResetPasswordRequest, accounts: Accounts) -> SuccessResponse:
    """Set a new password with the token from the reset mail; every session ends."""
    await accounts.reset_password(body.token, body.newPassword)
    return SuccessResponse(message="The password is changed; log in with the new one.")


@router.get("/auth/me", summary="The current user")
async def me(user: CurrentUser, accounts: Accounts) -> UserResponse:
    """The logged-in user's profile and subscription summary."""
    doc = await accounts.get_user(user.user_id)
    return UserResponse(user=UserView.model_validate(public_user(doc)))
