"""Listing workspace sessions: recency order, filters, limits and cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.accounts.helpers import Persona, problem
from tests.workspaces.helpers import (
    SESSIONS,
    SessionApi,
    assert_session,
    create_session,
    list_ids,
    session_url,
)


@pytest.fixture
def frozen(time_machine) -> Any:
    """Time that moves only when a test shifts it, so recency order is exact."""
    time_machine.move_to(datetime.now(UTC), tick=False)
    return time_machine


def make(sessions: SessionApi, persona: Persona, frozen: Any, **fields: Any) -> str:
    frozen.shift(timedelta(seconds=1))
    return str(create_session(sessions, persona, **fields)["id"])


@pytest.mark.parametrize("path", [SESSIONS, SESSIONS + "/"])
def test_list_shape(sessions: SessionApi, alice: Persona, path: str) -> None:
    created = create_session(sessions, alice, name="one", editor_state={"k": [1, 2]})
    response = sessions.get(path, alice.access)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"results", "next_cursor"}
    assert body["next_cursor"] is None
    (item,) = body["results"]
    assert_session(item)
    for name in set(created) - {"last_active_at"}:
        assert item[name] == created[name], name


def test_empty_list(sessions: SessionApi, alice: Persona) -> None:
    response = sessions.listing(alice.access)
    assert response.status_code == 200, response.content
    assert response.json() == {"results": [], "next_cursor": None}


def test_most_recently_active_first(sessions: SessionApi, alice: Persona, frozen: Any) -> None:
    first, second, third = (make(sessions, alice, frozen, name=n) for n in ("1", "2", "3"))
    assert list_ids(sessions, alice) == [third, second, first]
    frozen.shift(timedelta(seconds=1))
    response = sessions.patch(session_url(first), {"name": "active again"}, alice.access)
    assert response.status_code == 200, response.content
    assert list_ids(sessions, alice) == [first, third, second]
    frozen.shift(timedelta(seconds=1))
    assert (
        sessions.patch(session_url(second), {"active_files": []}, alice.access).status_code == 200
    )
    assert list_ids(sessions, alice) == [second, first, third]
    assert list_ids(sessions, alice, limit=1) == [second, first, third]


def test_owner_filter(sessions: SessionApi, alice: Persona, bob: Persona, frozen: Any) -> None:
    a1 = make(sessions, alice, frozen)
    b1 = make(sessions, bob, frozen)
    a2 = make(sessions, alice, frozen)
    for persona in (alice, bob):
        assert list_ids(sessions, persona) == [a2, b1, a1]
        assert list_ids(sessions, persona, owner="all") == [a2, b1, a1]
    assert list_ids(sessions, alice, owner="me") == [a2, a1]
    assert list_ids(sessions, bob, owner="me") == [b1]
    assert list_ids(sessions, alice, owner="me", limit=1) == [a2, a1]
    # Bob touching Alice's session does not make it his.
    frozen.shift(timedelta(seconds=1))
    assert sessions.patch(session_url(a1), {"name": "bob was here"}, bob.access).status_code == 200
    assert list_ids(sessions, bob, owner="me") == [b1]
    assert list_ids(sessions, alice, owner="me") == [a1, a2]


def test_workspace_path_filter(
    sessions: SessionApi, alice: Persona, bob: Persona, frozen: Any
) -> None:
    a = make(sessions, alice, frozen, workspace_path="/repo/a")
    b = make(sessions, alice, frozen, workspace_path="/repo/b")
    a_bob = make(sessions, bob, frozen, workspace_path="/repo/a")
    sub = make(sessions, alice, frozen, workspace_path="/repo/a/sub")
    assert list_ids(sessions, alice, workspace_path="/repo/a") == [a_bob, a]
    assert list_ids(sessions, alice, workspace_path="/repo/a", limit=1) == [a_bob, a]
    assert list_ids(sessions, alice, workspace_path="/repo/b") == [b]
    assert list_ids(sessions, alice, workspace_path="/repo/a/sub") == [sub]
    assert list_ids(sessions, alice, workspace_path="/repo") == []
    assert list_ids(sessions, alice, workspace_path="/repo/c") == []

    # Moving a session to another path moves it in the index too.
    frozen.shift(timedelta(seconds=1))
    response = sessions.patch(session_url(b), {"workspace_path": "/repo/a"}, alice.access)
    assert response.status_code == 200, response.content
    assert list_ids(sessions, alice, workspace_path="/repo/a") == [b, a_bob, a]
    assert list_ids(sessions, alice, workspace_path="/repo/b") == []


def test_workspace_path_and_owner_filters_together(
    sessions: SessionApi, alice: Persona, bob: Persona, frozen: Any
) -> None:
    a = make(sessions, alice, frozen, workspace_path="/repo/a")
    make(sessions, alice, frozen, workspace_path="/repo/b")
    a_bob = make(sessions, bob, frozen, workspace_path="/repo/a")
    assert list_ids(sessions, alice, workspace_path="/repo/a", owner="me") == [a]
    assert list_ids(sessions, bob, workspace_path="/repo/a", owner="me") == [a_bob]
    assert list_ids(sessions, bob, workspace_path="/repo/b", owner="me") == []


def test_paging_120_sessions(sessions: SessionApi, alice: Persona, frozen: Any) -> None:
    created = [make(sessions, alice, frozen, name=f"s{n}") for n in range(120)]
    expected = created[::-1]

    default = sessions.listing(alice.access).json()
    assert len(default["results"]) == 50
    assert default["next_cursor"]

    pages: list[list[str]] = []
    cursor = None
    while True:
        response = sessions.listing(alice.access, limit=50, cursor=cursor)
        assert response.status_code == 200, response.content
        body = response.json()
        pages.append([item["id"] for item in body["results"]])
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str)
        assert len(pages) < 10
    assert [len(page) for page in pages] == [50, 50, 20]
    assert [i for page in pages for i in page] == expected
    assert [item["id"] for item in default["results"]] == expected[:50]

    assert list_ids(sessions, alice, limit=200) == expected
    assert len(sessions.listing(alice.access, limit=200).json()["results"]) == 120
    assert list_ids(sessions, alice, limit=7) == expected


@pytest.mark.parametrize("limit", ["0", "201", "x", "-1", "1.5", "99999999999999999999"])
def test_bad_limit(sessions: SessionApi, alice: Persona, limit: str) -> None:
    create_session(sessions, alice)
    problem(sessions.get(SESSIONS + "?limit=" + limit, alice.access), 400, "invalid")


@pytest.mark.parametrize("limit", [1, 200])
def test_limit_bounds(sessions: SessionApi, alice: Persona, limit: int) -> None:
    create_session(sessions, alice)
    response = sessions.listing(alice.access, limit=limit)
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 1


def test_bad_owner(sessions: SessionApi, alice: Persona) -> None:
    for owner in ("bob", "nobody", alice.user_id):
        problem(sessions.listing(alice.access, owner=owner), 400, "invalid")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "AAAA",
        "%%%",
        "eyJvZmZzZXQiOiAxMH0",  # base64 of {"offset": 10}
        "eyJ0IjogWzEsIDJdfQ==",
        "x" * 5000,
        "\u00e9t\u00e9",
    ],
)
def test_garbage_cursor(sessions: SessionApi, alice: Persona, cursor: str) -> None:
    create_session(sessions, alice)
    create_session(sessions, alice)
    problem(sessions.listing(alice.access, cursor=cursor), 400, "invalid_cursor")


def test_tampered_cursor(sessions: SessionApi, alice: Persona) -> None:
    for _ in range(3):
        create_session(sessions, alice)
    cursor = sessions.listing(alice.access, limit=1).json()["next_cursor"]
    assert cursor
    for tampered in (cursor[::-1], cursor[: len(cursor) // 2]):
        assert tampered != cursor
        response = sessions.listing(alice.access, limit=1, cursor=tampered)
        problem(response, 400, "invalid_cursor")


def test_cursor_of_another_filter(
    sessions: SessionApi, alice: Persona, bob: Persona, frozen: Any
) -> None:
    for path in ("/repo/a", "/repo/a", "/repo/b", "/repo/b"):
        make(sessions, alice, frozen, workspace_path=path)
    make(sessions, bob, frozen, workspace_path="/repo/a")

    def cursor_of(**params: Any) -> str:
        cursor = sessions.listing(alice.access, limit=1, **params).json()["next_cursor"]
        assert cursor, params
        return str(cursor)

    all_cursor = cursor_of()
    me_cursor = cursor_of(owner="me")
    a_cursor = cursor_of(workspace_path="/repo/a")
    mismatches: list[tuple[str, dict[str, Any]]] = [
        (all_cursor, {"owner": "me"}),
        (all_cursor, {"workspace_path": "/repo/a"}),
        (me_cursor, {}),
        (me_cursor, {"owner": "all"}),
        (me_cursor, {"workspace_path": "/repo/a"}),
        (a_cursor, {}),
        (a_cursor, {"workspace_path": "/repo/b"}),
        (a_cursor, {"owner": "me"}),
    ]
    for cursor, params in mismatches:
        response = sessions.listing(alice.access, limit=1, cursor=cursor, **params)
        problem(response, 400, "invalid_cursor")
    # Each still works with its own filter (and an explicit default equals the default).
    for cursor, params in (
        (all_cursor, {}),
        (all_cursor, {"owner": "all"}),
        (me_cursor, {"owner": "me"}),
        (a_cursor, {"workspace_path": "/repo/a"}),
    ):
        response = sessions.listing(alice.access, limit=1, cursor=cursor, **params)
        assert response.status_code == 200, (params, response.content)
