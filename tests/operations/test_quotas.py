"""Quota usage in the operators' tools: ``storage check`` recounts and ``--repair`` fixes the
counters, purges give back what they remove, imports recount, and ``tenants quota`` shows,
sets and resets a tenant's own quotas."""

from __future__ import annotations

import dataclasses
import io
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import fdb_backend
from accounts.records import auth_event_read, quota_used_key
from operations.usage import usage_recount
from tests.accounts.helpers import Api, Persona, problem
from tests.operations.helpers import run
from workspaces.records import heads

TENANT = "/api/v5/tenant/"


def usage(api: Api, persona: Persona) -> dict[str, int]:
    found: dict[str, int] = api.get(TENANT, persona.access).json()["usage"]
    return found


def exact(api: Api, persona: Persona) -> dict[str, int]:
    counted = usage_recount(db=fdb_backend.get_database(), tenant_id=persona.tenant_uuid)
    assert usage(api, persona) == counted.used
    for session_id, stored in counted.head_event_bytes.items():
        assert stored == counted.event_bytes.get(session_id, 0)
    return counted.used


def make_session(api: Api, persona: Persona, events: int = 2) -> str:
    body = {"name": "S", "workspace_path": "/w", "editor_state": {"t": "x" * 300}}
    session_id: str = api.post("/api/v5/sessions", body, persona.access).json()["id"]
    for n in range(events):
        event = {"event": "build", "data": {"n": "y" * (n * 10)}}
        assert (
            api.post(f"/api/v5/sessions/{session_id}/events", event, persona.access).status_code
            == 202
        )
    return session_id


def test_check_finds_drifted_counters_and_repair_sets_them_to_the_recount(
    api: Api, alice: Persona, charlie: Persona
) -> None:
    db = fdb_backend.get_database()
    session_id = uuid.UUID(make_session(api, alice))
    make_session(api, charlie)
    assert run("storage", "check", "--json").json()["problems"] == []
    # The sessions counter drifts, and a head's event_bytes is wrong.
    db[quota_used_key(alice.tenant_uuid, "sessions")] = (99).to_bytes(8, "little")
    head = heads(alice.tenant_uuid).get(db, session_id)
    assert head is not None
    heads(alice.tenant_uuid).save(db, dataclasses.replace(head, event_bytes=head.event_bytes + 5))
    out = io.StringIO()
    with pytest.raises(CommandError, match="2 problems left"):
        call_command("storage", "check", "--json", stdout=out, stderr=io.StringIO())
    found = json.loads(out.getvalue())["problems"]
    assert sorted((p["kind"], p["what"], p["tenant_id"]) for p in found) == [
        ("counter", "usage.sessions", alice.tenant_id),
        ("counter", "workspace_sessions.event_bytes", alice.tenant_id),
    ]
    assert any(p["key"] == "sessions: stored 99, counted 1" for p in found)
    repaired = run("storage", "check", "--repair", "--json").json()
    assert repaired["repaired"] == 2 and repaired["unrepaired"] == 0
    assert run("storage", "check", "--json").json()["problems"] == []
    assert exact(api, alice)["sessions"] == 1


def test_purges_give_back_the_events_and_tokens_they_remove(
    api: Api, alice: Persona, time_machine
) -> None:
    start = datetime.now(UTC)
    time_machine.move_to(start, tick=False)
    make_session(api, alice, events=4)
    expires = (start + timedelta(hours=1)).isoformat()
    body = {"name": "short", "scopes": ["sessions:read"], "expires_at": expires}
    assert api.post("/api/v5/auth/api-tokens", body, alice.access).status_code == 201
    before = exact(api, alice)
    assert before["api_tokens"] == 1
    time_machine.move_to(start + timedelta(days=9), tick=False)  # events and token past keeping
    alice_access = api.login(alice.email, alice.password).json()["access"]
    alice = dataclasses.replace(alice, access=alice_access)
    removed = run("storage", "purge", "--only", "events", "--only", "api_tokens", "--json").json()
    assert removed["removed"] == {"events": 4, "api_tokens": 1}
    after = exact(api, alice)
    assert after["api_tokens"] == 0
    assert 0 < after["bytes"] < before["bytes"]  # the state stays
    assert run("storage", "check", "--json").json()["problems"] == []


def test_an_import_recounts_what_the_file_holds(
    api: Api, alice: Persona, bob: Persona, tmp_path: Path
) -> None:
    db = fdb_backend.get_database()
    make_session(api, alice)
    make_session(api, bob)
    truth = exact(api, alice)
    # An export whose counters disagree with its data (taken while the tenant was busy).
    db[quota_used_key(alice.tenant_uuid, "bytes")] = (7).to_bytes(8, "little")
    path = tmp_path / "acme.jsonl"
    run("tenants", "export", alice.tenant_id, "--output", str(path))
    run("tenants", "import", str(path), "--replace")
    assert exact(api, alice) == truth
    assert run("storage", "check", "--json").json()["problems"] == []


def test_tenants_quota_shows_sets_and_resets(
    api: Api, alice: Persona, charlie: Persona, settings
) -> None:
    settings.CODITECT_QUOTA_SESSIONS = 10
    make_session(api, alice, events=0)
    shown = run("tenants", "quota", alice.tenant_id, "--json").json()
    assert shown["quotas"]["sessions"] == {"used": 1, "limit": 10, "override": None}
    text = run("tenants", "quota", alice.tenant["slug"]).out
    assert "sessions" in text and "default" in text
    shown_too = run("tenants", "show", alice.tenant_id, "--json").json()["quotas"]
    assert shown_too == shown["quotas"]
    assert "quotas" in run("tenants", "show", alice.tenant_id).out
    changed = run(
        "tenants", "quota", alice.tenant_id, "--sessions", "1", "--bytes", "0",
        "--api-tokens", "3", "--json",
    ).json()  # fmt: skip
    assert changed["quotas"]["sessions"] == {"used": 1, "limit": 1, "override": 1}
    assert changed["quotas"]["bytes"]["limit"] is None  # 0: unlimited
    assert api.get(TENANT, alice.access).json()["quotas"] == {
        "sessions": 1,
        "bytes": None,
        "api_tokens": 3,
    }
    body = {"name": "S", "workspace_path": "/w"}
    problem(api.post("/api/v5/sessions", body, alice.access), 403, "quota_exceeded")
    assert api.post("/api/v5/sessions", body, charlie.access).status_code == 201  # not Globex
    reset = run("tenants", "quota", alice.tenant_id, "--reset", "sessions", "--json").json()
    assert reset["quotas"]["sessions"] == {"used": 1, "limit": 10, "override": None}
    assert reset["quotas"]["api_tokens"]["override"] == 3
    assert api.post("/api/v5/sessions", body, alice.access).status_code == 201
    everything = run("tenants", "quota", alice.tenant_id, "--reset", "all", "--json").json()
    assert all(q["override"] is None for q in everything["quotas"].values())
    # The change is in the tenant's auth events (its audit trail).
    kinds = [
        e.type
        for e in auth_event_read(fdb_backend.get_database(), tenant_id=alice.tenant_uuid, limit=5)
    ]
    assert kinds[:3] == ["quota_changed"] * 3


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--sessions", "-1"], "out of range"),
        (["--bytes", "lots"], "not a whole number"),
        (["--sessions", "2", "--reset", "sessions"], "--sessions and --reset sessions together"),
    ],
)
def test_tenants_quota_refuses_bad_values(alice: Persona, args: list[str], reason: str) -> None:
    with pytest.raises(CommandError, match=reason):
        call_command(
            "tenants", "quota", alice.tenant_id, *args, stdout=io.StringIO(), stderr=io.StringIO()
        )


def test_tenants_quota_of_an_unknown_tenant() -> None:
    with pytest.raises(CommandError, match="unknown tenant"):
        run("tenants", "quota", "no-such-tenant")


def test_check_compares_a_counter_only_with_a_recount_it_held_still_through(
    monkeypatch: pytest.MonkeyPatch, api: Api, alice: Persona
) -> None:
    """A recount walks in many transactions while the platform serves. Here every recount
    sees a PATCH (the bytes counter never holds still) and the last one a delete landing
    after its walk: the sessions counter is judged by an earlier recount it held still
    through, the bytes counter by none, so nothing is reported and nothing is "repaired" to a
    count the delete made stale."""
    import operations.usage as usage_module

    ids = [make_session(api, alice, events=0) for _ in range(3)]
    original = usage_module.usage_recount
    calls = 0

    def busy_recount(*, db: object, tenant_id: uuid.UUID) -> object:
        nonlocal calls
        calls += 1
        counted = original(db=db, tenant_id=tenant_id)
        patch = json.dumps({"editor_state": {"t": "z" * (100 + calls)}})
        response = api.client.patch(
            f"/api/v5/sessions/{ids[0]}",
            patch,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {alice.access}",
        )
        assert response.status_code == 200, response.content
        if calls == 3:
            assert api.delete(f"/api/v5/sessions/{ids[1]}", alice.access).status_code == 204
        return counted

    monkeypatch.setattr(usage_module, "usage_recount", busy_recount)
    assert run("storage", "check", "--repair", "--json").json()["problems"] == []
    assert calls == 3
    monkeypatch.setattr(usage_module, "usage_recount", original)
    assert usage(api, alice)["sessions"] == 2
    exact(api, alice)


def test_a_repair_whose_commit_result_was_unknown_is_reported_repaired(
    api: Api, alice: Persona, monkeypatch
) -> None:
    """The repair's commit lands but answers commit_unknown_result (1021): its retry finds
    the counter already set to the recount and reports it repaired, not "unrepaired"."""
    db = fdb_backend.get_database()
    make_session(api, alice)
    db[quota_used_key(alice.tenant_uuid, "sessions")] = (99).to_bytes(8, "little")
    faults = [1021]  # the next write commit is applied, then answers 1021
    monkeypatch.setattr(type(db), "_draw_fault", lambda self: faults.pop() if faults else 0)
    repaired = run("storage", "check", "--repair", "--json").json()
    assert not faults
    assert repaired["repaired"] == 1 and repaired["unrepaired"] == 0
    assert exact(api, alice)["sessions"] == 1
