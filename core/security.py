"""Passwords, access tokens and one-time tokens."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bcrypt
import jwt

from core.settings import Settings

JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"


class InvalidToken(Exception):
    """The access token is missing, malformed, expired or not ours."""


class PasswordHasher:
    """bcrypt over an HMAC-SHA256 pre-hash, so every byte of a long password counts."""

    def __init__(self, pepper: str, rounds: int) -> None:
        self._pepper = pepper.encode()
        self._rounds = rounds
        # A hash to check against when the account does not exist, so both paths cost the same.
        self._dummy = bcrypt.hashpw(b"dummy-password-for-timing", bcrypt.gensalt(rounds))

    def _prehash(self, password: str) -> bytes:
        # base64 of a 32-byte digest is 44 bytes: always under bcrypt's 72-byte input limit.
        digest = hmac.new(self._pepper, password.encode("utf-8"), hashlib.sha256).digest()
        return base64.b64encode(digest)

    def hash_sync(self, password: str) -> str:
        return bcrypt.hashpw(self._prehash(password), bcrypt.gensalt(self._rounds)).decode()

    def verify_sync(self, password: str, hashed: str | None) -> bool:
        target = hashed.encode() if hashed else self._dummy
        ok = bcrypt.checkpw(self._prehash(password), target)
        return ok and hashed is not None

    async def hash(self, password: str) -> str:
        """Hash off the event loop: bcrypt is deliberately slow."""
        return await asyncio.to_thread(self.hash_sync, password)

    async def verify(self, password: str, hashed: str | None) -> bool:
        """Check a password; with no hash, spend the same time and answer False."""
        return await asyncio.to_thread(self.verify_sync, password, hashed)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    role: str
    jti: str
    issued_at: float
    expires_at: datetime
    session_id: str | None = None


class TokenService:
    """Short-lived access JWTs with a pinned algorithm and every registered claim checked."""

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.jwt_secret.get_secret_value()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._ttl = settings.access_token_ttl_sec

    @property
    def ttl_sec(self) -> int:
        return self._ttl

    def issue(self, user_id: str, role: str, now: datetime | None = None) -> str:
        issued = now or datetime.now(UTC)
        payload: dict[str, Any] = {
            "sub": user_id,
            "role": role,
            "typ": ACCESS_TOKEN_TYPE,
            "jti": uuid.uuid4().hex,
            # Sub-second (RFC 7519 allows a non-integer NumericDate): a token issued in the same
            # second as a password change must still be told apart from the ones issued after it.
            "iat": issued.timestamp(),
            "nbf": issued,
            "exp": issued + timedelta(seconds=self._ttl),
            "iss": self._issuer,
            "aud": self._audience,
        }
        return jwt.encode(payload, self._secret, algorithm=JWT_ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "jti", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        if payload.get("typ") != ACCESS_TOKEN_TYPE or not isinstance(payload.get("sub"), str):
            raise InvalidToken("not an access token")
        role = payload.get("role")
        if role not in ("user", "admin"):
            raise InvalidToken("bad role claim")
        return AccessClaims(
            user_id=payload["sub"],
            role=role,
            jti=str(payload["jti"]),
            issued_at=float(payload["iat"]),
            expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
            session_id=str(payload["sid"]) if isinstance(payload.get("sid"), str) else None,
        )


def new_secret_token() -> str:
    """A 256-bit token from the CSPRNG, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Tokens are stored only as their SHA-256: a leaked table reveals none."""
    return hashlib.sha256(token.encode()).hexdigest()


def sign(key: str, message: str) -> str:
    """A URL-safe HMAC-SHA256 tag (unsubscribe and share links)."""
    tag = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(tag).rstrip(b"=").decode()


def verify_signature(key: str, message: str, tag: str) -> bool:
    return hmac.compare_digest(sign(key, message), tag)
