"""Bob (tenant A member) works in Alice's sessions; Charlie (tenant B) sees nothing of them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.accounts.helpers import Persona, problem, without_request_id
from tests.workspaces.helpers import Response as ResponseType
from tests.workspaces.helpers import (
    SessionApi,
    all_events,
    create_session,
    list_ids,
    read_session,
    session_url,
)


def test_bob_works_in_alices_session(
    sessions: SessionApi, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    session_id = alice_session["id"]
    assert read_session(sessions, bob, session_id)["owner_id"] == alice.user_id
    assert session_id in list_ids(sessions, bob)
    assert session_id in list_ids(sessions, bob, workspace_path=alice_session["workspace_path"])
    assert list_ids(sessions, bob, owner="me") == []

    response = sessions.patch(session_url(session_id), {"name": "Bob's edit"}, bob.access, 1)
    assert response.status_code == 200, response.content
    assert response.json()["owner_id"] == alice.user_id
    response = sessions.publish(bob.access, session_id, "bob.was.here", {"hi": "alice"})
    assert response.status_code == 202, response.content
    assert response.json()["seq"] == 2
    events = all_events(sessions, bob, session_id)
    assert [e["event"] for e in events] == ["state.changed", "bob.was.here"]
    assert [e["event"] for e in all_events(sessions, alice, session_id)] == [
        "state.changed",
        "bob.was.here",
    ]
    assert sessions.get(session_url(session_id, "related"), bob.access).status_code == 200
    response = sessions.post(session_url(session_id, "fork"), {"name": "bob's"}, bob.access)
    assert response.status_code == 201, response.content

    problem(sessions.delete(session_url(session_id), bob.access), 403, "forbidden")
    problem(sessions.delete_if(session_url(session_id), bob.access, 2), 403, "forbidden")
    assert read_session(sessions, alice, session_id)["name"] == "Bob's edit"


def charlie_calls(
    sessions: SessionApi, charlie: Persona, session_id: str
) -> dict[str, ResponseType]:
    url = session_url(session_id)
    token = charlie.access
    return {
        "get": sessions.get(url, token),
        "get/": sessions.get(url + "/", token),
        "patch": sessions.patch(url, {"name": "pwned"}, token),
        "patch if-match": sessions.patch(url, {"name": "pwned"}, token, if_match=1),
        "patch stale": sessions.patch(url, {"name": "pwned"}, token, if_match=7),
        "patch bad": sessions.patch(url, {"name": 5}, token),
        "delete": sessions.delete(url, token),
        "delete if-match": sessions.delete_if(url, token, 1),
        "fork": sessions.post(session_url(session_id, "fork"), {"name": "mine"}, token),
        "fork/": sessions.post(session_url(session_id, "fork") + "/", {}, token),
        "related": sessions.get(session_url(session_id, "related"), token),
        "events post": sessions.publish(token, session_id, "pwned", {"x": 1}),
        "events get": sessions.events(token, session_id),
        "events get after": sessions.events(token, session_id, 0),
    }


def test_charlie_gets_404_everywhere(
    sessions: SessionApi, alice: Persona, charlie: Persona, alice_session: dict[str, Any]
) -> None:
    session_id = alice_session["id"]
    sessions.publish(alice.access, session_id, "before", {})
    create_session(sessions, charlie, name="charlie's own")

    victims = charlie_calls(sessions, charlie, session_id)
    unknown = charlie_calls(sessions, charlie, str(uuid.uuid4()))
    for call, response in victims.items():
        # Whatever Charlie sends, the answer is the one an unknown id gets.
        other = unknown[call]
        body = problem(response, other.status_code)
        assert without_request_id(body) == without_request_id(problem(other, other.status_code))
        assert session_id not in response.content.decode(), call
        if call != "patch bad":  # a body that is invalid anywhere may be refused first
            problem(response, 404, "not_found")

    after = read_session(sessions, alice, session_id)
    for field in set(alice_session) - {"last_active_at", "seq"}:
        assert after[field] == alice_session[field], field
    assert after["seq"] == 1
    assert [e["event"] for e in all_events(sessions, alice, session_id)] == ["before"]
    assert after["related_session_ids"] == []
    assert list_ids(sessions, alice) == [session_id]


def test_charlie_never_lists_tenant_a_sessions(
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    charlie: Persona,
    alice_session: dict[str, Any],
) -> None:
    path = alice_session["workspace_path"]
    bobs = create_session(sessions, bob, workspace_path=path)
    charlies = create_session(sessions, charlie, workspace_path=path)
    tenant_a = {alice_session["id"], bobs["id"]}
    for params in (
        {},
        {"owner": "all"},
        {"owner": "me"},
        {"workspace_path": path},
        {"workspace_path": path, "owner": "all"},
        {"workspace_path": path, "owner": "me"},
        {"limit": 1},
        {"limit": 200},
    ):
        assert list_ids(sessions, charlie, **params) == [charlies["id"]], params
        assert charlies["id"] not in list_ids(sessions, alice, **params), params
        assert charlies["id"] not in list_ids(sessions, bob, **params), params
    assert set(list_ids(sessions, alice)) == tenant_a
    assert set(list_ids(sessions, bob, workspace_path=path)) == tenant_a


def test_alice_gets_404_on_charlies_session(
    sessions: SessionApi, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    charlies = create_session(sessions, charlie, name="globex")
    for persona in (alice, bob):
        for call, response in charlie_calls(sessions, persona, charlies["id"]).items():
            if call != "patch bad":
                problem(response, 404, "not_found")
    assert read_session(sessions, charlie, charlies["id"])["version"] == 1


def test_charlie_cannot_use_alices_cursor(
    sessions: SessionApi, alice: Persona, charlie: Persona
) -> None:
    alices = {create_session(sessions, alice, name=f"a{n}")["id"] for n in range(3)}
    charlies = create_session(sessions, charlie)["id"]
    for params in ({}, {"owner": "me"}):
        cursor = sessions.listing(alice.access, limit=1, **params).json()["next_cursor"]
        assert cursor
        response = sessions.listing(charlie.access, limit=1, cursor=cursor, **params)
        if response.status_code == 200:
            ids = {item["id"] for item in response.json()["results"]}
            assert not ids & alices, ids
            assert ids <= {charlies}
        else:
            problem(response, 400, "invalid_cursor")


@pytest.mark.parametrize("who", ["bob", "charlie"])
def test_bobs_and_charlies_events_stay_in_their_sessions(
    sessions: SessionApi, alice: Persona, bob: Persona, charlie: Persona, who: str
) -> None:
    persona = bob if who == "bob" else charlie
    alices = create_session(sessions, alice)["id"]
    theirs = create_session(sessions, persona)["id"]
    for _ in range(3):
        assert sessions.publish(persona.access, theirs, "own", {}).status_code == 202
    assert read_session(sessions, alice, alices)["seq"] == 0
    assert all_events(sessions, alice, alices) == []
