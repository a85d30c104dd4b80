"""Tokens re-signed with the server's own active key, and the stored user: for tests that
must get past the signature to reach the checks behind it."""

from __future__ import annotations

from typing import Any

import jwt

import fdb_backend
from accounts.records import User, users
from accounts.signing_keys import keyring
from tests.accounts.helpers import Persona, token_parts


def stored_user(persona: Persona) -> User:
    user = users(persona.tenant_uuid).get(fdb_backend.get_database(), persona.user_uuid)
    assert user is not None
    return user


def signed_with_the_current_key(
    token: str, header: dict[str, Any] | None = None, **changes: Any
) -> str:
    """``token`` re-signed by the server's own active key, with claims changed (a value of
    None removes the claim) and header fields changed: only the checks behind the
    signature can refuse it."""
    original, payload = token_parts(token)
    keys = keyring(db=fdb_backend.get_database())
    assert original["kid"] == keys.active_kid
    claims = {**payload, **changes}
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(
        claims, keys.active_key, algorithm="EdDSA", headers={**original, **(header or {})}
    )
