"""Protections of the auth core that the suite did not pin down (issue 15, mutation testing).

Each test fails when its protection is removed: the upgrade of an old Argon2 hash at login,
the issuer and audience checks of a token signed with the real current key (a forgery with
a fresh key is stopped by the signature first, so it proves nothing about them), and the
dummy Argon2 verification that makes an unknown email cost what a known one does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError

from accounts.passwords import password_check
from tests.accounts.helpers import OTHER_PASSWORD, Api, Persona, problem
from tests.accounts.recovery import challenge_of, enroll, step_start
from tests.accounts.resign import signed_with_the_current_key, stored_user


def parameters(encoded: str) -> str:
    """``m=..,t=..,p=..`` of an encoded Argon2 hash."""
    return encoded.split("$")[3]


# --- the hash made with old parameters is upgraded at the next login -----------------------


def test_login_rehashes_a_hash_made_with_old_parameters(
    api: Api, alice: Persona, settings: Any
) -> None:
    old = stored_user(alice).password_hash
    assert parameters(old) == "m=8,t=1,p=1"
    settings.CODITECT_ARGON2_TIME_COST = 2  # today's parameters are stronger

    response = api.login(alice.email, alice.password)

    assert response.status_code == 200, response.content
    new = stored_user(alice).password_hash
    assert parameters(new) == "m=8,t=2,p=1"
    assert password_check(encoded=new, password=alice.password).ok
    # And the upgraded hash is what the next login checks: no further rehash.
    assert api.login(alice.email, alice.password).status_code == 200
    assert stored_user(alice).password_hash == new


def test_a_wrong_password_leaves_the_old_hash(api: Api, alice: Persona, settings: Any) -> None:
    old = stored_user(alice).password_hash
    settings.CODITECT_ARGON2_TIME_COST = 2
    problem(api.login(alice.email, OTHER_PASSWORD), 401, "invalid_credentials")
    assert stored_user(alice).password_hash == old


def test_a_hash_with_todays_parameters_is_kept(api: Api, alice: Persona) -> None:
    old = stored_user(alice).password_hash
    assert api.login(alice.email, alice.password).status_code == 200
    assert stored_user(alice).password_hash == old


# --- issuer and audience, with the real signing key -----------------------------------------


def test_the_resigning_helper_makes_tokens_the_server_takes(api: Api, alice: Persona) -> None:
    """The control: unchanged claims under the real key pass, so a refusal below is the
    claim's doing and nothing else's."""
    assert api.me(signed_with_the_current_key(alice.access)).status_code == 200
    response = api.refresh(signed_with_the_current_key(alice.refresh))
    assert response.status_code == 200, response.content


CLAIM_FORGERIES: dict[str, dict[str, Any]] = {
    "wrong_issuer": {"iss": "https://evil.example"},
    "wrong_audience": {"aud": "someone-else"},
    "audience_list_without_ours": {"aud": ["someone-else", "another"]},
    "no_issuer": {"iss": None},
    "no_audience": {"aud": None},
}


@pytest.mark.parametrize("forgery", CLAIM_FORGERIES)
def test_access_token_of_another_issuer_or_audience_is_refused(
    api: Api, alice: Persona, forgery: str
) -> None:
    token = signed_with_the_current_key(alice.access, **CLAIM_FORGERIES[forgery])
    problem(api.me(token), 401, "invalid_token")


@pytest.mark.parametrize("forgery", CLAIM_FORGERIES)
def test_refresh_token_of_another_issuer_or_audience_is_refused(
    api: Api, alice: Persona, forgery: str
) -> None:
    token = signed_with_the_current_key(alice.refresh, **CLAIM_FORGERIES[forgery])
    problem(api.refresh(token), 401, "invalid_token")
    assert api.refresh(alice.refresh).status_code == 200  # and it revoked nothing


# --- an unknown email costs one Argon2 verification, like a known one ----------------------


@pytest.fixture
def verified_hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The encoded hashes that PasswordHasher.verify is called with, in order."""
    seen: list[str] = []
    verify = PasswordHasher.verify

    def counted(self: PasswordHasher, encoded: Any, password: Any) -> Any:
        seen.append(encoded if isinstance(encoded, str) else encoded.decode())
        return verify(self, encoded, password)

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    return seen


def test_unknown_email_runs_one_argon2_verification(
    api: Api, alice: Persona, verified_hashes: list[str]
) -> None:
    problem(api.login("nobody@example.com", alice.password), 401, "invalid_credentials")
    assert len(verified_hashes) == 1
    # With today's parameters, so it takes as long as checking a real account's hash.
    assert parameters(verified_hashes[0]) == parameters(stored_user(alice).password_hash)
    with pytest.raises(VerifyMismatchError):
        PasswordHasher().verify(verified_hashes[0], alice.password)


def test_unknown_and_known_email_do_the_same_hashing(
    api: Api, alice: Persona, verified_hashes: list[str]
) -> None:
    problem(api.login(alice.email, OTHER_PASSWORD), 401, "invalid_credentials")
    problem(api.login("nobody@example.com", OTHER_PASSWORD), 401, "invalid_credentials")
    known, unknown = verified_hashes
    assert known == stored_user(alice).password_hash
    assert parameters(unknown) == parameters(known)


def test_unknown_email_dummy_follows_the_settings(
    api: Api, settings: Any, verified_hashes: list[str]
) -> None:
    settings.CODITECT_ARGON2_TIME_COST = 2
    problem(api.login("nobody@example.com", "whatever-password"), 401, "invalid_credentials")
    (dummy,) = verified_hashes
    assert parameters(dummy) == "m=8,t=2,p=1"


def test_the_password_step_of_a_second_factor_login_rehashes_too(
    api: Api, alice: Persona, settings: Any, time_machine: Any
) -> None:
    moment = step_start(datetime.now(UTC))
    time_machine.move_to(moment, tick=False)
    enroll(api, alice, moment)
    settings.CODITECT_ARGON2_TIME_COST = 2
    challenge_of(api, alice)  # the right password: 401 mfa_required
    new = stored_user(alice).password_hash
    assert parameters(new) == "m=8,t=2,p=1"
    assert password_check(encoded=new, password=alice.password).ok
