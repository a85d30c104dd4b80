"""JWT access and refresh tokens: EdDSA signatures, ``kid``, pinned algorithm, typed tokens.

Access tokens carry ``typ: at+jwt`` (RFC 9068) and refresh tokens ``typ: refresh+jwt`` in
their header, and the same in the ``token_use`` claim, so neither is ever accepted as the
other. Only EdDSA is accepted: ``alg: none`` and HS256 made with the public key fail.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from django.conf import settings

ALGORITHM = "EdDSA"
ACCESS = "at+jwt"
REFRESH = "refresh+jwt"
_REQUIRED = ["iss", "aud", "sub", "exp", "iat", "jti", "tenant_id", "session_id", "token_family"]


class TokenError(Exception):
    """A token that is malformed, badly signed, of the wrong type, or expired."""

    def __init__(self, code: str) -> None:
        self.code = code  # "invalid_token" or "token_expired"
        super().__init__(code)


@dataclass(frozen=True)
class Claims:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    session_id: uuid.UUID
    token_family: uuid.UUID
    jti: uuid.UUID
    issued_at: datetime
    expires_at: datetime
    generation: int = 0  # refresh tokens only


def _claims_payload(claims: Claims, token_use: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": settings.CODITECT_JWT_ISSUER,
        "aud": settings.CODITECT_JWT_AUDIENCE,
        "sub": str(claims.user_id),
        "tenant_id": str(claims.tenant_id),
        "session_id": str(claims.session_id),
        "token_family": str(claims.token_family),
        "jti": str(claims.jti),
        "iat": int(claims.issued_at.timestamp()),
        "exp": int(claims.expires_at.timestamp()),
        "token_use": "access" if token_use == ACCESS else "refresh",
    }
    if token_use == REFRESH:
        payload["gen"] = claims.generation
    return payload


def token_sign(*, claims: Claims, token_use: str, kid: str, key: Ed25519PrivateKey) -> str:
    return jwt.encode(
        _claims_payload(claims, token_use),
        key,
        algorithm=ALGORITHM,
        headers={"kid": kid, "typ": token_use},
    )


@dataclass(frozen=True)
class Unverified:
    """A token whose header was read (once) but nothing checked: what ``token_verify`` takes,
    so the key is picked by ``kid`` without reading the header again."""

    token: str
    header: dict[str, Any]

    @property
    def kid(self) -> str:
        return str(self.header.get("kid"))


def _checked_length(token: object) -> str:
    """The token when it may be one of ours; a huge one is not decoded at all."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise TokenError("invalid_token")
    return token


def token_read(token: object) -> Unverified:
    """Read a token's header; TokenError ``invalid_token`` for what is not a JWT (or longer
    than any token of ours, so a huge one is not decoded at all)."""
    token = _checked_length(token)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenError("invalid_token") from None
    return Unverified(token=token, header=header)


def _decoded(token: str, key: Ed25519PublicKey) -> dict[str, Any]:
    """PyJWT's one parse and every check of the signature (the one algorithm allowed,
    whatever the header says) and the registered claims: header, payload, signature."""
    decoded: dict[str, Any] = jwt.decode_complete(
        token,
        key,
        algorithms=[ALGORITHM],
        audience=settings.CODITECT_JWT_AUDIENCE,
        issuer=settings.CODITECT_JWT_ISSUER,
        options={"require": _REQUIRED},
        leeway=settings.CODITECT_JWT_LEEWAY_S,
    )
    return decoded


def _header_fits(header: dict[str, Any], kid: str, token_use: str) -> bool:
    return (
        header.get("kid") == kid
        and header.get("alg") == ALGORITHM
        and header.get("typ") == token_use
    )


def token_verify_as(
    *, token: object, token_use: str, kid: str, key: Ed25519PublicKey
) -> Claims | None:
    """The claims of a token signed by the key ``kid`` (the active key: nearly every
    token's), read in PyJWT's one parse of it; the header is checked after the signature.
    None when the token names another key: then ``token_read`` and ``token_verify`` decide.
    A token that names ``kid`` and is refused gets ``token_verify``'s answer from this one
    attempt (TokenError ``token_expired`` or ``invalid_token``), so a replayed expired or
    forged token costs one signature check, not two."""
    checked = _checked_length(token)
    try:
        decoded = _decoded(checked, key)
    except jwt.PyJWTError as error:
        try:
            header = jwt.get_unverified_header(checked)
        except jwt.PyJWTError:
            raise TokenError("invalid_token") from None
        if header.get("kid") != kid:
            return None  # another key's token: the caller tries that key
        # PyJWT checks the expiry only after the signature: an expired token is genuine.
        expired = isinstance(error, jwt.ExpiredSignatureError)
        fits = _header_fits(header, kid, token_use)
        raise TokenError("token_expired" if expired and fits else "invalid_token") from None
    header = decoded["header"]
    if not _header_fits(header, kid, token_use):
        if header.get("kid") == kid:  # ours, of the wrong type (a refresh token as access)
            raise TokenError("invalid_token")
        return None
    return _claims(decoded["payload"], token_use)


def token_verify(
    *, unverified: Unverified, token_use: str, public_keys: dict[str, Ed25519PublicKey]
) -> Claims:
    """Check signature, algorithm, kid, type, issuer, audience and expiry; return the claims.

    The header was read by ``token_read``; PyJWT's decode parses the token again as part of
    checking its signature, against the one algorithm allowed whatever the header says.
    """
    key = public_keys.get(unverified.kid)
    if key is None or not _header_fits(unverified.header, unverified.kid, token_use):
        raise TokenError("invalid_token")
    try:
        decoded = _decoded(unverified.token, key)
    except jwt.ExpiredSignatureError:
        raise TokenError("token_expired") from None
    except jwt.PyJWTError:
        raise TokenError("invalid_token") from None
    return _claims(decoded["payload"], token_use)


def _claims(payload: dict[str, Any], token_use: str) -> Claims:
    """The claims of a verified payload; TokenError ``invalid_token`` for the wrong
    ``token_use`` or a claim of the wrong shape."""
    expected_use = "access" if token_use == ACCESS else "refresh"
    if payload.get("token_use") != expected_use:
        raise TokenError("invalid_token")
    try:
        return Claims(
            user_id=uuid.UUID(payload["sub"]),
            tenant_id=uuid.UUID(payload["tenant_id"]),
            session_id=uuid.UUID(payload["session_id"]),
            token_family=uuid.UUID(payload["token_family"]),
            jti=uuid.UUID(payload["jti"]),
            issued_at=datetime.fromtimestamp(payload["iat"], UTC),
            expires_at=datetime.fromtimestamp(payload["exp"], UTC),
            generation=int(payload.get("gen", 0)),
        )
    except (ValueError, TypeError, KeyError, AttributeError):  # uuid.UUID(12) raises AttributeError
        raise TokenError("invalid_token") from None


def lifetime(seconds: int) -> timedelta:
    return timedelta(seconds=seconds)
