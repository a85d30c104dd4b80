"""GET /api/v5/tenant/audit: the tenant's auth events and the staff actions on it, newest
first, in full cursor pages, filtered through indexes; owners and admins only."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User as StaffUser
from django.core.management.base import CommandError
from django.db import OperationalError, connection

import fdb_backend
from accounts import audit_keys
from accounts.services.common import Client, event
from fdb_backend import keyspace
from fdb_backend.engines import embedded
from operations import staff
from tests.accounts.helpers import AUTH, TENANT, Api, Persona, invite_and_register, problem
from tests.operations.helpers import run
from tests.operations.test_storage import failing

AUDIT = TENANT + "audit"
pytestmark = pytest.mark.django_db
GHOST = uuid.UUID("0badc0de-0000-4000-8000-000000000000")  # a user with only rare events


def audit(api: Api, persona: Persona, **query: Any) -> Any:
    return api.get(AUDIT + ("?" + urlencode(query) if query else ""), persona.access)


def every_entry(api: Api, persona: Persona, limit: int, **query: Any) -> list[dict[str, Any]]:
    """All pages, checking that each but the last is full and only the last has no cursor."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = audit(api, persona, limit=limit, **query, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.content
        body = page.json()
        found.extend(body["results"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found
        assert len(body["results"]) == limit


def log_events(persona: Persona, count: int, *, type: str, user_id: uuid.UUID | None, at: datetime):
    db = fdb_backend.get_database()

    @fdb_backend.transactional
    def write(tr: Any, n: int) -> None:
        for i in range(n, min(n + 200, count)):
            event(
                tr,
                tenant_id=persona.tenant_uuid,
                event_id=uuid.uuid4(),
                type=type,
                at=at + timedelta(microseconds=i),
                client=Client(ip="203.0.113.9", user_agent="test"),
                user_id=user_id,
                n=i,
            )

    for n in range(0, count, 200):
        write(db, n)


@pytest.fixture
def agent() -> StaffUser:
    return StaffUser.objects.create_superuser("support-jo", "jo@example.com", None)


def lock_and_unlock(agent: StaffUser, persona: Persona) -> None:
    db = fdb_backend.get_database()
    for locked in (True, False):
        staff.staff_user_lock(
            db=db,
            staff=agent,
            tenant_id=persona.tenant_uuid,
            user_id=persona.user_uuid,
            reason="ticket 42",
            locked=locked,
        )


def order_key(entry: dict[str, Any]) -> tuple[str, int]:
    return (entry["at"], 1 if entry["source"] == "auth" else 0)


def test_owner_pages_through_auth_events_and_staff_actions_newest_first(
    api: Api, alice: Persona, bob: Persona, agent: StaffUser
) -> None:
    for _ in range(3):
        assert api.login(bob.email).status_code == 200
        assert api.login(bob.email, "wrong password").status_code == 401
    lock_and_unlock(agent, bob)

    whole = audit(api, alice, limit=200).json()
    assert whole["next_cursor"] is None
    entries = whole["results"]
    kinds = [e["kind"] for e in entries]
    assert kinds.count("login") >= 3 and kinds.count("login_failed") == 3
    assert {"staff.user_lock", "staff.user_unlock", "user_locked"} <= set(kinds)
    assert [order_key(e) for e in entries] == sorted(map(order_key, entries), reverse=True)
    assert kinds.index("staff.user_unlock") < kinds.index("staff.user_lock")
    (unlock,) = [e for e in entries if e["kind"] == "staff.user_unlock"]
    assert unlock["source"] == "staff"
    assert unlock["user_id"] == bob.user_id
    assert unlock["data"] == {
        "target_type": "user",
        "target_id": bob.user_id,
        "reason": "ticket 42",
    }
    assert unlock["ip"] is None and "support-jo" not in str(unlock)  # staff stay unnamed
    failed = next(e for e in entries if e["kind"] == "login_failed")
    assert failed["source"] == "auth" and failed["ip"] == "127.0.0.1"

    for limit in (1, 2, 3, 7):
        assert every_entry(api, alice, limit) == entries


def test_filters_by_user_kind_and_time(
    api: Api, alice: Persona, bob: Persona, agent: StaffUser, time_machine
) -> None:
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    time_machine.move_to(start, tick=False)
    assert api.login(bob.email).status_code == 200
    time_machine.move_to(start + timedelta(hours=1), tick=False)
    lock_and_unlock(agent, bob)
    assert api.login(alice.email).status_code == 200
    time_machine.move_to(start + timedelta(hours=2), tick=False)
    assert api.login(bob.email).status_code == 200
    entries = every_entry(api, alice, 200)

    def expect(keep: Any, **query: Any) -> None:
        wanted = [e for e in entries if keep(e)]
        assert wanted, query
        for limit in (1, 2, 50):
            assert every_entry(api, alice, limit, **query) == wanted, query

    expect(lambda e: e["user_id"] == bob.user_id, user_id=bob.user_id)
    expect(lambda e: e["kind"] == "login", kind="login")
    expect(lambda e: e["kind"] == "staff.user_lock", kind="staff.user_lock")
    expect(lambda e: e["user_id"] == bob.user_id and e["kind"] == "login", kind="login",
           user_id=bob.user_id)  # fmt: skip
    hour = (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    expect(lambda e: e["at"] < hour, before=hour)
    expect(lambda e: e["at"] > hour, after=hour)
    expect(lambda e: e["kind"] == "staff.user_unlock", after=(
        start + timedelta(minutes=59)).isoformat(), kind="staff.user_unlock")  # fmt: skip
    assert audit(api, alice, kind="never_happens").json() == {"results": [], "next_cursor": None}
    assert audit(api, alice, user_id=str(uuid.uuid4())).json()["results"] == []
    assert audit(api, alice, after=hour, before=hour).json()["results"] == []
    # The ends of RFC 3339 time, past what a datetime holds in UTC: nothing, not a 500.
    assert audit(api, alice, before="0001-01-01T00:00:00+14:00").json()["results"] == []
    assert audit(api, alice, after="9999-12-31T23:59:59-14:00").json()["results"] == []
    assert audit(api, alice, after="0001-01-01T00:00:00+14:00").json()["results"] == entries


def test_a_sparse_filter_reads_only_matching_entries(
    api: Api, alice: Persona, bob: Persona, monkeypatch
) -> None:
    at = datetime.now(UTC) - timedelta(days=1)
    log_events(alice, 1000, type="refresh", user_id=alice.user_uuid, at=at)
    log_events(alice, 3, type="rare_thing", user_id=GHOST, at=at - timedelta(hours=1))
    scope = keyspace.tenant(alice.tenant_uuid)
    spaces = [scope.space(n).range() for n in ("auth_events", *audit_keys.INDEXES)]
    read: list[int] = []
    original = embedded.Transaction._get_range

    def counting(self, begin, end, limit, reverse, *, snapshot):
        rows = original(self, begin, end, limit, reverse, snapshot=snapshot)
        read.append(sum(1 for kv in rows if any(r.start <= kv.key < r.stop for r in spaces)))
        return rows

    monkeypatch.setattr(embedded.Transaction, "_get_range", counting)
    for query in ({"kind": "rare_thing"}, {"user_id": str(GHOST)}, {"user_id": str(GHOST),
                  "kind": "rare_thing"}):  # fmt: skip
        read.clear()
        first = audit(api, alice, limit=2, **query).json()
        assert [e["data"]["n"] for e in first["results"]] == [2, 1]
        assert sum(read) <= 3  # the page and one more: not the 1000 others
        read.clear()
        rest = audit(api, alice, limit=2, cursor=first["next_cursor"], **query).json()
        assert [e["data"]["n"] for e in rest["results"]] == [0]
        assert rest["next_cursor"] is None
        assert sum(read) <= 3


def test_another_tenant_sees_nothing_of_it(
    api: Api, alice: Persona, bob: Persona, charlie: Persona, agent: StaffUser
) -> None:
    lock_and_unlock(agent, bob)
    assert api.login(bob.email, "wrong password").status_code == 401
    mine = every_entry(api, charlie, 200)
    assert mine  # Charlie's own registration
    text = str(mine)
    assert alice.user_id not in text and bob.user_id not in text and "staff." not in text
    assert every_entry(api, charlie, 200, user_id=bob.user_id) == []
    assert every_entry(api, charlie, 200, kind="staff.user_lock") == []
    alices = audit(api, alice, limit=1).json()["next_cursor"]
    assert alices is not None
    refused = audit(api, charlie, limit=1, cursor=alices)
    problem(refused, 400, "invalid_cursor")


def test_members_viewers_and_api_tokens_are_refused(api: Api, alice: Persona, bob: Persona) -> None:
    problem(audit(api, bob), 403, "forbidden")
    vera = invite_and_register(api, alice, "Vera", "vera@example.com", role="viewer")
    assert vera.user["role"] == "viewer"
    problem(audit(api, vera), 403, "forbidden")
    token = api.post(AUTH + "api-tokens", {"name": "ci", "scopes": ["sessions:read"]}, alice.access)
    assert token.status_code == 201, token.content
    refused = api.get(AUDIT, token.json()["token"])
    problem(refused, 403, "insufficient_scope")
    assert api.get(AUDIT).status_code == 401
    assert audit(api, alice).status_code == 200


def test_an_admin_reads_it(api: Api, alice: Persona) -> None:
    dora = invite_and_register(api, alice, "Dora", "dora@example.com", role="admin")
    kinds = [e["kind"] for e in every_entry(api, dora, 50)]
    assert "member_joined" in kinds and "invitation_created" in kinds


@pytest.mark.parametrize(
    "query",
    [
        {"user_id": "bob"},
        {"kind": "Login!"},
        {"kind": "staff."},
        {"before": "yesterday"},
        {"after": "2026-01-01T00:00:00"},  # no zone
        {"limit": "0"},
        {"cursor": "forged.cursor"},
    ],
)
def test_bad_filters_are_400(api: Api, alice: Persona, query: dict[str, str]) -> None:
    response = audit(api, alice, **query)
    assert response.status_code == 400, response.content
    assert response.json()["code"] in ("invalid", "invalid_cursor")


def test_a_cursor_of_other_filters_is_400(api: Api, alice: Persona, bob: Persona) -> None:
    cursor = audit(api, alice, limit=1).json()["next_cursor"]
    problem(audit(api, alice, limit=1, kind="login", cursor=cursor), 400, "invalid_cursor")


def test_an_unreachable_staff_database_is_503(api: Api, alice: Persona) -> None:
    def down(execute, sql, params, many, context):
        raise OperationalError("could not connect to server")

    with connection.execute_wrapper(down):
        response = audit(api, alice)
    problem(response, 503, "audit_unavailable")
    assert response["Retry-After"] == "30"
    # Only auth events asked for: the staff database is not needed.
    with connection.execute_wrapper(down):
        assert audit(api, alice, kind="login").status_code == 200


def test_storage_check_builds_the_indexes_of_older_events(
    api: Api, alice: Persona, bob: Persona
) -> None:
    db = fdb_backend.get_database()
    assert run("storage", "check", "--json").json()["problems"] == []
    scope = keyspace.tenant(alice.tenant_uuid)
    for name in audit_keys.INDEXES:  # events as they were stored before the indexes
        r = scope.space(name).range()
        db.clear_range(r.start, r.stop)
    assert audit(api, alice, user_id=bob.user_id).json()["results"] == []
    stray = bytes(scope.space(audit_keys.BY_TYPE).pack(("login", 1, uuid.uuid4())))
    db[stray] = b""

    found = failing("storage", "check")[0]["problems"]
    assert {(p["kind"], p["what"]) for p in found} == {
        ("missing", "auth_events.auth_events_by_user"),
        ("missing", "auth_events.auth_events_by_type"),
        ("missing", "auth_events.auth_events_by_user_type"),
        ("dangling", "auth_events.auth_events_by_type"),
    }
    repaired = run("storage", "check", "--repair", "--json").json()
    assert repaired["unrepaired"] == 0 and repaired["repaired"] == len(found)
    assert run("storage", "check", "--json").json()["problems"] == []
    assert [e["kind"] for e in every_entry(api, alice, 50, user_id=bob.user_id)] == [
        "member_joined"
    ]


def test_purge_removes_entries_past_the_retention_with_their_index_entries(
    api: Api, alice: Persona, bob: Persona, charlie: Persona, agent: StaffUser, time_machine
) -> None:
    start = datetime.now(UTC)
    time_machine.move_to(start, tick=False)
    lock_and_unlock(agent, bob)
    old = every_entry(api, alice, 200) + every_entry(api, charlie, 200)
    time_machine.move_to(start + timedelta(days=200), tick=False)
    assert api.login(bob.email).status_code == 200  # recent: stays

    time_machine.move_to(start + timedelta(days=364), tick=False)
    kept = run("storage", "purge", "--dry-run", "--json").json()["removed"]
    assert kept["auth_events"] == 0 and kept["staff_audit"] == 0

    time_machine.move_to(start + timedelta(days=366), tick=False)
    dry = run("storage", "purge", "--dry-run", "--json").json()["removed"]
    auth_old = sum(1 for e in old if e["source"] == "auth")
    assert dry["auth_events"] == auth_old
    assert dry["staff_audit"] == 2
    done = run("storage", "purge", "--json").json()
    assert done["removed"]["auth_events"] == auth_old and done["removed"]["staff_audit"] == 2
    again = run("storage", "purge", "--json").json()["removed"]
    assert again["auth_events"] == 0 and again["staff_audit"] == 0
    assert run("storage", "check", "--json").json()["problems"] == []  # no entry left behind
    for name in audit_keys.INDEXES:  # the old events' entries went with them
        r = keyspace.tenant(alice.tenant_uuid).space(name).range()
        keys = [kv.key for kv in fdb_backend.get_database().get_range(r.start, r.stop)]
        assert len(keys) == 1, (name, keys)  # Bob's recent login's

    owner = api.login(alice.email).json()["access"]
    left = api.get(AUDIT + "?limit=200", owner).json()["results"]
    assert [(e["kind"], e["user_id"]) for e in left] == [
        ("login", alice.user_id),
        ("login", bob.user_id),
    ]
    assert [e["kind"] for e in api.get(AUDIT + f"?user_id={bob.user_id}", owner).json()[
        "results"]] == ["login"]  # fmt: skip


def test_the_retention_is_a_setting(api: Api, alice: Persona, settings, time_machine) -> None:
    settings.CODITECT_AUDIT_RETENTION_DAYS = 30
    time_machine.move_to(datetime.now(UTC) + timedelta(days=31), tick=False)
    removed = run("storage", "purge", "--only", "auth_events", "--json").json()["removed"]
    assert removed["auth_events"] >= 1
    owner = api.login(alice.email).json()["access"]
    assert [e["kind"] for e in api.get(AUDIT, owner).json()["results"]] == ["login"]


def test_entries_written_while_paging_never_repeat_or_shift_a_page(
    api: Api, alice: Persona, bob: Persona, agent: StaffUser
) -> None:
    at = datetime.now(UTC) - timedelta(hours=1)
    log_events(alice, 30, type="refresh", user_id=alice.user_uuid, at=at)
    before = every_entry(api, alice, 200)
    seen: list[dict[str, Any]] = []
    page = audit(api, alice, limit=7).json()
    while True:
        seen.extend(page["results"])
        # Newer entries of both sources arrive between pages.
        assert api.login(bob.email).status_code == 200
        lock_and_unlock(agent, bob)
        if page["next_cursor"] is None:
            break
        page = audit(api, alice, limit=7, cursor=page["next_cursor"]).json()
    ids = [(e["source"], e["id"]) for e in seen]
    assert len(ids) == len(set(ids))
    assert seen == before


def _export_lines(path: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write_lines(path: Any, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_import_of_an_export_without_the_indexes_writes_them(
    api: Api, alice: Persona, bob: Persona, tmp_path
) -> None:
    path = tmp_path / "acme.jsonl"
    run("tenants", "export", alice.tenant_id, "--output", str(path))
    scope = keyspace.tenant(alice.tenant_uuid)
    prefixes = tuple(scope.space(name).key() for name in audit_keys.INDEXES)
    kept, dropped_keys, dropped_bytes = [], 0, 0
    for line in _export_lines(path):  # what a release before the indexes exported
        key = base64.b64decode(line["key"]) if "key" in line else b""
        if key.startswith(prefixes):
            dropped_keys += 1
            dropped_bytes += len(key) + len(base64.b64decode(line["value"]))
            continue
        kept.append(line)
    assert dropped_keys > 0
    kept[-1]["keys"] -= dropped_keys
    kept[-1]["bytes"] -= dropped_bytes
    old = tmp_path / "old.jsonl"
    _write_lines(old, kept)

    report = run("tenants", "import", str(old), "--replace", "--json").json()
    assert report["entries_rebuilt"] >= dropped_keys
    assert run("storage", "check", "--json").json()["problems"] == []
    owner = api.login(alice.email).json()["access"]
    kinds = [e["kind"] for e in api.get(AUDIT + f"?user_id={bob.user_id}", owner).json()["results"]]
    assert kinds == ["member_joined"]


def test_import_refuses_an_index_entry_that_no_event_of_the_file_makes(
    alice: Persona, bob: Persona, tmp_path
) -> None:
    path = tmp_path / "acme.jsonl"
    run("tenants", "export", alice.tenant_id, "--output", str(path))
    lines = _export_lines(path)
    scope = keyspace.tenant(alice.tenant_uuid)
    forged = bytes(scope.space(audit_keys.BY_USER).pack((bob.user_uuid, 1, uuid.uuid4())))
    entry = {**lines[-2], "key": base64.b64encode(forged).decode(), "value": ""}
    assert "key" in lines[-2]  # a key line of the tenant's range, the forged one like it
    lines.insert(-1, entry)
    lines[-1]["keys"] += 1
    lines[-1]["bytes"] += len(forged)
    _write_lines(path, lines)
    with pytest.raises(CommandError, match="an index entry that no record of the file makes"):
        run("tenants", "import", str(path), "--replace")


def test_a_repair_rechecks_what_changed_since_the_check(alice: Persona, bob: Persona) -> None:
    db = fdb_backend.get_database()
    scope = keyspace.tenant(alice.tenant_uuid)
    for name in audit_keys.INDEXES:
        r = scope.space(name).range()
        db.clear_range(r.start, r.stop)
    stray = bytes(scope.space(audit_keys.BY_TYPE).pack(("login", 1, uuid.uuid4())))
    db[stray] = b""
    found = list(audit_keys.check_indexes(db, alice.tenant_uuid))
    assert {i.kind for i in found} == {"missing", "dangling"}
    # Between the check and the repair: every event goes (a purge), and the stray entry's
    # event is written after all.
    log = scope.space("auth_events").range()
    db.clear_range(log.start, log.stop)
    at_micros, event_id = scope.space(audit_keys.BY_TYPE).unpack(stray)[-2:]
    db[audit_keys.log_key(alice.tenant_uuid, at_micros, event_id)] = json.dumps(
        {
            "type": "login",
            "at": "1970-01-01T00:00:00.000001+00:00",
            "user_id": None,
            "ip": "",
            "user_agent": "",
            "data": {},
        }
    ).encode()
    assert [audit_keys.repair(db, issue) for issue in found] == [False] * len(found)
    for name in audit_keys.INDEXES:  # nothing written for the events that went
        r = scope.space(name).range()
        assert [kv.key for kv in db.get_range(r.start, r.stop)] == (
            [stray] if name == audit_keys.BY_TYPE else []
        )
    assert list(audit_keys.check_indexes(db, alice.tenant_uuid)) == []
