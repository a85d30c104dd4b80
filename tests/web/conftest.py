"""Fixtures of the web-page tests: the accounts personas and a fresh memory store per test.

``web`` is a browser stand-in: a Django test client that enforces CSRF as a real browser's
requests meet it, keeps cookies, and reads the CSRF token from a page as the page script does.
"""

from __future__ import annotations

import pytest

from tests.accounts.conftest import accounts_environment, alice, api, bob, charlie
from tests.web.helpers import Web

__all__ = ["accounts_environment", "alice", "api", "bob", "charlie", "web", "web_factory"]


@pytest.fixture
def web_factory():
    return Web


@pytest.fixture
def web() -> Web:
    return Web()
