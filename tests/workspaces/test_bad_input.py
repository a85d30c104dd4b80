"""Bad input to create and PATCH: always a 4xx problem naming the field, nothing written."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.accounts.helpers import Persona, problem
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

VALID = {"name": "ok", "workspace_path": "/srv/ok"}

WRONG: list[tuple[str, Any]] = [
    ("name", 5),
    ("name", None),
    ("name", ["n"]),
    ("name", {"n": 1}),
    ("name", True),
    ("name", ""),
    ("name", "x" * 201),
    ("workspace_path", 5),
    ("workspace_path", None),
    ("workspace_path", ["/a"]),
    ("workspace_path", ""),
    ("workspace_path", "rel/path"),
    ("workspace_path", "./rel"),
    ("workspace_path", "/a/../b"),
    ("workspace_path", "/a/.."),
    ("workspace_path", "/.."),
    ("workspace_path", "/a/b\u0000c"),
    ("workspace_path", "/" + "a" * 1024),
    ("active_files", "x"),
    ("active_files", [1]),
    ("active_files", ["/ok", None]),
    ("active_files", [["/nested"]]),
    ("active_files", {"a": "/b"}),
    ("active_files", None),
    ("active_files", ["/f"] * 1001),
    ("editor_state", []),
    ("editor_state", "s"),
    ("editor_state", 1),
    ("editor_state", None),
    ("terminal_state", "s"),
    ("terminal_state", [1, 2]),
    ("terminal_state", False),
]


def nothing_written(sessions: SessionApi, persona: Persona) -> None:
    assert list_ids(sessions, persona) == []


@pytest.mark.parametrize(("name", "value"), WRONG)
def test_create_with_a_bad_field(
    sessions: SessionApi, alice: Persona, name: str, value: Any
) -> None:
    body = problem(sessions.post(SESSIONS, {**VALID, name: value}, alice.access), 400, "invalid")
    assert names_field(body, name), body
    nothing_written(sessions, alice)


@pytest.mark.parametrize(("name", "value"), WRONG)
def test_patch_with_a_bad_field(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], name: str, value: Any
) -> None:
    url = session_url(alice_session["id"])
    body = problem(sessions.patch(url, {name: value}, alice.access), 400, "invalid")
    assert names_field(body, name), body
    after = read_session(sessions, alice, alice_session["id"])
    for field in set(alice_session) - {"last_active_at"}:
        assert after[field] == alice_session[field], field
    assert all_events(sessions, alice, alice_session["id"]) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("name", "x" * 200),
        ("name", "é ✓ 日本語"),
        ("workspace_path", "/" + "a" * 1023),
        ("workspace_path", "/"),
        ("workspace_path", "/a/.hidden/b..c/..d"),
        ("active_files", ["/f"] * 1000),
        ("active_files", []),
        ("editor_state", {}),
        ("terminal_state", {"deep": {"er": {"est": [1, {"x": None}]}}}),
    ],
)
def test_edge_values_that_are_fine(
    sessions: SessionApi, alice: Persona, name: str, value: Any
) -> None:
    body = create_session(sessions, alice, **{**VALID, name: value})
    assert body[name] == value
    assert read_session(sessions, alice, body["id"])[name] == value


@pytest.mark.parametrize("missing", ["name", "workspace_path"])
def test_create_without_a_required_field(
    sessions: SessionApi, alice: Persona, missing: str
) -> None:
    partial = {key: value for key, value in VALID.items() if key != missing}
    body = problem(sessions.post(SESSIONS, partial, alice.access), 400, "invalid")
    assert names_field(body, missing), body
    nothing_written(sessions, alice)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("colour", "blue"),
        ("id", str(uuid.uuid4())),
        ("owner_id", str(uuid.uuid4())),
        ("tenant_id", str(uuid.uuid4())),
        ("version", 9),
    ],
)
def test_create_with_an_unknown_or_read_only_field(
    sessions: SessionApi, alice: Persona, name: str, value: Any
) -> None:
    body = problem(sessions.post(SESSIONS, {**VALID, name: value}, alice.access), 400, "invalid")
    assert names_field(body, name), body
    nothing_written(sessions, alice)


MALFORMED = [b"{not json", b'{"name": ', b"\xff\xfe", b'{"name": NaN}', b'{"name": "a"} tail']


@pytest.mark.parametrize("raw", MALFORMED)
def test_malformed_json(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], raw: bytes
) -> None:
    # The house code for a body that is not JSON at all is malformed_json (core.problems).
    body = problem(sessions.post_raw(SESSIONS, raw, alice.access), 400)
    assert body["code"] in ("invalid", "malformed_json"), body
    body = problem(sessions.patch_raw(session_url(alice_session["id"]), raw, alice.access), 400)
    assert body["code"] in ("invalid", "malformed_json"), body
    assert list_ids(sessions, alice) == [alice_session["id"]]
    assert read_session(sessions, alice, alice_session["id"])["version"] == 1


@pytest.mark.parametrize("raw", [b"[]", b'[{"name": "a", "workspace_path": "/a"}]'])
def test_json_array_body(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], raw: bytes
) -> None:
    problem(sessions.post_raw(SESSIONS, raw, alice.access), 400, "invalid")
    problem(sessions.patch_raw(session_url(alice_session["id"]), raw, alice.access), 400, "invalid")
    assert list_ids(sessions, alice) == [alice_session["id"]]
    assert read_session(sessions, alice, alice_session["id"])["version"] == 1


@pytest.mark.parametrize("raw", [b'"text"', b"42", b"null", b"true", b""])
def test_other_bodies_that_are_not_objects(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], raw: bytes
) -> None:
    body = problem(sessions.post_raw(SESSIONS, raw, alice.access), 400)
    assert body["code"] in ("invalid", "malformed_json"), body
    body = problem(sessions.patch_raw(session_url(alice_session["id"]), raw, alice.access), 400)
    assert body["code"] in ("invalid", "malformed_json"), body
    assert list_ids(sessions, alice) == [alice_session["id"]]
    assert read_session(sessions, alice, alice_session["id"])["version"] == 1


def test_body_that_is_not_json(sessions: SessionApi, alice: Persona) -> None:
    response = sessions.post_raw(
        SESSIONS, b"name=a&workspace_path=/a", alice.access, "application/x-www-form-urlencoded"
    )
    problem(response, 415, "unsupported_media_type")
    nothing_written(sessions, alice)


ODD_STRINGS: list[tuple[str, Any]] = [
    ("name", "lone \ud800 surrogate"),
    ("name", "a\u0000b"),
    ("workspace_path", "/a/\ud800"),
    ("active_files", ["/ok", "/\udc00"]),
    ("editor_state", {"text": "\udfff"}),
    ("editor_state", {"\ud800key": 1}),
    ("terminal_state", {"history": ["ls", "\ud800"]}),
    # Beyond 64 bits: stored they would come back as floats (RFC 8259 §6).
    ("editor_state", {"big": 2**70}),
    ("terminal_state", {"small": [-(2**64)]}),
]


@pytest.mark.parametrize(("name", "value"), ODD_STRINGS)
def test_strings_that_cannot_be_stored_are_never_a_500_at_create(
    sessions: SessionApi, alice: Persona, name: str, value: Any
) -> None:
    response = sessions.post(SESSIONS, {**VALID, name: value}, alice.access)
    if response.status_code == 201:
        session_id = response.json()["id"]
        assert read_session(sessions, alice, session_id)[name] == value
    else:
        body = problem(response, 400, "invalid")
        assert names_field(body, name), body
        nothing_written(sessions, alice)


@pytest.mark.parametrize(("name", "value"), ODD_STRINGS)
def test_strings_that_cannot_be_stored_are_never_a_500_at_patch(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], name: str, value: Any
) -> None:
    response = sessions.patch(session_url(alice_session["id"]), {name: value}, alice.access)
    if response.status_code == 200:
        assert read_session(sessions, alice, alice_session["id"])[name] == value
    else:
        body = problem(response, 400, "invalid")
        assert names_field(body, name), body
        assert read_session(sessions, alice, alice_session["id"])["version"] == 1


@pytest.mark.parametrize(
    "data", ["\ud800", {"k": "\udfff"}, {"\ud800": 1}, ["a", "\udc00"], {"n": 2**64}]
)
def test_event_data_that_cannot_be_stored_is_never_a_500(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], data: Any
) -> None:
    response = sessions.publish(alice.access, alice_session["id"], "odd", data)
    if response.status_code == 202:
        (event,) = all_events(sessions, alice, alice_session["id"])
        assert event["data"] == data
    else:
        body = problem(response, 400, "invalid")
        assert names_field(body, "data"), body
        assert all_events(sessions, alice, alice_session["id"]) == []


# --- sizes --------------------------------------------------------------------------------


def state_of(size: int) -> dict[str, Any]:
    return {"text": "s" * size}


@pytest.mark.parametrize("name", ["editor_state", "terminal_state"])
def test_state_too_large_at_create(
    sessions: SessionApi, alice: Persona, settings, name: str
) -> None:
    settings.CODITECT_SESSION_STATE_MAX_BYTES = 2000
    response = sessions.post(SESSIONS, {**VALID, name: state_of(3000)}, alice.access)
    problem(response, 413, "state_too_large")
    nothing_written(sessions, alice)
    body = create_session(sessions, alice, **{**VALID, name: state_of(1500)})
    assert body[name] == state_of(1500)


@pytest.mark.parametrize("name", ["editor_state", "terminal_state"])
def test_state_too_large_at_patch(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], settings, name: str
) -> None:
    settings.CODITECT_SESSION_STATE_MAX_BYTES = 2000
    url = session_url(alice_session["id"])
    problem(sessions.patch(url, {name: state_of(3000)}, alice.access), 413, "state_too_large")
    after = read_session(sessions, alice, alice_session["id"])
    assert after[name] == alice_session[name]
    assert after["version"] == 1
    assert after["seq"] == 0
    response = sessions.patch(url, {name: state_of(1500)}, alice.access)
    assert response.status_code == 200, response.content


def test_state_limit_is_per_field(sessions: SessionApi, alice: Persona, settings) -> None:
    settings.CODITECT_SESSION_STATE_MAX_BYTES = 2000
    body = create_session(
        sessions, alice, editor_state=state_of(1500), terminal_state=state_of(1500)
    )
    assert body["editor_state"] == state_of(1500)


def test_default_state_limit_allows_a_big_state(sessions: SessionApi, alice: Persona) -> None:
    big = state_of(900_000)
    body = create_session(sessions, alice, editor_state=big)
    assert read_session(sessions, alice, body["id"])["editor_state"] == big


@pytest.mark.parametrize("method", ["post", "patch", "events"])
def test_body_too_large(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], method: str
) -> None:
    raw = json.dumps({"editor_state": state_of(2 * 1024 * 1024 + 10), **VALID}).encode()
    if method == "post":
        response = sessions.post_raw(SESSIONS, raw, alice.access)
    elif method == "patch":
        response = sessions.patch_raw(session_url(alice_session["id"]), raw, alice.access)
    else:
        raw = json.dumps({"event": "e", "data": "d" * (2 * 1024 * 1024 + 10)}).encode()
        response = sessions.post_raw(session_url(alice_session["id"], "events"), raw, alice.access)
    problem(response, 413, "body_too_large")
    assert list_ids(sessions, alice) == [alice_session["id"]]
    assert read_session(sessions, alice, alice_session["id"])["version"] == 1
    assert all_events(sessions, alice, alice_session["id"]) == []


@pytest.mark.parametrize(
    "query",
    [
        "workspace_path=rel",
        "workspace_path=%00",
        "workspace_path=" + "a" * 5000,
        "workspace_path=%ED%A0%80",
        "owner=me&owner=all",
        "limit=1&limit=x",
    ],
)
def test_odd_list_queries_are_never_a_500(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], query: str
) -> None:
    response = sessions.get(SESSIONS + "?" + query, alice.access)
    if response.status_code != 200:
        problem(response, 400)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", SESSIONS + "/{id}"),
        ("post", SESSIONS + "/{id}"),
        ("delete", SESSIONS),
        ("patch", SESSIONS),
        ("get", SESSIONS + "/{id}/fork"),
        ("post", SESSIONS + "/{id}/related"),
        ("delete", SESSIONS + "/{id}/events"),
    ],
)
def test_wrong_method_is_405(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], method: str, path: str
) -> None:
    url = path.format(id=alice_session["id"])
    headers = {"HTTP_AUTHORIZATION": f"Bearer {alice.access}"}
    if method in ("post", "put", "patch"):
        response = getattr(sessions.client, method)(
            url, b"{}", content_type="application/json", **headers
        )
    else:
        response = getattr(sessions.client, method)(url, **headers)
    problem(response, 405, "method_not_allowed")
    assert read_session(sessions, alice, alice_session["id"])["version"] == 1


def test_64_bit_integers_and_floats_come_back_exactly(sessions: SessionApi, alice: Persona) -> None:
    numbers = {"max": 2**63 - 1, "min": -(2**63), "u64": 2**64 - 1, "float": 0.1, "exp": 1e300}
    response = sessions.post(SESSIONS, {**VALID, "editor_state": numbers}, alice.access)
    assert response.status_code == 201, response.content
    assert read_session(sessions, alice, response.json()["id"])["editor_state"] == numbers
