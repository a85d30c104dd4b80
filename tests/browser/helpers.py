"""A browser tab for the tests: a Playwright page in its own context, with bounded waits;
account mail read from the server's mail files; an authenticator app for TOTP codes."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Every wait in these tests ends within this (ms) unless it says otherwise.
WAIT_MS = 10_000


def expect(locator: Any) -> Any:
    """Playwright's expect, waiting at most WAIT_MS (imported late: the package may be absent)."""
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=WAIT_MS)
    return playwright_expect(locator)


@dataclass
class BrowserTab:
    name: str
    base_url: str
    context: Any
    page: Any
    errors: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, browser: Any, base_url: str, name: str) -> BrowserTab:
        context = browser.new_context(
            viewport={"width": 1280, "height": 860}, base_url=base_url, locale="en-US"
        )
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        tab = cls(name, base_url, context, page)
        # Uncaught exceptions in page scripts fail the test at its end.
        page.on("pageerror", lambda error: tab.errors.append(str(error)))
        return tab

    def new_page(self) -> Any:
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page

    def goto(self, path: str) -> None:
        self.page.goto(self.base_url + path)

    def sign_in(self, email: str, password: str, then: str = "/sessions/") -> None:
        self.goto("/signin/?next=" + then)
        page = self.page
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(re.escape(then) + "$"))

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the browser may be gone already
            self.context.close()

    def assert_no_script_errors(self) -> None:
        assert not self.errors, f"{self.name}: uncaught script errors: {self.errors}"


# --- account mail, read as its user reads it ------------------------------------------------

_MAIL_END = b"\n" + b"-" * 79 + b"\n"  # what Django's file backend writes after each message
_LINK = re.compile(r"https?://\S+#token=\S+")


def mail_links(mail_dir: Path, address: str, path: str) -> list[str]:
    """The links to ``path`` in the plain-text mail to ``address`` so far, oldest first."""
    from email import policy
    from email.parser import BytesParser

    links: list[str] = []
    files = sorted(mail_dir.glob("*.log"), key=lambda file: (file.stat().st_mtime_ns, file.name))
    for file in files:
        # A message is complete once its separator is written: the last piece may not be.
        for chunk in file.read_bytes().split(_MAIL_END)[:-1]:
            message = BytesParser(policy=policy.default).parsebytes(chunk.lstrip(b"\n"))
            if address not in str(message["To"]):
                continue
            body = message.get_body(preferencelist=("plain",))
            assert body is not None, message
            links += [
                link for link in _LINK.findall(body.get_content()) if f"{path}#token=" in link
            ]
    return links


def wait_for_mail_link(
    mail_dir: Path, address: str, path: str, count: int = 1, timeout_s: float = WAIT_MS / 1000
) -> str:
    """The newest link to ``path`` once ``address`` has received ``count`` of them (mail is
    sent by a background thread of the server, so it lands shortly after the answer)."""
    deadline = time.monotonic() + timeout_s
    while True:
        links = mail_links(mail_dir, address, path) if mail_dir.is_dir() else []
        if len(links) >= count:
            return links[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} mail(s) to {address} linking to {path}: got {links}")
        time.sleep(0.05)


# --- TOTP codes, as an authenticator app shows them -----------------------------------------

TOTP_PERIOD_S = 30


@dataclass
class Authenticator:
    """An authenticator app holding ``secret``. The server accepts a code of the step before
    or after the current one, and each step only once: ``code()`` hands out the earliest
    step not used yet that the server still accepts, so a test rarely waits for the clock."""

    secret: str
    last_step: int | None = None

    def code(self) -> str:
        import pyotp

        now = time.time()
        current = int(now // TOTP_PERIOD_S)
        # The previous step, unless it is about to fall out of the server's window.
        earliest = current - 1 if now - current * TOTP_PERIOD_S < TOTP_PERIOD_S - 3 else current
        step = earliest if self.last_step is None else max(self.last_step + 1, earliest)
        if step > current + 1:  # every acceptable step is spent: wait for the next one
            time.sleep((step - 1) * TOTP_PERIOD_S - now + 0.2)
        self.last_step = step
        return str(pyotp.TOTP(self.secret).at(step * TOTP_PERIOD_S))

    def codes_now(self) -> set[str]:
        """Every code the server would take at this moment (to pick one it refuses)."""
        import pyotp

        totp = pyotp.TOTP(self.secret)
        now = time.time()
        return {str(totp.at(now + drift)) for drift in (-TOTP_PERIOD_S, 0, TOTP_PERIOD_S)}


# A fixture's factory: a new tab (its own browser context) under a name.
Tabs = Callable[[str], BrowserTab]
