"""What a path is (workspaces/paths.py, issue 15 finding 8), wherever a client gives one.

``workspace_path`` on create and PATCH, the ``?workspace_path=`` list filter, every entry of
``active_files``, over REST and over the socket's ``state.patch``: absolute, normalised, no
control characters, at most 1,024 bytes of UTF-8; anything else is a 400 ``invalid`` naming the
field, and nothing is written.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.accounts.helpers import Persona, problem
from tests.realtime.conftest import realtime_environment, sockets
from tests.realtime.helpers import Sockets, call
from tests.workspaces.helpers import (
    SESSIONS,
    SessionApi,
    all_events,
    create_session,
    list_ids,
    names_field,
    read_session,
    session_url,
)
from workspaces import paths

__all__ = ["realtime_environment", "sockets"]

PATH_PROBLEMS = {paths.NOT_ABSOLUTE, paths.NOT_NORMAL, paths.CONTROL, paths.TOO_LONG}

NOT_PATHS = [
    "",
    "rel/path",
    "main.py",
    "./a",
    "../a",
    "~/a",
    "/a/../b",
    "/a/..",
    "/..",
    "/a/./b",
    "/.",
    "//a",
    "/a//b",
    "/a/",
    "//",
    "/a\nb",
    "/a\r\nSet-Cookie: x",
    "/a\tb",
    "/a\x00b",
    "/a\x1bb",
    "/a\x7fb",
    "/a\x85b",  # C1 next line
    "/a\x9fb",
    "/a\u2028b",
    "/" + "a" * 1024,  # 1,025 bytes
    "/" + "é" * 512,  # 513 characters, 1,025 bytes
    "/" + "a" * 10_000,
]
PATHS = [
    "/",
    "/a",
    "/a/.hidden/b..c/..d/...",
    "/a b/c d",
    "/srv/café/日本語.py",
    "/a\\b",
    "/" + "a" * 1023,  # 1,024 bytes
    "/" + "é" * 511 + "a",  # 1,024 bytes
]


def ids(values: list[str]) -> list[str]:
    return [ascii(value)[:40] for value in values]


@pytest.mark.parametrize("path", NOT_PATHS, ids=ids(NOT_PATHS))
def test_create_refuses_what_is_not_a_path(sessions: SessionApi, alice: Persona, path: str) -> None:
    for body in (
        {"name": "n", "workspace_path": path},
        {"name": "n", "workspace_path": "/ok", "active_files": ["/ok/a.py", path]},
    ):
        response = sessions.post(SESSIONS, body, alice.access)
        failed = problem(response, 400, "invalid")
        field = "workspace_path" if body["workspace_path"] == path else "active_files"
        assert names_field(failed, field), failed
    assert list_ids(sessions, alice) == []


@pytest.mark.parametrize("path", NOT_PATHS, ids=ids(NOT_PATHS))
def test_patch_refuses_what_is_not_a_path(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], path: str
) -> None:
    url = session_url(alice_session["id"])
    for name, value in (("workspace_path", path), ("active_files", ["/ok", path])):
        failed = problem(sessions.patch(url, {name: value}, alice.access), 400, "invalid")
        assert names_field(failed, name), failed
    after = read_session(sessions, alice, alice_session["id"])
    assert after["version"] == alice_session["version"]
    assert after["workspace_path"] == alice_session["workspace_path"]
    assert after["active_files"] == alice_session["active_files"]
    assert all_events(sessions, alice, alice_session["id"]) == []


def test_an_active_files_error_names_the_entry(sessions: SessionApi, alice: Persona) -> None:
    body = {"name": "n", "workspace_path": "/ok", "active_files": ["/a", "/b", "b/../c"]}
    failed = problem(sessions.post(SESSIONS, body, alice.access), 400, "invalid")
    assert [error["attr"] for error in failed["errors"]] == ["active_files.2"], failed


def test_a_lone_surrogate_is_not_a_path(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any]
) -> None:
    for raw in (
        b'{"name": "n", "workspace_path": "/a\\ud800"}',
        b'{"name": "n", "workspace_path": "/a", "active_files": ["/\\udfff"]}',
    ):
        problem(sessions.post_raw(SESSIONS, raw, alice.access), 400, "invalid")
    url = session_url(alice_session["id"])
    raw = b'{"active_files": ["/a\\ud800b"]}'
    problem(sessions.patch_raw(url, raw, alice.access), 400, "invalid")
    assert list_ids(sessions, alice) == [alice_session["id"]]


@pytest.mark.parametrize("path", NOT_PATHS[1:], ids=ids(NOT_PATHS[1:]))
def test_the_list_filter_refuses_what_is_not_a_path(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], path: str
) -> None:
    response = sessions.get(SESSIONS + "?" + urlencode({"workspace_path": path}), alice.access)
    failed = problem(response, 400, "invalid")
    assert names_field(failed, "workspace_path"), failed


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_paths_are_kept_exactly_and_found_by_the_filter(
    sessions: SessionApi, alice: Persona, path: str
) -> None:
    created = create_session(sessions, alice, workspace_path=path, active_files=[path, "/x"])
    assert created["workspace_path"] == path
    assert created["active_files"] == [path, "/x"]
    assert list_ids(sessions, alice, workspace_path=path) == [created["id"]]
    patched = sessions.patch(session_url(created["id"]), {"active_files": [path]}, alice.access)
    assert patched.status_code == 200, patched.content
    assert patched.json()["active_files"] == [path]


def test_a_fork_keeps_its_parents_path(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any]
) -> None:
    response = sessions.post(session_url(alice_session["id"], "fork"), {}, alice.access)
    assert response.status_code == 201, response.content
    assert response.json()["workspace_path"] == alice_session["workspace_path"]
    assert response.json()["active_files"] == alice_session["active_files"]


@pytest.mark.parametrize(
    "changes",
    [
        {"workspace_path": "relative"},
        {"workspace_path": "/a/../../etc"},
        {"workspace_path": "/a\nb"},
        {"workspace_path": "/" + "é" * 512},
        {"active_files": ["/ok", "../../etc/passwd"]},
        {"active_files": ["/a\x00"]},
        {"active_files": ["/a\x01"]},
        {"active_files": ["/a/"]},
        {"name": "fine", "active_files": ["/ok", "x.py"]},
    ],
    ids=lambda changes: ascii(changes)[:40],
)
async def test_state_patch_over_the_socket_refuses_what_is_not_a_path(
    sockets: Sockets,
    sessions: SessionApi,
    alice: Persona,
    alice_session: dict[str, Any],
    changes: dict[str, Any],
) -> None:
    session_id = alice_session["id"]
    peer = await sockets.join(session_id, alice.access, "alice")
    version = peer.welcome["version"]
    reply = await peer.refused("state.patch", "invalid", base_version=version, changes=changes)
    # NUL is refused by the serializer's string field already, with the socket's own detail.
    assert reply["detail"] in {*PATH_PROBLEMS, "changes are not valid session fields."}, reply
    # Still open and usable, and nothing changed.
    ack = await peer.ok("state.patch", base_version=version, changes={"active_files": ["/b"]})
    assert ack["version"] == version + 1
    after = await call(read_session, sessions, alice, session_id)
    assert after["workspace_path"] == alice_session["workspace_path"]
    assert after["active_files"] == ["/b"]
    assert after["name"] == alice_session["name"]


def test_the_schema_says_what_a_path_is(sessions: SessionApi) -> None:
    schema = json.loads(sessions.client.get("/api/v5/schema/?format=json").content)
    create = schema["components"]["schemas"]["SessionCreateInRequest"]["properties"]
    assert "absolute" in create["workspace_path"]["description"]
    assert "absolute" in create["active_files"]["items"]["description"]
