"""API tokens (CONTRACT §7): personal, scoped, revocable credentials for agents and scripts.

A token is ``cdt_`` + the tenant id (32 hex) + the token id (32 hex) + a 43-character base62
secret (256 bits): a fixed shape that secret scanners can match
(``cdt_[0-9a-f]{64}[0-9A-Za-z]{43}``), and that names where its record is, so checking one is
a single read. Only the SHA-256 digest of the whole token is stored, compared with
``hmac.compare_digest``; a slow password hash would add nothing for a 256-bit random secret
(nobody can guess it, however fast the hash) and would cost every request an Argon2 run.

Revoking deletes the record (and with it the token, from the next request on); the auth event
log keeps who made it, who revoked it and why.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
import string
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import fdb_backend
from accounts.errors import INVALID_TOKEN, NOT_FOUND, AccountError, fail
from accounts.records import SCOPES, ApiToken, Tenant, User, api_tokens, tenants, users
from accounts.services.common import Client, EventStamp
from accounts.services.principal import (
    API_TOKEN,
    Principal,
    credential_problem,
    principal_authenticate,
    principal_require_manager,
    principal_require_user,
)
from accounts.services.quotas import quota_charge
from fdb_backend.records import Page, get_together

PREFIX = "cdt_"
NAME_MAX = 100
_SECRET_ALPHABET = string.ascii_letters + string.digits
_SECRET_LENGTH = 43  # 43 base62 characters: 256 bits
_SHAPE = re.compile(r"cdt_([0-9a-f]{32})([0-9a-f]{32})[0-9A-Za-z]{43}")
# last_used_at is written at most this often per token, so using one stays a read.
_TOUCH_EVERY = timedelta(seconds=60)
# The addresses a token was recently used from; use from any other is an auth event.
_ADDRESSES_KEPT = 10


@dataclass(frozen=True)
class IssuedApiToken:
    token: str  # shown once; only its digest is stored
    record: ApiToken


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token(tenant_id: uuid.UUID, token_id: uuid.UUID) -> str:
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(_SECRET_LENGTH))
    return f"{PREFIX}{tenant_id.hex}{token_id.hex}{secret}"


def _scopes_checked(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise AccountError(
            400, "invalid", "Unknown scope; the scopes are: " + ", ".join(SCOPES), attr="scopes"
        )
    return [s for s in SCOPES if s in scopes]  # the canonical order, each once


def api_token_create(
    *,
    db: Any,
    principal: Principal,
    name: str,
    scopes: list[str],
    expires_at: datetime | None = None,
    client: Client,
) -> IssuedApiToken:
    """A new API token of the caller, acting as them within ``scopes``.

    Only the user themselves makes one (an API token cannot make tokens: 403
    ``insufficient_scope``). ``expires_at`` must lie in the future (None: until revoked).
    Counts against the tenant's API token quota (403 ``quota_exceeded`` past it).
    """
    principal_require_user(principal=principal)
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise AccountError(400, "invalid", "name must be 1 to 100 characters.", attr="name")
    wanted = _scopes_checked(scopes)
    stamp, token_id = EventStamp.fresh(client=client), uuid.uuid4()
    now = stamp.at
    if expires_at is not None and expires_at <= now:
        raise AccountError(400, "invalid", "expires_at must be in the future.", attr="expires_at")
    token = _new_token(principal.tenant_id, token_id)
    record = ApiToken(
        id=token_id,
        user_id=principal.user_id,
        name=name,
        scopes=wanted,
        digest=token_digest(token),
        created_at=now,
        expires_at=expires_at.astimezone(UTC) if expires_at is not None else None,
    )

    @fdb_backend.transactional
    def create(tr: Any) -> ApiToken:
        tokens = api_tokens(principal.tenant_id)
        existing = tokens.get(tr, token_id)
        if existing is not None:  # our own commit, applied before a 1021: counted once
            return existing
        quota_charge(tr, tenant_id=principal.tenant_id, kind="api_tokens", delta=1)
        saved = tokens.save(tr, record)
        stamp.write_as(
            tr,
            principal,
            type="api_token_created",
            api_token_id=str(token_id),
            name=name,
            scopes=wanted,
        )
        return saved

    return IssuedApiToken(token=token, record=create(db))


def api_token_list(
    *, db: Any, principal: Principal, limit: int = 50, cursor: str | None = None
) -> Page[ApiToken]:
    """The caller's own API tokens (never their secrets)."""
    principal_require_user(principal=principal)
    return api_tokens(principal.tenant_id).list_by_index(
        db, "api_tokens_by_user", (principal.user_id,), limit=limit, continuation=cursor
    )


def api_tokens_of_tenant(
    *, db: Any, principal: Principal, limit: int = 50, cursor: str | None = None
) -> Page[ApiToken]:
    """Every API token of the caller's tenant: owners and admins only."""
    principal_require_user(principal=principal)
    principal_require_manager(principal=principal)
    return api_tokens(principal.tenant_id).list_by_key(db, limit=limit, continuation=cursor)


def api_tokens_of_user(*, db: Any, tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[ApiToken]:
    """A user's API tokens, for support staff (who reach into a tenant by id)."""
    return api_tokens(tenant_id).list_by_index(db, "api_tokens_by_user", (user_id,)).records


def api_token_revoke(
    *, db: Any, principal: Principal, token_id: uuid.UUID, client: Client, any_user: bool = False
) -> None:
    """Revoke one of the caller's API tokens (``any_user``: any token of the caller's tenant,
    for its owners and admins). AccountError 404 when there is no such token for them."""
    principal_require_user(principal=principal)
    if any_user:
        principal_require_manager(principal=principal)
    owner = None if any_user else principal.user_id
    _revoke(
        db,
        tenant_id=principal.tenant_id,
        token_id=token_id,
        owner=owner,
        by=principal.user_id,
        client=client,
        reason="",
    )


def api_token_revoke_by_staff(
    *, db: Any, tenant_id: uuid.UUID, token_id: uuid.UUID, reason: str
) -> ApiToken:
    """Revoke any API token of a tenant (support staff, who audit who called it)."""
    return _revoke(
        db,
        tenant_id=tenant_id,
        token_id=token_id,
        owner=None,
        by=None,
        client=Client(),
        reason=reason,
    )


def _revoke(
    db: Any,
    *,
    tenant_id: uuid.UUID,
    token_id: uuid.UUID,
    owner: uuid.UUID | None,
    by: uuid.UUID | None,
    client: Client,
    reason: str,
) -> ApiToken:
    stamp = EventStamp.fresh(client=client)

    @fdb_backend.transactional
    def revoke(tr: Any) -> ApiToken:
        tokens = api_tokens(tenant_id)
        found = tokens.get(tr, token_id)
        if found is None or (owner is not None and found.user_id != owner):
            raise AccountError(*NOT_FOUND)
        tokens.delete(tr, token_id)
        quota_charge(tr, tenant_id=tenant_id, kind="api_tokens", delta=-1)
        stamp.write(
            tr,
            tenant_id=tenant_id,
            type="api_token_revoked",
            user_id=found.user_id,
            api_token_id=str(token_id),
            name=found.name,
            revoked_by=str(by) if by is not None else "staff",
            reason=reason,
        )
        return found

    found: ApiToken = revoke(db)
    return found


def revoke_user_api_tokens(tr: Any, *, tenant_id: uuid.UUID, user_id: uuid.UUID) -> int:
    """Delete every API token of a user inside ``tr`` (the user is being removed)."""
    tokens = api_tokens(tenant_id)
    found = tokens.list_by_index(tr, "api_tokens_by_user", (user_id,)).records
    for token in found:
        tokens.delete(tr, token.id)
    quota_charge(tr, tenant_id=tenant_id, kind="api_tokens", delta=-len(found))
    return len(found)


# --- authentication --------------------------------------------------------------------


def bearer_authenticate(*, db: Any, token: str, client: Client | None = None) -> Principal:
    """The caller of a bearer token, an access token or an API token (``cdt_``): the one
    way REST requests and sockets authenticate. AccountError 401/403 when it may not act."""
    if token.startswith(PREFIX):
        return api_token_authenticate(db=db, token=token, client=client or Client())
    return principal_authenticate(db=db, token=token)


def api_token_authenticate(*, db: Any, token: str, client: Client) -> Principal:
    """The user an API token acts for, with the token's scopes; checked like an access
    token on every request (revocation, expiry, lock, removal, suspension)."""
    match = _SHAPE.fullmatch(token)
    if match is None:
        raise fail(INVALID_TOKEN)
    tenant_id, token_id = uuid.UUID(match[1]), uuid.UUID(match[2])
    record, user, tenant = _load(db, tenant_id, token_id)
    if record is None or not hmac.compare_digest(record.digest, token_digest(token)):
        raise fail(INVALID_TOKEN)
    now = datetime.now(UTC)
    problem = credential_problem(API_TOKEN, record, user, tenant, now=now)
    if problem is not None:
        raise problem
    assert user is not None and tenant is not None
    address = client.ip
    new_address = bool(address) and address not in record.addresses
    if new_address or record.last_used_at is None or now - record.last_used_at >= _TOUCH_EVERY:
        stamp = EventStamp.fresh(client=client, at=now)
        record = _touch(db, tenant_id, token_id, address, stamp) or record
    return Principal(
        user=user, tenant=tenant, session=None, api_token=record, expires_at=record.expires_at
    )


@fdb_backend.transactional
def _load(
    tr: Any, tenant_id: uuid.UUID, token_id: uuid.UUID
) -> tuple[ApiToken | None, User | None, Tenant | None]:
    """The token, its user and its tenant in one snapshot transaction."""
    record = api_tokens(tenant_id).get(tr.snapshot, token_id)
    if record is None:
        return None, None, None
    user, tenant = get_together(
        tr.snapshot, [(users(tenant_id), record.user_id), (tenants(), tenant_id)]
    )
    return record, user, tenant


@fdb_backend.transactional
def _touch(
    tr: Any,
    tenant_id: uuid.UUID,
    token_id: uuid.UUID,
    address: str,
    stamp: EventStamp,
) -> ApiToken | None:
    """Record a use: ``last_used_at``, and the address (an auth event the first time)."""
    tokens = api_tokens(tenant_id)
    token = tokens.get(tr, token_id)
    if token is None:
        return None
    addresses = token.addresses
    if address and address not in addresses:
        addresses = [address, *addresses][:_ADDRESSES_KEPT]
        stamp.write(
            tr,
            tenant_id=tenant_id,
            type="api_token_used_new_address",
            user_id=token.user_id,
            api_token_id=str(token.id),
            name=token.name,
        )
    saved: ApiToken = tokens.save(
        tr, dataclasses.replace(token, last_used_at=stamp.at, addresses=addresses)
    )
    return saved
