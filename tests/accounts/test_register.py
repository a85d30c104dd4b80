"""POST /api/v5/auth/register: a new tenant and its owner, or joining one by invitation."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta

import pytest

from tests.accounts.helpers import (
    AUTH,
    PASSWORD,
    TENANT_FIELDS,
    USER_FIELDS,
    Api,
    Persona,
    assert_pair,
    field_attrs,
    problem,
    rfc3339,
)


@pytest.mark.parametrize("path", [AUTH + "register", AUTH + "register/"])
def test_register_creates_a_tenant_with_its_owner(api: Api, path: str) -> None:
    response = api.post(
        path,
        {
            "email": "dana@example.com",
            "password": PASSWORD,
            "tenant_name": "Dana Labs",
            "display_name": "Dana",
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert_pair(body)
    assert body["user"].keys() >= USER_FIELDS
    assert body["tenant"].keys() >= TENANT_FIELDS
    assert body["user"]["email"] == "dana@example.com"
    assert body["user"]["display_name"] == "Dana"
    assert body["user"]["role"] == "owner"
    assert body["user"]["tenant_id"] == body["tenant"]["id"]
    assert body["tenant"]["name"] == "Dana Labs"
    assert body["tenant"]["status"] == "active"
    assert isinstance(body["tenant"]["slug"], str)
    assert body["tenant"]["slug"]
    me = api.me(body["access"])
    assert me.status_code == 200, me.content
    assert me.json()["id"] == body["user"]["id"]


def test_register_without_optional_fields(api: Api) -> None:
    response = api.register("erin@example.com")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"]["role"] == "owner"
    assert isinstance(body["tenant"]["name"], str)
    assert body["tenant"]["slug"]


def test_two_tenants_with_the_same_name_get_different_slugs(api: Api) -> None:
    first = api.register("f1@example.com", tenant_name="Same Name")
    second = api.register("f2@example.com", tenant_name="Same Name")
    assert first.status_code == second.status_code == 201
    assert first.json()["tenant"]["id"] != second.json()["tenant"]["id"]
    assert first.json()["tenant"]["slug"] != second.json()["tenant"]["slug"]


@pytest.mark.parametrize(
    "again", ["ann@example.com", "Ann@Example.com", "ANN@EXAMPLE.COM", "ann@EXAMPLE.com"]
)
def test_duplicate_email_is_409_whatever_its_case(api: Api, again: str) -> None:
    assert api.register("ann@example.com").status_code == 201
    problem(api.register(again, tenant_name="Other"), 409, "email_taken")


def test_duplicate_email_is_409_the_other_way_round(api: Api) -> None:
    assert api.register("Ann@Example.com").status_code == 201
    problem(api.register("ann@example.com"), 409, "email_taken")


WEAK_PASSWORDS = {
    "too_short": "Ab1!xyz",
    "too_long": "Zq9!" * 256 + "x",
    "common": "password123",
    "numeric": "8437261950",
    "similar_to_email": "johnsmith42",
}


@pytest.mark.parametrize("kind", WEAK_PASSWORDS)
def test_weak_password_is_refused_and_nothing_is_written(api: Api, kind: str) -> None:
    weak = WEAK_PASSWORDS[kind]
    body = problem(api.register("johnsmith@example.com", weak), 400, "invalid")
    assert "password" in field_attrs(body), body
    refused = api.login("johnsmith@example.com", weak)
    assert refused.status_code in (400, 401), refused.content  # 400: too long to be a password
    # The email is still free.
    assert api.register("johnsmith@example.com", PASSWORD).status_code == 201


def test_weak_passwords_sit_just_outside_the_length_limits() -> None:
    assert len(WEAK_PASSWORDS["too_short"]) == 7
    assert len(WEAK_PASSWORDS["too_long"]) == 1025


def test_eight_character_password_is_enough(api: Api) -> None:
    assert api.register("gus@example.com", "Qz7#vK2m").status_code == 201


@pytest.mark.parametrize(
    "email",
    [
        "not-an-email",
        "a@",
        "@example.com",
        "two@@example.com",
        "spaces in@example.com",
        "x" * 250 + "@example.com",
    ],
)
def test_bad_email_is_refused(api: Api, email: str) -> None:
    body = problem(api.register(email), 400, "invalid")
    assert "email" in field_attrs(body), body


def test_email_longer_than_254_characters_is_refused(api: Api) -> None:
    email = "a" * 64 + "@" + ".".join(["b" * 63] * 3) + ".com"
    assert len(email) > 254
    body = problem(api.register(email), 400, "invalid")
    assert "email" in field_attrs(body), body


def test_longest_password_works_and_is_not_truncated(api: Api) -> None:
    alphabet = string.ascii_letters + string.digits + "!#%&*+-=?@^_"
    password = "".join(random.Random(1024).choices(alphabet, k=1024))
    response = api.register("long@example.com", password)
    assert response.status_code == 201, response.content
    assert api.login("long@example.com", password).status_code == 200
    problem(api.login("long@example.com", password[:1023]), 401, "invalid_credentials")
    problem(api.login("long@example.com", password[:72]), 401, "invalid_credentials")


@pytest.mark.parametrize(("attr", "size"), [("display_name", 201), ("tenant_name", 201)])
def test_overlong_names_are_refused(api: Api, attr: str, size: int) -> None:
    body = problem(api.register("hal@example.com", **{attr: "n" * size}), 400, "invalid")
    assert attr in field_attrs(body), body
    problem(api.login("hal@example.com"), 401, "invalid_credentials")


@pytest.mark.parametrize("attr", ["display_name", "tenant_name"])
def test_names_of_200_characters_are_accepted(api: Api, attr: str) -> None:
    assert api.register("ida@example.com", **{attr: "n" * 200}).status_code == 201


# --- invitations ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["member", "admin"])
def test_invitation_joins_the_tenant_with_its_role(api: Api, alice: Persona, role: str) -> None:
    invitation = api.invite(alice.access, "jo@example.com", role)
    assert invitation.status_code == 201, invitation.content
    response = api.register(
        "jo@example.com", display_name="Jo", invitation=invitation.json()["token"]
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert_pair(body)
    assert body["user"]["role"] == role
    assert body["user"]["tenant_id"] == alice.tenant_id
    assert body["tenant"]["id"] == alice.tenant_id
    assert body["tenant"]["name"] == "Acme"
    me = api.me(body["access"]).json()
    assert me["role"] == role
    assert me["tenant"]["id"] == alice.tenant_id


def test_invitation_ignores_a_tenant_name(api: Api, alice: Persona) -> None:
    token = api.invite(alice.access, "kim@example.com").json()["token"]
    response = api.register("kim@example.com", invitation=token, tenant_name="Elsewhere")
    if response.status_code == 201:
        assert response.json()["tenant"]["id"] == alice.tenant_id
    else:
        problem(response, 400)


def test_invitation_is_single_use(api: Api, alice: Persona) -> None:
    token = api.invite(alice.access, "lee@example.com").json()["token"]
    assert api.register("lee@example.com", invitation=token).status_code == 201
    problem(api.register("lee2@example.com", invitation=token), 400, "invalid_invitation")
    problem(api.login("lee2@example.com"), 401, "invalid_credentials")


def test_invitation_expires_after_seven_days(api: Api, alice: Persona, time_machine) -> None:
    time_machine.move_to(datetime.now(UTC))
    early = api.invite(alice.access, "early@example.com").json()
    late = api.invite(alice.access, "late@example.com").json()
    expires_at = rfc3339(late["expires_at"])
    assert abs(expires_at - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=1)
    time_machine.shift(timedelta(days=7) - timedelta(minutes=2))
    assert api.register("early@example.com", invitation=early["token"]).status_code == 201
    time_machine.shift(timedelta(minutes=3))
    problem(api.register("late@example.com", invitation=late["token"]), 400, "invalid_invitation")
    problem(api.login("late@example.com"), 401, "invalid_credentials")


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token",
        "x" * 64,
        "00000000-0000-4000-8000-000000000000",
        "eyJhbGciOiJFZERTQSJ9.e30.c2ln",
    ],
)
def test_garbage_invitation_is_refused(api: Api, alice: Persona, token: str) -> None:
    problem(api.register("mo@example.com", invitation=token), 400, "invalid_invitation")
    problem(api.login("mo@example.com"), 401, "invalid_credentials")
    # Nothing was written: the email can still register on its own.
    assert api.register("mo@example.com").status_code == 201


def test_tampered_invitation_is_refused(api: Api, alice: Persona) -> None:
    token = api.invite(alice.access, "ned@example.com").json()["token"]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    problem(api.register("ned@example.com", invitation=tampered), 400, "invalid_invitation")
    assert api.register("ned@example.com", invitation=token).status_code == 201
