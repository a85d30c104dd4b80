"""Turning an auth session into a token pair (signing happens after commit, never inside)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from accounts.records import AuthSession
from accounts.signing_keys import keyring
from accounts.tokens import ACCESS, REFRESH, Claims, token_sign


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    expires_in: int
    refresh_expires_in: int

    def as_json(self) -> dict[str, Any]:
        return {
            "access": self.access,
            "refresh": self.refresh,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_expires_in": self.refresh_expires_in,
        }


def token_pair_issue(
    *, db: Any, tenant_id: uuid.UUID, session: AuthSession, now: datetime
) -> TokenPair:
    keys = keyring(db=db)
    access_ttl = settings.CODITECT_ACCESS_TOKEN_TTL_S
    base = Claims(
        user_id=session.user_id,
        tenant_id=tenant_id,
        session_id=session.id,
        token_family=session.token_family,
        jti=uuid.uuid4(),
        issued_at=now,
        expires_at=now + timedelta(seconds=access_ttl),
    )
    access = token_sign(
        claims=base,
        token_use=ACCESS,
        kid=keys.active_kid,
        key=keys.active_key,
    )
    refresh = token_sign(
        # Claims fixed by the rotation (not by this call), so the pair handed out again in
        # the grace window carries the very same refresh token.
        claims=replace(
            base,
            issued_at=session.rotated_at or session.created_at,
            jti=session.refresh_jti,
            expires_at=session.refresh_expires_at,
            generation=session.generation,
        ),
        token_use=REFRESH,
        kid=keys.active_kid,
        key=keys.active_key,
    )
    return TokenPair(
        access=access,
        refresh=refresh,
        expires_in=access_ttl,
        refresh_expires_in=max(0, int((session.refresh_expires_at - now).total_seconds())),
    )


def refresh_expiry(*, now: datetime, absolute_expires_at: datetime) -> datetime:
    """A refresh token lives the idle lifetime, never past the session's absolute end."""
    return min(now + timedelta(seconds=settings.CODITECT_REFRESH_IDLE_TTL_S), absolute_expires_at)
