"""Content negotiation on the API: the fast answers for the usual Accept headers are DRF's
answers, and anything else still goes through DRF's negotiation (core/negotiation.py)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tests.accounts.helpers import Persona


def _get(client: Client, persona: Persona, path: str, **extra: Any) -> Any:
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {persona.access}", **extra)


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_usual_accept_headers_get_json(
    alice: Persona, alice_session: dict[str, Any], accept: str | None
) -> None:
    extra = {} if accept is None else {"HTTP_ACCEPT": accept}
    answer = _get(Client(), alice, f"/api/v5/sessions/{alice_session['id']}", **extra)
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["id"] == alice_session["id"]


@pytest.mark.parametrize("accept", ["application/json; indent=4", "application/*", "*/*;q=0.8"])
def test_other_json_accept_headers_go_to_drf(
    alice: Persona, alice_session: dict[str, Any], accept: str
) -> None:
    answer = _get(Client(), alice, f"/api/v5/sessions/{alice_session['id']}", HTTP_ACCEPT=accept)
    assert answer.status_code == 200
    assert answer.json()["id"] == alice_session["id"]
    if "indent" in accept:  # DRF's renderer honours the parameter: the fast path must not eat it
        assert b"\n    " in answer.content


def test_an_accept_header_the_api_cannot_serve_is_406(
    alice: Persona, alice_session: dict[str, Any]
) -> None:
    answer = _get(
        Client(), alice, f"/api/v5/sessions/{alice_session['id']}", HTTP_ACCEPT="text/csv"
    )
    assert answer.status_code == 406
    assert answer["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize("accept", [None, "*/*", "application/json"])
def test_the_fast_answer_is_drfs_answer(accept: str | None) -> None:
    from rest_framework.negotiation import DefaultContentNegotiation
    from rest_framework.renderers import JSONRenderer
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from core.negotiation import ContentNegotiation

    extra: dict[str, Any] = {} if accept is None else {"HTTP_ACCEPT": accept}
    request = Request(APIRequestFactory().get("/api/v5/sessions", None, **extra))
    renderers = [JSONRenderer()]
    fast = ContentNegotiation().select_renderer(request, renderers)
    drf = DefaultContentNegotiation().select_renderer(request, renderers)
    assert (fast[0], fast[1]) == (drf[0], drf[1])
