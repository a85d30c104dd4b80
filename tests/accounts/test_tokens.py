"""POST /api/v5/auth/refresh: rotation, reuse detection, lifetimes; tokens that must never pass."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.test import Client

from accounts import selectors
from tests.accounts.helpers import (
    AUTH,
    PASSWORD,
    Api,
    Persona,
    assert_pair,
    b64url,
    b64url_decode,
    compact,
    hs256,
    problem,
    token_parts,
)


def rotate(api: Api, refresh: str) -> dict[str, Any]:
    response = api.refresh(refresh)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    assert_pair(body)
    return body


@pytest.mark.parametrize("path", [AUTH + "refresh", AUTH + "refresh/"])
def test_refresh_returns_a_new_pair(api: Api, alice: Persona, path: str) -> None:
    response = api.post(path, {"refresh": alice.refresh})
    assert response.status_code == 200, response.content
    body = response.json()
    assert_pair(body)
    assert body["refresh"] != alice.refresh
    me = api.me(body["access"])
    assert me.status_code == 200, me.content
    assert me.json()["id"] == alice.user_id


def test_refresh_keeps_the_auth_session(api: Api, alice: Persona) -> None:
    before = alice.session_id(api)
    pair = rotate(api, alice.refresh)
    assert alice.session_id(api, pair["access"]) == before
    sessions = api.get(AUTH + "sessions", pair["access"]).json()["results"]
    assert len(sessions) == 1


def test_rotated_token_within_grace_gets_an_access_token_and_not_the_live_refresh(
    api: Api, alice: Persona, time_machine
) -> None:
    """Issue 15, finding 6: a replay in the grace window (two tabs racing, a retry) is
    answered with a fresh access token and the spent refresh token handed back, never the
    live one, so whoever holds an old token cannot take the session over."""
    time_machine.move_to(datetime.now(UTC))
    second = rotate(api, alice.refresh)
    time_machine.shift(timedelta(seconds=5))
    again = rotate(api, alice.refresh)
    assert api.me(again["access"]).status_code == 200
    assert again["refresh"] == alice.refresh  # the spent token, not the live one
    assert again["refresh"] != second["refresh"]
    assert token_parts(again["refresh"])[1]["gen"] == 1
    # The live branch is untouched: the token that rotated in rotates on.
    third = rotate(api, second["refresh"])
    assert api.me(third["access"]).status_code == 200


def test_a_grace_replay_is_logged(api: Api, alice: Persona, time_machine) -> None:
    time_machine.move_to(datetime.now(UTC))
    rotate(api, alice.refresh)
    rotate(api, alice.refresh)
    logged = [
        event
        for event in selectors.auth_event_list(tenant_id=alice.tenant_uuid, limit=20)
        if event.type == "refresh_grace"
    ]
    assert len(logged) == 1, logged
    assert logged[0].data == {"generation": 1}
    assert str(logged[0].user_id) == alice.user_id


def test_the_grace_answer_does_not_chain(api: Api, alice: Persona, time_machine) -> None:
    """Replaying the grace answer's token never reaches a newer generation or a longer
    window: once the window of the rotation is over it is reuse, and the family dies."""
    time_machine.move_to(datetime.now(UTC))
    second = rotate(api, alice.refresh)
    held = alice.refresh
    for _ in range(3):
        time_machine.shift(timedelta(seconds=3))
        answer = rotate(api, held)
        assert answer["refresh"] == alice.refresh
        held = answer["refresh"]
    time_machine.shift(timedelta(seconds=2))  # 11 s after the rotation
    problem(api.refresh(held), 401, "token_reused")
    problem(api.refresh(second["refresh"]), 401, "session_revoked")
    problem(api.me(answer["access"]), 401)


def test_two_generations_back_revokes_the_family(api: Api, alice: Persona) -> None:
    second = rotate(api, alice.refresh)
    third = rotate(api, second["refresh"])
    problem(api.refresh(alice.refresh), 401, "token_reused")
    problem(api.refresh(third["refresh"]), 401, "session_revoked")
    problem(api.me(third["access"]), 401)
    problem(api.me(second["access"]), 401)
    problem(api.me(alice.access), 401)


def test_just_rotated_token_after_grace_revokes_the_family(
    api: Api, alice: Persona, time_machine
) -> None:
    time_machine.move_to(datetime.now(UTC))
    second = rotate(api, alice.refresh)
    time_machine.shift(timedelta(seconds=11))
    problem(api.refresh(alice.refresh), 401, "token_reused")
    problem(api.refresh(second["refresh"]), 401, "session_revoked")
    problem(api.me(second["access"]), 401)


def test_grace_window_is_a_setting(api: Api, alice: Persona, settings, time_machine) -> None:
    settings.CODITECT_REFRESH_GRACE_S = 60
    time_machine.move_to(datetime.now(UTC))
    rotate(api, alice.refresh)
    time_machine.shift(timedelta(seconds=30))
    again = rotate(api, alice.refresh)
    time_machine.shift(timedelta(seconds=31))
    problem(api.refresh(alice.refresh), 401, "token_reused")
    problem(api.refresh(again["refresh"]), 401, "session_revoked")


def test_reuse_revokes_only_that_family(api: Api, alice: Persona, bob: Persona) -> None:
    laptop = api.login(alice.email, alice.password).json()
    second = rotate(api, alice.refresh)
    rotate(api, second["refresh"])
    problem(api.refresh(alice.refresh), 401, "token_reused")
    assert api.me(laptop["access"]).status_code == 200
    assert api.refresh(laptop["refresh"]).status_code == 200
    assert api.me(bob.access).status_code == 200


def test_access_token_is_not_a_refresh_token(api: Api, alice: Persona) -> None:
    problem(api.refresh(alice.access), 401, "invalid_token")
    assert api.refresh(alice.refresh).status_code == 200  # and it revoked nothing


def test_refresh_token_is_not_an_access_token(api: Api, alice: Persona) -> None:
    response = api.me(alice.refresh)
    problem(response, 401, "invalid_token")
    assert response["WWW-Authenticate"].startswith("Bearer")


# --- forged and broken tokens -------------------------------------------------------------


def jwks_keys(api: Api) -> list[dict[str, Any]]:
    response = api.get(AUTH + "jwks")
    assert response.status_code == 200, response.content
    keys: list[dict[str, Any]] = response.json()["keys"]
    return keys


def broken_tokens(api: Api, token: str) -> dict[str, str]:
    """Variants of a real token that must all be refused with invalid_token."""
    header, payload = token_parts(token)
    public_x = b64url_decode(next(k for k in jwks_keys(api) if k["kid"] == header["kid"])["x"])
    fresh = Ed25519PrivateKey.generate()

    def forged(**changes: Any) -> str:
        return jwt.encode(
            {**payload, **changes}, fresh, algorithm="EdDSA", headers={"kid": header["kid"]}
        )

    head, body, signature = token.split(".")
    other_body = compact(header, {**payload, "sub": str(uuid.uuid4())}).split(".")[1]
    return {
        "garbage": "not-a-jwt",
        "empty_parts": "..",
        "truncated": token[: len(token) // 2],
        "signature_cut": head + "." + body + "." + signature[:-4],
        "no_signature": head + "." + body + ".",
        "payload_swapped": head + "." + other_body + "." + signature,
        "alg_none": compact({**header, "alg": "none"}, payload),
        "alg_none_upper": compact({**header, "alg": "None"}, payload),
        "hs256_public_raw": hs256(header, payload, public_x),
        "hs256_public_b64": hs256(header, payload, b64url(public_x).encode()),
        "unknown_kid": compact({**header, "kid": "no-such-key"}, payload, b"\0" * 64),
        "no_kid": compact({k: v for k, v in header.items() if k != "kid"}, payload, b"\0" * 64),
        "fresh_key_same_kid": forged(),
        "wrong_audience": forged(aud="someone-else"),
        "wrong_issuer": forged(iss="https://evil.example"),
        "other_tenant": forged(tenant_id=str(uuid.uuid4())),
        "long": "a" * 8000,
        "unicode": "é.é.é",
    }


BROKEN = [
    "garbage",
    "empty_parts",
    "truncated",
    "signature_cut",
    "no_signature",
    "payload_swapped",
    "alg_none",
    "alg_none_upper",
    "hs256_public_raw",
    "hs256_public_b64",
    "unknown_kid",
    "no_kid",
    "fresh_key_same_kid",
    "wrong_audience",
    "wrong_issuer",
    "other_tenant",
    "long",
    "unicode",
]


@pytest.mark.parametrize("kind", BROKEN)
def test_broken_access_token_is_refused(api: Api, alice: Persona, kind: str) -> None:
    token = broken_tokens(api, alice.access)[kind]
    response = api.me(token)
    problem(response, 401, "invalid_token")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("kind", BROKEN)
def test_broken_refresh_token_is_refused(api: Api, alice: Persona, kind: str) -> None:
    token = broken_tokens(api, alice.refresh)[kind]
    response = api.refresh(token)
    if kind == "long" and response.status_code == 400:
        problem(response, 400, "invalid")  # longer than any token: refused as a field
    else:
        problem(response, 401, "invalid_token")
    # A forgery revokes nothing.
    assert api.refresh(alice.refresh).status_code == 200


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Basic YWxpY2U6cGFzcw==", "bearer", "Token abc", "Bearer a b"],
)
def test_malformed_authorization_header_is_401(api: Api, alice: Persona, header: str) -> None:
    response = api.get(AUTH + "me", HTTP_AUTHORIZATION=header)
    body = problem(response, 401)
    assert body["code"] in ("not_authenticated", "invalid_token"), body
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_expired_access_token(api: Api, alice: Persona, time_machine) -> None:
    time_machine.move_to(datetime.now(UTC))
    time_machine.shift(timedelta(seconds=890))  # iat/exp are whole seconds: keep a margin
    assert api.me(alice.access).status_code == 200
    time_machine.shift(timedelta(seconds=11))
    response = api.me(alice.access)
    problem(response, 401, "token_expired")
    assert response["WWW-Authenticate"].startswith("Bearer")
    # The refresh token outlives it.
    assert api.me(rotate(api, alice.refresh)["access"]).status_code == 200


def test_access_token_lifetime_is_a_setting(api: Api, settings, time_machine) -> None:
    settings.CODITECT_ACCESS_TOKEN_TTL_S = 60
    time_machine.move_to(datetime.now(UTC))
    body = api.register("ttl@example.com").json()
    assert body["expires_in"] == 60
    time_machine.shift(timedelta(seconds=61))
    problem(api.me(body["access"]), 401, "token_expired")


def test_pair_lifetimes_match_the_settings(api: Api) -> None:
    body = api.register("life@example.com").json()
    assert body["expires_in"] == 900
    assert 0 < body["refresh_expires_in"] <= 30 * 86_400


def test_expired_token_of_another_key_still_says_invalid(api: Api, alice: Persona) -> None:
    header, payload = token_parts(alice.access)
    fresh = Ed25519PrivateKey.generate()
    old = jwt.encode(
        {**payload, "exp": 1_000_000_000, "iat": 999_999_000},
        fresh,
        algorithm="EdDSA",
        headers={"kid": header["kid"]},
    )
    problem(api.me(old), 401, "invalid_token")


# --- idle and absolute lifetimes -------------------------------------------------------------


def test_refresh_token_idle_lifetime(api: Api, alice: Persona, time_machine) -> None:
    time_machine.move_to(datetime.now(UTC))
    time_machine.shift(timedelta(days=14) - timedelta(minutes=1))
    pair = rotate(api, alice.refresh)
    time_machine.shift(timedelta(days=14, seconds=1))  # 28 days after login: idle, not absolute
    problem(api.refresh(pair["refresh"]), 401, "token_expired")


def test_unused_refresh_token_expires_after_the_idle_lifetime(
    api: Api, alice: Persona, time_machine
) -> None:
    time_machine.move_to(datetime.now(UTC))
    time_machine.shift(timedelta(days=14, seconds=1))
    problem(api.refresh(alice.refresh), 401, "token_expired")


def test_refresh_token_absolute_lifetime(api: Api, alice: Persona, time_machine) -> None:
    time_machine.move_to(datetime.now(UTC))
    pair: dict[str, Any] = {"refresh": alice.refresh}
    for _ in range(3):
        time_machine.shift(timedelta(days=9))
        pair = rotate(api, pair["refresh"])
    assert pair["refresh_expires_in"] <= 3 * 86_400 + 60
    time_machine.shift(timedelta(days=3) + timedelta(seconds=1))
    problem(api.refresh(pair["refresh"]), 401, "token_expired")


def test_idle_and_absolute_lifetimes_are_settings(api: Api, settings, time_machine) -> None:
    settings.CODITECT_REFRESH_IDLE_TTL_S = 100
    settings.CODITECT_REFRESH_ABSOLUTE_TTL_S = 250
    time_machine.move_to(datetime.now(UTC))
    pair = api.register("short@example.com").json()
    time_machine.shift(timedelta(seconds=90))
    pair = rotate(api, pair["refresh"])
    time_machine.shift(timedelta(seconds=90))
    pair = rotate(api, pair["refresh"])
    time_machine.shift(timedelta(seconds=71))  # 251 s after login, 71 s idle
    problem(api.refresh(pair["refresh"]), 401, "token_expired")
    other = api.login("short@example.com", PASSWORD).json()
    time_machine.shift(timedelta(seconds=101))
    problem(api.refresh(other["refresh"]), 401, "token_expired")


# --- concurrency -------------------------------------------------------------------------


def race(refresh: str, threads: int) -> list[tuple[int, dict[str, Any]]]:
    barrier = threading.Barrier(threads)
    results: list[tuple[int, dict[str, Any]]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        client = Api(Client())
        try:
            barrier.wait(timeout=10)
            response = client.refresh(refresh)
            with lock:
                results.append((response.status_code, json.loads(response.content)))
        except BaseException as error:  # surfaced below, in the test's thread
            with lock:
                errors.append(error)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=30)
    assert not errors, errors
    assert len(results) == threads
    return results


def test_concurrent_refreshes_leave_exactly_one_live_token(api: Api, alice: Persona) -> None:
    results = race(alice.refresh, 8)
    statuses = sorted(status for status, _ in results)
    assert set(statuses) <= {200, 401}, results
    # One request rotated; the others took the grace path: an access token each, and the
    # spent token back, never a second live branch.
    answered = [body["refresh"] for status, body in results if status == 200]
    winners = {token for token in answered if token != alice.refresh}
    assert len(winners) == 1, winners
    assert answered.count(alice.refresh) == len(answered) - 1, answered
    for status, body in results:
        if status == 401:
            assert body["code"] != "token_reused", body
    (live,) = winners
    pair = rotate(api, live)
    pair = rotate(api, pair["refresh"])
    assert api.me(pair["access"]).status_code == 200
    assert api.refresh(pair["refresh"]).status_code == 200
    sessions = api.get(AUTH + "sessions", pair["access"]).json()["results"]
    assert len(sessions) == 1


def test_concurrent_refreshes_of_a_stale_token_revoke_the_family(api: Api, alice: Persona) -> None:
    second = rotate(api, alice.refresh)
    third = rotate(api, second["refresh"])
    results = race(alice.refresh, 6)
    assert {status for status, _ in results} == {401}, results
    problem(api.refresh(third["refresh"]), 401, "session_revoked")


def test_a_refused_token_of_the_active_key_is_checked_once(
    api: Api, alice: Persona, monkeypatch, time_machine
) -> None:
    """An expired, forged or wrong-type token naming the active key costs one signature
    check, not two (a replayed refused token is not cached, so it would cost that every
    time), and still gets the same answer."""
    import accounts.tokens

    checks: list[str] = []
    decoded = accounts.tokens._decoded

    def counted(token: str, key: Any) -> dict[str, Any]:
        checks.append(token)
        return decoded(token, key)

    monkeypatch.setattr(accounts.tokens, "_decoded", counted)
    header, payload = token_parts(alice.access)
    forged = jwt.encode(
        payload, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": header["kid"]}
    )
    problem(api.me(forged), 401, "invalid_token")
    problem(api.me(alice.refresh), 401, "invalid_token")
    time_machine.move_to(datetime.now(UTC) + timedelta(seconds=901))
    problem(api.me(alice.access), 401, "token_expired")
    assert checks == [forged, alice.refresh, alice.access]
