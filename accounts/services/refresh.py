"""Refresh-token rotation with reuse detection (RFC 9700 §4.14) and a grace window."""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings

import fdb_backend
from accounts.errors import (
    INVALID_TOKEN,
    SESSION_REVOKED,
    TENANT_SUSPENDED,
    TOKEN_EXPIRED,
    TOKEN_REUSED,
    AccountError,
    fail,
)
from accounts.records import AuthSession, auth_sessions, tenants, users
from accounts.services.common import Client, EventStamp, revoked
from accounts.services.issue import (
    TokenPair,
    grace_pair_issue,
    refresh_expiry,
    token_pair_issue,
)
from accounts.signing_keys import keyring
from accounts.tokens import (
    ACCESS,
    REFRESH,
    Claims,
    TokenError,
    token_read,
    token_verify,
    token_verify_as,
)


@dataclass(frozen=True)
class _Outcome:
    session: AuthSession | None = None
    error: tuple[int, str, str] | None = None
    grace: bool = False  # the previous token replayed in the grace window


VERIFIED_CACHE_MAX = 50_000


def claims_of(*, db: Any, token: str, token_use: str) -> Claims:
    """Verify a token's signature and type; an unknown kid reloads the keys once.

    An access token is checked once per process: its signature and claims cannot change,
    so later requests with it cost a dictionary lookup plus the expiry check. Revocation is
    not cached: callers read the auth session on every request.
    """
    keys = keyring(db=db)
    cacheable = token_use == ACCESS and isinstance(token, str)
    if cacheable:
        known: Claims | None = keys.verified.get(token)
        if known is not None:
            if known.expires_at.timestamp() <= time.time():
                raise AccountError(401, "token_expired", "The token is invalid or expired.")
            return known
    try:
        # Nearly every token is signed by the active key: PyJWT parses it once to check
        # it. Any other (an older key's, a refused one) has its header read for the kid,
        # and that path alone gives the errors.
        claims = token_verify_as(
            token=token,
            token_use=token_use,
            kid=keys.active_kid,
            key=keys.public_keys[keys.active_kid],
        )
        if claims is None:
            unverified = token_read(token)
            if unverified.kid not in keys.public_keys:
                keys = keyring(db=db, missing_kid=unverified.kid)
            claims = token_verify(
                unverified=unverified, token_use=token_use, public_keys=keys.public_keys
            )
    except TokenError as error:
        raise AccountError(401, error.code, "The token is invalid or expired.") from None
    if cacheable:
        if len(keys.verified) >= VERIFIED_CACHE_MAX:
            keys.verified.clear()
        keys.verified[token] = claims
    return claims


def token_refresh(*, db: Any, token: str, client: Client) -> TokenPair:
    """Exchange a refresh token for a new pair; exactly one live branch per family.

    The current token rotates (generation + 1). The token rotated just before it, presented
    again within CODITECT_REFRESH_GRACE_S of that rotation (tabs racing, a retry), gets a
    fresh access token and itself back (``TokenPair.grace``), never the live refresh token,
    and logs ``refresh_grace``. Anything older, or that token after the window, revokes the
    whole family and raises 401 token_reused.
    """
    claims = claims_of(db=db, token=token, token_use=REFRESH)
    stamp, new_jti = EventStamp.fresh(client=client), uuid.uuid4()
    now = stamp.at
    grace = timedelta(seconds=settings.CODITECT_REFRESH_GRACE_S)

    def old_token_seen(tr: Any, session: AuthSession, type: str) -> None:
        # The event of an old token presented, in the grace window or not, names its
        # generation.
        stamp.write(
            tr,
            tenant_id=claims.tenant_id,
            type=type,
            user_id=session.user_id,
            generation=claims.generation,
        )

    @fdb_backend.transactional
    def rotate(tr: Any) -> _Outcome:
        sessions = auth_sessions(claims.tenant_id)
        session = sessions.get(tr, claims.session_id)
        if session is None or session.token_family != claims.token_family:
            return _Outcome(error=INVALID_TOKEN)
        if session.revoked_at is not None:
            return _Outcome(error=SESSION_REVOKED)
        if now >= session.absolute_expires_at or now >= session.refresh_expires_at:
            return _Outcome(error=TOKEN_EXPIRED)
        user = users(claims.tenant_id).get(tr, session.user_id)
        tenant = tenants().get(tr, claims.tenant_id)
        if user is None or user.locked:
            return _Outcome(error=SESSION_REVOKED)
        if tenant is None or tenant.status != "active":
            return _Outcome(error=TENANT_SUSPENDED)
        if session.refresh_jti == new_jti:
            return _Outcome(session=session)  # our own rotation, applied before a 1021
        if claims.generation == session.generation and claims.jti == session.refresh_jti:
            rotated = sessions.save(
                tr,
                dataclasses.replace(
                    session,
                    generation=session.generation + 1,
                    refresh_jti=new_jti,
                    previous_jti=session.refresh_jti,
                    rotated_at=now,
                    last_used_at=now,
                    ip=client.ip[:64] or session.ip,
                    user_agent=client.user_agent[:512] or session.user_agent,
                    refresh_expires_at=refresh_expiry(
                        now=now, absolute_expires_at=session.absolute_expires_at
                    ),
                ),
            )
            stamp.write(tr, tenant_id=claims.tenant_id, type="refresh", user_id=session.user_id)
            return _Outcome(session=rotated)
        if (
            claims.generation == session.generation - 1
            and claims.jti == session.previous_jti
            and session.rotated_at is not None
            and now - session.rotated_at <= grace
        ):
            # The window runs from the rotation and nothing here moves it or the family
            # forward, so an old token buys access tokens for seconds at most, and is seen.
            old_token_seen(tr, session, "refresh_grace")
            return _Outcome(session=session, grace=True)
        sessions.save(tr, revoked(session, reason="token_reused", now=now))
        old_token_seen(tr, session, "token_reused")
        return _Outcome(error=TOKEN_REUSED)

    outcome = rotate(db)
    if outcome.error is not None:
        raise fail(outcome.error)
    assert outcome.session is not None
    if outcome.grace:
        return grace_pair_issue(
            db=db,
            tenant_id=claims.tenant_id,
            session=outcome.session,
            now=now,
            spent=token,
            spent_expires_at=claims.expires_at,
        )
    return token_pair_issue(db=db, tenant_id=claims.tenant_id, session=outcome.session, now=now)
