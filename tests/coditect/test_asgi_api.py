"""The accounts and workspace API suites again, through the ASGI handler that daphne runs.

The other API tests use Django's test client, which takes the WSGI path. Under ASGI the hot
operations go another way (coditect/lean.py runs the view and renders it in one pool thread;
the security headers come from coditect/middleware.py), so these suites run once more through
Django's AsyncClient: the same answers, errors and tenant isolation on both paths.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient

from tests.accounts.conftest import accounts_environment, alice, bob, charlie
from tests.accounts.helpers import Api
from tests.accounts.test_isolation import *  # noqa: F403  (collected again here)
from tests.accounts.test_me_jwks import *  # noqa: F403
from tests.accounts.test_tokens import *  # noqa: F403
from tests.workspaces.conftest import alice_session, dana
from tests.workspaces.helpers import SessionApi
from tests.workspaces.test_bad_input import *  # noqa: F403
from tests.workspaces.test_crud import *  # noqa: F403
from tests.workspaces.test_isolation import *  # noqa: F403

__all__ = ["accounts_environment", "alice", "alice_session", "bob", "charlie", "dana"]


class AsgiClient:
    """Django's test client interface, each request sent through the ASGI handler."""

    def __init__(self) -> None:
        self._client = AsyncClient()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **extra: Any) -> Any:
            # The sync client takes headers as WSGI environ keys (HTTP_AUTHORIZATION=...);
            # AsyncClient wants them as headers.
            headers = dict(extra.pop("headers", None) or {})
            for key in [key for key in extra if key.startswith("HTTP_")]:
                headers[key[5:].replace("_", "-")] = extra.pop(key)
            return async_to_sync(method)(*args, headers=headers, **extra)

        return call


@pytest.fixture
def api() -> Api:
    return Api(AsgiClient())  # type: ignore[arg-type]


@pytest.fixture
def sessions() -> SessionApi:
    return SessionApi(AsgiClient())  # type: ignore[arg-type]


def test_api_responses_carry_the_security_headers(api: Api, alice: Any) -> None:
    response = api.me(alice.access)
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_pages_carry_frame_options_and_csrf(api: Api) -> None:
    response = api.get("/admin/login/")
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert "csrftoken" in response.cookies
