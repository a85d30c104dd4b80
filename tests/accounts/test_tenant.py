"""Tenant membership: /api/v5/tenant/, its members and invitations."""

from __future__ import annotations

import uuid

import pytest

from tests.accounts.helpers import (
    TENANT,
    Api,
    Persona,
    invite_and_register,
    items,
    login_pair,
    problem,
    rfc3339,
)


@pytest.mark.parametrize("path", [TENANT, TENANT.rstrip("/")])
def test_tenant_is_the_callers(api: Api, alice: Persona, bob: Persona, path: str) -> None:
    for persona, role in ((alice, "owner"), (bob, "member")):
        response = api.get(path, persona.access)
        assert response.status_code == 200, response.content
        tenant = response.json()
        assert tenant.keys() >= {"id", "name", "slug", "status", "role"}
        assert tenant["id"] == alice.tenant_id
        assert tenant["name"] == "Acme"
        assert tenant["slug"] == alice.tenant["slug"]
        assert tenant["status"] == "active"
        assert tenant["role"] == role


@pytest.mark.parametrize("path", [TENANT + "members/", TENANT + "members"])
def test_members_lists_the_tenants_people(
    api: Api, alice: Persona, bob: Persona, charlie: Persona, path: str
) -> None:
    for persona in (alice, bob):
        response = api.get(path, persona.access)
        assert response.status_code == 200, response.content
        members = {m["id"]: m for m in items(response.json())}
        assert set(members) == {alice.user_id, bob.user_id}
        for member in members.values():
            assert member.keys() >= {"id", "email", "display_name", "role"}
            assert "password" not in member
        assert members[alice.user_id]["email"] == alice.email
        assert members[alice.user_id]["role"] == "owner"
        assert members[bob.user_id]["email"] == bob.email
        assert members[bob.user_id]["display_name"] == "Bob"
        assert members[bob.user_id]["role"] == "member"


@pytest.mark.parametrize("path", [TENANT + "invitations/", TENANT + "invitations"])
@pytest.mark.parametrize("role", ["member", "admin"])
def test_owner_invites(api: Api, alice: Persona, path: str, role: str) -> None:
    response = api.post(path, {"email": "new@example.com", "role": role}, alice.access)
    assert response.status_code == 201, response.content
    invitation = response.json()
    assert invitation.keys() >= {"token", "email", "role", "expires_at"}
    assert invitation["email"] == "new@example.com"
    assert invitation["role"] == role
    assert isinstance(invitation["token"], str)
    assert len(invitation["token"]) >= 20
    rfc3339(invitation["expires_at"])


def test_invitation_tokens_differ(api: Api, alice: Persona) -> None:
    first = api.invite(alice.access, "one@example.com").json()["token"]
    second = api.invite(alice.access, "one@example.com").json()["token"]
    assert first != second


def test_admin_invites(api: Api, alice: Persona) -> None:
    dave = invite_and_register(api, alice, "Dave", "dave@example.com", role="admin")
    response = api.invite(dave.access, "erin@example.com", "member")
    assert response.status_code == 201, response.content
    erin = invite_and_register(api, dave, "Erin", "erin@example.com", role="admin")
    assert erin.tenant_id == alice.tenant_id


def test_member_may_not_invite(api: Api, bob: Persona) -> None:
    problem(api.invite(bob.access, "friend@example.com"), 403, "forbidden")


@pytest.mark.parametrize("role", ["superuser", "", "ADMIN", "Viewer", None, 1])
def test_only_the_four_roles_are_grantable(api: Api, alice: Persona, role: object) -> None:
    response = api.post(
        TENANT + "invitations/", {"email": "x@example.com", "role": role}, alice.access
    )
    problem(response, 400)


@pytest.mark.parametrize(
    "body",
    [
        {"role": "member"},
        {"email": "not-an-email", "role": "member"},
        {"email": "x@example.com", "role": "member", "extra": True},
    ],
)
def test_bad_invitations_are_400(api: Api, alice: Persona, body: dict) -> None:
    problem(api.post(TENANT + "invitations/", body, alice.access), 400, "invalid")


def test_removing_a_member_revokes_them_at_once(
    api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    laptop = login_pair(api, bob)
    response = api.delete(TENANT + "members/" + bob.user_id, alice.access)
    assert response.status_code == 204, response.content
    problem(api.me(bob.access), 401)
    problem(api.me(laptop["access"]), 401)
    problem(api.refresh(bob.refresh), 401)
    problem(api.login(bob.email, bob.password), 401, "invalid_credentials")
    members = {m["id"] for m in items(api.get(TENANT + "members/", alice.access).json())}
    assert members == {alice.user_id}
    assert api.me(alice.access).status_code == 200
    assert api.me(charlie.access).status_code == 200


def test_removing_with_a_trailing_slash(api: Api, alice: Persona, bob: Persona) -> None:
    response = api.delete(TENANT + "members/" + bob.user_id + "/", alice.access)
    assert response.status_code == 204, response.content


def test_admin_removes_a_member(api: Api, alice: Persona, bob: Persona) -> None:
    dave = invite_and_register(api, alice, "Dave", "dave@example.com", role="admin")
    assert api.delete(TENANT + "members/" + bob.user_id, dave.access).status_code == 204
    problem(api.me(bob.access), 401)


def test_member_may_not_remove(api: Api, alice: Persona, bob: Persona) -> None:
    problem(api.delete(TENANT + "members/" + alice.user_id, bob.access), 403, "forbidden")
    assert api.me(alice.access).status_code == 200


def test_last_owner_may_not_leave(api: Api, alice: Persona, bob: Persona) -> None:
    problem(api.delete(TENANT + "members/" + alice.user_id, alice.access), 409, "last_owner")
    assert api.me(alice.access).status_code == 200
    problem(api.login(alice.email, "wrong-Passw0rd!"), 401, "invalid_credentials")
    assert api.login(alice.email, alice.password).status_code == 200


def test_removed_member_may_join_again_by_invitation(
    api: Api, alice: Persona, bob: Persona
) -> None:
    assert api.delete(TENANT + "members/" + bob.user_id, alice.access).status_code == 204
    again = invite_and_register(api, alice, "Bob", bob.email)
    assert again.user_id != bob.user_id
    problem(api.me(bob.access), 401)


@pytest.mark.parametrize("user_id", [str(uuid.uuid4()), "not-a-uuid", "42"])
def test_removing_an_unknown_user_is_404(api: Api, alice: Persona, user_id: str) -> None:
    problem(api.delete(TENANT + "members/" + user_id, alice.access), 404, "not_found")


def test_removing_a_user_of_another_tenant_is_404(
    api: Api, alice: Persona, charlie: Persona
) -> None:
    problem(api.delete(TENANT + "members/" + charlie.user_id, alice.access), 404, "not_found")
    assert api.me(charlie.access).status_code == 200
