"""Per-tenant quotas (issue 16 part 5): sessions, stored bytes, API tokens.

Every write path is refused at the limit with 403 ``quota_exceeded`` and writes nothing;
usage counters stay exact (equal to a recount of the data) after creates, forks, patches,
events, log trimming and deletes; one tenant's quota and usage never touch another's.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.test import Client

import fdb_backend
from accounts.services.quotas import quota_charge, quota_override_set
from operations.usage import usage_recount
from tests.accounts.helpers import Persona, problem
from tests.workspaces.helpers import SessionApi, all_events, read_session, session_url

TENANT = "/api/v5/tenant/"
TOKENS = "/api/v5/auth/api-tokens"


def usage(sessions: SessionApi, persona: Persona) -> dict[str, int]:
    response = sessions.get(TENANT, persona.access)
    assert response.status_code == 200, response.content
    found: dict[str, int] = response.json()["usage"]
    return found


def assert_exact(sessions: SessionApi, persona: Persona) -> dict[str, int]:
    """The tenant's counters equal a recount of its data, and each head's event_bytes its log."""
    shown = usage(sessions, persona)
    counted = usage_recount(db=fdb_backend.get_database(), tenant_id=persona.tenant_uuid)
    assert shown == counted.used
    for session_id, stored in counted.head_event_bytes.items():
        assert stored == counted.event_bytes.get(session_id, 0), session_id
    return shown


def create(sessions: SessionApi, persona: Persona, name: str = "S", **fields: Any) -> Any:
    return sessions.create(persona.access, name=name, workspace_path="/w", **fields)


def test_tenant_shows_usage_and_quotas(
    sessions: SessionApi, alice: Persona, bob: Persona, charlie: Persona, settings
) -> None:
    settings.CODITECT_QUOTA_API_TOKENS = 0  # unlimited
    body = sessions.get(TENANT, bob.access).json()
    assert body["usage"] == {"sessions": 0, "bytes": 0, "api_tokens": 0}
    assert body["quotas"] == {
        "sessions": settings.CODITECT_QUOTA_SESSIONS,
        "bytes": settings.CODITECT_QUOTA_BYTES,
        "api_tokens": None,
    }
    assert create(sessions, alice).status_code == 201
    assert create(sessions, bob, editor_state={"x": "y" * 1000}).status_code == 201
    made = sessions.post(TOKENS, {"name": "ci", "scopes": ["sessions:read"]}, alice.access)
    assert made.status_code == 201
    shown = assert_exact(sessions, bob)
    assert shown["sessions"] == 2 and shown["api_tokens"] == 1 and shown["bytes"] > 1000
    # Isolation: Charlie's tenant counts nothing of Acme's.
    assert usage(sessions, charlie) == {"sessions": 0, "bytes": 0, "api_tokens": 0}
    # An API token reads it too (no scope needed to read one's own tenant).
    token = made.json()["token"]
    assert sessions.get(TENANT, token).json()["usage"] == shown


def test_create_and_fork_are_refused_past_the_sessions_quota(
    sessions: SessionApi, alice: Persona, charlie: Persona, settings
) -> None:
    settings.CODITECT_QUOTA_SESSIONS = 2
    first = create(sessions, alice).json()
    assert create(sessions, alice).status_code == 201
    refused = problem(create(sessions, alice, name="third"), 403, "quota_exceeded")
    assert "workspace sessions" in refused["detail"]
    problem(
        sessions.post(session_url(first["id"], "fork"), {}, alice.access), 403, "quota_exceeded"
    )
    listed = sessions.listing(alice.access).json()["results"]
    assert sorted(s["name"] for s in listed) == ["S", "S"]  # nothing written
    assert assert_exact(sessions, alice)["sessions"] == 2
    # Another tenant has its own count.
    assert create(sessions, charlie).status_code == 201
    # A delete gives the place back.
    assert sessions.delete(session_url(first["id"]), alice.access).status_code == 204
    assert create(sessions, alice, name="third").status_code == 201
    assert assert_exact(sessions, alice)["sessions"] == 2


def test_a_tenant_override_beats_the_default_and_reset_restores_it(
    sessions: SessionApi, alice: Persona, charlie: Persona, settings
) -> None:
    settings.CODITECT_QUOTA_SESSIONS = 3
    db = fdb_backend.get_database()
    quota_override_set(db=db, tenant_id=alice.tenant_uuid, overrides={"sessions": 1})
    assert sessions.get(TENANT, alice.access).json()["quotas"]["sessions"] == 1
    assert sessions.get(TENANT, charlie.access).json()["quotas"]["sessions"] == 3
    assert create(sessions, alice).status_code == 201
    problem(create(sessions, alice), 403, "quota_exceeded")
    assert create(sessions, charlie).status_code == 201
    assert create(sessions, charlie).status_code == 201
    quota_override_set(db=db, tenant_id=alice.tenant_uuid, overrides={"sessions": 0})
    assert sessions.get(TENANT, alice.access).json()["quotas"]["sessions"] is None  # unlimited
    for _ in range(4):
        assert create(sessions, alice).status_code == 201
    quota_override_set(db=db, tenant_id=alice.tenant_uuid, overrides={"sessions": None})
    assert sessions.get(TENANT, alice.access).json()["quotas"]["sessions"] == 3
    problem(create(sessions, alice), 403, "quota_exceeded")  # 5 used, 3 allowed
    assert assert_exact(sessions, alice)["sessions"] == 5


def test_growing_writes_are_refused_past_the_bytes_quota_and_shrinking_ones_pass(
    sessions: SessionApi, alice: Persona, charlie: Persona, settings
) -> None:
    made = create(sessions, alice, editor_state={"text": "a" * 2000}).json()
    sid = made["id"]
    used = usage(sessions, alice)["bytes"]
    quota_override_set(
        db=fdb_backend.get_database(), tenant_id=alice.tenant_uuid, overrides={"bytes": used + 600}
    )
    # A small event fits; a large patch does not, and changes nothing.
    assert sessions.publish(alice.access, sid, "build", {"ok": True}).status_code == 202
    before = read_session(sessions, alice, sid)
    events_before = all_events(sessions, alice, sid)
    refused = sessions.patch(
        session_url(sid), {"terminal_state": {"log": "b" * 1000}}, alice.access
    )
    assert "stored bytes" in problem(refused, 403, "quota_exceeded")["detail"]
    refused = sessions.publish(alice.access, sid, "build", {"log": "c" * 1000})
    problem(refused, 403, "quota_exceeded")
    problem(create(sessions, alice, editor_state={"text": "d" * 1000}), 403, "quota_exceeded")
    problem(sessions.post(session_url(sid, "fork"), {}, alice.access), 403, "quota_exceeded")
    after = read_session(sessions, alice, sid)
    assert after == before
    assert all_events(sessions, alice, sid) == events_before
    # Shrinking the state passes, even with the event it logs.
    shrunk = sessions.patch(session_url(sid), {"editor_state": {}}, alice.access)
    assert shrunk.status_code == 200, shrunk.content
    # Charlie's tenant is not limited by Acme's use.
    assert create(sessions, charlie, editor_state={"text": "e" * 5000}).status_code == 201
    assert_exact(sessions, alice)


def test_bytes_stay_exact_through_patches_events_trimming_and_deletes(
    sessions: SessionApi, alice: Persona, bob: Persona, settings
) -> None:
    settings.CODITECT_EVENT_LOG_MAX = 3  # appends past 3 trim the oldest event
    a = create(sessions, alice, editor_state={"text": "x" * 500}).json()["id"]
    b = sessions.post(session_url(a, "fork"), {"name": "fork"}, bob.access).json()["id"]
    assert_exact(sessions, alice)
    for n in range(6):
        changes = {"editor_state": {"text": "y" * (100 * n)}, "name": f"n{n}"}
        assert sessions.patch(session_url(a), changes, alice.access).status_code == 200
        assert sessions.publish(bob.access, b, "progress", {"n": "z" * (50 * n)}).status_code == 202
        assert_exact(sessions, alice)
    assert len(all_events(sessions, alice, a, after_seq=3)) == 3  # seqs 4 to 6 are kept
    assert sessions.delete(session_url(a), alice.access).status_code == 204
    assert_exact(sessions, alice)
    assert sessions.delete(session_url(b), bob.access).status_code == 204
    assert assert_exact(sessions, alice) == {"sessions": 0, "bytes": 0, "api_tokens": 0}


def test_api_tokens_are_refused_past_their_quota_and_given_back(
    sessions: SessionApi, alice: Persona, bob: Persona, charlie: Persona, settings
) -> None:
    settings.CODITECT_QUOTA_API_TOKENS = 2
    body = {"name": "agent", "scopes": ["sessions:read"]}
    first = sessions.post(TOKENS, body, alice.access).json()
    assert sessions.post(TOKENS, body, bob.access).status_code == 201
    problem(sessions.post(TOKENS, body, alice.access), 403, "quota_exceeded")
    assert len(sessions.get(TOKENS, alice.access).json()["results"]) == 1
    assert sessions.post(TOKENS, body, charlie.access).status_code == 201  # another tenant
    assert sessions.delete(f"{TOKENS}/{first['id']}", alice.access).status_code == 204
    assert sessions.post(TOKENS, body, alice.access).status_code == 201
    assert assert_exact(sessions, alice)["api_tokens"] == 2
    # Removing Bob revokes his token: its place is given back.
    assert sessions.delete(f"/api/v5/tenant/members/{bob.user_id}", alice.access).status_code == 204
    assert assert_exact(sessions, alice)["api_tokens"] == 1


def test_racing_creates_in_threads_never_pass_the_quota(
    sessions: SessionApi, alice: Persona, settings
) -> None:
    settings.CODITECT_QUOTA_SESSIONS = 5
    barrier = threading.Barrier(8)
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        client = SessionApi(Client())
        barrier.wait(timeout=10)
        for _ in range(3):
            code = create(client, alice).status_code
            with lock:
                statuses.append(code)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(set(statuses)) == [201, 403]
    assert statuses.count(201) == 5
    assert len(sessions.listing(alice.access).json()["results"]) == 5
    assert assert_exact(sessions, alice)["sessions"] == 5


def test_two_growers_that_both_read_under_the_quota_cannot_both_commit(
    alice: Persona, settings
) -> None:
    """The check's read conflicts with the other grower's add: interleaved by hand, the
    second commit fails (1020) and its retry sees the quota used up."""
    settings.CODITECT_QUOTA_SESSIONS = 1
    db = fdb_backend.get_database()
    first, second = db.create_transaction(), db.create_transaction()
    quota_charge(first, tenant_id=alice.tenant_uuid, kind="sessions", delta=1)
    quota_charge(second, tenant_id=alice.tenant_uuid, kind="sessions", delta=1)
    first.commit().wait()
    with pytest.raises(fdb_backend.FDBError) as failed:
        second.commit().wait()
    assert failed.value.code == 1020
    second.on_error(failed.value).wait()
    with pytest.raises(Exception, match="quota_exceeded"):
        quota_charge(second, tenant_id=alice.tenant_uuid, kind="sessions", delta=1)


def test_erasure_gives_back_what_it_deletes_and_scrubs(
    sessions: SessionApi, alice: Persona, bob: Persona
) -> None:
    shared = create(sessions, alice).json()["id"]
    for _ in range(2):
        assert create(sessions, bob, editor_state={"text": "b" * 700}).status_code == 201
    assert sessions.post(TOKENS, {"name": "bot", "scopes": []}, bob.access).status_code == 201
    # An event in Alice's session that names Bob: the erasure scrubs it (a size change).
    named = {"by": str(bob.user_id), "note": "x"}
    assert sessions.publish(alice.access, shared, "review", named).status_code == 202
    before = assert_exact(sessions, alice)
    assert before["sessions"] == 3 and before["api_tokens"] == 1
    erased = sessions.client.delete(
        "/api/v5/auth/me",
        {"password": bob.password},
        content_type="application/json",
        headers={"Authorization": f"Bearer {bob.access}"},
    )
    assert erased.status_code == 204, erased.content
    after = assert_exact(sessions, alice)
    assert after["sessions"] == 1 and after["api_tokens"] == 0
    assert after["bytes"] < before["bytes"] - 1400


def _in_thread(work: Any) -> Any:
    """``work()`` on a thread of its own (a lease holder of its own), its result returned."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(work()))
    thread.start()
    thread.join(30)
    assert out, "the thread failed"
    return out[0]


def test_growers_far_below_the_quota_do_not_conflict(alice: Persona) -> None:
    """Two holders spending their leases at once both commit: a grower reads only its own
    lease, never the counter (whose read made every other grower of the tenant retry)."""
    db = fdb_backend.get_database()
    tenant = alice.tenant_uuid

    def charged() -> Any:
        tr = db.create_transaction()
        quota_charge(tr, tenant_id=tenant, kind="bytes", delta=100)  # takes a lease
        tr.commit().wait()
        tr = db.create_transaction()
        quota_charge(tr, tenant_id=tenant, kind="bytes", delta=100)  # spends from it
        return tr

    first, second = _in_thread(charged), _in_thread(charged)
    first.commit().wait()
    second.commit().wait()  # a 1020 here before the leases
    counted = usage_recount(db=db, tenant_id=tenant).used["bytes"]
    assert usage(SessionApi(), alice)["bytes"] == counted + 400


def test_a_lowered_quota_takes_the_leases_back(sessions: SessionApi, alice: Persona) -> None:
    """Room leased under the old quota is not spent past a new, lower one."""
    assert create(sessions, alice).status_code == 201  # this thread now holds a lease
    used = usage(sessions, alice)["sessions"]
    quota_override_set(
        db=fdb_backend.get_database(), tenant_id=alice.tenant_uuid, overrides={"sessions": used}
    )
    problem(create(sessions, alice), 403, "quota_exceeded")
    assert assert_exact(sessions, alice)["sessions"] == used


def test_another_holders_lease_does_not_refuse_before_the_quota(
    sessions: SessionApi, alice: Persona, settings
) -> None:
    """Near the quota a grower takes the other holders' leases back and decides on the
    usage alone: every place up to the quota is used, however the room was leased, and
    the room another holder had leased is not spent again past the quota."""
    from concurrent.futures import ThreadPoolExecutor

    settings.CODITECT_QUOTA_SESSIONS = 10
    used = usage(sessions, alice)["sessions"]
    other = ThreadPoolExecutor(1)  # one thread: one holder, its lease kept between calls
    try:

        def create_there() -> int:
            return int(
                other.submit(lambda: create(SessionApi(Client()), alice)).result(30).status_code
            )

        assert create_there() == 201  # leases more than it spends
        created = 1
        while (response := create(sessions, alice)).status_code == 201:
            created += 1
        problem(response, 403, "quota_exceeded")
        assert used + created == 10
        assert create_there() == 403  # its lease was taken back
    finally:
        other.shutdown()
    assert assert_exact(sessions, alice)["sessions"] == 10


def test_a_lowered_default_is_not_passed_on_leased_room(
    sessions: SessionApi, alice: Persona, settings
) -> None:
    """The default changes with the settings, with no transaction to take leases back: a
    lease counts only under the quota it was granted under."""
    assert create(sessions, alice).status_code == 201  # this thread now holds a lease
    settings.CODITECT_QUOTA_SESSIONS = usage(sessions, alice)["sessions"]
    problem(create(sessions, alice), 403, "quota_exceeded")
    settings.CODITECT_QUOTA_SESSIONS = 1_000_000  # back: the old lease is spendable again
    assert create(sessions, alice).status_code == 201
    assert_exact(sessions, alice)
