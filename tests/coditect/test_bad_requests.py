"""Client input that used to end in a 500 (issue 15, finding 7): each is now a 4xx problem.

Cursors whose seal is not ASCII, a ``workspace_path`` filter too long for a storage key, and a
JSON body declared in a charset that is not UTF-8, before and after sign-in.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client

from tests.accounts.conftest import accounts_environment, alice, api
from tests.accounts.helpers import AUTH, PASSWORD, TENANT, Api, Persona, problem
from tests.workspaces.helpers import SESSIONS, SessionApi, create_session, session_url

__all__ = ["accounts_environment", "alice", "api"]

LISTS = [SESSIONS, AUTH + "sessions", TENANT + "members/"]


@pytest.fixture
def sessions() -> SessionApi:
    # The 500 a crash produces comes back as a response instead of being re-raised.
    return SessionApi(Client(raise_request_exception=False))


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "cursor",
    [
        "é" * 16 + ".eyJrIjoxfQ",  # a seal of non-ASCII letters
        "\u2028" * 16 + ".x",
        "日本.x",
        "é.é",  # non-ASCII on both sides of the dot
        "\ud7ff" * 3 + ".x",
    ],
)
def test_a_cursor_with_a_non_ascii_seal_is_a_400(
    sessions: SessionApi, alice: Persona, path: str, cursor: str
) -> None:
    response = sessions.get(path + "?" + urlencode({"cursor": cursor}), alice.access)
    problem(response, 400, "invalid_cursor")


def test_a_long_workspace_path_filter_is_a_400_naming_the_field(
    sessions: SessionApi, alice: Persona
) -> None:
    create_session(sessions, alice, workspace_path="/srv/project")
    for length in (1025, 10_000, 100_000):
        query = urlencode({"workspace_path": "/" + "a" * (length - 1)})
        body = problem(sessions.get(f"{SESSIONS}?{query}", alice.access), 400, "invalid")
        assert [error["attr"] for error in body["errors"]] == ["workspace_path"], body


# Codecs Python knows that do not decode bytes to text, one it knows that is not UTF-8, and
# names it does not know at all.
CHARSETS = ["rot13", "base64", "hex", "zlib", "bz2_codec", "utf-16", "latin-1", "no-such-charset"]


def _send(
    api: Api, method: str, path: str, body: bytes, charset: str, token: str | None = None
) -> Any:
    # generic(), not post(): post() would re-encode the body in the declared charset.
    headers: dict[str, Any] = {} if token is None else {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    content_type = f"application/json; charset={charset}"
    return api.client.generic(method, path, body, content_type=content_type, **headers)


def _post(api: Api, path: str, body: bytes, charset: str, token: str | None = None) -> Any:
    return _send(api, "POST", path, body, charset, token)


@pytest.mark.parametrize("charset", CHARSETS)
def test_a_json_body_in_another_charset_is_a_415_before_sign_in(
    sessions: SessionApi, charset: str
) -> None:
    register = b'{"email": "eve@example.com", "password": "%s"}' % PASSWORD.encode()
    problem(_post(sessions, AUTH + "register", register, charset), 415, "unsupported_media_type")
    login = b'{"email": "eve@example.com", "password": "x"}'
    problem(_post(sessions, AUTH + "login", login, charset), 415, "unsupported_media_type")
    # Nothing was registered: the same body in UTF-8 creates the account now.
    assert _post(sessions, AUTH + "register", register, "utf-8").status_code == 201


@pytest.mark.parametrize("charset", CHARSETS)
def test_a_json_body_in_another_charset_is_a_415_when_signed_in(
    sessions: SessionApi, alice: Persona, charset: str
) -> None:
    created = _post(
        sessions, SESSIONS, b'{"name": "n", "workspace_path": "/a"}', charset, alice.access
    )
    problem(created, 415, "unsupported_media_type")
    session = create_session(sessions, alice)
    body = b'{"name": "renamed"}'
    patched = _send(sessions, "PATCH", session_url(session["id"]), body, charset, alice.access)
    problem(patched, 415, "unsupported_media_type")
    assert sessions.read(alice.access, session["id"]).json()["name"] == session["name"]


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8", '"utf-8"'])
def test_utf_8_however_it_is_spelt_is_read(
    sessions: SessionApi, alice: Persona, charset: str
) -> None:
    body = '{"name": "café", "workspace_path": "/srv/café"}'.encode()
    response = _post(sessions, SESSIONS, body, charset, alice.access)
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "café"
