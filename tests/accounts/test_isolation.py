"""Charlie (tenant B) sees and touches nothing of Alice and Bob (tenant A); Bob is only a member."""

from __future__ import annotations

import pytest

from tests.accounts.helpers import AUTH, TENANT, Api, Persona, items, problem


def test_charlie_sees_only_his_tenant(
    api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    tenant = api.get(TENANT, charlie.access).json()
    assert tenant["id"] == charlie.tenant_id
    assert tenant["role"] == "owner"
    members = items(api.get(TENANT + "members/", charlie.access).json())
    assert {m["id"] for m in members} == {charlie.user_id}
    emails = {m["email"] for m in members}
    assert alice.email not in emails
    assert bob.email not in emails


def test_charlie_sees_only_his_sessions(
    api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    sessions = api.get(AUTH + "sessions", charlie.access).json()["results"]
    ids = {s["id"] for s in sessions}
    assert ids == {charlie.session_id(api)}
    assert alice.session_id(api) not in ids
    assert bob.session_id(api) not in ids


def test_charlie_cannot_remove_bob(api: Api, alice: Persona, bob: Persona, charlie: Persona):
    problem(api.delete(TENANT + "members/" + bob.user_id, charlie.access), 404, "not_found")
    problem(api.delete(TENANT + "members/" + alice.user_id, charlie.access), 404, "not_found")
    assert api.me(bob.access).status_code == 200
    members = items(api.get(TENANT + "members/", alice.access).json())
    assert {m["id"] for m in members} == {alice.user_id, bob.user_id}


def test_charlie_cannot_end_alices_session(api: Api, alice: Persona, charlie: Persona) -> None:
    session_id = alice.session_id(api)
    for path in (AUTH + "sessions/" + session_id, AUTH + "sessions/" + session_id + "/"):
        problem(api.delete(path, charlie.access), 404, "not_found")
    assert api.me(alice.access).status_code == 200


def test_bob_cannot_end_alices_session(api: Api, alice: Persona, bob: Persona) -> None:
    problem(api.delete(AUTH + "sessions/" + alice.session_id(api), bob.access), 404, "not_found")
    assert api.me(alice.access).status_code == 200


def test_bob_cannot_invite(api: Api, bob: Persona) -> None:
    for role in ("member", "admin"):
        problem(api.invite(bob.access, "friend@example.com", role), 403, "forbidden")


def test_bob_cannot_remove_alice(api: Api, alice: Persona, bob: Persona) -> None:
    problem(api.delete(TENANT + "members/" + alice.user_id, bob.access), 403, "forbidden")


def test_charlies_invitation_joins_his_tenant_only(
    api: Api, alice: Persona, charlie: Persona
) -> None:
    token = api.invite(charlie.access, "dave@example.com").json()["token"]
    body = api.register("dave@example.com", invitation=token).json()
    assert body["user"]["tenant_id"] == charlie.tenant_id
    alice_members = items(api.get(TENANT + "members/", alice.access).json())
    assert "dave@example.com" not in {m["email"] for m in alice_members}


def test_logout_all_of_charlie_leaves_tenant_a(
    api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    assert api.post(AUTH + "logout-all", None, charlie.access).status_code == 204
    assert api.me(alice.access).status_code == 200
    assert api.me(bob.access).status_code == 200


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_charlie_cannot_use_a_tenant_a_id_anywhere(
    api: Api, alice: Persona, bob: Persona, charlie: Persona, who: str
) -> None:
    victim = alice if who == "alice" else bob
    for path in (
        TENANT + "members/" + victim.user_id,
        AUTH + "sessions/" + victim.session_id(api),
    ):
        problem(api.delete(path, charlie.access), 404, "not_found")
    assert api.me(victim.access).status_code == 200
    assert api.refresh(victim.refresh).status_code == 200
