"""``manage.py storage check|stats|purge``: a store corrupted on purpose is found out and
repaired; statistics; purges of what expired, in batches, with a dry run."""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import fdb.tuple
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import fdb_backend
from accounts.records import Invitation, invitations, users
from fdb_backend import keyspace, maintenance
from realtime.records import Connection, Lock, connections, locks
from tests.accounts.helpers import Api, Persona, problem
from tests.operations.helpers import run
from workspaces.records import SessionEvent, WorkspaceState, events, states


def failing(*args: str) -> tuple[dict, str]:
    """A command that reports, then exits non-zero: its JSON output and one-line reason."""
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(*args, "--json", stdout=out, stderr=io.StringIO())
    assert "\n" not in str(caught.value)
    return json.loads(out.getvalue()), str(caught.value)


def raw_set(key: bytes, value: bytes) -> None:
    fdb_backend.get_database()[key] = value


def raw_clear(key: bytes) -> None:
    del fdb_backend.get_database()[key]


def raw_clear_range(r: slice) -> None:
    fdb_backend.get_database().clear_range(r.start, r.stop)


# --- check and repair ------------------------------------------------------------------


def test_a_healthy_store_checks_clean(
    api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    api.post("/api/v5/sessions", {"name": "S", "workspace_path": "/w"}, alice.access)
    assert run("storage", "check").out.startswith("checked 2 tenants: 0 problems")
    report = run("storage", "check", "--json").json()
    assert report == {"tenants": 2, "problems": [], "repaired": 0, "unrepaired": 0}


def test_check_finds_and_repair_fixes_a_corrupted_store(
    api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    db = fdb_backend.get_database()
    now, later = datetime.now(UTC), datetime.now(UTC) + timedelta(days=1)
    acme = keyspace.tenant(alice.tenant_uuid)
    emails = keyspace.GLOBAL.index("user_by_email")
    slugs = keyspace.GLOBAL.collection("tenants").index("tenant_by_slug").subspace
    alice_session = uuid.UUID(alice.session_id(api))
    created = api.post("/api/v5/sessions", {"name": "S", "workspace_path": "/w"}, alice.access)
    assert created.status_code == 201

    # 1. Bob's login entry is lost: he cannot log in.
    raw_clear(emails.pack(("bob@example.com",)))
    problem(api.login(bob.email, bob.password), 401, "invalid_credentials")
    # 2. A login entry for nobody, and 3. a slug entry for a name the tenant no longer has.
    raw_set(emails.pack(("ghost@example.com",)), fdb.tuple.pack((alice.tenant_uuid, uuid.uuid4())))
    raw_set(slugs.pack(("old-name",)), fdb.tuple.pack((alice.tenant_uuid,)))
    # 4. Alice's device list loses an entry; 5. a recency entry names no session.
    by_user = acme.collection("auth_sessions").index("auth_sessions_by_user").subspace
    raw_clear(by_user.pack((alice.user_uuid, alice_session)))
    assert api.get("/api/v5/auth/sessions", alice.access).json()["results"] == []
    recent = acme.collection("workspace_sessions").index("recent_sessions_tenant").subspace
    raw_set(recent.pack((1, uuid.uuid4())), b"")
    # 6. Data of a tenant that does not exist; 7. events and 8. state of a missing session.
    raw_set(keyspace.tenant(uuid.uuid4()).counters.pack(("logins",)), b"\x01" + b"\x00" * 7)
    gone = uuid.uuid4()
    events(alice.tenant_uuid).save(db, SessionEvent(
        session_id=gone, seq=1, event="e", data={}, created_at=now, expires_at=later
    ))  # fmt: skip
    states(alice.tenant_uuid).save(db, WorkspaceState(
        id=uuid.uuid4(), active_files=[], editor_state={}, terminal_state={}
    ))  # fmt: skip
    # 9. Charlie's user record vanishes: his auth session and login entry are left over.
    globex = keyspace.tenant(charlie.tenant_uuid)
    raw_clear_range(globex.collection("users").records.range((charlie.user_uuid,)))

    found, reason = failing("storage", "check")
    assert reason == "11 problems left; run storage check --repair"
    kinds = sorted((p["kind"], p["what"]) for p in found["problems"])
    assert kinds == [
        ("counter", "usage.bytes"),  # 10. the state and event written past the services
        ("dangling", "users.user_by_email"),  # the ghost
        ("dangling", "users.user_by_email"),  # Charlie's
        ("dangling", "workspace_sessions.recent_sessions_tenant"),
        ("missing", "auth_sessions.auth_sessions_by_user"),
        ("missing", "users.user_by_email"),
        ("orphan", "auth session of a missing user"),
        ("orphan", "data of a missing tenant"),
        ("orphan", "events of a missing workspace session"),
        ("orphan", "workspace_states of a missing workspace session"),
        ("stale", "tenants.tenant_by_slug"),
    ]
    assert not any(p["repaired"] for p in found["problems"])

    repaired = run("storage", "check", "--repair", "--json").json()
    assert repaired["unrepaired"] == 0
    assert repaired["repaired"] == len(repaired["problems"]) == 11
    assert run("storage", "check", "--json").json()["problems"] == []

    assert api.login(bob.email, bob.password).status_code == 200
    listed = api.get("/api/v5/auth/sessions", alice.access).json()["results"]
    assert [s["id"] for s in listed] == [str(alice_session)]
    problem(api.me(charlie.access), 401, "session_revoked")
    assert maintenance.range_is_empty(db, globex.collection("auth_sessions").range())
    assert api.get("/api/v5/sessions", alice.access).json()["results"][0]["name"] == "S"


def test_check_as_a_table(alice: Persona) -> None:
    emails = keyspace.GLOBAL.index("user_by_email")
    raw_clear(emails.pack(("alice@example.com",)))
    with pytest.raises(CommandError, match="1 problems left"):
        run("storage", "check")
    out = run("storage", "check", "--repair").out
    assert out.splitlines()[0] == "checked 1 tenant: 1 problem, 1 repaired"
    assert "missing" in out
    assert "users.user_by_email" in out


def test_an_entry_naming_the_wrong_user_is_pointed_back(
    api: Api, alice: Persona, charlie: Persona
) -> None:
    entry = keyspace.GLOBAL.index("user_by_email").pack(("alice@example.com",))
    raw_set(entry, fdb.tuple.pack((charlie.tenant_uuid, charlie.user_uuid)))
    repaired = run("storage", "check", "--repair", "--json").json()
    assert sorted(p["kind"] for p in repaired["problems"]) == ["missing", "stale"]
    assert repaired["unrepaired"] == 0
    assert api.login(alice.email, alice.password).status_code == 200


def test_a_unique_clash_is_reported_not_overwritten(alice: Persona, charlie: Persona) -> None:
    """Two live users with one email: which one keeps it is for a person to decide."""
    db = fdb_backend.get_database()
    people = users(charlie.tenant_uuid)
    stored = people.get(db, charlie.user_uuid)
    assert stored is not None
    clone = dataclasses.replace(stored, email="alice@example.com", email_key="alice@example.com")
    record = keyspace.tenant(charlie.tenant_uuid).collection("users").records
    raw_set(record.pack((charlie.user_uuid, 0)), people.schema.encode(clone, 1 << 20))
    found, reason = failing("storage", "check", "--repair")
    problems = sorted((p["kind"], p["what"], p["repaired"]) for p in found["problems"])
    assert problems == [
        ("missing", "users.user_by_email", False),  # Alice holds it, and keeps it
        ("stale", "users.user_by_email", True),  # Charlie's old address named him
    ]
    assert reason == "1 problems left"


def test_a_record_that_does_not_decode_is_reported(alice: Persona) -> None:
    acme = keyspace.tenant(alice.tenant_uuid)
    raw_set(acme.collection("invitations").records.pack(("x" * 64, 0)), b"\x09garbage")
    found, reason = failing("storage", "check", "--repair")
    assert [(p["kind"], p["what"], p["repaired"]) for p in found["problems"]] == [
        ("corrupt", "invitations", False)
    ]
    assert reason == "1 problems left"
    with pytest.raises(CommandError, match="does not decode stops the purge"):
        run("storage", "purge")


# --- stats -----------------------------------------------------------------------------


def test_stats(api: Api, alice: Persona, bob: Persona, charlie: Persona) -> None:
    stats = run("storage", "stats", "--json").json()
    assert {"tenants", "tenant_by_slug", "user_by_email", "signing_keys", "t"} <= set(
        stats["spaces"]
    )
    assert stats["spaces"]["user_by_email"]["keys"] == 3
    assert stats["spaces"]["tenants"]["keys"] == 2
    assert stats["keys"] == sum(s["keys"] for s in stats["spaces"].values())
    by_id = {t["id"]: t for t in stats["tenants"]}
    assert by_id[alice.tenant_id]["slug"] == alice.tenant["slug"]
    assert by_id[alice.tenant_id]["bytes"] > by_id[charlie.tenant_id]["bytes"]
    assert stats["spaces"]["t"]["keys"] == sum(t["keys"] for t in stats["tenants"])
    text = run("storage", "stats", "--top", "1").out
    assert "largest tenants" in text
    assert alice.tenant_id in text
    assert charlie.tenant_id not in text
    with pytest.raises(CommandError, match="--top must be 0 or more"):
        run("storage", "stats", "--top", "-1")


# --- purge -----------------------------------------------------------------------------


def test_purge_removes_what_expired_with_a_dry_run_first(
    api: Api, alice: Persona, bob: Persona, charlie: Persona, time_machine, db: None
) -> None:
    db = fdb_backend.get_database()
    start = datetime.now(UTC)
    time_machine.move_to(start, tick=False)
    assert api.invite(alice.access, "dan@example.com").status_code == 201
    session = api.post("/api/v5/sessions", {"name": "S", "workspace_path": "/w"}, alice.access)
    session_id = session.json()["id"]
    for n in range(3):
        event = {"event": "build", "data": {"n": n}}
        api.post(f"/api/v5/sessions/{session_id}/events", event, alice.access)
    assert api.post("/api/v5/auth/logout", None, bob.access).status_code == 204
    # A socket that died with its server: its connection and lock were never released.
    sid = uuid.UUID(session_id)
    connections(alice.tenant_uuid).save(db, Connection(
        session_id=sid, connection_id="c1", user_id=alice.user_uuid, display_name="Alice",
        connected_at=start, last_seen=start,
    ))  # fmt: skip
    locks(alice.tenant_uuid).save(db, Lock(
        session_id=sid, path="src/app.py", connection_id="c1", user_id=alice.user_uuid,
        expires_at=start + timedelta(seconds=30),
    ))  # fmt: skip

    nothing = {
        "auth_sessions": 0,
        # Auth events and staff audit entries stay a year (tests/accounts/test_audit.py).
        "auth_events": 0,
        "staff_audit": 0,
        "invitations": 0,
        "api_tokens": 0,
        "events": 0,
        "locks": 0,
        "connections": 0,
    }

    def removed(report: dict[str, Any]) -> dict[str, Any]:
        # Throttle counters depend on when the fixtures registered; checked on their own below.
        return {k: v for k, v in report["removed"].items() if k != "throttle"}

    time_machine.move_to(start + timedelta(minutes=10), tick=False)  # realtime's to clean
    assert removed(run("storage", "purge", "--dry-run", "--json").json()) == nothing

    time_machine.move_to(start + timedelta(days=2), tick=False)  # events are 24 h old
    dry = run("storage", "purge", "--dry-run", "--json").json()
    assert dry["dry_run"] is True
    assert dry["tenants"] == 2
    assert removed(dry) == nothing | {"events": 3, "locks": 1, "connections": 1}
    assert dry["removed"]["throttle"] >= 1  # the registrations' hour is over
    again = run("storage", "purge", "--dry-run", "--json").json()
    assert again["removed"]["events"] == 3  # nothing was removed

    time_machine.move_to(start + timedelta(days=8), tick=False)  # revoked for 7 days
    done = run("storage", "purge", "--json").json()
    assert removed(done) == nothing | {
        "auth_sessions": 1,
        "invitations": 1,
        "events": 3,
        "locks": 1,
        "connections": 1,
    }
    assert done["removed"]["throttle"] >= 1
    assert run("storage", "purge", "--json").json()["removed"] == nothing | {"throttle": 0}
    refreshed = api.refresh(alice.refresh)  # live sessions and sessions' heads stay
    assert refreshed.status_code == 200
    assert api.get(f"/api/v5/sessions/{session_id}", refreshed.json()["access"]).status_code == 200
    assert run("storage", "check", "--json").json()["problems"] == []

    time_machine.move_to(start + timedelta(days=40), tick=False)  # past every lifetime
    text = run("storage", "purge").out
    # Two records, and the two rate-limit windows (the user's and the tenant's) of that GET.
    assert text.splitlines()[0] == "removed 4 records in 2 tenants"


def test_purge_works_in_batches(alice: Persona, monkeypatch) -> None:
    db = fdb_backend.get_database()
    past = datetime.now(UTC) - timedelta(days=1)
    pending = invitations(alice.tenant_uuid)
    for n in range(230):
        pending.save(
            db,
            Invitation(
                token_hash=f"{n:064x}",
                email=f"p{n}@example.com",
                role="member",
                created_by=alice.user_uuid,
                created_at=past,
                expires_at=past + (timedelta(days=2) if n % 10 == 0 else timedelta(hours=1)),
            ),
        )
    batches: list[int] = []
    original = maintenance._purge_batch

    def counting(tr, collection, predicate, begin, end, limit, now, dry_run, on_removed):
        matched, following = original(
            tr, collection, predicate, begin, end, limit, now, dry_run, on_removed
        )
        batches.append(matched)
        return matched, following

    monkeypatch.setattr(maintenance, "_purge_batch", counting)
    report = run("storage", "purge", "--only", "invitations", "--json").json()
    assert report["removed"] == {"invitations": 207}
    assert len(batches) == 3  # 100 records per transaction at most
    assert sum(batches) == 207
    assert len(pending.list_by_key(db).records) == 23


def test_purge_refuses_an_unknown_kind() -> None:
    with pytest.raises(CommandError, match="unknown kind 'cookies'; known: auth_sessions"):
        run("storage", "purge", "--only", "cookies")


def test_check_reads_split_records_whole_across_small_batches(
    api: Api, alice: Persona, monkeypatch
) -> None:
    big = {"name": "S", "workspace_path": "/w", "editor_state": {"x": "y" * 250_000}}
    for _ in range(3):  # three states of three chunks each
        assert api.post("/api/v5/sessions", big, alice.access).status_code == 201
    reads: list[int] = []
    original = maintenance._records_from

    def counting(tr, collection, begin, end, max_records):
        found, resume = original(tr, collection, begin, end, max_records)
        if collection.schema.collection == "workspace_states":
            reads.append(len(found))
        return found, resume

    monkeypatch.setattr(maintenance, "_records_from", counting)
    monkeypatch.setattr(maintenance, "TARGET_BYTES", 120_000)  # one key per read
    assert run("storage", "check", "--json").json()["problems"] == []
    # Each batch: one key read, then the rest of its record; the last one finds the end.
    assert reads == [1, 1, 1, 0]


def test_storage_refuses_unknown_actions_and_options() -> None:
    for args in (["storage"], ["storage", "vacuum"], ["storage", "check", "--fix"]):
        with pytest.raises(CommandError) as caught:
            run(*args)
        assert "\n" not in str(caught.value)


def test_counts_are_singular_for_one():
    from operations.management.commands import counted

    assert counted(1, "tenant") == "1 tenant"
    assert counted(0, "tenant") == "0 tenants"
    assert counted(2, "global entry", "global entries") == "2 global entries"
