"""Payment references at rest: sealed, bound to their owner, and readable across a rotation."""

from __future__ import annotations

import pytest

from core.billing.crypto import ReferenceCipher, ReferenceDecryptionError


def test_a_sealed_reference_opens_and_does_not_show_the_value() -> None:
    cipher = ReferenceCipher("a" * 40)
    sealed = cipher.encrypt("tk_secret_token", "card-token:u1")
    assert "tk_secret_token" not in repr(sealed)
    assert sealed["keyId"] == cipher.current_key_id
    assert cipher.decrypt(sealed, "card-token:u1") == "tk_secret_token"
    assert cipher.encrypt("tk_secret_token", "card-token:u1") != sealed  # fresh nonce


def test_a_reference_moved_to_another_user_or_altered_does_not_open() -> None:
    cipher = ReferenceCipher("a" * 40)
    sealed = cipher.encrypt("tk_secret_token", "card-token:u1")
    with pytest.raises(ReferenceDecryptionError):
        cipher.decrypt(sealed, "card-token:u2")
    altered = {**sealed, "data": sealed["data"][:-4] + "AAA="}
    with pytest.raises(ReferenceDecryptionError):
        cipher.decrypt(altered, "card-token:u1")


def test_rotation_old_keys_open_new_key_seals() -> None:
    old = ReferenceCipher("old-secret-" * 4)
    sealed = old.encrypt("sc_123", "ctx")
    rotated = ReferenceCipher.from_settings("new-secret-" * 4, "older-one, " + "old-secret-" * 4)
    assert rotated.current_key_id != old.current_key_id
    assert rotated.decrypt(sealed, "ctx") == "sc_123"
    assert rotated.needs_rotation(sealed)
    assert not rotated.needs_rotation(rotated.encrypt("sc_123", "ctx"))
    with pytest.raises(ReferenceDecryptionError):
        ReferenceCipher("new-secret-" * 4).decrypt(sealed, "ctx")
