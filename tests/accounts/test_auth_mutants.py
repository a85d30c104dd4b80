"""Tests that kill mutants which survived the suite (bench/mutation.py, docs/security.md,
"Mutation testing"): each pins a check of the auth core that nothing else distinguished."""

from __future__ import annotations

from typing import Any

import pytest

from tests.accounts.helpers import Api, Persona, problem
from tests.accounts.resign import signed_with_the_current_key

# --- accounts/tokens.py ----------------------------------------------------------------------


def of_length(token: str, length: int) -> str:
    """``token`` re-signed by the real key, padded with a claim to exactly ``length``."""
    for header_pad in range(4):
        header = {"x": "y" * header_pad} if header_pad else {}
        for pad in range(length):
            forged = signed_with_the_current_key(token, header=header, pad="p" * pad)
            if len(forged) == length:
                return forged
            if len(forged) > length:
                break
    raise AssertionError(length)


def test_a_token_of_4096_characters_is_read(api: Api, alice: Persona) -> None:
    assert api.me(of_length(alice.access, 4096)).status_code == 200


def test_a_token_longer_than_4096_characters_is_refused_unread(api: Api, alice: Persona) -> None:
    problem(api.me(of_length(alice.access, 4097)), 401, "invalid_token")


@pytest.mark.parametrize("token_use", ["refresh", "zzz", None])
def test_access_token_claiming_another_use_is_refused(
    api: Api, alice: Persona, token_use: str | None
) -> None:
    """The ``token_use`` claim is checked on its own, behind the ``typ`` header."""
    problem(api.me(signed_with_the_current_key(alice.access, token_use=token_use)), 401)


@pytest.mark.parametrize("token_use", ["access", "zzz", None])
def test_refresh_token_claiming_another_use_is_refused(
    api: Api, alice: Persona, token_use: str | None
) -> None:
    forged = signed_with_the_current_key(alice.refresh, token_use=token_use)
    problem(api.refresh(forged), 401, "invalid_token")


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "not-a-uuid"},
        {"tenant_id": "not-a-uuid"},
        {"session_id": 12},
        {"jti": ["x"]},
        {"iat": "yesterday"},
    ],
)
def test_signed_token_with_malformed_claims_is_invalid_not_an_error(
    api: Api, alice: Persona, claims: dict[str, Any]
) -> None:
    problem(api.me(signed_with_the_current_key(alice.access, **claims)), 401, "invalid_token")
    forged = signed_with_the_current_key(alice.refresh, **claims)
    problem(api.refresh(forged), 401, "invalid_token")
