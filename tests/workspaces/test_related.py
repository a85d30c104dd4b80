"""Forks, parents given at creation, and the related sessions of each."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.accounts.helpers import Persona, problem
from tests.workspaces.helpers import (
    SESSIONS,
    SessionApi,
    assert_session,
    create_session,
    list_ids,
    names_field,
    read_session,
    session_url,
)

COPIED = ("workspace_path", "active_files", "editor_state", "terminal_state")


def fork(sessions: SessionApi, persona: Persona, session_id: str, **body: Any) -> dict[str, Any]:
    response = sessions.post(session_url(session_id, "fork"), body, persona.access)
    assert response.status_code == 201, response.content
    return assert_session(response.json())


def related(sessions: SessionApi, persona: Persona, session_id: str) -> list[str]:
    response = sessions.get(session_url(session_id, "related"), persona.access)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["next_cursor"] is None
    return [str(assert_session(item)["id"]) for item in body["results"]]


def test_fork(
    sessions: SessionApi, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    parent_id = alice_session["id"]
    child = fork(sessions, bob, parent_id, name="Bob's fork")
    assert child["id"] != parent_id
    assert child["name"] == "Bob's fork"
    assert child["parent_session_id"] == parent_id
    assert child["owner_id"] == bob.user_id
    assert child["tenant_id"] == alice.tenant_id
    assert child["version"] == 1
    for name in COPIED:
        assert child[name] == alice_session[name], name
    assert parent_id in child["related_session_ids"]

    again = read_session(sessions, bob, child["id"])
    for name in set(child) - {"last_active_at"}:
        assert again[name] == child[name], name
    parent = read_session(sessions, alice, parent_id)
    assert child["id"] in parent["related_session_ids"]
    assert parent["parent_session_id"] is None

    assert related(sessions, alice, parent_id) == [child["id"]]
    assert related(sessions, bob, child["id"]) == [parent_id]
    assert child["id"] in list_ids(sessions, alice)
    assert list_ids(sessions, bob, owner="me") == [child["id"]]


def test_related_lists_full_sessions(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any]
) -> None:
    child = fork(sessions, alice, alice_session["id"], name="child")
    for trailing in ("", "/"):
        path = session_url(alice_session["id"], "related") + trailing
        response = sessions.get(path, alice.access)
        assert response.status_code == 200, response.content
        (item,) = response.json()["results"]
        assert item["id"] == child["id"]
        assert item["editor_state"] == alice_session["editor_state"]
        assert item["parent_session_id"] == alice_session["id"]


@pytest.mark.parametrize("body", [{}, None])
def test_fork_without_a_name(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], body: Any
) -> None:
    response = sessions.post(session_url(alice_session["id"], "fork"), body, alice.access)
    assert response.status_code == 201, response.content
    child = assert_session(response.json())
    assert child["name"]
    assert child["parent_session_id"] == alice_session["id"]


def test_fork_with_trailing_slash(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any]
) -> None:
    response = sessions.post(session_url(alice_session["id"], "fork") + "/", {}, alice.access)
    assert response.status_code == 201, response.content


def test_fork_copies_state_once(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any]
) -> None:
    parent_id = alice_session["id"]
    child = fork(sessions, alice, parent_id)
    changes = {"editor_state": {"parent": "moved on"}, "active_files": ["/p"]}
    assert sessions.patch(session_url(parent_id), changes, alice.access).status_code == 200
    child_now = read_session(sessions, alice, child["id"])
    for name in COPIED:
        assert child_now[name] == alice_session[name], name
    changes = {"terminal_state": {"child": True}}
    assert sessions.patch(session_url(child["id"]), changes, alice.access).status_code == 200
    parent_now = read_session(sessions, alice, parent_id)
    assert parent_now["terminal_state"] == alice_session["terminal_state"]


def test_fork_of_a_changed_session_copies_its_current_state(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any]
) -> None:
    changes = {"editor_state": {"now": 2}, "workspace_path": "/moved"}
    assert (
        sessions.patch(session_url(alice_session["id"]), changes, alice.access).status_code == 200
    )
    child = fork(sessions, alice, alice_session["id"])
    assert child["editor_state"] == {"now": 2}
    assert child["workspace_path"] == "/moved"
    assert child["version"] == 1


def test_several_children_and_a_grandchild(
    sessions: SessionApi, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    parent_id = alice_session["id"]
    first = fork(sessions, alice, parent_id, name="first")
    second = fork(sessions, bob, parent_id, name="second")
    grandchild = fork(sessions, bob, first["id"], name="grandchild")
    assert grandchild["parent_session_id"] == first["id"]
    assert set(related(sessions, alice, parent_id)) == {first["id"], second["id"]}
    assert set(read_session(sessions, alice, parent_id)["related_session_ids"]) == {
        first["id"],
        second["id"],
    }
    first_related = related(sessions, alice, first["id"])
    assert {parent_id, grandchild["id"]} <= set(first_related)
    assert len(first_related) == len(set(first_related))
    assert parent_id in related(sessions, bob, second["id"])
    assert first["id"] in related(sessions, bob, grandchild["id"])


def test_deleted_child_leaves_the_related_list(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any]
) -> None:
    parent_id = alice_session["id"]
    keep = fork(sessions, alice, parent_id, name="keep")
    gone = fork(sessions, alice, parent_id, name="gone")
    assert sessions.delete(session_url(gone["id"]), alice.access).status_code == 204
    assert related(sessions, alice, parent_id) == [keep["id"]]
    assert gone["id"] not in read_session(sessions, alice, parent_id)["related_session_ids"]


@pytest.mark.parametrize("session_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_fork_and_related_of_unknown_session(
    sessions: SessionApi, alice: Persona, session_id: str
) -> None:
    problem(sessions.post(session_url(session_id, "fork"), {}, alice.access), 404, "not_found")
    problem(sessions.get(session_url(session_id, "related"), alice.access), 404, "not_found")
    assert list_ids(sessions, alice) == []


@pytest.mark.parametrize("name", [5, "", "x" * 201, ["n"], {"n": 1}])
def test_fork_with_a_bad_name(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any], name: Any
) -> None:
    response = sessions.post(session_url(alice_session["id"], "fork"), {"name": name}, alice.access)
    body = problem(response, 400, "invalid")
    assert names_field(body, "name"), body
    assert list_ids(sessions, alice) == [alice_session["id"]]
    assert related(sessions, alice, alice_session["id"]) == []


# --- a parent given at creation --------------------------------------------------------


def test_create_with_a_parent(
    sessions: SessionApi, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    parent_id = alice_session["id"]
    child = create_session(
        sessions,
        bob,
        name="from scratch",
        workspace_path="/other",
        editor_state={"own": True},
        parent_session_id=parent_id,
    )
    assert child["parent_session_id"] == parent_id
    assert child["owner_id"] == bob.user_id
    assert child["workspace_path"] == "/other"
    assert child["editor_state"] == {"own": True}  # given state, not the parent's
    assert child["active_files"] == []
    assert parent_id in child["related_session_ids"]
    assert child["id"] in read_session(sessions, alice, parent_id)["related_session_ids"]
    assert related(sessions, alice, parent_id) == [child["id"]]
    assert related(sessions, bob, child["id"]) == [parent_id]


def test_create_with_a_null_parent(sessions: SessionApi, alice: Persona) -> None:
    child = create_session(sessions, alice, parent_session_id=None)
    assert child["parent_session_id"] is None
    assert related(sessions, alice, child["id"]) == []


def test_create_with_a_parent_of_another_tenant(
    sessions: SessionApi, alice: Persona, charlie: Persona, alice_session: dict[str, Any]
) -> None:
    charlies = create_session(sessions, charlie, name="charlie's")
    for persona, parent_id in (
        (charlie, alice_session["id"]),
        (alice, charlies["id"]),
        (alice, str(uuid.uuid4())),
        (alice, "not-a-uuid"),
        (alice, 42),
    ):
        response = sessions.post(
            SESSIONS,
            {"name": "n", "workspace_path": "/p", "parent_session_id": parent_id},
            persona.access,
        )
        body = problem(response, 400, "invalid")
        assert names_field(body, "parent_session_id"), body
    assert list_ids(sessions, alice) == [alice_session["id"]]
    assert list_ids(sessions, charlie) == [charlies["id"]]
    assert related(sessions, alice, alice_session["id"]) == []
    assert related(sessions, charlie, charlies["id"]) == []
