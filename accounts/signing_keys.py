"""JWT signing keys: kept in storage, encrypted at rest, cached per process, rotatable.

One key is ``active`` (signs new tokens); ``verify`` keys still validate tokens they
signed, so a rotation never logs anyone out; ``retired`` keys validate nothing and leave
the JWKS. Every process re-reads the set every CODITECT_SIGNING_KEYS_REFRESH_S seconds
(and at once when it meets an unknown ``kid``, at most once a second), so a rotation made
by an operator reaches all of them.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from django.conf import settings

import fdb_backend
from accounts.records import SigningKey, signing_keys


class SigningKeyError(Exception):
    """An operation on signing keys that cannot be done (unknown kid, last active key)."""

    def __init__(self, reason: str, kid: str | None = None) -> None:
        self.reason = reason
        self.kid = kid
        super().__init__(reason, kid)


@dataclass(frozen=True)
class Keyring:
    active_kid: str
    active_key: Ed25519PrivateKey
    public_keys: dict[str, Ed25519PublicKey]
    loaded_at: float
    # Access tokens already verified with these keys (token -> claims). It lives and dies
    # with the keyring, so a retired key's tokens are forgotten at the next reload.
    verified: dict[str, Any] = field(default_factory=dict)


def _wrapping_key() -> AESGCM:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"coditect jwt signing keys"
    ).derive(settings.SECRET_KEY.encode())
    return AESGCM(derived)


def _seal(private: Ed25519PrivateKey, kid: str) -> bytes:
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    nonce = os.urandom(12)
    return nonce + _wrapping_key().encrypt(nonce, raw, kid.encode())


def _unseal(sealed: bytes, kid: str) -> Ed25519PrivateKey:
    raw = _wrapping_key().decrypt(sealed[:12], sealed[12:], kid.encode())
    return Ed25519PrivateKey.from_private_bytes(raw)


def _new_key(now: datetime) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    kid = now.strftime("%Y%m%d") + "-" + secrets.token_hex(4)
    return SigningKey(
        kid=kid,
        status="active",
        public_key=private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        private_key=_seal(private, kid),
        created_at=now,
    )


@fdb_backend.transactional
def _all(tr: object) -> list[SigningKey]:
    return signing_keys().list_by_key(tr).records


@fdb_backend.transactional
def _ensure_active(tr: object, candidate: SigningKey) -> None:
    keys = signing_keys()
    if any(k.status == "active" for k in keys.list_by_key(tr).records):
        return
    keys.save(tr, candidate)


def signing_key_list(*, db: object) -> list[SigningKey]:
    return sorted(_all(db), key=lambda k: k.created_at)


def signing_key_rotate(*, db: object) -> SigningKey:
    """Make a new active key; the previous active key keeps verifying its tokens."""
    candidate = _new_key(datetime.now(UTC))

    @fdb_backend.transactional
    def rotate(tr: object) -> SigningKey:
        keys = signing_keys()
        for key in keys.list_by_key(tr).records:
            if key.status == "active":
                keys.save(tr, dataclasses.replace(key, status="verify"))
        return keys.save(tr, candidate)

    created = rotate(db)
    keyring_reset()
    return created


def signing_key_retire(*, db: object, kid: str) -> SigningKey:
    """Stop trusting ``kid``: tokens it signed are refused from the next key refresh on."""
    now = datetime.now(UTC)

    @fdb_backend.transactional
    def retire(tr: object) -> SigningKey:
        keys = signing_keys()
        key = keys.get(tr, kid)
        if key is None:
            raise SigningKeyError("unknown signing key", kid)
        if key.status == "active":
            raise SigningKeyError("rotate before retiring the active key", kid)
        if key.status == "retired":
            return key
        return keys.save(tr, dataclasses.replace(key, status="retired", retired_at=now))

    retired = retire(db)
    keyring_reset()
    return retired


_lock = threading.Lock()
_keyring: Keyring | None = None
_keyring_db: object = None
_last_miss = 0.0


def _load(db: object) -> Keyring:
    keys = _all(db)
    if not any(k.status == "active" for k in keys):
        _ensure_active(db, _new_key(datetime.now(UTC)))
        keys = _all(db)
    active = max((k for k in keys if k.status == "active"), key=lambda k: k.created_at)
    return Keyring(
        active_kid=active.kid,
        active_key=_unseal(active.private_key, active.kid),
        public_keys={
            k.kid: Ed25519PublicKey.from_public_bytes(k.public_key)
            for k in keys
            if k.status != "retired"
        },
        loaded_at=time.monotonic(),
    )


def keyring(*, db: object, missing_kid: str | None = None) -> Keyring:
    """The keys of this process, reloaded when stale or when ``missing_kid`` is unknown."""
    global _keyring, _keyring_db, _last_miss
    current = _keyring if _keyring_db is db else None
    now = time.monotonic()
    stale = current is None or now - current.loaded_at > settings.CODITECT_SIGNING_KEYS_REFRESH_S
    if not stale and missing_kid is not None and current is not None:
        stale = missing_kid not in current.public_keys and now - _last_miss > 1.0
        if stale:
            _last_miss = now
    if not stale and current is not None:
        return current
    with _lock:
        _keyring = _load(db)
        _keyring_db = db
        return _keyring


def keyring_reset() -> None:
    """Forget the cached keys (after a rotation here, or when tests switch stores)."""
    global _keyring
    with _lock:
        _keyring = None


def jwk_of(kid: str, key: Ed25519PublicKey) -> dict[str, str]:
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "kid": kid,
        "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
        "use": "sig",
        "alg": "EdDSA",
    }
