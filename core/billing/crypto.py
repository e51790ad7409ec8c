"""Payment references at rest: AES-256-GCM under keys derived from PAYMENT_REFERENCE_KEY.

Each stored value is `{"keyId", "data"}`: the id of the key that sealed it and base64 of
nonce + ciphertext + tag. Rotation: put the new secret in PAYMENT_REFERENCE_KEY and the old
one in PAYMENT_REFERENCE_OLD_KEYS (comma-separated); values sealed under an old key still
open, new values are sealed under the new key, and the `billing.reencrypt_references` job
re-seals the old ones. Once that job reports nothing left, the old key can be dropped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SALT = b"interview-platform/payment-references"
_NONCE_BYTES = 12


class ReferenceDecryptionError(Exception):
    """A stored reference cannot be opened: unknown key id, or the data was altered."""


def derive_key(secret: str, purpose: bytes) -> bytes:
    """A 256-bit key for one purpose, derived from a configured secret with HKDF-SHA256."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=purpose).derive(
        secret.encode("utf-8")
    )


def _key_id(key: bytes) -> str:
    return hmac.new(key, b"key-id", hashlib.sha256).hexdigest()[:16]


class ReferenceCipher:
    """Seals and opens payment references; `context` binds a value to its owner and field."""

    def __init__(self, current_secret: str, old_secrets: list[str] | None = None) -> None:
        current = derive_key(current_secret, b"aes-256-gcm")
        self.current_key_id = _key_id(current)
        self._keys: dict[str, AESGCM] = {self.current_key_id: AESGCM(current)}
        for secret in old_secrets or []:
            key = derive_key(secret, b"aes-256-gcm")
            self._keys.setdefault(_key_id(key), AESGCM(key))

    @classmethod
    def from_settings(cls, current: str, old_csv: str) -> ReferenceCipher:
        return cls(current, [s.strip() for s in old_csv.split(",") if s.strip()])

    def encrypt(self, plaintext: str, context: str) -> dict[str, str]:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self.current_key_id].encrypt(
            nonce, plaintext.encode("utf-8"), context.encode("utf-8")
        )
        return {
            "keyId": self.current_key_id,
            "data": base64.b64encode(nonce + sealed).decode("ascii"),
        }

    def decrypt(self, stored: Any, context: str) -> str:
        if not isinstance(stored, dict):
            raise ReferenceDecryptionError("not a sealed reference")
        aead = self._keys.get(str(stored.get("keyId")))
        if aead is None:
            raise ReferenceDecryptionError("sealed under a key that is not configured")
        try:
            raw = base64.b64decode(str(stored.get("data")), validate=True)
            opened = aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise ReferenceDecryptionError("the sealed reference does not open") from None
        return opened.decode("utf-8")

    def needs_rotation(self, stored: Any) -> bool:
        return isinstance(stored, dict) and stored.get("keyId") != self.current_key_id
