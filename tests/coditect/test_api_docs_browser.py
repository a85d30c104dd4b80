"""Swagger UI and Redoc in Debian's Chromium, against a daphne without DEBUG (issue 14).

The pages must work under their Content-Security-Policy with every asset from this server:
any CSP refusal in the console, uncaught script error or request to another origin fails the
test. "Try it out" must reach the running server, with and without a bearer token.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import browser
from tests.browser.helpers import BrowserTab, expect
from tests.realtime.servers import Server, Servers, base_env

__all__ = ["browser"]

pytestmark = pytest.mark.slow

_REDOC_LOGO = "'https://cdn.redoc.ly/redoc/logo-mini.svg' violates"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Server]:
    """daphne as deployed: DEBUG off, so static files come from coditect.asgi's handler and
    not from Django's DEBUG-only view (plain HTTP here: no redirect, no HSTS)."""
    tmp = tmp_path_factory.mktemp("docs")
    servers = Servers(tmp)
    env = base_env(
        f"embedded://{tmp}/store.sqlite3",
        DJANGO_DEBUG="0",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_SECURE_HSTS_SECONDS="0",
    )
    web = Server("docs", tmp / "daphne-docs.log", env)
    servers.started.append(web)
    try:
        web.start()
        web.wait_ready()
        yield web
    finally:
        servers.stop_all()


@pytest.fixture
def tab(browser: Any, server: Server) -> Iterator[BrowserTab]:
    opened = BrowserTab.open(browser, server.base_url, "docs")
    refused: list[str] = []
    elsewhere: list[str] = []
    failed: dict[str, str] = {}
    page = opened.page
    page.on(
        "console",
        lambda message: (
            refused.append(message.text)
            if "Content Security Policy" in message.text or "Refused to" in message.text
            else None
        ),
    )
    page.on(
        "request",
        lambda request: (
            None
            if request.url.startswith((server.base_url + "/", "data:", "blob:"))
            else elsewhere.append(request.url)
        ),
    )
    page.on("requestfailed", lambda request: failed.update({request.url: request.failure}))
    try:
        yield opened
    finally:
        opened.close()
    opened.assert_no_script_errors()
    # Redoc's sidebar credits Redocly with a logo from its CDN, whatever the options: the
    # policy refuses it before any request is made (Redoc then hides it). Nothing else.
    assert [text for text in refused if _REDOC_LOGO not in text] == [], refused
    blocked = [url for url in elsewhere if failed.get(url) == "csp"]  # refused, never sent
    assert elsewhere == blocked, (elsewhere, failed)


def _register(server: Server) -> str:
    body = {"email": "docs@example.com", "password": "Tr0ub4dor&3-horse-staple", "tenant_name": "D"}
    request = urllib.request.Request(
        server.base_url + "/api/v5/auth/register",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # our own test server
        access: str = json.loads(response.read())["access"]
    return access


def _execute(page: Any, operation_id: str) -> Any:
    """Open an operation (tryItOutEnabled: its form is ready) and press Execute."""
    block = page.locator(f"[id$='-{operation_id}']").first
    block.locator(".opblock-summary").first.click()
    block.locator("button.execute").click()
    return block.locator(".live-responses-table tr.response .response-col_status")


def test_swagger_ui_tries_calls_against_the_server(tab: BrowserTab, server: Server) -> None:
    page = tab.page
    tab.goto("/api/v5/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Coditect platform API")
    expect(_execute(page, "auth_jwks_retrieve")).to_have_text("200")
    expect(_execute(page, "auth_me_retrieve")).to_have_text("401")
    # Authorize with an access token, as the bearer scheme says, and call again.
    page.locator("button.authorize").first.click()
    page.locator(".modal-ux input").first.fill(_register(server))
    page.locator(".modal-ux button.authorize").click()
    page.locator(".modal-ux button.btn-done").click()
    me = page.locator("[id$='-auth_me_retrieve']").first
    me.locator("button.execute").click()
    expect(me.locator(".live-responses-table tr.response .response-col_status")).to_have_text("200")
    expect(
        me.locator(".live-responses-table tr.response .response-col_description")
    ).to_contain_text("docs@example.com")


def test_redoc_renders_the_schema(tab: BrowserTab) -> None:
    page = tab.page
    tab.goto("/api/v5/redoc/")
    expect(page.locator("h1").first).to_contain_text("Coditect platform API")
    expect(page.get_by_text("auth_login_create").first).to_be_attached()
