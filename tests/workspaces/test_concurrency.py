"""Racing writers: one winner per If-Match, and gapless seqs under concurrent publishing."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from django.test import Client

from tests.accounts.helpers import Persona
from tests.workspaces.helpers import (
    SessionApi,
    all_events,
    read_session,
    seqs,
    session_url,
)


def race(threads: int, work: Callable[[SessionApi, int], list[Any]]) -> list[Any]:
    """Run ``work(client, index)`` in ``threads`` threads started together; gather the results."""
    barrier = threading.Barrier(threads)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        client = SessionApi(Client())
        try:
            barrier.wait(timeout=10)
            out = work(client, index)
            with lock:
                results.extend(out)
        except BaseException as error:  # surfaced below, in the test's thread
            with lock:
                errors.append(error)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in workers)
    assert not errors, errors
    return results


def test_one_winner_per_if_match(
    sessions: SessionApi, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    session_id = alice_session["id"]

    def patch(client: SessionApi, index: int) -> list[Any]:
        persona = alice if index % 2 else bob
        response = client.patch(
            session_url(session_id), {"name": f"writer {index}"}, persona.access, if_match=1
        )
        return [(index, response.status_code, json.loads(response.content))]

    results = race(8, patch)
    assert len(results) == 8
    statuses = sorted(status for _, status, _ in results)
    assert statuses == [200] + [412] * 7, results
    for _, status, body in results:
        if status == 412:
            assert body["code"] == "version_conflict", body
    ((winner, _, won),) = [r for r in results if r[1] == 200]
    assert won["version"] == 2

    after = read_session(sessions, alice, session_id)
    assert after["version"] == 2
    assert after["name"] == f"writer {winner}"
    assert after["seq"] == 1
    events = all_events(sessions, alice, session_id)
    assert seqs(events) == [1]
    assert events[0]["data"]["changes"] == {"name": f"writer {winner}"}


def test_concurrent_patches_without_if_match_all_apply(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any]
) -> None:
    session_id = alice_session["id"]

    def patch(client: SessionApi, index: int) -> list[Any]:
        response = client.patch(session_url(session_id), {"name": f"w{index}"}, alice.access)
        return [response.status_code]

    assert race(6, patch) == [200] * 6
    after = read_session(sessions, alice, session_id)
    assert after["version"] == 7
    assert after["seq"] == 6
    events = all_events(sessions, alice, session_id)
    assert seqs(events) == [1, 2, 3, 4, 5, 6]
    assert sorted(e["data"]["version"] for e in events) == [2, 3, 4, 5, 6, 7]


def test_concurrent_events_have_gapless_seqs(
    sessions: SessionApi, alice: Persona, bob: Persona, alice_session: dict[str, Any]
) -> None:
    session_id = alice_session["id"]

    def publish(client: SessionApi, index: int) -> list[Any]:
        persona = alice if index % 2 else bob
        out = []
        for n in range(10):
            data = {"writer": index, "n": n}
            response = client.publish(persona.access, session_id, "race", data)
            assert response.status_code == 202, response.content
            out.append((json.loads(response.content)["seq"], data))
        return out

    results = race(8, publish)
    answered = sorted(seq for seq, _ in results)
    assert answered == list(range(1, 81))

    events = all_events(sessions, alice, session_id)
    assert seqs(events) == list(range(1, 81))
    by_seq = {seq: data for seq, data in results}
    for event in events:
        assert event["event"] == "race"
        assert event["data"] == by_seq[event["seq"]]
    # Each writer's events are in the order it sent them.
    for writer in range(8):
        mine = [e["data"]["n"] for e in events if e["data"]["writer"] == writer]
        assert mine == list(range(10)), (writer, mine)
    assert read_session(sessions, alice, session_id)["seq"] == 80


def test_events_and_patches_share_one_sequence(
    sessions: SessionApi, alice: Persona, alice_session: dict[str, Any]
) -> None:
    session_id = alice_session["id"]

    def work(client: SessionApi, index: int) -> list[Any]:
        out = []
        for n in range(5):
            if index % 2:
                response = client.patch(
                    session_url(session_id), {"name": f"{index}.{n}"}, alice.access
                )
                assert response.status_code == 200, response.content
                out.append(json.loads(response.content)["seq"])
            else:
                response = client.publish(alice.access, session_id, "mixed", {"n": n})
                assert response.status_code == 202, response.content
                out.append(json.loads(response.content)["seq"])
        return out

    results = race(6, work)
    assert sorted(results) == list(range(1, 31))
    events = all_events(sessions, alice, session_id)
    assert seqs(events) == list(range(1, 31))
    changes = [e for e in events if e["event"] == "state.changed"]
    assert [e["data"]["version"] for e in changes] == list(range(2, 17))
    after = read_session(sessions, alice, session_id)
    assert after["seq"] == 30
    assert after["version"] == 16


def test_racing_creates_each_validate_their_own_body(sessions: SessionApi, alice: Persona) -> None:
    """Request bodies are validated by field objects copied from shared prototypes
    (accounts/serializers.py): racing requests, half of them invalid in a different field
    each, must each get their own answer."""

    def create(client: SessionApi, index: int) -> list[Any]:
        out = []
        for round_ in range(10):
            files = [f"/p/{index}/{round_}/{n}.py" for n in range(5)]
            body: dict[str, Any] = {"name": f"s{index}.{round_}", "workspace_path": "/p"}
            body["active_files"] = files
            if index % 4 == 1:
                body["active_files"] = [*files, "\ud800"]
            elif index % 4 == 3:
                body["name"] = ""
            response = client.post("/api/v5/sessions/", body, alice.access)
            out.append((index, round_, files, response.status_code, response.json()))
        return out

    for index, round_, files, status, body in race(8, create):
        if index % 2 == 0:
            assert status == 201, body
            assert (body["name"], body["active_files"]) == (f"s{index}.{round_}", files)
        else:
            assert status == 400, body
            wrong = "active_files" if index % 4 == 1 else "name"
            assert [e["attr"].split(".")[0] for e in body["errors"]] == [wrong], body
            if wrong == "active_files":
                assert "U+D800" in body["errors"][0]["detail"], body
