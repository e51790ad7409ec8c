"""Accounts: register, verify, log in, refresh, log out, recover the password, who am I."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from core.accounts import TokenPair, normalize_email, public_user
from http_api.framework import Ctx, RequestModel, ResponseModel, Router
from http_api.schemas import (
    Age,
    Email,
    Gender,
    Language,
    Password,
    SuccessResponse,
    Token,
    UserResponse,
    UserView,
)

router = Router()
TAGS = ["auth"]


class RegisterRequest(RequestModel):
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
    token: Token


class LoginRequest(RequestModel):
    email: Email
    password: str = Field(min_length=1, max_length=128)


class LoginResponse(ResponseModel):
    token: str
    refreshToken: str
    tokenType: str = "Bearer"
    expiresIn: int
    user: UserView


class RefreshRequest(RequestModel):
    refreshToken: Token


class TokenResponse(ResponseModel):
    token: str
    refreshToken: str
    tokenType: str = "Bearer"
    expiresIn: int


class ForgotPasswordRequest(RequestModel):
    email: Email


class ResetPasswordRequest(RequestModel):
    token: Token
    newPassword: Password


def token_response(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        token=pair.access_token, refreshToken=pair.refresh_token, expiresIn=pair.expires_in
    )


async def _limit_auth(ctx: Ctx[Any, Any], action: str, account: str | None) -> None:
    settings = ctx.services.settings
    await ctx.limit(f"auth-ip:{action}", ctx.client_ip, settings.rate_limit_auth_ip)
    if account:
        await ctx.limit(f"auth-account:{action}", account, settings.rate_limit_auth_account)


@router.add(
    "POST",
    "/auth/register",
    summary="Register a new account",
    tags=TAGS,
    auth="none",
    body=RegisterRequest,
    response=RegisterResponse,
    status=201,
)
async def register(ctx: Ctx[RegisterRequest, Any]) -> RegisterResponse:
    b = ctx.body
    await _limit_auth(ctx, "register", normalize_email(b.email))
    user_id = await ctx.services.accounts.register(
        b.email, b.password, b.gender, b.age, b.language, b.marketingConsent
    )
    return RegisterResponse(
        success=True,
        message="Check your inbox: we sent a link to confirm the address.",
        userId=user_id,
    )


@router.add(
    "POST",
    "/auth/verify-email",
    summary="Confirm an email address with the mailed token",
    tags=TAGS,
    auth="none",
    body=VerifyEmailRequest,
    response=SuccessResponse,
    errors=[409],
)
async def verify_email(ctx: Ctx[VerifyEmailRequest, Any]) -> SuccessResponse:
    await _limit_auth(ctx, "verify", None)
    await ctx.services.accounts.verify_email(ctx.body.token)
    return SuccessResponse(message="The email address is confirmed.")


@router.add(
    "POST",
    "/auth/login",
    summary="Log in; returns an access token and a refresh token",
    tags=TAGS,
    auth="none",
    body=LoginRequest,
    response=LoginResponse,
    errors=[401],
)
async def login(ctx: Ctx[LoginRequest, Any]) -> LoginResponse:
    await _limit_auth(ctx, "login", normalize_email(ctx.body.email))
    pair, user = await ctx.services.accounts.login(ctx.body.email, ctx.body.password)
    return LoginResponse(
        token=pair.access_token,
        refreshToken=pair.refresh_token,
        expiresIn=pair.expires_in,
        user=UserView.model_validate(public_user(user)),
    )


@router.add(
    "POST",
    "/auth/refresh",
    summary="Exchange a refresh token for a new pair (rotation)",
    tags=TAGS,
    auth="none",
    body=RefreshRequest,
    response=TokenResponse,
    errors=[401],
)
async def refresh(ctx: Ctx[RefreshRequest, Any]) -> TokenResponse:
    await _limit_auth(ctx, "refresh", None)
    return token_response(await ctx.services.accounts.refresh(ctx.body.refreshToken))


@router.add(
    "POST",
    "/auth/logout",
    summary="End the session that owns this refresh token",
    tags=TAGS,
    auth="none",
    body=RefreshRequest,
    response=SuccessResponse,
)
async def logout(ctx: Ctx[RefreshRequest, Any]) -> SuccessResponse:
    await ctx.services.accounts.logout(ctx.body.refreshToken)
    return SuccessResponse(message="Logged out.")


@router.add(
    "POST",
    "/auth/forgot-password",
    summary="Mail a password-reset link",
    tags=TAGS,
    auth="none",
    body=ForgotPasswordRequest,
    response=SuccessResponse,
)
async def forgot_password(ctx: Ctx[ForgotPasswordRequest, Any]) -> SuccessResponse:
    await _limit_auth(ctx, "forgot", normalize_email(ctx.body.email))
    await ctx.services.accounts.forgot_password(ctx.body.email)
    return SuccessResponse(message="If this address has an account, a reset link is on its way.")


@router.add(
    "POST",
    "/auth/reset-password",
    summary="Set a new password with the mailed token",
    tags=TAGS,
    auth="none",
    body=ResetPasswordRequest,
    response=SuccessResponse,
)
async def reset_password(ctx: Ctx[ResetPasswordRequest, Any]) -> SuccessResponse:
    await _limit_auth(ctx, "reset", None)
    await ctx.services.accounts.reset_password(ctx.body.token, ctx.body.newPassword)
    return SuccessResponse(message="The password is changed; log in with the new one.")


@router.add("GET", "/auth/me", summary="The current user", tags=TAGS, response=UserResponse)
async def me(ctx: Ctx[Any, Any]) -> UserResponse:
    user = await ctx.services.accounts.get_user(ctx.user_id)
    return UserResponse(user=UserView.model_validate(public_user(user)))
