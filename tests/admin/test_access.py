"""Who may see the support views and who may act: anonymous, non-staff, staff without the
support permission, read-only support, full support. Actions are POSTs with CSRF."""

from __future__ import annotations

import pytest

from accounts.models import StaffAuditEntry
from tests.accounts.helpers import Api, Persona
from tests.admin.conftest import logged_in
from tests.admin.helpers import support, workspace_session

AUDIT_LOG = "/admin/accounts/staffauditentry/"


@pytest.fixture
def targets(api: Api, alice: Persona, bob: Persona) -> dict[str, list[str]]:
    tid, uid = alice.tenant_id, bob.user_id
    session = workspace_session(api, alice)
    auth_session = bob.session_id(api)
    pages = [
        support("tenants"),
        support("tenants") + "?q=acme",
        support("tenant", tid),
        support("users") + "?email=bob",
        support("user", tid, uid),
        support("auth_events_pick"),
        support("auth_events", tid),
        support("workspace_sessions_pick"),
        support("workspace_sessions", tid),
        support("workspace_session", tid, session),
    ]
    actions = [
        support("tenant_suspend", tid),
        support("tenant_resume", tid),
        support("tenant_quota", tid),
        support("user_lock", tid, uid),
        support("user_unlock", tid, uid),
        support("user_revoke_all", tid, uid),
        support("session_revoke", tid, uid, auth_session),
        support("workspace_session_delete", tid, session),
    ]
    return {"pages": pages, "actions": actions}


@pytest.mark.parametrize("who", ["anonymous", "plain_user"])
def test_without_staff_status_every_view_sends_to_the_login_page(
    request, targets, who: str
) -> None:
    client = logged_in(None if who == "anonymous" else request.getfixturevalue(who))
    for path in [*targets["pages"], *targets["actions"], AUDIT_LOG]:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/admin/login/?next="), path
    for path in targets["actions"]:
        response = client.post(path, {"reason": "because"})
        assert response.status_code == 302, path
        assert response["Location"].startswith("/admin/login/"), path
    assert not StaffAuditEntry.objects.exists()


def test_staff_without_the_support_permission_is_refused(bare_staff, targets) -> None:
    client = logged_in(bare_staff)
    for path in [*targets["pages"], *targets["actions"], AUDIT_LOG]:
        assert client.get(path).status_code == 403, path
    for path in targets["actions"]:
        assert client.post(path, {"reason": "because"}).status_code == 403, path
    index = client.get("/admin/")
    assert index.status_code == 200
    assert b"Tenants" not in index.content


def test_read_only_support_sees_everything_and_can_do_nothing(
    readonly_staff, targets, api: Api, alice: Persona, bob: Persona
) -> None:
    client = logged_in(readonly_staff)
    for path in [*targets["pages"], AUDIT_LOG]:
        response = client.get(path)
        assert response.status_code == 200, path
        for verb in (
            b">Suspend<",
            b">Lock<",
            b">Revoke every session<",
            b">Delete<",
            b">Change quotas<",
        ):
            assert verb not in response.content, (path, verb)
    for path in targets["actions"]:
        assert client.get(path).status_code == 403, path
        assert client.post(path, {"reason": "because"}).status_code == 403, path
    assert not StaffAuditEntry.objects.exists()
    assert api.me(alice.access).status_code == 200
    assert api.me(bob.access).status_code == 200


def test_full_support_sees_the_actions(support_staff, targets) -> None:
    client = logged_in(support_staff)
    tenant_page, user_page, session_page = (
        targets["pages"][2],
        targets["pages"][4],
        targets["pages"][9],
    )
    assert b">Suspend<" in client.get(tenant_page).content
    user = client.get(user_page).content
    assert b">Lock<" in user
    assert b">Revoke every session<" in user
    assert b">Revoke<" in user
    assert b">Delete<" in client.get(session_page).content
    for path in targets["actions"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert b'name="reason"' in response.content
        assert b"csrfmiddlewaretoken" in response.content


def test_actions_need_the_csrf_token(support_staff, targets, api: Api, alice: Persona) -> None:
    client = logged_in(support_staff, enforce_csrf_checks=True)
    for path in targets["actions"]:
        assert client.post(path, {"reason": "no token"}).status_code == 403, path
    assert not StaffAuditEntry.objects.exists()
    assert api.me(alice.access).status_code == 200


def test_the_admin_index_links_the_support_views(readonly_staff, support_staff) -> None:
    for staff in (readonly_staff, support_staff):
        page = logged_in(staff).get("/admin/").content.decode()
        for name in ("tenants", "users", "workspace_sessions_pick", "auth_events_pick"):
            assert f'href="{support(name)}"' in page
        assert f'href="{AUDIT_LOG}"' in page
    sidebar = logged_in(readonly_staff).get(support("tenants")).content.decode()
    assert 'id="nav-sidebar"' in sidebar
    assert f'href="{support("users")}"' in sidebar
