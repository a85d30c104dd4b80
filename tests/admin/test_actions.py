"""Every staff action: it asks for a reason, takes effect on the tenant user's very next
request, and writes one audit entry (staff account, action, target, reason, time)."""

from __future__ import annotations

import uuid

import pytest

from accounts.models import StaffAuditEntry
from accounts.selectors import auth_event_list
from tests.accounts.helpers import Api, Persona, login_pair, problem
from tests.admin.conftest import logged_in
from tests.admin.helpers import support, the_audit_entry, workspace_session


def act(staff, path: str, reason: str = "ticket #42: fraud report"):
    response = logged_in(staff).post(path, {"reason": reason})
    assert response.status_code == 302, response.content
    return response


def test_suspending_a_tenant_stops_its_users_on_their_next_request(
    support_staff, api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    assert api.me(alice.access).status_code == 200
    response = act(support_staff, support("tenant_suspend", alice.tenant_id))
    assert response["Location"] == support("tenant", alice.tenant_id)
    for persona in (alice, bob):
        problem(api.me(persona.access), 403, "tenant_suspended")
        problem(api.refresh(persona.refresh), 403, "tenant_suspended")
        problem(api.login(persona.email, persona.password), 403, "tenant_suspended")
    assert api.me(charlie.access).status_code == 200
    the_audit_entry(
        staff=support_staff,
        staff_username="agent",
        action="tenant_suspend",
        target_type="tenant",
        target_id=alice.tenant_id,
        tenant_id=alice.tenant_uuid,
        reason="ticket #42: fraud report",
    )
    page = logged_in(support_staff).get(support("tenant", alice.tenant_id)).content
    assert b"suspended (ticket #42: fraud report)" in page
    assert b">Resume<" in page


def test_resuming_a_tenant_lets_its_users_back_in(support_staff, api: Api, alice: Persona) -> None:
    act(support_staff, support("tenant_suspend", alice.tenant_id))
    act(support_staff, support("tenant_resume", alice.tenant_id), "verified by phone")
    assert api.me(alice.access).status_code == 200
    assert api.login(alice.email, alice.password).status_code == 200
    entry = StaffAuditEntry.objects.get(action="tenant_resume")
    assert entry.reason == "verified by phone"
    assert entry.target_id == alice.tenant_id
    types = [e.type for e in auth_event_list(tenant_id=alice.tenant_uuid)]
    assert types[:2] == ["login", "tenant_resumed"]


def test_locking_a_user_ends_their_sessions_and_logins(
    support_staff, api: Api, alice: Persona, bob: Persona
) -> None:
    act(support_staff, support("user_lock", bob.tenant_id, bob.user_id))
    problem(api.me(bob.access), 401, "session_revoked")  # locking revoked every session
    problem(api.login(bob.email, bob.password), 403, "account_locked")
    assert api.me(alice.access).status_code == 200
    the_audit_entry(
        action="user_lock", target_type="user", target_id=bob.user_id, tenant_id=bob.tenant_uuid
    )
    page = logged_in(support_staff).get(support("user", bob.tenant_id, bob.user_id)).content
    assert b">Unlock<" in page
    assert b"revoked" in page


def test_unlocking_a_user_lets_them_log_in_again(support_staff, api: Api, bob: Persona) -> None:
    act(support_staff, support("user_lock", bob.tenant_id, bob.user_id))
    act(support_staff, support("user_unlock", bob.tenant_id, bob.user_id), "owner asked")
    assert api.login(bob.email, bob.password).status_code == 200
    entry = StaffAuditEntry.objects.get(action="user_unlock")
    assert (entry.target_type, entry.target_id, entry.reason) == (
        "user",
        bob.user_id,
        "owner asked",
    )


def test_revoking_one_session_ends_only_that_one(support_staff, api: Api, bob: Persona) -> None:
    laptop = login_pair(api, bob)
    phone_session = bob.session_id(api)
    act(support_staff, support("session_revoke", bob.tenant_id, bob.user_id, phone_session))
    problem(api.me(bob.access), 401, "session_revoked")
    problem(api.refresh(bob.refresh), 401, "session_revoked")
    assert api.me(laptop["access"]).status_code == 200
    the_audit_entry(
        action="session_revoke",
        target_type="auth_session",
        target_id=phone_session,
        tenant_id=bob.tenant_uuid,
    )
    events = auth_event_list(tenant_id=bob.tenant_uuid)
    assert events[0].type == "device_revoked"
    assert events[0].data["by"] == "support"


def test_revoking_a_session_of_someone_else_is_not_found(
    support_staff, api: Api, alice: Persona, bob: Persona
) -> None:
    path = support("session_revoke", bob.tenant_id, bob.user_id, alice.session_id(api))
    assert logged_in(support_staff).post(path, {"reason": "x"}).status_code == 404
    assert api.me(alice.access).status_code == 200
    assert not StaffAuditEntry.objects.exists()


def test_revoking_every_session(support_staff, api: Api, bob: Persona) -> None:
    laptop = login_pair(api, bob)
    act(support_staff, support("user_revoke_all", bob.tenant_id, bob.user_id))
    for access in (bob.access, laptop["access"]):
        problem(api.me(access), 401, "session_revoked")
    assert api.login(bob.email, bob.password).status_code == 200  # not locked
    the_audit_entry(action="sessions_revoke_all", target_type="user", target_id=bob.user_id)


def test_deleting_a_workspace_session(
    support_staff, api: Api, alice: Persona, bob: Persona
) -> None:
    session = workspace_session(api, alice)
    response = act(support_staff, support("workspace_session_delete", alice.tenant_id, session))
    assert response["Location"] == support("workspace_sessions", alice.tenant_id)
    assert api.get(f"/api/v5/sessions/{session}", bob.access).status_code == 404
    the_audit_entry(
        action="workspace_session_delete",
        target_type="workspace_session",
        target_id=session,
        tenant_id=alice.tenant_uuid,
    )


@pytest.mark.parametrize("reason", ["", "   \n "])
def test_an_action_without_a_reason_is_asked_again(
    support_staff, api: Api, alice: Persona, reason: str
) -> None:
    response = logged_in(support_staff).post(
        support("tenant_suspend", alice.tenant_id), {"reason": reason}
    )
    assert response.status_code == 400
    assert b"This field is required" in response.content
    assert api.me(alice.access).status_code == 200
    assert not StaffAuditEntry.objects.exists()


def test_actions_on_what_does_not_exist_are_not_found_and_not_audited(
    support_staff, alice: Persona
) -> None:
    nobody = str(uuid.uuid4())
    client = logged_in(support_staff)
    for path in (
        support("tenant_suspend", nobody),
        support("user_lock", alice.tenant_id, nobody),
        support("user_revoke_all", alice.tenant_id, nobody),
        support("workspace_session_delete", alice.tenant_id, nobody),
    ):
        assert client.post(path, {"reason": "x"}).status_code == 404, path
    assert not StaffAuditEntry.objects.exists()


def test_a_failing_action_leaves_no_audit_entry(support_staff, alice: Persona, monkeypatch) -> None:
    from operations import staff

    def broken(**_):
        raise RuntimeError("storage is down")

    monkeypatch.setattr(staff, "tenant_status_set", broken)
    client = logged_in(support_staff, raise_request_exception=False)
    response = client.post(support("tenant_suspend", alice.tenant_id), {"reason": "x"})
    assert response.status_code == 500
    assert not StaffAuditEntry.objects.exists()


def test_changing_a_tenant_s_quotas_takes_effect_and_is_audited(
    support_staff, api: Api, alice: Persona, charlie: Persona
) -> None:
    client = logged_in(support_staff)
    page = client.get(support("tenant", alice.tenant_id)).content.decode()
    assert ">Change quotas<" in page and 'id="quotas"' in page
    form = client.get(support("tenant_quota", alice.tenant_id))
    assert form.status_code == 200 and b"Workspace sessions" in form.content
    # A reason is required, and a negative quota is refused: nothing changes.
    path = support("tenant_quota", alice.tenant_id)
    assert client.post(path, {"sessions": "1", "reason": ""}).status_code == 400
    assert client.post(path, {"sessions": "-1", "reason": "ticket"}).status_code == 400
    assert not StaffAuditEntry.objects.exists()
    response = client.post(
        path, {"sessions": "1", "bytes": "", "api_tokens": "0", "reason": "ticket #7: plan"}
    )
    assert response.status_code == 302, response.content
    quotas = api.get("/api/v5/tenant/", alice.access).json()["quotas"]
    assert quotas["sessions"] == 1 and quotas["api_tokens"] is None  # 0: unlimited
    body = {"name": "S", "workspace_path": "/w"}
    assert api.post("/api/v5/sessions", body, alice.access).status_code == 201
    problem(api.post("/api/v5/sessions", body, alice.access), 403, "quota_exceeded")
    assert api.post("/api/v5/sessions", body, charlie.access).status_code == 201
    the_audit_entry(
        staff=support_staff,
        action="tenant_quota",
        target_type="tenant",
        target_id=alice.tenant_id,
        tenant_id=alice.tenant_uuid,
        reason="ticket #7: plan",
    )
    page = client.get(support("tenant", alice.tenant_id)).content.decode()
    assert "this tenant" in page
    # The form shows the tenant's own values; blank resets to the default.
    assert b'value="1"' in client.get(path).content
    act(support_staff, path)
    assert api.get("/api/v5/tenant/", alice.access).json()["quotas"]["sessions"] != 1


def test_the_reason_form_says_the_tenant_reads_it(support_staff, alice: Persona) -> None:
    page = logged_in(support_staff).get(support("tenant_suspend", alice.tenant_id))
    assert "the tenant&#x27;s owners and admins see it, without your name" in page.content.decode()


def test_an_action_on_a_user_names_them_for_the_tenant_audit_log(
    support_staff, api: Api, alice: Persona, bob: Persona
) -> None:
    act(support_staff, support("user_lock", bob.tenant_id, bob.user_id))
    act(support_staff, support("tenant_suspend", alice.tenant_id))
    entries = {e.action: e.user_id for e in StaffAuditEntry.objects.all()}
    assert entries == {"user_lock": bob.user_uuid, "tenant_suspend": None}
