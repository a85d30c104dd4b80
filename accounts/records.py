"""Record types of the accounts app and where they live (DESIGN §3.3, docs/keyspace.md)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from accounts import audit_keys
from fdb_backend import keyspace
from fdb_backend.records import Collection, Index, Record, collection, epoch_micros

Role = Literal["owner", "admin", "member", "viewer"]
# Lowest first: a role may do what the roles before it may (docs/accounts.md "Roles").
ROLES: tuple[Role, ...] = ("viewer", "member", "admin", "owner")
# Who may write the tenant's workspace data (sessions, events, locks): not a viewer.
WRITER_ROLES: frozenset[str] = frozenset({"member", "admin", "owner"})
MANAGER_ROLES: frozenset[str] = frozenset({"admin", "owner"})


def role_rank(role: str) -> int:
    """0 for a viewer up to 3 for an owner: an inviter grants at most their own rank."""
    ranks: tuple[str, ...] = ROLES
    return ranks.index(role)


# What an API token may be allowed (CONTRACT §7); a user's own access token allows them all.
SCOPES: tuple[str, ...] = ("sessions:read", "sessions:write", "events:publish", "locks")


@dataclass(frozen=True, kw_only=True)
class Tenant(Record):
    collection: ClassVar[str] = "tenants"
    indexes: ClassVar[tuple[Index, ...]] = (
        Index("tenant_by_slug", lambda t: (t.slug,), unique=True),
    )

    id: uuid.UUID
    name: str
    slug: str
    status: Literal["active", "suspended"] = "active"
    status_reason: str = ""
    # Members must confirm their email before login (PATCH /api/v5/tenant/settings/).
    require_email_verification: bool = False
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class User(Record):
    collection: ClassVar[str] = "users"
    # Emails are unique across tenants: login has no tenant until the email names one.
    indexes: ClassVar[tuple[Index, ...]] = (
        Index("user_by_email", lambda u: (u.email_key,), unique=True),
    )

    id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    email_key: str
    display_name: str = ""
    password_hash: str
    role: Role
    locked: bool = False
    locked_reason: str = ""
    created_at: datetime
    password_changed_at: datetime
    email_verified_at: datetime | None = None
    # One-time tokens and the second factor live on the user, so they go wherever the user
    # goes (removal, tenant export and delete) and a user never holds more than one of each.
    # Tokens are stored as SHA-256 digests only (accounts/services/onetime.py).
    email_token_hash: str = ""
    email_token_expires_at: datetime | None = None
    reset_token_hash: str = ""
    reset_token_expires_at: datetime | None = None
    mfa_challenge_hash: str = ""
    mfa_challenge_expires_at: datetime | None = None
    # TOTP: the secret sealed with AES-GCM under a key derived from SECRET_KEY (empty: none).
    # Set with totp_enabled_at None while an enrolment awaits its first code.
    totp_secret: bytes = b""
    totp_enabled_at: datetime | None = None
    totp_last_step: int = 0  # codes of this time step and earlier are spent
    recovery_codes: list[str] = field(default_factory=list)  # digests of the unused ones


# Invitations stored before they had ids read with this one, replaced by an id derived
# from their token hash (see Invitation.__post_init__).
NO_ID = uuid.UUID(int=0)
_LEGACY_INVITATION_IDS = uuid.UUID("5f0c6d1e-8f53-4a49-9d0c-2b1f6e7a9c31")


@dataclass(frozen=True, kw_only=True)
class Invitation(Record):
    collection: ClassVar[str] = "invitations"
    key_fields: ClassVar[tuple[str, ...]] = ("token_hash",)
    expires_field: ClassVar[str | None] = "expires_at"
    # The API names an invitation by its id (GET/DELETE /api/v5/tenant/invitations/), never
    # by its token's hash.
    indexes: ClassVar[tuple[Index, ...]] = (
        Index("invitations_by_id", lambda i: (i.id,), unique=True),
    )

    token_hash: str  # SHA-256 of the secret part; the token itself is shown once
    id: uuid.UUID = NO_ID
    email: str
    role: Role
    created_by: uuid.UUID
    created_at: datetime
    expires_at: datetime

    def __post_init__(self) -> None:
        # One stored before ids: the same id on every read, from its hash (its index entry
        # comes with `storage check --repair`, or it expires as it is).
        if self.id == NO_ID:
            object.__setattr__(self, "id", uuid.uuid5(_LEGACY_INVITATION_IDS, self.token_hash))


@dataclass(frozen=True, kw_only=True)
class AuthSession(Record):
    """One login on one device: the server side of a refresh-token family."""

    collection: ClassVar[str] = "auth_sessions"
    indexes: ClassVar[tuple[Index, ...]] = (
        Index("auth_sessions_by_user", lambda s: (s.user_id,)),
        Index("auth_sessions_by_family", lambda s: (s.token_family,), unique=True),
    )

    id: uuid.UUID
    user_id: uuid.UUID
    token_family: uuid.UUID
    generation: int = 1
    refresh_jti: uuid.UUID
    previous_jti: uuid.UUID | None = None
    rotated_at: datetime | None = None
    refresh_expires_at: datetime
    ip: str = ""
    user_agent: str = ""
    created_at: datetime
    last_used_at: datetime
    absolute_expires_at: datetime
    revoked_at: datetime | None = None
    revoked_reason: str = ""


@dataclass(frozen=True, kw_only=True)
class SigningKey(Record):
    """A JWT signing key; the private half is encrypted with a key derived from SECRET_KEY."""

    collection: ClassVar[str] = "signing_keys"
    key_fields: ClassVar[tuple[str, ...]] = ("kid",)

    kid: str
    status: Literal["active", "verify", "retired"]
    public_key: bytes  # raw Ed25519 public key
    private_key: bytes  # nonce + AES-GCM ciphertext of the raw private key
    created_at: datetime
    retired_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ApiToken(Record):
    """A personal, scoped API token (docs/accounts.md "API tokens"). The token names its
    tenant and id, so checking one is a ``get``; only the SHA-256 digest of its secret is
    stored. Revoking deletes the record; the auth event log keeps the history."""

    collection: ClassVar[str] = "api_tokens"
    indexes: ClassVar[tuple[Index, ...]] = (Index("api_tokens_by_user", lambda t: (t.user_id,)),)

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    scopes: list[str]
    digest: str  # hex SHA-256 of the secret part of the token
    created_at: datetime
    expires_at: datetime | None = None  # None: until revoked
    last_used_at: datetime | None = None
    # The client addresses of its recent uses, newest first: use from another one is an
    # auth event (api_token_used_new_address).
    addresses: list[str] = field(default_factory=list)


def tenants() -> Collection[Tenant]:
    return collection(Tenant, keyspace.GLOBAL)


def signing_keys() -> Collection[SigningKey]:
    return collection(SigningKey, keyspace.GLOBAL)


def users(tenant_id: uuid.UUID) -> Collection[User]:
    return collection(User, keyspace.tenant(tenant_id))


def invitations(tenant_id: uuid.UUID) -> Collection[Invitation]:
    return collection(Invitation, keyspace.tenant(tenant_id))


def auth_sessions(tenant_id: uuid.UUID) -> Collection[AuthSession]:
    return collection(AuthSession, keyspace.tenant(tenant_id))


def api_tokens(tenant_id: uuid.UUID) -> Collection[ApiToken]:
    return collection(ApiToken, keyspace.tenant(tenant_id))


def email_index() -> Any:
    return keyspace.GLOBAL.index("user_by_email")


# --- the auth event log: ("t", tenant_id, "auth_events", at_micros, event_id) -> JSON ------


@dataclass(frozen=True)
class AuthEvent:
    id: uuid.UUID
    type: str
    at: datetime
    user_id: uuid.UUID | None
    ip: str
    user_agent: str
    data: dict[str, Any]


def auth_event_write(tr: Any, *, tenant_id: uuid.UUID, event: AuthEvent) -> None:
    """Append ``event``; its id comes from outside, so a retried transaction rewrites it."""
    space = keyspace.tenant(tenant_id).space("auth_events")
    body = {
        "type": event.type,
        "at": event.at.isoformat(),
        "user_id": str(event.user_id) if event.user_id else None,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "data": event.data,
    }
    at_micros = epoch_micros(event.at)
    tr[space.pack((at_micros, event.id))] = json.dumps(body, separators=(",", ":")).encode()
    # Its index entries (by user, by type, by both), in the same transaction.
    for key in audit_keys.entry_keys(
        tenant_id, at_micros=at_micros, event_id=event.id, user_id=event.user_id, type=event.type
    ):
        tr[key] = b""


def auth_event_decode(tenant_id: uuid.UUID, key: bytes, value: bytes) -> AuthEvent:
    """The event stored at ``key`` (a key of the tenant's ``auth_events`` space)."""
    return _auth_event_of(keyspace.tenant(tenant_id).space("auth_events"), key, json.loads(value))


def auth_event_read(
    tr: Any,
    *,
    tenant_id: uuid.UUID,
    limit: int,
    user_id: uuid.UUID | None = None,
    type: str | None = None,
) -> list[AuthEvent]:
    """The newest ``limit`` events, newest first; only ``user_id``'s and of ``type`` when
    given (read from the log's indexes: accounts/audit_keys.py)."""
    rows = audit_keys.events_page(tr, tenant_id=tenant_id, user_id=user_id, type=type, limit=limit)
    return [auth_event_decode(tenant_id, key, value) for key, value in rows]


# --- quotas: ("t", tenant_id, "quotas", kind, "used" | "limit" | "gate") and
# ("t", tenant_id, "quotas", kind, "lease", limit, holder) -> 8-byte signed LE

# What a tenant's quotas count (docs/accounts.md "Quotas").
QUOTA_KINDS: tuple[str, ...] = ("sessions", "bytes", "api_tokens")


def quota_range(tenant_id: uuid.UUID, kind: str) -> keyspace.KeyRange:
    """Both keys of one quota: its usage counter and its override (one read gets both)."""
    r = keyspace.tenant(tenant_id).space("quotas").range((kind,))
    return keyspace.KeyRange(r.start, r.stop)


def quotas_range(tenant_id: uuid.UUID) -> keyspace.KeyRange:
    r = keyspace.tenant(tenant_id).space("quotas").range()
    return keyspace.KeyRange(r.start, r.stop)


def quota_used_key(tenant_id: uuid.UUID, kind: str) -> bytes:
    """The usage counter of ``kind``: changed only by atomic adds in the writes' own
    transactions (and set by repairs and imports)."""
    return bytes(keyspace.tenant(tenant_id).space("quotas").pack((kind, "used")))


def quota_limit_key(tenant_id: uuid.UUID, kind: str) -> bytes:
    """The tenant's override of ``kind``'s quota; absent: the setting's default."""
    return bytes(keyspace.tenant(tenant_id).space("quotas").pack((kind, "limit")))


def quota_gate_key(tenant_id: uuid.UUID, kind: str) -> bytes:
    """A counter that every lease grant and take-back of ``kind`` adds to: a grant reads it
    with a conflict, so two grants (or a grant and a take-back) never commit side by side."""
    return bytes(keyspace.tenant(tenant_id).space("quotas").pack((kind, "gate")))


def quota_lease_key(tenant_id: uuid.UUID, kind: str, limit: int, holder: uuid.UUID) -> bytes:
    """What one holder (a thread of a process) has leased of ``kind``'s quota while the
    quota was ``limit`` and not yet used: 8-byte signed little-endian."""
    return bytes(keyspace.tenant(tenant_id).space("quotas").pack((kind, "lease", limit, holder)))


def quota_leases_range(tenant_id: uuid.UUID, kind: str) -> keyspace.KeyRange:
    """Every lease of ``kind``'s quota (a quota change takes them all back)."""
    r = keyspace.tenant(tenant_id).space("quotas").range((kind, "lease"))
    return keyspace.KeyRange(r.start, r.stop)


def quota_key_parts(tenant_id: uuid.UUID, key: bytes) -> tuple[str, str]:
    """``(kind, "used" | "limit" | "gate" | "lease")`` of a key of the tenant's quotas
    space."""
    kind, part, *_holder = keyspace.tenant(tenant_id).space("quotas").unpack(key)
    return kind, part


# --- throttle counters: ("throttle", scope, subject_digest, window_s, window) -> int ----------


def throttle_key(*, scope: str, subject_digest: str, window_s: int, window: int) -> bytes:
    """The window's length is in the key, so a purge can tell when the window ended."""
    return bytes(keyspace.GLOBAL.space("throttle").pack((scope, subject_digest, window_s, window)))


def throttle_ended(
    tr: Any, *, now: float, after: bytes | None, limit: int
) -> tuple[list[bytes], bytes | None]:
    """Keys of counters whose window ended before ``now``, scanning ``limit`` keys after
    ``after``; returns them and where to continue (None at the end)."""
    space = keyspace.GLOBAL.space("throttle")
    r = space.range()
    begin = after + b"\x00" if after is not None else r.start
    rows = tr.get_range(begin, r.stop, limit=limit)
    ended = []
    for kv in rows:
        parts = space.unpack(kv.key)
        if len(parts) != 4 or (parts[3] + 1) * parts[2] < now:
            ended.append(kv.key)
    return ended, (rows[-1].key if len(rows) == limit else None)


# --- one person's auth events: read for their export, stripped of client details when they
# --- are erased (the events stay for the tenant's audit) --------------------------------------


def auth_events_of_user(
    tr: Any, *, tenant_id: uuid.UUID, user_id: uuid.UUID, after: bytes | None, limit: int
) -> tuple[list[AuthEvent], bytes | None]:
    """The events of ``user_id`` among ``limit`` keys of the log after ``after``, oldest
    first; returns them and where to continue (None at the end)."""
    space = keyspace.tenant(tenant_id).space("auth_events")
    rows = _auth_event_rows(tr, space, after, limit)
    uid = str(user_id)
    found = [_auth_event_of(space, key, body) for key, body in rows if body.get("user_id") == uid]
    return found, (rows[-1][0] if len(rows) == limit else None)


def auth_events_strip_client(
    tr: Any, *, tenant_id: uuid.UUID, user_id: uuid.UUID, after: bytes | None, limit: int
) -> tuple[int, bytes | None]:
    """Blank the IP address and user agent of ``user_id``'s events among ``limit`` keys of
    the log after ``after`` (the key, so any index of the log, stays); returns how many were
    changed and where to continue (None at the end). Idempotent."""
    space = keyspace.tenant(tenant_id).space("auth_events")
    rows = _auth_event_rows(tr, space, after, limit)
    uid, changed = str(user_id), 0
    for key, body in rows:
        if body.get("user_id") == uid and (body.get("ip") or body.get("user_agent")):
            body.update(ip="", user_agent="")
            tr[key] = json.dumps(body, separators=(",", ":")).encode()
            changed += 1
    return changed, (rows[-1][0] if len(rows) == limit else None)


def _auth_event_rows(
    tr: Any, space: Any, after: bytes | None, limit: int
) -> list[tuple[bytes, dict[str, Any]]]:
    r = space.range()
    begin = after + b"\x00" if after is not None else r.start
    return [(kv.key, json.loads(kv.value)) for kv in tr.get_range(begin, r.stop, limit=limit)]


def _auth_event_of(space: Any, key: bytes, body: dict[str, Any]) -> AuthEvent:
    """The event of a decoded ``body`` stored at ``key`` of the log's ``space``."""
    _, event_id = space.unpack(key)
    return AuthEvent(
        id=event_id,
        type=body["type"],
        at=datetime.fromisoformat(body["at"]),
        user_id=uuid.UUID(body["user_id"]) if body["user_id"] else None,
        ip=body["ip"],
        user_agent=body["user_agent"],
        data=body["data"],
    )
