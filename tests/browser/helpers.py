"""A browser tab for the tests: a Playwright page in its own context, with bounded waits."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import Any

# Every wait in these tests ends within this (ms) unless it says otherwise.
WAIT_MS = 10_000


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
