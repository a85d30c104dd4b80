"""The page shells: served with a strict CSP and no inline code, carrying no tenant's data.

A shell is the same for everyone (the script fills it through the API with the user's bearer
token), so a user of another tenant learns nothing from a page view, and what the script
then asks the API for is isolated there. The last tests walk that path as a page does.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders

from tests.accounts.helpers import PASSWORD, Api, Persona, problem
from tests.web.helpers import Web
from tests.workspaces.helpers import SESSIONS, SessionApi, create_session, session_url

PAGES = [
    "/signin/",
    "/register/",
    "/signout/",
    "/sessions/",
    "/account/",
    "/account/audit/",
    "/verify-email",
    "/forgot-password/",
    "/reset-password",
]
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S)
_STATIC = re.compile(r'(?:src|href)="/static/([^"]+)"')


def page_of(web: Web, path: str) -> str:
    response = web.page(path)
    assert response.status_code == 200, (path, response.status_code)
    return response.content.decode()


@pytest.mark.parametrize("path", [*PAGES, f"/sessions/{uuid.uuid4()}/"])
def test_every_page_is_a_shell_with_a_strict_policy(web: Web, path: str) -> None:
    response = web.page(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    policy = response["Content-Security-Policy"]
    directives = dict(item.strip().split(" ", 1) for item in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["connect-src"] == "'self' ws://testserver"
    assert "unsafe" not in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cache-Control"] == "no-store"
    html = response.content.decode()
    assert web.csrf, "the page carries its CSRF token for the script"
    scripts = _SCRIPT.findall(html)
    assert scripts
    for attributes, body in scripts:
        assert 'type="module"' in attributes
        assert 'src="/static/' in attributes
        assert body.strip() == "", "no inline script: the CSP would refuse it"
    assert " style=" not in html
    assert " onclick=" not in html


@pytest.mark.parametrize("path", [*PAGES, f"/sessions/{uuid.uuid4()}/"])
def test_every_static_file_a_page_names_exists(web: Web, path: str) -> None:
    html = page_of(web, path)
    named = _STATIC.findall(html)
    assert named
    for name in named:
        assert finders.find(name), name


def test_scripts_import_only_files_that_exist() -> None:
    for module in [
        "coditect/web.js",
        "accounts/pages.js",
        "accounts/recovery.js",
        "accounts/audit.js",
        "workspaces/dashboard.js",
        "realtime/client.js",
        "realtime/live.js",
    ]:
        found = finders.find(module)
        assert found, module
        source = Path(str(found)).read_text(encoding="utf-8")
        for relative in re.findall(r'from "(\.{1,2}/[^"]+)"', source):
            base = module.rsplit("/", 1)[0]
            parts = [*base.split("/"), *relative.split("/")]
            resolved: list[str] = []
            for part in parts:
                if part == "..":
                    resolved.pop()
                elif part != ".":
                    resolved.append(part)
            assert finders.find("/".join(resolved)), (module, relative)


def test_the_account_page_links_to_the_audit_log_page(web: Web) -> None:
    account = page_of(web, "/account/")
    assert 'id="audit-card" hidden' in account  # its script shows it to owners and admins
    assert 'href="/account/audit/"' in account
    audit = page_of(web, "/account/audit/")
    assert 'data-page="audit"' in audit and 'id="audit-more"' in audit
    pages = Path(str(finders.find("accounts/pages.js"))).read_text(encoding="utf-8")
    assert "audit: auditPage" in pages


def test_the_root_goes_to_the_dashboard(web: Web) -> None:
    response = web.client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/sessions/"


def test_register_fills_in_the_invitation_escaped(web: Web) -> None:
    html = page_of(web, '/register/?invitation="><script>alert(1)</script>')
    assert "<script>alert(1)</script>" not in html
    assert 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in html


def test_sign_in_goes_only_to_pages_of_this_site_afterwards(web: Web) -> None:
    assert 'data-next="/sessions/abc/"' in page_of(web, "/signin/?next=/sessions/abc/")
    for outside in ["https://evil.example/", "//evil.example/", "/\\evil.example"]:
        assert 'data-next="/sessions/"' in page_of(web, f"/signin/?next={outside}")


def test_a_malformed_session_id_is_not_a_page(web: Web) -> None:
    assert web.client.get("/sessions/not-a-uuid/").status_code == 404


def test_pages_refuse_writes(web: Web) -> None:
    web.page()
    response = web.client.post("/sessions/", HTTP_X_CSRFTOKEN=web.csrf)
    assert response.status_code == 405


# --- another tenant, through the pages --------------------------------------------------


def _without_tokens(html: str) -> str:
    return re.sub(r'content="[^"]+"', 'content=""', html)


def test_the_live_page_of_another_tenants_session_shows_nothing_of_it(
    alice: Persona, charlie: Persona
) -> None:
    sessions = SessionApi()
    secret = create_session(
        sessions,
        alice,
        name="Acme secret plans",
        workspace_path="/srv/acme/secret",
        editor_state={"note": "launch codes"},
    )
    charlie_browser = Web()
    charlie_browser.login(charlie.email, PASSWORD)
    theirs = page_of(charlie_browser, f"/sessions/{secret['id']}/")
    made_up = page_of(charlie_browser, f"/sessions/{uuid.UUID(int=7)}/")
    for text in ("Acme secret plans", "/srv/acme/secret", "launch codes", alice.email):
        assert text not in theirs
    # The shell of a real session of another tenant is the shell of a session that does not
    # exist: nothing to tell them apart but the id Charlie typed.
    assert _without_tokens(theirs).replace(secret["id"], "ID") == _without_tokens(made_up).replace(
        str(uuid.UUID(int=7)), "ID"
    )


def test_another_tenant_signed_in_through_the_pages_cannot_see_or_act_on_a_session(
    api: Api, alice: Persona, charlie: Persona
) -> None:
    sessions = SessionApi()
    secret = create_session(sessions, alice, name="Acme only", workspace_path="/srv/acme")
    browser = Web()
    browser.login(charlie.email, PASSWORD)
    # What the live page's script does first: a token from the cookie, then the session.
    access = browser.refresh().json()["access"]
    problem(api.get(session_url(secret["id"]), access), 404, "not_found")
    listed: dict[str, Any] = api.get(SESSIONS, access).json()
    assert secret["id"] not in {entry["id"] for entry in listed["results"]}
    problem(sessions.patch(session_url(secret["id"]), {"name": "mine"}, access), 404)
    problem(api.post(session_url(secret["id"], "fork"), {}, access), 404)
    problem(api.post(session_url(secret["id"], "events"), {"event": "x", "data": 1}, access), 404)
    problem(api.delete(session_url(secret["id"]), access), 404)
    assert api.get(session_url(secret["id"]), alice.access).json()["name"] == "Acme only"
