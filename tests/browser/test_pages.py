"""The web pages in a real browser (headless Chromium) against a real daphne.

Register and sign in (errors next to their fields), the dashboard (create, fork, delete,
live counts, paging), a live session in two browser contexts (presence, an edit in one seen
in the other, events, locks, token refresh on an open socket), the server stopped and
started again (the pages reconnect and catch up on what happened meanwhile), and sign out
everywhere (the other device loses its access at once). Another tenant sees nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.accounts.helpers import PASSWORD
from tests.browser.conftest import ACCESS_TTL_S
from tests.browser.helpers import WAIT_MS, BrowserTab, Tabs, expect
from tests.realtime.servers import ROOT, Http, Server, invite, register

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DANA = "dana@example.com"


def login(http: Http, email: str) -> str:
    """A fresh access token (they live ACCESS_TTL_S here)."""
    answer = http.expect(200, "POST", "/api/v5/auth/login", {"email": email, "password": PASSWORD})
    return str(answer["access"])


def status(tab: BrowserTab) -> Any:
    return tab.page.locator("#conn-status")


def feed_seqs(tab: BrowserTab) -> list[int]:
    seqs: list[int] = tab.page.eval_on_selector_all(
        "#feed li", "items => items.map(item => Number(item.dataset.seq))"
    )
    return seqs


# --- accounts ---------------------------------------------------------------------------


def test_register_sign_out_and_sign_in_with_errors_next_to_their_fields(
    tabs: Tabs, server: Server
) -> None:
    tab = tabs("alice")
    page = tab.page
    tab.goto("/sessions/")
    page.wait_for_url(re.compile(r"/signin/\?next=%2Fsessions%2F$"))
    page.get_by_role("link", name="Create one").click()
    page.wait_for_url(re.compile(r"/register/$"))

    page.get_by_label("Email").fill("alice@example.com")
    page.get_by_label("Password").fill("12345")
    page.get_by_label("Your name").fill("Alice")
    page.get_by_label("Team name").fill("Acme")
    page.get_by_role("button", name="Create account").click()
    password_error = page.locator("#register-password-error")
    expect(password_error).to_be_visible()
    expect(password_error).to_contain_text("at least 8 characters")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#register-email-error")).to_be_hidden()

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/sessions/$"))
    expect(page.locator("#whoami")).to_have_text("Alice")
    expect(page.locator("#tenant-name")).to_contain_text("Acme")
    # The refresh token is out of the page's reach.
    assert "coditect_refresh" not in page.evaluate("document.cookie")
    cookie = next(c for c in tab.context.cookies() if c["name"] == "coditect_refresh")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/web/auth/"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r"/signin/\?reason=signed_out$"))
    expect(page.locator("#signin-notice")).to_contain_text("signed out")
    tab.goto("/account/")
    page.wait_for_url(re.compile(r"/signin/\?next=%2Faccount%2F$"))

    page.get_by_label("Email").fill("alice@example.com")
    page.get_by_label("Password").fill("not-" + PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-form .form-error")).to_have_text("Email or password is incorrect.")
    # Meanwhile Alice signs in elsewhere too (a script, for the invitation below).
    http = Http(server)
    script_token = login(http, "alice@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/account/$"))
    expect(page.locator("#profile-email")).to_have_text("alice@example.com")
    expect(page.locator("#devices-body tr")).to_have_count(2)
    expect(page.locator("#devices-body tr.current")).to_contain_text("this device")
    invitation = http.expect(
        201,
        "POST",
        "/api/v5/tenant/invitations/",
        {"email": "bob@example.com", "role": "member"},
        script_token,
    )["token"]
    # Sign the script's device out from here: its token stops working at once.
    other = page.locator("#devices-body tr:not(.current)")
    expect(other).to_contain_text("Python-urllib")
    other.get_by_role("button", name="Sign out this device").click()
    expect(page.locator("#devices-body tr")).to_have_count(1)
    assert http.request("GET", "/api/v5/auth/me", token=script_token)[0] == 401

    # A wrong current password is shown next to that field.
    page.get_by_label("Current password").fill("wrong-" + PASSWORD)
    page.get_by_label("New password", exact=True).fill("An0ther-long-passphrase")
    page.get_by_label("New password again").fill("An0ther-long-passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-current_password-error")).to_have_text(
        "The current password is incorrect."
    )

    # Bob joins Alice's team through the invitation link.
    bob = tabs("bob")
    bob.goto(f"/register/?invitation={invitation}")
    expect(bob.page.get_by_label("Invitation (optional)")).to_have_value(invitation)
    expect(bob.page.get_by_label("Team name")).to_be_hidden()
    bob.page.get_by_label("Email").fill("bob@example.com")
    bob.page.get_by_label("Password").fill(PASSWORD)
    bob.page.get_by_label("Your name").fill("Bob")
    bob.page.get_by_role("button", name="Create account").click()
    bob.page.wait_for_url(re.compile(r"/sessions/$"))
    expect(bob.page.locator("#tenant-name")).to_contain_text("Acme")


# --- the journey: two devices on one live session ---------------------------------------


def test_two_devices_share_a_live_session_survive_a_restart_and_sign_out_everywhere(
    tabs: Tabs, server: Server, tmp_path: Path, screenshots: Path | None
) -> None:
    http = Http(server)
    register(http, "Dana", DANA, "Initech")

    # Device A: the dashboard, a new session through the form (a bad path first).
    a = tabs("dana-laptop")
    a.sign_in(DANA, PASSWORD)
    page = a.page
    page.get_by_label("Name").fill("Checkout service")
    page.get_by_label("Workspace path").fill("srv/checkout")
    page.get_by_role("button", name="Create session").click()
    expect(page.locator("#create-workspace_path-error")).to_be_visible()
    page.get_by_label("Workspace path").fill("/srv/checkout")
    page.get_by_role("button", name="Create session").click()
    row = page.locator("#sessions-body tr", has_text="Checkout service")
    expect(row).to_have_count(1)
    expect(row.locator("[data-live]")).to_have_text("0")
    for name, path in [("Docs site", "/srv/docs"), ("Scratch", "/tmp/scratch")]:
        http.expect(
            201,
            "POST",
            "/api/v5/sessions",
            {"name": name, "workspace_path": path},
            login(http, DANA),
        )
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#sessions-body tr")).to_have_count(3)
    # Fork, then delete (the button asks once more).
    row.get_by_role("button", name="Fork").click()
    expect(page.locator("#sessions-body tr", has_text="Checkout service (fork)")).to_have_count(1)
    scratch = page.locator("#sessions-body tr", has_text="Scratch")
    scratch.get_by_role("button", name="Delete").click()
    scratch.get_by_role("button", name="Confirm delete").click()
    expect(page.locator("#sessions-body tr", has_text="Scratch")).to_have_count(0)
    expect(page.locator("#sessions-body tr")).to_have_count(3)

    # Into the live session.
    page.get_by_role("link", name="Checkout service", exact=True).click()
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]{36}/$"))
    live_path = page.url.removeprefix(server.base_url)
    session_id = live_path.split("/")[2]
    opened_at = time.monotonic()
    expect(status(a)).to_have_attribute("data-state", "open")
    expect(page.locator("#presence-count")).to_have_text("1")

    # Device B: another browser context signs in and opens the same session.
    b = tabs("dana-desktop")
    b.sign_in(DANA, PASSWORD, then=live_path)
    expect(status(b)).to_have_attribute("data-state", "open")
    for tab in (a, b):
        expect(tab.page.locator("#presence-count")).to_have_text("2")
        expect(tab.page.locator("#presence-list li")).to_have_count(2)
        expect(tab.page.locator("#presence-list li.me")).to_have_count(1)

    # An edit in A appears in B.
    page.get_by_label("Active files").fill("/srv/checkout/app.py\n/srv/checkout/cart.py")
    page.get_by_label("Editor state").fill('{"cursor": {"line": 42, "column": 7}}')
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#state-saved")).to_have_text("Saved: version 2.")
    expect(b.page.get_by_label("Editor state")).to_have_value(
        json.dumps({"cursor": {"line": 42, "column": 7}}, indent=2)
    )
    expect(b.page.get_by_label("Active files")).to_have_value(
        "/srv/checkout/app.py\n/srv/checkout/cart.py"
    )
    expect(b.page.locator("#state-version")).to_have_text("version 2")
    # Bad JSON is refused next to its field, before anything is sent.
    b.page.get_by_label("Terminal state").fill("{not json")
    b.page.get_by_role("button", name="Save").click()
    expect(b.page.locator("#state-terminal_state-error")).to_contain_text("Not valid JSON")
    b.page.get_by_label("Terminal state").fill('{"cwd": "/srv/checkout"}')
    b.page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("Terminal state")).to_have_value('{\n  "cwd": "/srv/checkout"\n}')

    # An event from B shows in A's feed; a lock taken in A shows in B with holder and expiry.
    b.page.get_by_label("Event", exact=True).fill("build.status")
    b.page.get_by_label("Data (JSON)").fill('{"state": "running", "step": 2}')
    b.page.get_by_role("button", name="Publish").click()
    expect(page.locator('#feed li[data-kind="build.status"]')).to_contain_text('"state":"running"')
    page.get_by_label("Path to lock").fill("/srv/checkout/cart.py")
    page.get_by_role("button", name="Lock", exact=True).click()
    lock = b.page.locator('#locks-list li[data-lock="/srv/checkout/cart.py"]')
    expect(lock.locator(".holder")).to_have_text("Dana")
    expect(lock.locator("time")).to_have_text(re.compile(r"^in \d+ s$"))
    expect(page.locator('#locks-list li[data-lock="/srv/checkout/cart.py"] .holder')).to_have_text(
        "you (this tab)"
    )
    b.page.get_by_label("Path to lock").fill("/srv/checkout/cart.py")
    b.page.get_by_role("button", name="Lock", exact=True).click()
    expect(b.page.locator("#lock-path-error")).to_have_text("Locked by Dana.")

    # The dashboard counts both sockets.
    dashboard = b.new_page()
    dashboard.goto(server.base_url + "/sessions/")
    live_count = dashboard.locator(f'#sessions-body tr[data-session="{session_id}"] [data-live]')
    expect(live_count).to_have_text("2")
    if screenshots is not None:
        dashboard.screenshot(path=str(screenshots / "dashboard.png"))
        page.screenshot(path=str(screenshots / "live-session.png"), full_page=True)
    dashboard.close()

    # The access token expired while the sockets stayed open: re-authenticated, not reopened.
    for tab in (a, b):
        tab.page.wait_for_function(
            "() => Number(document.querySelector('#conn-status').dataset.reauthed) >= 1",
            timeout=ACCESS_TTL_S * 1000 + WAIT_MS,
        )
    remaining = opened_at + ACCESS_TTL_S + 1.5 - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
    for tab in (a, b):
        expect(status(tab)).to_have_attribute("data-state", "open")
        expect(status(tab)).to_have_attribute("data-opened", "1")

    # The server stops; an event is published while it is down; it starts again.
    before = {tab.name: int(status(tab).get_attribute("data-seq") or 0) for tab in (a, b)}
    server.stop()
    for tab in (a, b):
        expect(status(tab)).to_have_attribute("data-state", "reconnecting")
    published = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.browser.offline",
            DANA,
            PASSWORD,
            session_id,
            "deploy.finished",
            json.dumps({"ok": True, "while": "server down"}),
        ],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert published.returncode == 0, published.stderr
    offline_seq = int(published.stdout.strip().splitlines()[-1])
    assert offline_seq > max(before.values())
    server.log_path = tmp_path / "daphne-web-restarted.log"
    server.start()
    server.wait_ready()
    for tab in (a, b):
        expect(status(tab)).to_have_attribute("data-state", "open", timeout=20_000)
        expect(status(tab)).to_have_attribute("data-opened", "2")
        entry = tab.page.locator(f'#feed li[data-seq="{offline_seq}"]')
        expect(entry).to_have_attribute("data-kind", "deploy.finished")
        expect(entry).to_contain_text('"while":"server down"')
        caught_up = "Number(document.querySelector('#conn-status').dataset.caughtUp)"
        tab.page.wait_for_function(f"() => {caught_up} >= {offline_seq}")
        # Nothing missed, nothing twice: the feed's seqs run without a gap or a repeat.
        seqs = feed_seqs(tab)
        assert seqs == list(range(seqs[0], seqs[0] - len(seqs), -1)), (tab.name, seqs)
        assert offline_seq in seqs
        # The state edited before the restart is still what the page shows.
        expect(tab.page.locator("#state-version")).to_have_text("version 3")
    # The connections of the stopped server leave presence; the two new ones remain.
    for tab in (a, b):
        expect(tab.page.locator("#presence-count")).to_have_text("2", timeout=20_000)
    # Edits flow again after the restart.
    b.page.get_by_label("Editor state").fill('{"cursor": {"line": 1}}')
    b.page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("Editor state")).to_have_value(
        json.dumps({"cursor": {"line": 1}}, indent=2)
    )

    # Sign out everywhere from A: B's socket is closed and B is sent to sign in.
    a.goto("/account/")
    expect(page.locator("#devices-body tr.current")).to_have_count(1)
    page.get_by_role("button", name="Sign out everywhere").click()
    page.wait_for_url(re.compile(r"/signin/\?reason=signed_out$"))
    b.page.wait_for_url(re.compile(r"/signin/\?next=.*reason=signed_out$"))
    expect(b.page.locator("#signin-notice")).to_contain_text("signed out")
    for tab in (a, b):
        tab.goto("/sessions/")
        tab.page.wait_for_url(re.compile(r"/signin/\?next=%2Fsessions%2F$"))


# --- another tenant, and paging ---------------------------------------------------------


def test_another_tenant_sees_nothing_and_the_dashboard_pages(tabs: Tabs, server: Server) -> None:
    http = Http(server)
    register(http, "Erin", "erin@example.com", "Umbrella")
    register(http, "Frank", "frank@example.com", "Hooli")
    erin = login(http, "erin@example.com")
    secret = http.expect(
        201,
        "POST",
        "/api/v5/sessions",
        {"name": "Umbrella secret", "workspace_path": "/srv/umbrella"},
        erin,
    )
    frank = login(http, "frank@example.com")
    for number in range(22):
        http.expect(
            201,
            "POST",
            "/api/v5/sessions",
            {"name": f"Hooli {number:02d}", "workspace_path": "/srv/hooli"},
            frank,
        )

    tab = tabs("frank")
    tab.sign_in("frank@example.com", PASSWORD)
    page = tab.page
    rows = page.locator("#sessions-body tr")
    expect(rows).to_have_count(20)
    expect(page.locator("#sessions-body")).not_to_contain_text("Umbrella")
    expect(rows.first).to_contain_text("Hooli 21")  # most recently active first
    page.get_by_role("button", name="Older →").click()
    expect(rows).to_have_count(2)
    expect(page.locator("#page-info")).to_have_text("Page 2")
    expect(page.get_by_role("button", name="Older →")).to_be_disabled()
    page.get_by_role("button", name="← Newer").click()
    expect(rows).to_have_count(20)
    expect(page.locator("#page-info")).to_have_text("Page 1")

    tab.goto(f"/sessions/{secret['id']}/")
    expect(page.locator("#live-problem")).to_contain_text("Session not found")
    expect(page.locator("#session-name")).to_have_text("Session not found")
    expect(page.locator("body")).not_to_contain_text("Umbrella")
    expect(page.locator("#state-save")).to_be_disabled()


# --- the audit log ------------------------------------------------------------------------


def test_owners_page_through_their_audit_log_and_members_are_refused(
    tabs: Tabs, server: Server
) -> None:
    http = Http(server)
    gina = register(http, "Gina", "gina@example.com", "Initech")
    hal = invite(http, gina, "Hal", "hal@example.com")
    for _ in range(30):  # 60 entries and more: two pages of 50
        http.request("POST", "/api/v5/auth/login", {"email": "hal@example.com", "password": "x"})
        login(http, "hal@example.com")

    tab = tabs("gina")
    tab.sign_in("gina@example.com", PASSWORD, then="/account/")
    page = tab.page
    page.get_by_role("link", name="Open the audit log").click()
    page.wait_for_url(re.compile(r"/account/audit/$"))
    rows = page.locator("#audit-body tr")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("gina@example.com")  # her own sign-in, the newest
    page.get_by_role("button", name="Older entries").click()
    expect(page.get_by_role("button", name="Older entries")).to_be_hidden()
    total = rows.count()
    assert 60 < total < 100, total
    expect(page.locator("#audit-body")).to_contain_text("member_joined")

    page.get_by_label("Member").select_option(label="hal@example.com")
    page.get_by_label("Kind").fill("login_failed")
    page.get_by_role("button", name="Show").click()
    expect(rows).to_have_count(30)
    expect(page.locator("#audit-body")).not_to_contain_text("gina@example.com")

    member = tabs("hal")
    member.sign_in("hal@example.com", PASSWORD, then="/account/")
    expect(member.page.locator("#profile-role")).to_have_text("member")
    expect(member.page.locator("#audit-card")).to_be_hidden()
    member.goto("/account/audit/")
    expect(member.page.locator("#audit-error")).to_contain_text("owners and admins")
    expect(member.page.locator("#audit-body tr")).to_have_count(0)
    assert hal.user_id
