"""Accounts: registration, verification, login with rotating refresh tokens, password recovery."""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from core.db import Database, Doc, parse_object_id
from core.errors import AppError, Conflict, NotFound, Unauthorized
from core.kv import Cache
from core.mailing import Mailer
from core.security import PasswordHasher, TokenService, hash_token, new_secret_token
from core.settings import Settings

log = logging.getLogger(__name__)

TOKENS_VALID_AFTER_KEY = "tva:"


def normalize_email(email: str) -> str:
    """The stored, unique form of an address: NFKC, trimmed, lower case."""
    return unicodedata.normalize("NFKC", email).strip().lower()


def public_user(doc: Doc) -> dict[str, Any]:
    """The user as the API shows it: never hashes or tokens."""
    sub = doc.get("subscription") or {}
    return {
        "id": str(doc["_id"]),
        "email": doc["email"],
        "pendingEmail": doc.get("pendingEmail"),
        "gender": doc.get("gender"),
        "age": doc.get("age"),
        "language": doc.get("language", "ru"),
        "role": doc.get("role", "user"),
        "isEmailVerified": bool(doc.get("isEmailVerified")),
        "registrationDate": doc.get("registrationDate"),
        "lastLoginDate": doc.get("lastLoginDate"),
        "marketingConsent": bool(doc.get("marketingConsent")),
        "subscription": {
            "isActive": bool(sub.get("isActive")),
            "plan": sub.get("plan"),
            "endDate": sub.get("endDate"),
            "autoRenew": bool(sub.get("autoRenew")),
        },
    }


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class CandidateProfile:
    """What the interview engine needs to know of a user."""

    verified: bool
    language: str


class AccountService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        cache: Cache,
        hasher: PasswordHasher,
        tokens: TokenService,
        mailer: Mailer,
    ) -> None:
        self._settings = settings
        self._users = db["users"]
        self._refresh = db["refresh_tokens"]
        self._cache = cache
        self._hasher = hasher
        self._tokens = tokens
        self._mailer = mailer

    def _link(self, path: str, token: str = "") -> str:
        base = self._settings.public_base_url.rstrip("/")
        return f"{base}{path}?token={token}" if token else f"{base}{path}"

    # --- registration and verification -------------------------------------------------

    async def register(
        self,
        email: str,
        password: str,
        gender: str,
        age: int,
        language: str,
        marketing_consent: bool = False,
    ) -> str:
        """Create the account and mail a verification link; a taken address mails its owner.

        Both paths answer with an id of the same form, so the answer reveals nothing.
        """
        normalized = normalize_email(email)
        password_hash = await self._hasher.hash(password)
        token = new_secret_token()
        now = datetime.now(UTC)
        doc: Doc = {
            "email": normalized,
            "passwordHash": password_hash,
            "gender": gender,
            "age": age,
            "language": language,
            "role": "user",
            "isEmailVerified": False,
            "verificationToken": hash_token(token),
            "verificationExpires": now
            + timedelta(seconds=self._settings.verification_token_ttl_sec),
            "registrationDate": now,
            "lastLoginDate": None,
            "marketingConsent": marketing_consent,
            "subscription": {
                "isActive": False,
                "plan": None,
                "startDate": None,
                "endDate": None,
                "autoRenew": False,
                "paymentId": None,
            },
        }
        try:
            result = await self._users.insert_one(doc)
        except DuplicateKeyError:
            existing = await self._users.find_one({"email": normalized}, {"language": 1})
            lang = (existing or {}).get("language", language)
            await self._mailer.send(
                "account_exists",
                normalized,
                lang,
                {"email": normalized, "link": self._link("/forgot-password")},
            )
            return str(ObjectId())
        await self._mailer.send(
            "verify_email",
            normalized,
            language,
            {"email": normalized, "link": self._link("/verify-email", token)},
        )
        return str(result.inserted_id)

    async def verify_email(self, token: str) -> None:
        """Consume a verification token (single use, expiring); a first one sends the welcome."""
        now = datetime.now(UTC)
        user = await self._users.find_one_and_update(
            {"verificationToken": hash_token(token), "verificationExpires": {"$gt": now}},
            {
                "$set": {"isEmailVerified": True},
                "$unset": {"verificationToken": "", "verificationExpires": ""},
            },
            return_document=ReturnDocument.BEFORE,
        )
        if user is None:
            raise AppError("The link is invalid or has expired", code="invalid_token")
        pending = user.get("pendingEmail")
        if pending:
            try:
                await self._users.update_one(
                    {"_id": user["_id"]},
                    {"$set": {"email": pending}, "$unset": {"pendingEmail": ""}},
                )
            except DuplicateKeyError:
                await self._users.update_one({"_id": user["_id"]}, {"$unset": {"pendingEmail": ""}})
                raise Conflict(
                    "This address belongs to another account", code="email_taken"
                ) from None
            return
        if not user.get("isEmailVerified"):
            await self._mailer.send(
                "welcome", user["email"], user.get("language", "ru"), {"link": self._link("/")}
            )

    # --- login and refresh tokens ---------------------------------------------------------

    async def login(self, email: str, password: str) -> tuple[TokenPair, Doc]:
        """Check the password with bcrypt (never in the query); unknown email costs the same."""
        user = await self._users.find_one({"email": normalize_email(email)})
        ok = await self._hasher.verify(password, user["passwordHash"] if user else None)
        if not ok or user is None:
            raise Unauthorized("Wrong email or password", code="invalid_credentials")
        now = datetime.now(UTC)
        await self._users.update_one({"_id": user["_id"]}, {"$set": {"lastLoginDate": now}})
        user["lastLoginDate"] = now
        pair = await self._issue_pair(user, family_id=None)
        return pair, user

    async def _issue_pair(self, user: Doc, family_id: str | None) -> TokenPair:
        refresh = new_secret_token()
        now = datetime.now(UTC)
        await self._refresh.insert_one(
            {
                "_id": hash_token(refresh),
                "userId": user["_id"],
                "familyId": family_id or new_secret_token(),
                "createdAt": now,
                "expiresAt": now + timedelta(seconds=self._settings.refresh_token_ttl_sec),
                "usedAt": None,
                "revoked": False,
            }
        )
        access = self._tokens.issue(str(user["_id"]), user.get("role", "user"), now=now)
        return TokenPair(access, refresh, self._tokens.ttl_sec)

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate: a token works once; presenting a used one revokes its whole family."""
        now = datetime.now(UTC)
        key = hash_token(refresh_token)
        record = await self._refresh.find_one_and_update(
            {"_id": key, "usedAt": None, "revoked": False, "expiresAt": {"$gt": now}},
            {"$set": {"usedAt": now}},
        )
        if record is None:
            stale = await self._refresh.find_one({"_id": key})
            if stale is not None and stale.get("usedAt") is not None:
                await self._refresh.update_many(
                    {"familyId": stale["familyId"]}, {"$set": {"revoked": True}}
                )
                log.warning(
                    "refresh token reuse; family revoked", extra={"user": str(stale["userId"])}
                )
            raise Unauthorized("The session has ended; log in again", code="invalid_refresh_token")
        user = await self._users.find_one({"_id": record["userId"]})
        if user is None:
            raise Unauthorized("The session has ended; log in again", code="invalid_refresh_token")
        return await self._issue_pair(user, family_id=record["familyId"])

    async def logout(self, refresh_token: str) -> None:
        record = await self._refresh.find_one({"_id": hash_token(refresh_token)})
        if record is not None:
            await self._refresh.update_many(
                {"familyId": record["familyId"]}, {"$set": {"revoked": True}}
            )

    async def _revoke_all_sessions(self, user_id: ObjectId) -> None:
        await self._refresh.update_many({"userId": user_id}, {"$set": {"revoked": True}})
        # Access tokens issued before now stop working too (checked on every request).
        stamp = repr(datetime.now(UTC).timestamp())
        await self._cache.set(
            TOKENS_VALID_AFTER_KEY + str(user_id),
            stamp.encode(),
            self._settings.access_token_ttl_sec,
        )

    async def tokens_valid_after(self, user_id: str) -> float:
        """Access tokens of this user issued before this time (epoch seconds) are refused."""
        raw = await self._cache.get(TOKENS_VALID_AFTER_KEY + user_id)
        return float(raw) if raw else 0.0

    # --- password recovery and change -----------------------------------------------------

    async def forgot_password(self, email: str) -> None:
        """Mail a reset link if the account exists; the caller answers the same either way."""
        token = new_secret_token()
        expires = datetime.now(UTC) + timedelta(seconds=self._settings.reset_token_ttl_sec)
        user = await self._users.find_one_and_update(
            {"email": normalize_email(email)},
            {"$set": {"passwordResetToken": hash_token(token), "passwordResetExpires": expires}},
            projection={"email": 1, "language": 1},
        )
        if user is None:
            return
        await self._mailer.send(
            "password_reset",
            user["email"],
            user.get("language", "ru"),
            {"email": user["email"], "link": self._link("/reset-password", token)},
        )

    async def reset_password(self, token: str, new_password: str) -> None:
        password_hash = await self._hasher.hash(new_password)
        now = datetime.now(UTC)
        user = await self._users.find_one_and_update(
            {"passwordResetToken": hash_token(token), "passwordResetExpires": {"$gt": now}},
            {
                "$set": {"passwordHash": password_hash, "passwordChangedAt": now},
                "$unset": {"passwordResetToken": "", "passwordResetExpires": ""},
            },
        )
        if user is None:
            raise AppError("The link is invalid or has expired", code="invalid_token")
        await self._revoke_all_sessions(user["_id"])
        await self._mail_password_changed(user)

    async def change_password(self, user_id: str, current: str, new_password: str) -> TokenPair:
        """Change with the current password; every session ends and this one gets new tokens."""
        user = await self.get_user(user_id)
        if not await self._hasher.verify(current, user["passwordHash"]):
            raise AppError("The current password is wrong", code="invalid_credentials", status=403)
        password_hash = await self._hasher.hash(new_password)
        await self._users.update_one(
            {"_id": user["_id"]},
            {"$set": {"passwordHash": password_hash, "passwordChangedAt": datetime.now(UTC)}},
        )
        await self._revoke_all_sessions(user["_id"])
        await self._mail_password_changed(user)
        return await self._issue_pair(user, family_id=None)

    async def _mail_password_changed(self, user: Doc) -> None:
        await self._mailer.send(
            "password_changed",
            user["email"],
            user.get("language", "ru"),
            {"email": user["email"], "link": self._link("/forgot-password")},
        )

    # --- profile ----------------------------------------------------------------------------

    async def get_user(self, user_id: str) -> Doc:
        oid = parse_object_id(user_id)
        user = await self._users.find_one({"_id": oid}) if oid else None
        if user is None:
            raise NotFound("No such user", code="user_not_found")
        return user

    async def candidate_profile(self, user_id: str) -> CandidateProfile | None:
        oid = parse_object_id(user_id)
        user = await self._users.find_one({"_id": oid}) if oid else None
        if user is None:
            return None
        return CandidateProfile(bool(user.get("isEmailVerified")), user.get("language", "ru"))

    async def update_profile(self, user_id: str, changes: dict[str, Any]) -> Doc:
        """Apply profile changes; a new email waits in `pendingEmail` until it is verified."""
        user = await self.get_user(user_id)
        update: dict[str, Any] = {
            k: v
            for k, v in changes.items()
            if k in ("gender", "age", "language", "marketingConsent")
        }
        new_email = changes.get("email")
        token: str | None = None
        if new_email is not None and normalize_email(new_email) != user["email"]:
            normalized = normalize_email(new_email)
            if await self._users.find_one({"email": normalized}, {"_id": 1}):
                raise Conflict("This address belongs to another account", code="email_taken")
            token = new_secret_token()
            update["pendingEmail"] = normalized
            update["verificationToken"] = hash_token(token)
            update["verificationExpires"] = datetime.now(UTC) + timedelta(
                seconds=self._settings.verification_token_ttl_sec
            )
        if update:
            updated = await self._users.find_one_and_update(
                {"_id": user["_id"]}, {"$set": update}, return_document=ReturnDocument.AFTER
            )
            user = updated or user
        if token is not None:
            await self._mailer.send(
                "verify_email",
                user["pendingEmail"],
                user.get("language", "ru"),
                {"email": user["pendingEmail"], "link": self._link("/verify-email", token)},
            )
        return user

    async def create_admin(self, email: str, password: str) -> str:
        """Create a verified admin, or promote the existing account and set its password."""
        normalized = normalize_email(email)
        password_hash = await self._hasher.hash(password)
        now = datetime.now(UTC)
        user = await self._users.find_one_and_update(
            {"email": normalized},
            {
                "$set": {"role": "admin", "isEmailVerified": True, "passwordHash": password_hash},
                "$setOnInsert": {
                    "gender": "unspecified",
                    "age": None,
                    "language": "ru",
                    "registrationDate": now,
                    "lastLoginDate": None,
                    "marketingConsent": False,
                    "subscription": {"isActive": False, "plan": None, "autoRenew": False},
                },
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert user is not None
        return str(user["_id"])
