"""The account page's "Your data" card in a real browser against a real daphne: the export
downloads as a file, and the account is deleted with its password (issue 16 part 3)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.accounts.helpers import PASSWORD
from tests.browser.helpers import Tabs, expect
from tests.realtime.servers import Http, Server, invite, register

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_a_member_downloads_their_data_then_deletes_their_account(
    tabs: Tabs, server: Server, tmp_path: Path
) -> None:
    http = Http(server)
    owner = register(http, "Gina", "gina@example.com", "Initech")
    member = invite(http, owner, "Hal", "hal@example.com")
    http.expect(
        201,
        "POST",
        "/api/v5/sessions",
        {"name": "Hal's notes", "workspace_path": "/home/hal"},
        member.access,
    )
    tab = tabs("hal")
    tab.sign_in("hal@example.com", PASSWORD, then="/account/")
    page = tab.page

    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data").click()
    saved = tmp_path / "export.json"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "coditect-export.json"
    exported = json.loads(saved.read_text())
    assert exported["user"]["email"] == "hal@example.com"
    assert [s["name"] for s in exported["workspace_sessions"]] == ["Hal's notes"]

    # A wrong password is shown next to its field; nothing is deleted.
    page.locator("#erase-password").fill("not-" + PASSWORD)
    page.get_by_role("button", name="Delete my account").click()
    expect(page.locator("#erase-password-error")).to_have_text("The password is incorrect.")
    expect(page.locator("#erase-code-field")).to_be_hidden()

    page.locator("#erase-password").fill(PASSWORD)
    page.get_by_role("button", name="Delete my account").click()
    page.wait_for_url(re.compile(r"/signin/\?reason=account_deleted$"))
    expect(page.locator("#signin-notice")).to_contain_text("deleted")
    # Gone: the old token, the password, and this browser's sign-in cookie.
    assert http.request("GET", "/api/v5/auth/me", token=member.access)[0] == 401
    body = {"email": "hal@example.com", "password": PASSWORD}
    assert http.request("POST", "/api/v5/auth/login", body)[0] == 401
    tab.goto("/account/")
    page.wait_for_url(re.compile(r"/signin/\?next=%2Faccount%2F$"))
    tab.assert_no_script_errors()
