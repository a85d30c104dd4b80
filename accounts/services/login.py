"""Login by email and password: throttled, constant-time for unknown emails, audited."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

import fdb_backend
from accounts.errors import (
    ACCOUNT_LOCKED,
    INVALID_CREDENTIALS,
    TENANT_SUSPENDED,
    AccountError,
    fail,
)
from accounts.passwords import password_check, password_check_dummy
from accounts.records import Tenant, User, email_index, tenants, users
from accounts.services.common import Client, SessionIds, auth_session_open, email_key, event
from accounts.services.issue import TokenPair, token_pair_issue
from accounts.throttle import Bucket, Throttled, throttle_check, throttle_hit, throttle_record
from fdb_backend.records import resolve_unique

HOUR = 3600
MINUTE = 60


@dataclass(frozen=True)
class LoggedIn:
    tokens: TokenPair
    user: User
    tenant: Tenant


def _throttled(error: Throttled) -> AccountError:
    return AccountError(
        429, "throttled", "Too many attempts; try again later.", retry_after=error.retry_after
    )


@fdb_backend.transactional
def _find(tr: Any, key: str) -> tuple[User | None, Tenant | None]:
    pointer = resolve_unique(tr, email_index(), (key,))
    if pointer is None:
        return None, None
    tenant_id, user_id = pointer
    return users(tenant_id).get(tr, user_id), tenants().get(tr, tenant_id)


def user_login(*, db: Any, email: str, password: str, client: Client) -> LoggedIn:
    """Check the password and open a new auth session (one per login per device).

    Unknown email and wrong password raise the same 401 invalid_credentials after the same
    work; a locked account or suspended tenant is only revealed to the right password.
    Raises AccountError 401/403/429.
    """
    key = email_key(email)
    failures = Bucket("login_failures", key, settings.CODITECT_LOGIN_FAILURES_PER_HOUR, HOUR)
    try:
        throttle_hit(
            db=db,
            buckets=[
                Bucket("login_email", key, settings.CODITECT_THROTTLE_LOGIN_PER_EMAIL, MINUTE),
                Bucket(
                    "login_address", client.ip, settings.CODITECT_THROTTLE_LOGIN_PER_ADDRESS, MINUTE
                ),
            ],
        )
        throttle_check(db=db, buckets=[failures])
    except Throttled as error:
        raise _throttled(error) from None

    user, tenant = _find(db, key)
    now = datetime.now(UTC)
    if user is None or tenant is None:
        password_check_dummy(password=password)
        throttle_record(db=db, buckets=[failures])
        raise fail(INVALID_CREDENTIALS)
    check = password_check(encoded=user.password_hash, password=password)
    event_id = uuid.uuid4()
    if not check.ok:
        throttle_record(db=db, buckets=[failures])
        _record_failure(
            db, tenant_id=tenant.id, user_id=user.id, event_id=event_id, now=now, client=client
        )
        raise fail(INVALID_CREDENTIALS)
    if user.locked:
        raise fail(ACCOUNT_LOCKED)
    if tenant.status != "active":
        raise fail(TENANT_SUSPENDED)

    ids = SessionIds.fresh()
    new_hash = check.new_hash

    @fdb_backend.transactional
    def open_session(tr: Any) -> Any:
        current = users(tenant.id).get(tr, user.id)
        if current is None:  # removed between the check and now
            raise fail(INVALID_CREDENTIALS)
        if current.locked:
            raise fail(ACCOUNT_LOCKED)
        if new_hash is not None and current.password_hash == user.password_hash:
            users(tenant.id).save(tr, dataclasses.replace(current, password_hash=new_hash))
        session = auth_session_open(
            tr, tenant_id=tenant.id, ids=ids, user_id=user.id, client=client, now=now
        )
        event(
            tr,
            tenant_id=tenant.id,
            event_id=event_id,
            type="login",
            at=now,
            client=client,
            user_id=user.id,
        )
        return session

    session = open_session(db)
    return LoggedIn(
        tokens=token_pair_issue(db=db, tenant_id=tenant.id, session=session, now=now),
        user=user,
        tenant=tenant,
    )


@fdb_backend.transactional
def _record_failure(
    tr: Any,
    *,
    tenant_id: uuid.UUID,
    user_id: uuid.UUID,
    event_id: uuid.UUID,
    now: datetime,
    client: Client,
) -> None:
    event(
        tr,
        tenant_id=tenant_id,
        event_id=event_id,
        type="login_failed",
        at=now,
        client=client,
        user_id=user_id,
    )
