"""Turning an auth session into a token pair (signing happens after commit, never inside)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from accounts.records import AuthSession
from accounts.signing_keys import Keyring, keyring
from accounts.tokens import ACCESS, REFRESH, Claims, token_sign


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    expires_in: int
    refresh_expires_in: int
    # True for the answer to a refresh token replayed in the grace window: ``refresh`` is
    # that spent token handed back, not a live one (docs/accounts.md, refresh rotation), so
    # whoever keeps a refresh token (a cookie) keeps the one it has.
    grace: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "access": self.access,
            "refresh": self.refresh,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_expires_in": self.refresh_expires_in,
        }


def _access_claims(*, tenant_id: uuid.UUID, session: AuthSession, now: datetime) -> Claims:
    return Claims(
        user_id=session.user_id,
        tenant_id=tenant_id,
        session_id=session.id,
        token_family=session.token_family,
        jti=uuid.uuid4(),
        issued_at=now,
        expires_at=now + timedelta(seconds=settings.CODITECT_ACCESS_TOKEN_TTL_S),
    )


def _signed(keys: Keyring, claims: Claims, token_use: str) -> str:
    """A token signed by the active key (the one every process trusts after a rotation)."""
    return token_sign(claims=claims, token_use=token_use, kid=keys.active_kid, key=keys.active_key)


def _pair(
    *, access: str, refresh: str, refresh_expires_at: datetime, now: datetime, grace: bool = False
) -> TokenPair:
    return TokenPair(
        access=access,
        refresh=refresh,
        expires_in=settings.CODITECT_ACCESS_TOKEN_TTL_S,
        refresh_expires_in=max(0, int((refresh_expires_at - now).total_seconds())),
        grace=grace,
    )


def token_pair_issue(
    *, db: Any, tenant_id: uuid.UUID, session: AuthSession, now: datetime
) -> TokenPair:
    keys = keyring(db=db)
    base = _access_claims(tenant_id=tenant_id, session=session, now=now)
    # The refresh token's claims are fixed by the rotation (not by this call): the
    # session's current token.
    current = replace(
        base,
        issued_at=session.rotated_at or session.created_at,
        jti=session.refresh_jti,
        expires_at=session.refresh_expires_at,
        generation=session.generation,
    )
    return _pair(
        access=_signed(keys, base, ACCESS),
        refresh=_signed(keys, current, REFRESH),
        refresh_expires_at=session.refresh_expires_at,
        now=now,
    )


def grace_pair_issue(
    *,
    db: Any,
    tenant_id: uuid.UUID,
    session: AuthSession,
    now: datetime,
    spent: str,
    spent_expires_at: datetime,
) -> TokenPair:
    """A fresh access token for a refresh token replayed in the grace window, with that
    spent token handed back in place of a new one: the live refresh token never goes to
    whoever holds an old one."""
    access = _access_claims(tenant_id=tenant_id, session=session, now=now)
    return _pair(
        access=_signed(keyring(db=db), access, ACCESS),
        refresh=spent,
        refresh_expires_at=spent_expires_at,
        now=now,
        grace=True,
    )


def refresh_expiry(*, now: datetime, absolute_expires_at: datetime) -> datetime:
    """A refresh token lives the idle lifetime, never past the session's absolute end."""
    return min(now + timedelta(seconds=settings.CODITECT_REFRESH_IDLE_TTL_S), absolute_expires_at)
