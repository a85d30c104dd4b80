"""Fixtures of the browser tests: Debian's Chromium driven by Playwright, and a real daphne.

Nothing is downloaded: Playwright's Python package drives the Chromium that `make test`
installs from Debian (`apt-get install chromium`), never a browser build of its own. Where
that browser or the package is missing the tests skip with the reason; under CI (the
environment variable ``CI`` set) that is a failure instead, so a broken install cannot hide
behind a skip.

One daphne serves the module (a temporary embedded store, DEBUG settings as a developer's
machine has them, short access tokens so the pages' refresh runs within a test, account mail
written to files by Django's file backend: ``mail_to`` in helpers.py reads it); a test may
stop and start it again on the same port and store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.helpers import BrowserTab
from tests.realtime.servers import ROOT, Server, Servers, base_env

CHROMIUM = os.environ.get("CODITECT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Access tokens live this long in the browser tests: the pages refresh them (and re-authenticate
# their sockets) several times in each test instead of once in fifteen minutes.
ACCESS_TTL_S = 12
SERVER_ENV = {
    "CODITECT_ACCESS_TOKEN_TTL_S": str(ACCESS_TTL_S),
    # A stopped server's connections leave presence within seconds, not half a minute.
    "CODITECT_WS_HEARTBEAT_S": "1",
    "CODITECT_WS_PRESENCE_TIMEOUT_S": "6",
}


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        return f"Playwright's Python package is not installed ({error}); see requirements-dev.txt"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM}: `apt-get install chromium` (make test does)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run under CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("browser")
    servers = Servers(tmp)
    # Account mail goes to files in MAIL_DIR, where a test reads it as its user would; its
    # links point at this server (the port is known once the Server exists).
    env = base_env(
        f"embedded://{tmp}/store.sqlite3",
        **SERVER_ENV,
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(tmp / "mail"),
        # Its own staff database, migrated as `make start` does (the audit page reads it).
        DATABASE_URL=f"sqlite:///{tmp}/staff.sqlite3",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    web = Server("web", tmp / "daphne-web.log", env)
    env["CODITECT_PUBLIC_URL"] = web.base_url
    servers.started.append(web)
    try:
        web.start()
        web.wait_ready()
        yield web
    finally:
        servers.stop_all()


@pytest.fixture
def tabs(browser: Any, server: Server) -> Iterator[Callable[[str], BrowserTab]]:
    """``tabs(name)``: a page in a new browser context (its own cookie jar: a device)."""
    if server.process is None or server.process.poll() is not None:
        server.start()  # a test that failed while the server was stopped
        server.wait_ready()
    opened: list[BrowserTab] = []

    def open_tab(name: str) -> BrowserTab:
        tab = BrowserTab.open(browser, server.base_url, name)
        opened.append(tab)
        return tab

    try:
        yield open_tab
    finally:
        for tab in opened:
            tab.close()
        for tab in opened:
            tab.assert_no_script_errors()


@pytest.fixture
def screenshots() -> Path | None:
    """Where to save screenshots for the docs, when CODITECT_SCREENSHOTS=1 asks for them."""
    if os.environ.get("CODITECT_SCREENSHOTS") != "1":
        return None
    folder = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
