"""``manage.py tenants list|show|create|suspend|resume|delete`` with valid and bad input."""

from __future__ import annotations

import uuid

import pytest
from django.core.management.base import CommandError

import fdb_backend
from fdb_backend import keyspace
from fdb_backend.maintenance import range_is_empty
from tests.accounts.helpers import Api, Persona, problem
from tests.operations.helpers import run


def refused(*args: str) -> str:
    """The one-line reason a command gives for refusing."""
    with pytest.raises(CommandError) as caught:
        run(*args)
    message = str(caught.value)
    assert message
    assert "\n" not in message
    return message


# --- list and show ---------------------------------------------------------------------


def test_list_as_a_table_and_as_json(alice: Persona, charlie: Persona) -> None:
    table = run("tenants", "list").out.splitlines()
    assert table[0].split() == ["ID", "SLUG", "NAME", "STATUS", "CREATED"]
    assert sorted(line.split()[0] for line in table[1:]) == sorted(
        [alice.tenant_id, charlie.tenant_id]
    )
    listed = run("tenants", "list", "--json").json()
    assert {t["name"] for t in listed} == {"Acme", "Globex"}
    assert set(listed[0]) >= {"id", "slug", "name", "status", "created_at"}


def test_list_by_status(alice: Persona, charlie: Persona) -> None:
    run("tenants", "suspend", alice.tenant_id, "--reason", "unpaid")
    suspended = run("tenants", "list", "--status", "suspended", "--json").json()
    assert [t["id"] for t in suspended] == [alice.tenant_id]
    active = run("tenants", "list", "--status", "active", "--json").json()
    assert [t["id"] for t in active] == [charlie.tenant_id]
    assert "invalid choice" in refused("tenants", "list", "--status", "gone")


def test_show_by_id_or_slug(alice: Persona, bob: Persona) -> None:
    shown = run("tenants", "show", alice.tenant["slug"], "--json").json()
    assert shown["id"] == alice.tenant_id
    assert {m["email"] for m in shown["members"]} == {"alice@example.com", "bob@example.com"}
    assert shown["spaces"]["users"]["records"] == 2
    assert shown["spaces"]["auth_sessions"]["records"] == 2
    text = run("tenants", "show", alice.tenant_id).out
    assert "Acme" in text
    assert "bob@example.com" in text
    assert "auth_sessions" in text


@pytest.mark.parametrize("ref", ["no-such-tenant", str(uuid.UUID(int=7)), ""])
def test_show_unknown_tenant(alice: Persona, ref: str) -> None:
    assert "unknown tenant" in refused("tenants", "show", ref)


def test_unknown_action_and_missing_arguments() -> None:
    assert "invalid choice" in refused("tenants", "explode")
    assert "required" in refused("tenants")
    assert "required" in refused("tenants", "show")


# --- create ----------------------------------------------------------------------------


def test_create_a_tenant_whose_owner_registers_with_the_invitation(api: Api) -> None:
    created = run(
        "tenants", "create", "Initech", "--owner-email", "peter@initech.example", "--json"
    ).json()
    assert created["name"] == "Initech"
    assert created["status"] == "active"
    token = created["owner_invitation"]["token"]
    response = api.register("peter@initech.example", invitation=token, display_name="Peter")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"]["tenant_id"] == created["id"]
    assert body["user"]["role"] == "owner"
    assert api.register("other@initech.example", invitation=token).status_code == 400  # used


def test_create_with_a_chosen_slug_as_text() -> None:
    out = run("tenants", "create", "Umbrella", "--owner-email", "a@u.example", "--slug", "umb").out
    assert "created tenant umb" in out
    assert "shown once" in out
    assert run("tenants", "show", "umb", "--json").json()["name"] == "Umbrella"


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["X", "--owner-email", "not-an-email"], "not an email"),
        (["X", "--owner-email", "a@b.example", "--slug", "Bad Slug"], "slug must be"),
        (["X", "--owner-email", "a@b.example", "--slug", "x-"], "slug must be"),
        (["  ", "--owner-email", "a@b.example"], "name must be"),
        (["X" * 201, "--owner-email", "a@b.example"], "name must be"),
        (["X"], "required: --owner-email"),
    ],
)
def test_create_refuses_bad_input(args: list[str], reason: str) -> None:
    assert reason in refused("tenants", "create", *args)
    assert run("tenants", "list", "--json").json() == []


def test_create_refuses_a_taken_slug_or_email(alice: Persona) -> None:
    slug = alice.tenant["slug"]
    assert "slug is taken" in refused(
        "tenants", "create", "Again", "--owner-email", "x@y.example", "--slug", slug
    )
    assert "email is taken" in refused(
        "tenants", "create", "Again", "--owner-email", "ALICE@example.com"
    )
    assert len(run("tenants", "list", "--json").json()) == 1


# --- suspend and resume ----------------------------------------------------------------


def test_suspend_stops_the_tenant_s_users_at_their_next_request(
    api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    assert api.me(bob.access).status_code == 200
    out = run("tenants", "suspend", alice.tenant["slug"], "--reason", "unpaid").out
    assert out.endswith("suspended\n")
    problem(api.me(bob.access), 403, "tenant_suspended")
    problem(api.login(alice.email, alice.password), 403, "tenant_suspended")
    assert api.me(charlie.access).status_code == 200
    shown = run("tenants", "show", alice.tenant_id, "--json").json()
    assert (shown["status"], shown["status_reason"]) == ("suspended", "unpaid")
    resumed = run("tenants", "resume", alice.tenant_id, "--json").json()
    assert resumed["status"] == "active"
    assert api.me(bob.access).status_code == 200


def test_suspend_needs_a_reason_and_a_tenant(alice: Persona) -> None:
    assert "--reason" in refused("tenants", "suspend", alice.tenant_id)
    assert "must not be empty" in refused("tenants", "suspend", alice.tenant_id, "--reason", " ")
    assert "unknown tenant" in refused("tenants", "suspend", "nope", "--reason", "x")
    assert "unknown tenant" in refused("tenants", "resume", "nope")


# --- delete ----------------------------------------------------------------------------


def test_delete_without_yes_refuses_and_keeps_everything(api: Api, alice: Persona) -> None:
    message = refused("tenants", "delete", alice.tenant_id)
    assert "without --yes" in message
    assert api.me(alice.access).status_code == 200
    assert "unknown tenant" in refused("tenants", "delete", "nope", "--yes")


def test_delete_removes_the_tenant_its_range_and_its_global_entries(
    api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    api.post("/api/v5/sessions", {"name": "S", "workspace_path": "/w"}, alice.access)
    report = run("tenants", "delete", alice.tenant["slug"], "--yes", "--json").json()
    assert report["tenant_id"] == alice.tenant_id
    assert report["spaces"]["users"] == 2
    assert report["spaces"]["workspace_sessions"] == 1
    assert report["keys"] == sum(report["spaces"].values())
    assert report["bytes"] > 0
    assert report["global_keys"] == 4  # two emails, the slug, the tenant record
    db = fdb_backend.get_database()
    assert range_is_empty(db, keyspace.tenant(alice.tenant_uuid).range())
    assert "unknown tenant" in refused("tenants", "show", alice.tenant_id)
    for persona in (alice, bob):
        problem(api.me(persona.access), 401, "session_revoked")
        problem(api.login(persona.email, persona.password), 401, "invalid_credentials")
    assert api.register(alice.email).status_code == 201  # the email is free again
    assert api.me(charlie.access).status_code == 200
    assert sorted(t["name"] for t in run("tenants", "list", "--json").json()) == sorted(
        ["Globex", "alice's team"]
    )


def test_delete_reports_counts_as_a_table(alice: Persona) -> None:
    out = run("tenants", "delete", alice.tenant_id, "--yes").out
    assert out.startswith(f"deleted tenant {alice.tenant['slug']} ({alice.tenant_id}):")
    assert "users" in out


# --- signing keys ----------------------------------------------------------------------


def test_signing_keys_list_rotate_retire(api: Api, alice: Persona) -> None:
    (first,) = run("signing_keys", "list", "--json").json()
    assert first["status"] == "active"
    rotated = run("signing_keys", "rotate", "--json").json()
    assert rotated["status"] == "active"
    assert rotated["kid"] != first["kid"]
    assert api.me(alice.access).status_code == 200  # the old key still verifies
    table = run("signing_keys", "list").out
    assert first["kid"] in table
    assert "verify" in table
    retired = run("signing_keys", "retire", first["kid"], "--json").json()
    assert retired["status"] == "retired"
    problem(api.me(alice.access), 401)
    fresh = api.login(alice.email, alice.password).json()
    assert api.me(fresh["access"]).status_code == 200


def test_signing_keys_refuse_bad_input(alice: Persona) -> None:
    (active,) = run("signing_keys", "list", "--json").json()
    assert "rotate before retiring" in refused("signing_keys", "retire", active["kid"])
    assert "unknown signing key" in refused("signing_keys", "retire", "nope")
    assert "required" in refused("signing_keys", "retire")
