"""The accounts and workspace API suites again, through the ASGI application daphne runs.

The other API tests use Django's test client, which takes the WSGI path. Under daphne an API
request goes through the API lane (coditect/api_lane.py: the body read on the event loop, the
request in a pool thread, a lean one holding a storage turn throughout) and a page through
Django's ASGI handler and the async middleware, so these suites run once more through
``coditect.asgi.application``: the same answers, errors and tenant isolation on both paths.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from tests.accounts.conftest import accounts_environment, alice, bob, charlie
from tests.accounts.helpers import Api
from tests.accounts.test_isolation import *  # noqa: F403  (collected again here)
from tests.accounts.test_me_jwks import *  # noqa: F403
from tests.accounts.test_tokens import *  # noqa: F403
from tests.asgi_app import app_client
from tests.workspaces.conftest import alice_session, dana
from tests.workspaces.helpers import SessionApi
from tests.workspaces.test_bad_input import *  # noqa: F403
from tests.workspaces.test_crud import *  # noqa: F403
from tests.workspaces.test_isolation import *  # noqa: F403

__all__ = ["accounts_environment", "alice", "alice_session", "bob", "charlie", "dana"]


@pytest.fixture
def api() -> Api:
    return Api(app_client())


@pytest.fixture
def sessions() -> SessionApi:
    return SessionApi(app_client())


def test_api_responses_carry_the_security_headers(api: Api, alice: Any) -> None:
    response = api.me(alice.access)
    assert response.status_code == 200
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_the_lane_answers_with_the_headers_of_the_wsgi_path(alice: Any) -> None:
    # The lane builds its middleware chain without the page middleware (coditect/pages_only.py
    # api_chain): an API answer must carry the same headers whichever path it took.
    # Per request, or the transport's: the lane states the length, a WSGI server works it out.
    volatile = {"date", "x-request-id", "ratelimit-remaining", "ratelimit-reset", "content-length"}
    volatile |= {"location", "etag"}  # of the session each create makes
    for method, path, body in (
        ("get", "/api/v5/auth/me", None),
        ("post", "/api/v5/sessions", {"name": "h", "workspace_path": "/srv/h"}),
        ("get", "/api/v5/nothing-here", None),
    ):
        answers = []
        for client in (app_client(), Client()):
            call = getattr(client, method)
            kwargs: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {alice.access}"}
            if body is not None:
                kwargs.update(data=json.dumps(body), content_type="application/json")
            response = call(path, **kwargs)
            answers.append(
                (
                    response.status_code,
                    {k.lower(): v for k, v in response.items() if k.lower() not in volatile},
                )
            )
        (lane_status, lane), (wsgi_status, wsgi) = answers
        assert lane_status == wsgi_status, path
        assert set(lane.items()) ^ set(wsgi.items()) == set(), path


def test_pages_carry_frame_options_and_csrf(api: Api) -> None:
    response = api.get("/admin/login/")
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "DENY"
    assert "csrftoken" in response.cookies
