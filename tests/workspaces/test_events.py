"""The event log of a session: publishing, replay after a seq, and retention by count and age."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.accounts.helpers import Persona, login_pair, problem
from tests.workspaces.helpers import (
    SessionApi,
    all_events,
    assert_event,
    create_session,
    names_field,
    read_session,
    seqs,
    session_url,
)


def publish(
    sessions: SessionApi,
    persona: Persona,
    session_id: str,
    event: str = "build.progress",
    data: Any = None,
) -> int:
    response = sessions.publish(persona.access, session_id, event, data if data is not None else {})
    assert response.status_code == 202, response.content
    body = response.json()
    assert type(body["seq"]) is int, body
    return int(body["seq"])


def replay(sessions: SessionApi, token: str, session_id: str, after_seq: Any) -> list[int]:
    """The seqs of one answer of GET events (no paging: these logs are short)."""
    response = sessions.events(token, session_id, after_seq)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) >= {"results", "next_cursor"}, body
    return seqs([assert_event(event) for event in body["results"]])


def test_seq_starts_at_one_per_session(sessions: SessionApi, alice: Persona) -> None:
    one = create_session(sessions, alice)["id"]
    two = create_session(sessions, alice)["id"]
    assert [publish(sessions, alice, one) for _ in range(3)] == [1, 2, 3]
    assert publish(sessions, alice, two) == 1
    assert publish(sessions, alice, one) == 4
    assert read_session(sessions, alice, one)["seq"] == 4
    assert read_session(sessions, alice, two)["seq"] == 1


@pytest.mark.parametrize("trailing", ["", "/"])
def test_publish_and_replay(sessions: SessionApi, alice: Persona, trailing: str) -> None:
    session_id = create_session(sessions, alice)["id"]
    path = session_url(session_id, "events") + trailing
    response = sessions.post(path, {"event": "agent:step", "data": {"step": 1}}, alice.access)
    assert response.status_code == 202, response.content
    assert response.json() == {"seq": 1}
    response = sessions.get(path, alice.access)
    assert response.status_code == 200, response.content
    (event,) = response.json()["results"]
    assert_event(event)
    assert event["seq"] == 1
    assert event["event"] == "agent:step"
    assert event["data"] == {"step": 1}


DATA: list[Any] = [
    {"a": 1, "nested": {"list": [1, "two", None, True, 3.5]}},
    [1, 2, 3],
    [],
    {},
    "plain text",
    "",
    "unicode ✓ déjà 日本",
    0,
    42,
    -7,
    3.25,
    True,
    False,
]


def test_any_json_data_round_trips(sessions: SessionApi, alice: Persona) -> None:
    session_id = create_session(sessions, alice)["id"]
    for data in DATA:
        response = sessions.publish(alice.access, session_id, "data.kind", data)
        assert response.status_code == 202, (data, response.content)
    events = all_events(sessions, alice, session_id)
    assert seqs(events) == list(range(1, len(DATA) + 1))
    for event, data in zip(events, DATA, strict=True):
        assert event["event"] == "data.kind"
        assert event["data"] == data
        assert type(event["data"]) is type(data)


def test_data_up_to_64_kib(sessions: SessionApi, alice: Persona) -> None:
    session_id = create_session(sessions, alice)["id"]
    data = {"blob": "y" * (60 * 1024)}
    assert publish(sessions, alice, session_id, "big", data) == 1
    (event,) = all_events(sessions, alice, session_id)
    assert event["data"] == data


def test_data_over_64_kib(sessions: SessionApi, alice: Persona) -> None:
    session_id = create_session(sessions, alice)["id"]
    data = {"blob": "y" * (65 * 1024)}
    response = sessions.publish(alice.access, session_id, "big", data)
    assert response.status_code in (400, 413), response.content
    body = problem(response, response.status_code)
    if response.status_code == 400:
        assert body["code"] == "invalid", body
        assert names_field(body, "data"), body
    assert all_events(sessions, alice, session_id) == []
    assert read_session(sessions, alice, session_id)["seq"] == 0


@pytest.mark.parametrize(
    "event", ["a", "Z", "build.started", "agent:progress", "A_b-c.d:e9", "x" * 100, "0"]
)
def test_good_event_names(sessions: SessionApi, alice: Persona, event: str) -> None:
    session_id = create_session(sessions, alice)["id"]
    assert publish(sessions, alice, session_id, event, {"ok": True}) == 1
    assert all_events(sessions, alice, session_id)[0]["event"] == event


@pytest.mark.parametrize(
    "event",
    [
        "",
        "x" * 101,
        "has space",
        "a/b",
        "dollar$",
        "line\nbreak",
        "tab\t",
        "a\u0000b",
        5,
        None,
        ["a"],
        {"e": 1},
        True,
    ],
)
def test_bad_event_names(sessions: SessionApi, alice: Persona, event: Any) -> None:
    session_id = create_session(sessions, alice)["id"]
    response = sessions.post(
        session_url(session_id, "events"), {"event": event, "data": {}}, alice.access
    )
    body = problem(response, 400, "invalid")
    assert names_field(body, "event"), body
    assert all_events(sessions, alice, session_id) == []


def test_event_name_is_required(sessions: SessionApi, alice: Persona) -> None:
    session_id = create_session(sessions, alice)["id"]
    response = sessions.post(session_url(session_id, "events"), {"data": {}}, alice.access)
    body = problem(response, 400, "invalid")
    assert names_field(body, "event"), body


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b'"text"', b"42"])
def test_bad_event_bodies(sessions: SessionApi, alice: Persona, raw: bytes) -> None:
    session_id = create_session(sessions, alice)["id"]
    response = sessions.post_raw(session_url(session_id, "events"), raw, alice.access)
    body = problem(response, 400)
    assert body["code"] in ("invalid", "malformed_json"), body
    assert all_events(sessions, alice, session_id) == []


def test_after_seq(sessions: SessionApi, alice: Persona) -> None:
    session_id = create_session(sessions, alice)["id"]
    assert replay(sessions, alice.access, session_id, None) == []
    assert replay(sessions, alice.access, session_id, 0) == []
    names = [f"step.{n}" for n in range(1, 8)]
    for name in names:
        publish(sessions, alice, session_id, name, {"name": name})
    assert replay(sessions, alice.access, session_id, None) == [1, 2, 3, 4, 5, 6, 7]
    assert replay(sessions, alice.access, session_id, 0) == [1, 2, 3, 4, 5, 6, 7]
    assert replay(sessions, alice.access, session_id, 4) == [5, 6, 7]
    assert replay(sessions, alice.access, session_id, 6) == [7]
    assert replay(sessions, alice.access, session_id, 7) == []
    assert replay(sessions, alice.access, session_id, 8) == []
    assert replay(sessions, alice.access, session_id, 10**12) == []
    events = all_events(sessions, alice, session_id, 2)
    assert [e["event"] for e in events] == names[2:]
    assert [e["data"] for e in events] == [{"name": n} for n in names[2:]]


@pytest.mark.parametrize("after_seq", ["-1", "x", "1.5", "1e3", "0x10", "-0.5", " "])
def test_bad_after_seq(sessions: SessionApi, alice: Persona, after_seq: str) -> None:
    session_id = create_session(sessions, alice)["id"]
    publish(sessions, alice, session_id)
    path = session_url(session_id, "events") + "?after_seq=" + after_seq
    problem(sessions.get(path, alice.access), 400, "invalid")


def test_state_changes_take_seqs_too(sessions: SessionApi, alice: Persona) -> None:
    session_id = create_session(sessions, alice)["id"]
    assert publish(sessions, alice, session_id, "first") == 1
    response = sessions.patch(session_url(session_id), {"name": "renamed"}, alice.access)
    assert response.status_code == 200, response.content
    assert response.json()["seq"] == 2
    assert publish(sessions, alice, session_id, "third") == 3
    events = all_events(sessions, alice, session_id)
    assert [(e["seq"], e["event"]) for e in events] == [
        (1, "first"),
        (2, "state.changed"),
        (3, "third"),
    ]
    assert events[1]["data"]["version"] == 2
    assert events[1]["data"]["changes"] == {"name": "renamed"}
    session = read_session(sessions, alice, session_id)
    assert session["seq"] == 3
    assert session["version"] == 2  # events do not change the state's version


def test_a_refused_patch_takes_no_seq(sessions: SessionApi, alice: Persona) -> None:
    session_id = create_session(sessions, alice)["id"]
    url = session_url(session_id)
    problem(sessions.patch(url, {"name": "x"}, alice.access, if_match=5), 412, "version_conflict")
    problem(sessions.patch(url, {"name": 5}, alice.access), 400, "invalid")
    assert publish(sessions, alice, session_id) == 1


# --- retention ----------------------------------------------------------------------------


def test_retention_by_count(sessions: SessionApi, alice: Persona, settings) -> None:
    settings.CODITECT_EVENT_LOG_MAX = 5
    session_id = create_session(sessions, alice)["id"]
    assert [publish(sessions, alice, session_id) for _ in range(8)] == list(range(1, 9))
    for gone in (None, 0, 1, 2):
        response = sessions.events(alice.access, session_id, gone)
        problem(response, 410, "resync_required")
    assert replay(sessions, alice.access, session_id, 3) == [4, 5, 6, 7, 8]
    assert replay(sessions, alice.access, session_id, 5) == [6, 7, 8]
    assert replay(sessions, alice.access, session_id, 8) == []
    assert replay(sessions, alice.access, session_id, 9) == []
    # The log keeps moving: seqs go on, only the window slides.
    assert publish(sessions, alice, session_id) == 9
    problem(sessions.events(alice.access, session_id, 3), 410, "resync_required")
    assert replay(sessions, alice.access, session_id, 4) == [5, 6, 7, 8, 9]
    assert read_session(sessions, alice, session_id)["seq"] == 9


def test_retention_by_count_counts_state_changes(
    sessions: SessionApi, alice: Persona, settings
) -> None:
    settings.CODITECT_EVENT_LOG_MAX = 5
    session_id = create_session(sessions, alice)["id"]
    for n in range(4):
        publish(sessions, alice, session_id)
        response = sessions.patch(session_url(session_id), {"name": f"n{n}"}, alice.access)
        assert response.status_code == 200, response.content
    problem(sessions.events(alice.access, session_id, 2), 410, "resync_required")
    assert replay(sessions, alice.access, session_id, 3) == [4, 5, 6, 7, 8]


def test_retention_is_per_session(sessions: SessionApi, alice: Persona, settings) -> None:
    settings.CODITECT_EVENT_LOG_MAX = 5
    busy = create_session(sessions, alice)["id"]
    quiet = create_session(sessions, alice)["id"]
    for _ in range(3):
        publish(sessions, alice, quiet)
    for _ in range(20):
        publish(sessions, alice, busy)
    assert replay(sessions, alice.access, quiet, 0) == [1, 2, 3]
    assert replay(sessions, alice.access, busy, 15) == [16, 17, 18, 19, 20]


def test_retention_by_age(sessions: SessionApi, alice: Persona, time_machine) -> None:
    time_machine.move_to(datetime.now(UTC))
    session_id = create_session(sessions, alice)["id"]
    for _ in range(3):
        publish(sessions, alice, session_id)
    time_machine.shift(timedelta(hours=23))
    token = login_pair(sessions, alice)["access"]
    assert replay(sessions, token, session_id, 0) == [1, 2, 3]
    time_machine.shift(timedelta(hours=1, seconds=10))
    token = login_pair(sessions, alice)["access"]  # the fixture's token is long expired
    problem(sessions.events(token, session_id, 0), 410, "resync_required")
    assert replay(sessions, token, session_id, 3) == []
    for _ in range(2):
        response = sessions.publish(token, session_id, "later", {})
        assert response.status_code == 202, response.content
    assert response.json()["seq"] == 5
    for gone in (0, 1, 2):
        problem(sessions.events(token, session_id, gone), 410, "resync_required")
    assert replay(sessions, token, session_id, 3) == [4, 5]
    assert replay(sessions, token, session_id, 4) == [5]


def test_retention_age_is_a_setting(
    sessions: SessionApi, alice: Persona, settings, time_machine
) -> None:
    settings.CODITECT_EVENT_LOG_MAX_AGE_S = 60
    time_machine.move_to(datetime.now(UTC))
    session_id = create_session(sessions, alice)["id"]
    publish(sessions, alice, session_id)
    publish(sessions, alice, session_id)
    time_machine.shift(timedelta(seconds=30))
    publish(sessions, alice, session_id)
    assert replay(sessions, alice.access, session_id, 0) == [1, 2, 3]
    time_machine.shift(timedelta(seconds=31))
    problem(sessions.events(alice.access, session_id, 0), 410, "resync_required")
    problem(sessions.events(alice.access, session_id, 1), 410, "resync_required")
    assert replay(sessions, alice.access, session_id, 2) == [3]
    time_machine.shift(timedelta(seconds=30))
    problem(sessions.events(alice.access, session_id, 2), 410, "resync_required")
    assert replay(sessions, alice.access, session_id, 3) == []


def test_event_times(sessions: SessionApi, alice: Persona, time_machine) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    time_machine.move_to(now, tick=False)
    session_id = create_session(sessions, alice)["id"]
    publish(sessions, alice, session_id)
    (event,) = all_events(sessions, alice, session_id)
    stamp = datetime.fromisoformat(event["created_at"].replace("Z", "+00:00"))
    assert abs(stamp - now) < timedelta(seconds=1), event
    json.dumps(event)
