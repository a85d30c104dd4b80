"""Create, read, update and delete one workspace session; ETag and If-Match."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.accounts.helpers import Persona, invite_and_register, problem, rfc3339
from tests.workspaces.helpers import (
    SESSIONS,
    SessionApi,
    all_events,
    assert_session,
    create_session,
    etag,
    list_ids,
    names_field,
    read_session,
    session_url,
)

STATE = {
    "name": "Payments service",
    "workspace_path": "/work/payments",
    "active_files": ["/work/payments/app.py", "/work/payments/tests/test_app.py"],
    "editor_state": {"tabs": [{"path": "/work/payments/app.py", "line": 40}], "split": True},
    "terminal_state": {"cwd": "/work/payments", "env": {"DEBUG": "1"}, "rows": 40},
}


@pytest.mark.parametrize("path", [SESSIONS, SESSIONS + "/"])
def test_create(sessions: SessionApi, alice: Persona, path: str) -> None:
    response = sessions.post(path, STATE, alice.access)
    assert response.status_code == 201, response.content
    body = assert_session(response.json())
    assert response["Location"] == f"{SESSIONS}/{body['id']}"
    assert response["ETag"] == '"1"'
    assert body["version"] == 1
    assert body["seq"] == 0
    assert body["owner_id"] == alice.user_id
    assert body["tenant_id"] == alice.tenant_id
    for name, value in STATE.items():
        assert body[name] == value, name
    assert body["parent_session_id"] is None
    assert body["related_session_ids"] == []


def test_create_with_only_the_required_fields(sessions: SessionApi, alice: Persona) -> None:
    body = create_session(sessions, alice, name="bare", workspace_path="/bare")
    assert body["active_files"] == []
    assert body["editor_state"] == {}
    assert body["terminal_state"] == {}
    assert body["version"] == 1
    assert body["seq"] == 0


def test_create_stamps_the_times(sessions: SessionApi, alice: Persona, time_machine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    time_machine.move_to(now, tick=False)
    body = create_session(sessions, alice)
    for stamp in ("created_at", "last_active_at"):
        assert abs(rfc3339(body[stamp]) - now) < timedelta(seconds=1), body


def test_create_ids_are_fresh(sessions: SessionApi, alice: Persona) -> None:
    ids = {create_session(sessions, alice)["id"] for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize("trailing", ["", "/"])
def test_get(sessions: SessionApi, alice: Persona, trailing: str) -> None:
    created = create_session(sessions, alice, **STATE)
    response = sessions.get(session_url(created["id"]) + trailing, alice.access)
    assert response.status_code == 200, response.content
    assert response["ETag"] == '"1"'
    body = assert_session(response.json())
    for name in set(created) - {"last_active_at"}:
        assert body[name] == created[name], name


@pytest.mark.parametrize(
    "session_id", [str(uuid.uuid4()), "not-a-uuid", "12345", uuid.uuid4().hex + "00"]
)
def test_get_unknown_id(sessions: SessionApi, alice: Persona, session_id: str) -> None:
    create_session(sessions, alice)
    problem(sessions.get(session_url(session_id), alice.access), 404, "not_found")


def test_unknown_ids_answer_the_same(sessions: SessionApi, alice: Persona) -> None:
    bodies = [
        problem(sessions.get(session_url(str(uuid.uuid4())), alice.access), 404, "not_found")
        for _ in range(2)
    ]
    assert {k: v for k, v in bodies[0].items() if k != "request_id"} == {
        k: v for k, v in bodies[1].items() if k != "request_id"
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", SESSIONS), ("post", SESSIONS), ("get", SESSIONS + "/" + str(uuid.uuid4()))],
)
def test_unauthenticated(sessions: SessionApi, method: str, path: str) -> None:
    response = sessions.get(path) if method == "get" else sessions.post(path, STATE)
    problem(response, 401)
    assert response.has_header("WWW-Authenticate")


# --- PATCH -------------------------------------------------------------------------------


def test_patch_name(sessions: SessionApi, alice: Persona, time_machine) -> None:
    start = datetime.now(UTC)
    time_machine.move_to(start, tick=False)
    created = create_session(sessions, alice, **STATE)
    time_machine.shift(timedelta(seconds=60))
    response = sessions.patch(session_url(created["id"]), {"name": "Renamed"}, alice.access)
    assert response.status_code == 200, response.content
    assert response["ETag"] == '"2"'
    body = assert_session(response.json())
    assert body["name"] == "Renamed"
    assert body["version"] == 2
    assert body["seq"] == created["seq"] + 1
    moved = rfc3339(body["last_active_at"]) - rfc3339(created["last_active_at"])
    assert moved >= timedelta(seconds=59), (created["last_active_at"], body["last_active_at"])
    assert body["created_at"] == created["created_at"]
    for name in ("workspace_path", "active_files", "editor_state", "terminal_state"):
        assert body[name] == created[name], name

    again = read_session(sessions, alice, created["id"])
    assert again["name"] == "Renamed"
    assert again["version"] == 2
    assert again["seq"] == 1
    assert sessions.read(alice.access, created["id"])["ETag"] == '"2"'


WRITABLE: list[tuple[str, Any]] = [
    ("name", "Another name"),
    ("workspace_path", "/work/elsewhere"),
    ("active_files", ["/work/elsewhere/a.ts"]),
    ("active_files", []),
    ("editor_state", {"only": "this"}),
    ("editor_state", {}),
    ("terminal_state", {"cwd": "/tmp", "scrollback": ["$ ls", "a b c"]}),
]


@pytest.mark.parametrize(("name", "value"), WRITABLE)
def test_patch_replaces_a_top_level_field(
    sessions: SessionApi, alice: Persona, name: str, value: Any
) -> None:
    created = create_session(sessions, alice, **STATE)
    response = sessions.patch(session_url(created["id"]), {name: value}, alice.access)
    assert response.status_code == 200, response.content
    body = read_session(sessions, alice, created["id"])
    assert body[name] == value  # replaced, never merged
    for other in set(STATE) - {name}:
        assert body[other] == created[other], other
    assert body["version"] == 2


def test_patch_several_fields_is_one_version(sessions: SessionApi, alice: Persona) -> None:
    created = create_session(sessions, alice, **STATE)
    changes = {"name": "n2", "editor_state": {"x": 1}, "active_files": ["/f"]}
    response = sessions.patch(session_url(created["id"]), changes, alice.access)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["version"] == 2
    assert body["seq"] == 1
    for name, value in changes.items():
        assert body[name] == value


def test_patch_appends_a_state_changed_event(sessions: SessionApi, alice: Persona) -> None:
    created = create_session(sessions, alice, **STATE)
    first = {"name": "first"}
    second = {"editor_state": {"cursor": 1}, "terminal_state": {"cwd": "/"}}
    assert sessions.patch(session_url(created["id"]), first, alice.access).status_code == 200
    assert sessions.patch(session_url(created["id"]), second, alice.access).status_code == 200
    events = all_events(sessions, alice, created["id"])
    assert [e["seq"] for e in events] == [1, 2]
    for event, changes, version in ((events[0], first, 2), (events[1], second, 3)):
        assert event["event"] == "state.changed", event
        assert event["data"]["version"] == version, event
        assert set(event["data"]["changes"]) == set(changes), event
        for name, value in changes.items():
            assert event["data"]["changes"][name] == value, event


def test_patch_if_match(sessions: SessionApi, alice: Persona) -> None:
    created = create_session(sessions, alice, **STATE)
    url = session_url(created["id"])
    response = sessions.patch(url, {"name": "v2"}, alice.access, if_match=1)
    assert response.status_code == 200, response.content
    assert response["ETag"] == '"2"'

    stale = sessions.patch(url, {"name": "lost update"}, alice.access, if_match=1)
    problem(stale, 412, "version_conflict")
    body = read_session(sessions, alice, created["id"])
    assert body["name"] == "v2"
    assert body["version"] == 2
    assert body["seq"] == 1
    assert [e["seq"] for e in all_events(sessions, alice, created["id"])] == [1]

    response = sessions.patch(url, {"name": "v3"}, alice.access, if_match=2)
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 3


@pytest.mark.parametrize("if_match", [0, 2, 99, '"abc"'])
def test_patch_with_a_wrong_if_match(
    sessions: SessionApi, alice: Persona, if_match: int | str
) -> None:
    created = create_session(sessions, alice, **STATE)
    url = session_url(created["id"])
    problem(sessions.patch(url, {"name": "x"}, alice.access, if_match=if_match), 412)
    assert read_session(sessions, alice, created["id"])["version"] == 1


def test_patch_without_if_match_applies_to_the_current_version(
    sessions: SessionApi, alice: Persona
) -> None:
    created = create_session(sessions, alice, **STATE)
    url = session_url(created["id"])
    for version in (2, 3, 4):
        response = sessions.patch(url, {"name": f"v{version}"}, alice.access)
        assert response.status_code == 200, response.content
        assert response.json()["version"] == version
        assert response["ETag"] == etag(version)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("id", str(uuid.uuid4())),
        ("owner_id", str(uuid.uuid4())),
        ("version", 7),
        ("created_at", "2020-01-01T00:00:00Z"),
        ("colour", "blue"),
    ],
)
def test_patch_unknown_or_read_only_field(
    sessions: SessionApi, alice: Persona, name: str, value: Any
) -> None:
    created = create_session(sessions, alice, **STATE)
    url = session_url(created["id"])
    body = problem(sessions.patch(url, {name: value}, alice.access), 400, "invalid")
    assert names_field(body, name), body
    # Also alongside a valid change: nothing of the request applies.
    body = problem(sessions.patch(url, {"name": "x", name: value}, alice.access), 400, "invalid")
    assert names_field(body, name), body
    after = read_session(sessions, alice, created["id"])
    for field in created:
        if field != "last_active_at":
            assert after[field] == created[field], field


def test_patch_with_nothing_to_change(sessions: SessionApi, alice: Persona) -> None:
    created = create_session(sessions, alice)
    problem(sessions.patch(session_url(created["id"]), {}, alice.access), 400, "invalid")
    after = read_session(sessions, alice, created["id"])
    assert after["version"] == 1
    assert after["seq"] == 0


def test_patch_unknown_session(sessions: SessionApi, alice: Persona) -> None:
    for session_id in (str(uuid.uuid4()), "nope"):
        response = sessions.patch(session_url(session_id), {"name": "x"}, alice.access)
        problem(response, 404, "not_found")


# --- DELETE ------------------------------------------------------------------------------


@pytest.mark.parametrize("trailing", ["", "/"])
def test_delete(sessions: SessionApi, alice: Persona, trailing: str) -> None:
    keep = create_session(sessions, alice, name="keep")
    gone = create_session(sessions, alice, name="gone")
    sessions.publish(alice.access, gone["id"], "build.started", {"n": 1})
    response = sessions.delete(session_url(gone["id"]) + trailing, alice.access)
    assert response.status_code == 204, response.content
    assert response.content == b""
    problem(sessions.read(alice.access, gone["id"]), 404, "not_found")
    problem(sessions.events(alice.access, gone["id"]), 404, "not_found")
    problem(sessions.events(alice.access, gone["id"], 0), 404, "not_found")
    assert list_ids(sessions, alice) == [keep["id"]]
    assert list_ids(sessions, alice, workspace_path="/srv/project") == [keep["id"]]
    assert list_ids(sessions, alice, owner="me") == [keep["id"]]
    problem(sessions.delete(session_url(gone["id"]), alice.access), 404, "not_found")
    problem(
        sessions.patch(session_url(gone["id"]), {"name": "zombie"}, alice.access), 404, "not_found"
    )
    assert read_session(sessions, alice, keep["id"])["version"] == 1


def test_delete_if_match(sessions: SessionApi, alice: Persona) -> None:
    created = create_session(sessions, alice)
    url = session_url(created["id"])
    assert sessions.patch(url, {"name": "v2"}, alice.access).status_code == 200
    problem(sessions.delete_if(url, alice.access, if_match=1), 412, "version_conflict")
    assert read_session(sessions, alice, created["id"])["version"] == 2
    assert sessions.delete_if(url, alice.access, if_match=2).status_code == 204
    problem(sessions.read(alice.access, created["id"]), 404, "not_found")


def test_who_may_delete(sessions: SessionApi, alice: Persona, bob: Persona, dana: Persona) -> None:
    erin = invite_and_register(sessions, alice, "Erin", "erin@example.com", role="member")
    alices = create_session(sessions, alice, name="alice's")
    bobs = [create_session(sessions, bob, name=f"bob's {n}") for n in range(4)]

    # Members may not delete another's session.
    for member in (bob, erin):
        problem(sessions.delete(session_url(alices["id"]), member.access), 403, "forbidden")
    problem(sessions.delete(session_url(bobs[0]["id"]), erin.access), 403, "forbidden")
    assert read_session(sessions, alice, alices["id"])["version"] == 1
    assert read_session(sessions, bob, bobs[0]["id"])["version"] == 1

    # The session's owner, the tenant's owner and the tenant's admins may.
    for deleter, session in ((bob, bobs[0]), (alice, bobs[1]), (dana, bobs[2])):
        response = sessions.delete(session_url(session["id"]), deleter.access)
        assert response.status_code == 204, (deleter.name, response.content)
        problem(sessions.read(bob.access, session["id"]), 404, "not_found")
    assert set(list_ids(sessions, alice)) == {alices["id"], bobs[3]["id"]}


# --- a big state ---------------------------------------------------------------------------


def big_state(seed: str, size: int) -> dict[str, Any]:
    """An editor state of about ``size`` bytes of JSON, with nesting and non-ASCII text."""
    lines = [f"{seed} line {n}: déjà vu ✓ {'x' * 40}" for n in range(size // 60)]
    return {"buffers": {"/work/big.py": {"lines": lines, "dirty": True}}, "seed": seed}


def test_a_big_state_round_trips(sessions: SessionApi, alice: Persona) -> None:
    first, second = big_state("first", 300_000), big_state("second", 320_000)
    created = create_session(
        sessions, alice, editor_state=first, terminal_state={"scrollback": first["buffers"]}
    )
    assert created["editor_state"] == first
    body = read_session(sessions, alice, created["id"])
    assert body["editor_state"] == first
    assert body["terminal_state"] == {"scrollback": first["buffers"]}

    response = sessions.patch(session_url(created["id"]), {"editor_state": second}, alice.access)
    assert response.status_code == 200, response.content
    assert response.json()["editor_state"] == second
    body = read_session(sessions, alice, created["id"])
    assert body["editor_state"] == second
    assert body["terminal_state"] == {"scrollback": first["buffers"]}
    assert body["version"] == 2
    (listed,) = sessions.listing(alice.access).json()["results"]
    assert listed["editor_state"] == second

    # Shrinking it leaves nothing of the old value behind.
    response = sessions.patch(session_url(created["id"]), {"editor_state": {"a": 1}}, alice.access)
    assert response.status_code == 200, response.content
    assert read_session(sessions, alice, created["id"])["editor_state"] == {"a": 1}
