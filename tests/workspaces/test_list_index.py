"""Filtered session lists served by an index (issue 16, part 6): every filter the list accepts
(none, ``owner=me``, ``workspace_path``, both) reads only the sessions that match, so pages
are full, ``next_cursor`` is set exactly when more follow, and a sparse filter costs what a
dense one does; its indexes stay consistent through every kind of write."""

from __future__ import annotations

import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

import fdb_backend
from fdb_backend.read_count import ReadCounting
from tests.accounts.helpers import Persona, problem
from tests.workspaces.helpers import (
    SessionApi,
    create_session,
    list_ids,
    session_url,
)
from workspaces.services import session_delete_by_staff

# Every filter the list accepts, as query parameters (the path is filled in per test).
FILTERS: list[dict[str, str]] = [
    {},
    {"owner": "me"},
    {"owner": "all"},
    {"workspace_path": "/p/a"},
    {"owner": "me", "workspace_path": "/p/a"},
    {"owner": "all", "workspace_path": "/p/a"},
]


@pytest.fixture
def frozen(time_machine) -> Any:
    """Time that moves only when a test shifts it, so recency order is exact."""
    time_machine.move_to(datetime.now(UTC), tick=False)
    return time_machine


def make(sessions: SessionApi, persona: Persona, frozen: Any, path: str) -> str:
    frozen.shift(timedelta(seconds=1))
    return str(create_session(sessions, persona, workspace_path=path)["id"])


def matches(item: dict[str, Any], persona: Persona, params: dict[str, str]) -> bool:
    if params.get("owner") == "me" and item["owner_id"] != persona.user_id:
        return False
    return "workspace_path" not in params or item["workspace_path"] == params["workspace_path"]


def everything(sessions: SessionApi, persona: Persona) -> list[dict[str, Any]]:
    """The persona's tenant's sessions, newest first (the unfiltered list, 200 a page)."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        body = sessions.listing(persona.access, limit=200, cursor=cursor).json()
        found.extend(body["results"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def pages(
    sessions: SessionApi, persona: Persona, limit: int, params: dict[str, str]
) -> list[tuple[list[str], str | None]]:
    """Each page of a listing: its ids and its next_cursor."""
    found: list[tuple[list[str], str | None]] = []
    cursor = None
    for _ in range(1000):
        response = sessions.listing(persona.access, limit=limit, cursor=cursor, **params)
        assert response.status_code == 200, response.content
        body = response.json()
        found.append(([item["id"] for item in body["results"]], body["next_cursor"]))
        cursor = body["next_cursor"]
        if cursor is None:
            return found
    raise AssertionError("the listing never ends")


def assert_full_pages(
    sessions: SessionApi, persona: Persona, limit: int, params: dict[str, str], expected: list[str]
) -> None:
    """Every page but the last holds ``limit`` sessions, the last holds the rest (never
    none, unless nothing matches at all), only the last has no next_cursor, and together
    they are ``expected`` in order."""
    found = pages(sessions, persona, limit, params)
    sizes = [len(ids) for ids, _ in found]
    whole, rest = divmod(len(expected), limit)
    wanted_sizes = [limit] * whole + ([rest] if rest else [])
    assert sizes == (wanted_sizes or [0]), (params, limit, sizes)
    assert [cursor is None for _, cursor in found] == [False] * (len(found) - 1) + [True]
    assert [i for ids, _ in found for i in ids] == expected, (params, limit)


def test_every_filter_returns_full_pages(
    sessions: SessionApi, alice: Persona, bob: Persona, frozen: Any
) -> None:
    # The sessions Alice's filters match are interleaved with many that they do not match,
    # which is where filtering a page after reading it came back short or empty.
    for n in range(36):
        owner = alice if n % 3 == 0 else bob
        make(sessions, owner, frozen, "/p/a" if n % 4 < 2 else f"/p/{n % 5}")
    listed = everything(sessions, alice)
    assert len(listed) == 36
    for params in FILTERS:
        expected = [item["id"] for item in listed if matches(item, alice, params)]
        assert 0 < len(expected) < 36 or not params or params == {"owner": "all"}
        # 1, a divisor of the match count (the last page exactly full) and one that is not.
        for limit in sorted({1, 3, 4, len(expected), len(expected) + 1}):
            assert_full_pages(sessions, alice, limit, params, expected)


def test_a_filter_matching_nothing(sessions: SessionApi, alice: Persona, bob: Persona) -> None:
    for _ in range(5):
        create_session(sessions, bob, workspace_path="/p/a")
    for params in ({"owner": "me"}, {"owner": "me", "workspace_path": "/p/a"}):
        response = sessions.listing(alice.access, limit=2, **params)
        assert response.json() == {"results": [], "next_cursor": None}
    response = sessions.listing(alice.access, limit=5, workspace_path="/p/a")
    assert len(response.json()["results"]) == 5
    assert response.json()["next_cursor"] is None


def counted_list(
    monkeypatch: pytest.MonkeyPatch, sessions: SessionApi, persona: Persona, **params: Any
) -> tuple[dict[str, Any], int]:
    """A listing as the client gets it, and how many keys the request read in all
    (authentication, the page, its states, related ids and live counts)."""
    counting = ReadCounting(fdb_backend.get_database())
    with monkeypatch.context() as patched:
        patched.setattr(fdb_backend, "get_database", lambda: counting)
        response = sessions.listing(persona.access, **params)
    assert response.status_code == 200, response.content
    return response.json(), counting.reads.keys


def test_a_sparse_filter_reads_only_what_it_matches(
    monkeypatch: pytest.MonkeyPatch, sessions: SessionApi, alice: Persona, bob: Persona
) -> None:
    """One session in a thousand matches: the request reads as many keys as it did before
    the other thousand existed (filtering after reading would read them all)."""
    mine = create_session(sessions, alice, workspace_path="/p/common")["id"]
    rare = create_session(sessions, bob, workspace_path="/p/rare")["id"]
    sparse: list[tuple[dict[str, Any], str]] = [
        ({"owner": "me"}, mine),
        ({"workspace_path": "/p/rare"}, rare),
        ({"owner": "me", "workspace_path": "/p/common"}, mine),
    ]
    before = {}
    for params, wanted in sparse:
        body, keys = counted_list(monkeypatch, sessions, alice, limit=20, **params)
        assert [item["id"] for item in body["results"]] == [wanted]
        before[wanted, tuple(params)] = keys

    for _ in range(1000):  # newer than the matches: a scan would meet them all first
        create_session(sessions, bob, workspace_path="/p/common")

    for params, wanted in sparse:
        body, keys = counted_list(monkeypatch, sessions, alice, limit=20, **params)
        assert [item["id"] for item in body["results"]] == [wanted], params
        assert body["next_cursor"] is None
        assert keys == before[wanted, tuple(params)], params
    # A dense filter's page reads the page, not the tenant.
    body, keys = counted_list(monkeypatch, sessions, alice, limit=20, workspace_path="/p/common")
    assert len(body["results"]) == 20
    assert body["next_cursor"]
    assert keys < 300


def test_a_cursor_belongs_to_its_filter_owner_and_tenant(
    sessions: SessionApi, alice: Persona, bob: Persona, charlie: Persona, frozen: Any
) -> None:
    for path in ("/p/a", "/p/a", "/p/b", "/p/b"):
        make(sessions, alice, frozen, path)
        make(sessions, bob, frozen, path)
    for _ in range(3):
        make(sessions, charlie, frozen, "/p/a")

    def cursor_of(persona: Persona, **params: str) -> str:
        cursor = sessions.listing(persona.access, limit=1, **params).json()["next_cursor"]
        assert cursor, params
        return str(cursor)

    both = {"owner": "me", "workspace_path": "/p/a"}
    cursors = {
        key: cursor_of(alice, **params)
        for key, params in (
            ("all", {}),
            ("me", {"owner": "me"}),
            ("path", {"workspace_path": "/p/a"}),
            ("both", both),
        )
    }
    # The combined filter's cursor works only with it, and no other cursor works with it.
    for params in ({}, {"owner": "me"}, {"workspace_path": "/p/a"}, {"owner": "me", **{
        "workspace_path": "/p/b"
    }}):  # fmt: skip
        problem(sessions.listing(alice.access, cursor=cursors["both"], **params), 400,
                "invalid_cursor")  # fmt: skip
    for key in ("all", "me", "path"):
        problem(sessions.listing(alice.access, cursor=cursors[key], **both), 400, "invalid_cursor")
    # Another owner's cursor of the same filter, another tenant's of the same path.
    problem(sessions.listing(bob.access, cursor=cursors["both"], **both), 400, "invalid_cursor")
    problem(sessions.listing(bob.access, cursor=cursors["me"], owner="me"), 400, "invalid_cursor")
    for key, params in (("all", {}), ("path", {"workspace_path": "/p/a"}), ("both", both)):
        response = sessions.listing(charlie.access, cursor=cursors[key], **params)
        problem(response, 400, "invalid_cursor")
    # With its own filter each cursor goes on where it stopped.
    response = sessions.listing(alice.access, limit=1, cursor=cursors["both"], **both)
    assert response.status_code == 200, response.content
    assert [item["workspace_path"] for item in response.json()["results"]] == ["/p/a"]
    assert response.json()["next_cursor"] is None


def test_filters_stay_inside_the_tenant(
    sessions: SessionApi, alice: Persona, charlie: Persona
) -> None:
    ours = create_session(sessions, alice, workspace_path="/p/shared")["id"]
    theirs = create_session(sessions, charlie, workspace_path="/p/shared")["id"]
    for params in FILTERS:
        params = {k: ("/p/shared" if k == "workspace_path" else v) for k, v in params.items()}
        assert list_ids(sessions, alice, limit=1, **params) == [ours]
        assert list_ids(sessions, charlie, limit=1, **params) == [theirs]


# --- the indexes through every kind of write ---------------------------------------------


def storage_problems() -> list[dict[str, Any]]:
    out = io.StringIO()
    call_command("storage", "check", "--json", stdout=out, stderr=io.StringIO())
    problems: list[dict[str, Any]] = json.loads(out.getvalue())["problems"]
    return problems


def assert_consistent(sessions: SessionApi, personas: list[Persona], paths: list[str]) -> None:
    """``storage check`` finds nothing, and every filter of every persona lists, page by
    page, exactly the sessions of the unfiltered list that it matches, in its order."""
    assert storage_problems() == []
    for persona in personas:
        listed = everything(sessions, persona)
        for owner in ("me", "all"):
            for path in [None, *paths]:
                params = {"owner": owner, **({"workspace_path": path} if path else {})}
                expected = [item["id"] for item in listed if matches(item, persona, params)]
                assert list_ids(sessions, persona, limit=2, **params) == expected, params


def test_indexes_follow_every_write(
    sessions: SessionApi,
    alice: Persona,
    bob: Persona,
    dana: Persona,
    charlie: Persona,
    frozen: Any,
    tmp_path: Path,
) -> None:
    people = [alice, bob, dana]
    paths = ["/p/a", "/p/b", "/p/none"]

    def step() -> None:
        frozen.shift(timedelta(seconds=1))
        assert_consistent(sessions, people, paths)

    # create
    a1 = make(sessions, alice, frozen, "/p/a")
    b1 = make(sessions, bob, frozen, "/p/a")
    a2 = make(sessions, alice, frozen, "/p/b")
    make(sessions, charlie, frozen, "/p/a")
    step()
    # fork (the caller owns the fork, at the parent's path)
    response = sessions.post(session_url(a1, "fork"), {"name": "bob's fork"}, bob.access)
    assert response.status_code == 201, response.content
    fork = str(response.json()["id"])
    step()
    # patch: a name, a state (both move last_active_at), the workspace_path (moves the entry)
    assert sessions.patch(session_url(b1), {"name": "n"}, alice.access).status_code == 200
    step()
    assert sessions.patch(session_url(a1), {"active_files": []}, alice.access).status_code == 200
    step()
    assert sessions.patch(
        session_url(a2), {"workspace_path": "/p/a"}, alice.access
    ).status_code == (200)
    step()
    # an event (moves last_active_at)
    assert sessions.publish(bob.access, a2, "build", {"ok": True}).status_code == 202
    step()
    # delete by the owner, by an admin, by support staff
    assert sessions.delete_if(session_url(fork), bob.access).status_code == 204
    step()
    assert sessions.delete_if(session_url(b1), dana.access).status_code == 204
    step()
    session_delete_by_staff(
        db=fdb_backend.get_database(), tenant_id=alice.tenant_uuid, session_id=uuid.UUID(a1)
    )
    step()
    # a person's erasure (their sessions go) and a member's removal by an admin (the same)
    for _ in range(2):
        make(sessions, bob, frozen, "/p/a")
        make(sessions, dana, frozen, "/p/b")
    erased = sessions.delete(
        "/api/v5/auth/me",
        bob.access,
        data={"password": bob.password},
        content_type="application/json",
    )
    assert erased.status_code == 204, erased.content
    people.remove(bob)
    step()
    assert (
        sessions.delete(f"/api/v5/tenant/members/{dana.user_id}", alice.access).status_code == 204
    )
    people.remove(dana)
    step()
    assert [s["owner_id"] for s in everything(sessions, alice)] == [alice.user_id]
    # export, delete the tenant, import it back
    path = tmp_path / "acme.jsonl"
    call_command("tenants", "export", alice.tenant_id, "--output", str(path), stdout=io.StringIO())
    call_command("tenants", "delete", alice.tenant_id, "--yes", stdout=io.StringIO())
    assert storage_problems() == []
    assert [s["workspace_path"] for s in everything(sessions, charlie)] == ["/p/a"]
    call_command("tenants", "import", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    step()  # tokens issued by this store work again after an import back into it
