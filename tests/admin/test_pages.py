"""What the support pages show: search across tenants, details, sessions, events, audit."""

from __future__ import annotations

import uuid

from accounts.models import StaffAuditEntry
from tests.accounts.helpers import Api, Persona
from tests.admin.conftest import logged_in
from tests.admin.helpers import support, workspace_session


def text(staff, path: str) -> str:
    response = logged_in(staff).get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.content.decode()


def test_tenants_are_found_by_name_slug_or_id(
    readonly_staff, alice: Persona, charlie: Persona
) -> None:
    everyone = text(readonly_staff, support("tenants"))
    assert "Acme" in everyone
    assert "Globex" in everyone
    by_name = text(readonly_staff, support("tenants") + "?q=acm")
    assert "Acme" in by_name
    assert "Globex" not in by_name
    by_id = text(readonly_staff, support("tenants") + f"?q={charlie.tenant_id}")
    assert "Globex" in by_id
    assert "Acme" not in by_id
    by_slug = text(readonly_staff, support("tenants") + f"?q={charlie.tenant['slug']}")
    assert "Globex" in by_slug
    assert "No tenant matches" in text(readonly_staff, support("tenants") + "?q=initech")


def test_a_tenant_shows_its_members_and_counts(
    readonly_staff, api: Api, alice: Persona, bob: Persona
) -> None:
    workspace_session(api, alice)
    page = text(readonly_staff, support("tenant", alice.tenant_id))
    assert "alice@example.com" in page
    assert "bob@example.com" in page
    assert support("user", alice.tenant_id, bob.user_id) in page
    assert '<th scope="row">Users</th><td>2</td>' in page
    assert '<th scope="row">Workspace sessions</th><td>1</td>' in page


def test_users_are_found_by_email_across_tenants(
    readonly_staff, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    page = text(readonly_staff, support("users") + "?email=CHARLIE@")
    assert "charlie@example.org" in page
    assert "Globex" in page
    assert "alice@" not in page
    both = text(readonly_staff, support("users") + "?email=a")
    assert "alice@example.com" in both
    assert "bob@" not in both
    assert "No user" in text(readonly_staff, support("users") + "?email=zed")


def test_a_user_shows_their_sessions_and_recent_events(
    readonly_staff, api: Api, bob: Persona
) -> None:
    api.login(bob.email, "wrong password")
    page = text(readonly_staff, support("user", bob.tenant_id, bob.user_id))
    assert bob.session_id(api) in page
    assert "member_joined" in page
    assert "login_failed" in page
    assert "password_hash" not in page
    assert "argon2" not in page


def test_a_tenant_s_workspace_sessions(readonly_staff, api: Api, alice: Persona) -> None:
    first = workspace_session(api, alice, "First")
    second = workspace_session(api, alice, "Second")
    page = text(readonly_staff, support("workspace_sessions", alice.tenant_id))
    assert page.index("Second") < page.index("First")  # most recently active first
    detail = text(readonly_staff, support("workspace_session", alice.tenant_id, first))
    assert "/work/app" in detail
    assert "&quot;theme&quot;: &quot;dark&quot;" in detail
    assert second not in detail
    missing = logged_in(readonly_staff).get(
        support("workspace_session", alice.tenant_id, uuid.uuid4())
    )
    assert missing.status_code == 404


def test_pages_pick_a_tenant_by_slug(readonly_staff, alice: Persona) -> None:
    client = logged_in(readonly_staff)
    response = client.get(support("auth_events_pick") + f"?tenant={alice.tenant['slug']}")
    assert response.status_code == 302
    assert response["Location"] == support("auth_events", alice.tenant_id)
    response = client.get(support("workspace_sessions_pick") + "?tenant=nope")
    assert response.status_code == 404
    assert b"No tenant" in response.content


def test_auth_events_of_a_tenant(readonly_staff, api: Api, alice: Persona, bob: Persona) -> None:
    api.login(alice.email, "wrong password")
    page = text(readonly_staff, support("auth_events", alice.tenant_id))
    for kind in ("registered", "invitation_created", "member_joined", "login_failed"):
        assert kind in page
    only = text(readonly_staff, support("auth_events", alice.tenant_id) + "?type=login_failed")
    assert "login_failed" in only
    assert "member_joined" not in only


def test_the_audit_log_lists_staff_actions(support_staff, readonly_staff, alice: Persona) -> None:
    logged_in(support_staff).post(
        support("tenant_suspend", alice.tenant_id), {"reason": "chargeback"}
    )
    page = text(readonly_staff, "/admin/accounts/staffauditentry/")
    assert "chargeback" in page
    assert "tenant_suspend" in page
    assert "agent" in page
    (entry_id,) = StaffAuditEntry.objects.values_list("pk", flat=True)
    detail = logged_in(readonly_staff).get(f"/admin/accounts/staffauditentry/{entry_id}/change/")
    assert detail.status_code == 200
    assert b"chargeback" in detail.content
    add = logged_in(support_staff).get("/admin/accounts/staffauditentry/add/")
    assert add.status_code == 403


def test_a_bad_cursor_is_not_found(readonly_staff, alice: Persona) -> None:
    client = logged_in(readonly_staff)
    response = client.get(support("workspace_sessions", alice.tenant_id) + "?cursor=garbage")
    assert response.status_code == 404


def test_a_search_longer_than_any_name_or_email_finds_nothing_and_is_no_500(
    readonly_staff, alice: Persona
) -> None:
    """20,000 characters would build a key past FoundationDB's 10 kB limit (a 500 once)."""
    long = "a" * 20_000
    assert "No tenant matches" in text(readonly_staff, support("tenants") + f"?q={long}")
    assert "No user" in text(readonly_staff, support("users") + f"?email={long}")
    # The longest that can match still does.
    assert "Acme" in text(readonly_staff, support("tenants") + "?q=" + "Acme")


def test_the_index_names_the_site_and_lists_the_audit_log_once(readonly_staff):
    page = text(readonly_staff, "/admin/")
    assert "Django administration" not in page
    assert "<title>Support and administration | Coditect support</title>" in page
    assert 'id="site-name"><a href="/admin/">Coditect support</a>' in page
    # One row, in the Accounts app, not a second one in the Support section.
    assert page.count('class="model-staffauditentry"') == 1
