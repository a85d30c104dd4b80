"""API tokens in the support admin: listed on the user page (never a secret) and revoked
with a reason, audited, taking effect on the token's next request."""

from __future__ import annotations

import uuid
from typing import Any

from accounts.models import StaffAuditEntry
from accounts.selectors import auth_event_list
from tests.accounts.helpers import AUTH, Api, Persona, problem
from tests.admin.conftest import logged_in
from tests.admin.helpers import support, the_audit_entry


def make_token(api: Api, persona: Persona, name: str = "ci-runner") -> dict[str, Any]:
    response = api.post(
        AUTH + "api-tokens", {"name": name, "scopes": ["sessions:read"]}, persona.access
    )
    assert response.status_code == 201, response.content
    created: dict[str, Any] = response.json()
    return created


def test_the_user_page_lists_their_tokens_without_secrets(
    readonly_staff, api: Api, bob: Persona
) -> None:
    created = make_token(api, bob)
    assert api.me(created["token"], REMOTE_ADDR="10.9.9.9").status_code == 200
    page = logged_in(readonly_staff).get(support("user", bob.tenant_id, bob.user_id))
    assert page.status_code == 200
    html = page.content.decode()
    assert created["id"] in html
    assert "ci-runner" in html
    assert "sessions:read" in html
    assert "10.9.9.9" in html
    assert created["token"] not in html
    assert created["token"][-43:] not in html
    # Read-only staff see no revoke link.
    assert support("api_token_revoke", bob.tenant_id, bob.user_id, created["id"]) not in html


def test_staff_revoke_a_token_with_a_reason_and_it_is_audited(
    support_staff, api: Api, alice: Persona, bob: Persona
) -> None:
    created, other = make_token(api, bob), make_token(api, bob, "laptop")
    path = support("api_token_revoke", bob.tenant_id, bob.user_id, created["id"])
    assert (
        path
        in logged_in(support_staff)
        .get(support("user", bob.tenant_id, bob.user_id))
        .content.decode()
    )
    asked = logged_in(support_staff).post(path, {"reason": ""})
    assert asked.status_code == 400  # asked again: a reason is required
    assert not StaffAuditEntry.objects.exists()
    response = logged_in(support_staff).post(path, {"reason": "leaked in a public gist"})
    assert response.status_code == 302, response.content
    problem(api.me(created["token"]), 401, "invalid_token")
    assert api.me(other["token"]).status_code == 200
    the_audit_entry(
        staff=support_staff,
        action="api_token_revoke",
        target_type="api_token",
        target_id=created["id"],
        tenant_id=bob.tenant_uuid,
        reason="leaked in a public gist",
    )
    (logged,) = [
        e for e in auth_event_list(tenant_id=bob.tenant_uuid) if e.type == "api_token_revoked"
    ]
    assert logged.data["reason"] == "leaked in a public gist"
    assert str(logged.user_id) == bob.user_id


def test_revoking_a_token_of_another_user_or_tenant_is_not_found(
    support_staff, api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    alices = make_token(api, alice)
    for tenant_id, user_id in ((bob.tenant_id, bob.user_id), (charlie.tenant_id, charlie.user_id)):
        path = support("api_token_revoke", tenant_id, user_id, alices["id"])
        response = logged_in(support_staff).post(path, {"reason": "wrong target"})
        assert response.status_code == 404
    path = support("api_token_revoke", alice.tenant_id, alice.user_id, str(uuid.uuid4()))
    assert logged_in(support_staff).post(path, {"reason": "gone"}).status_code == 404
    assert not StaffAuditEntry.objects.exists()
    assert api.me(alices["token"]).status_code == 200


def test_read_only_staff_cannot_revoke(readonly_staff, api: Api, bob: Persona) -> None:
    created = make_token(api, bob)
    path = support("api_token_revoke", bob.tenant_id, bob.user_id, created["id"])
    response = logged_in(readonly_staff).post(path, {"reason": "try"})
    assert response.status_code == 403
    assert api.me(created["token"]).status_code == 200
    assert not StaffAuditEntry.objects.exists()
