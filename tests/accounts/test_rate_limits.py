"""Rate limits of the authenticated API (CONTRACT §1, issue 16 part 4; accounts/ratelimit.py).

Time is frozen at the start of a minute, so every request of a test falls in one window.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accounts.ratelimit import rate_limit_spend
from tests.accounts.helpers import (
    AUTH,
    Api,
    Persona,
    invite_and_register,
    login_pair,
    problem,
    register_persona,
)
from tests.accounts.test_api_tokens import make_token
from tests.accounts.test_processes import Children, children, shared_store
from tests.workspaces.helpers import SESSIONS, SessionApi, create_session, session_url

__all__ = ["children", "shared_store"]

HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


@pytest.fixture
def limits(settings, time_machine) -> Iterator[Any]:
    """Small limits, in a fresh window that the test does not leave."""
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=15)
    time_machine.move_to(start, tick=False)
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_RATE_READ_PER_MIN = 1000
    settings.CODITECT_RATE_WRITE_PER_MIN = 1000
    settings.CODITECT_RATE_TENANT_READ_PER_MIN = 1000
    settings.CODITECT_RATE_TENANT_WRITE_PER_MIN = 1000
    yield settings


def rate(response: Any) -> tuple[int, int, int]:
    limit, remaining, reset = (int(response[name]) for name in HEADERS)
    return limit, remaining, reset


def refused(response: Any) -> None:
    problem(response, 429, "rate_limited")
    assert response["Retry-After"] == response["RateLimit-Reset"] == "45"
    assert response["RateLimit-Remaining"] == "0"


def spend(api: Api, token: str, count: int, path: str = AUTH + "me") -> None:
    for _ in range(count):
        response = api.get(path, token)
        assert response.status_code == 200, response.content


# --- headers and refusals ---------------------------------------------------------------------


def test_answers_carry_the_headers_counting_down(limits, alice: Persona) -> None:
    limits.CODITECT_RATE_READ_PER_MIN = 6
    api = SessionApi()
    created = api.create(alice.access, name="a", workspace_path="/srv/a")
    assert created.status_code == 201
    # Writes have their own windows; both are at 1000, one spent.
    assert rate(created) == (1000, 999, 45)
    # A problem answer of a counted request carries them too.
    missing = api.read(alice.access, "00000000-0000-4000-8000-000000000000")
    problem(missing, 404)
    assert rate(missing) == (6, 5, 45)
    seen = [rate(api.read(alice.access, created.json()["id"])) for _ in range(5)]
    assert seen == [(6, 4, 45), (6, 3, 45), (6, 2, 45), (6, 1, 45), (6, 0, 45)]
    refused(api.read(alice.access, created.json()["id"]))


def test_unauthenticated_answers_carry_no_headers(limits, api: Api, alice: Persona) -> None:
    for response in (
        api.get(AUTH + "me"),
        api.get(AUTH + "me", "not-a-token"),
        api.get("/healthz"),
    ):
        assert not any(response.has_header(name) for name in HEADERS), response


def test_past_the_limit_nothing_is_done(limits, alice: Persona) -> None:
    limits.CODITECT_RATE_WRITE_PER_MIN = 3
    api = SessionApi()
    made = [create_session(api, alice, name=f"s{n}")["id"] for n in range(3)]
    over = api.create(alice.access, name="one too many", workspace_path="/srv/x")
    refused(over)
    patched = api.patch(session_url(made[0]), {"name": "renamed"}, alice.access)
    refused(patched)
    listed = api.listing(alice.access)
    assert listed.status_code == 200
    names = {s["name"] for s in listed.json()["results"]}
    assert names == {"s0", "s1", "s2"}


def test_reads_and_writes_are_counted_apart(limits, alice: Persona) -> None:
    limits.CODITECT_RATE_READ_PER_MIN = 2
    limits.CODITECT_RATE_WRITE_PER_MIN = 2
    api = SessionApi()
    session = create_session(api, alice)
    spend(api, alice.access, 2, SESSIONS)
    refused(api.read(alice.access, session["id"]))
    # Reads are used up; writes still pass (one left), then they are used up too.
    assert api.patch(session_url(session["id"]), {"name": "b"}, alice.access).status_code == 200
    refused(api.patch(session_url(session["id"]), {"name": "c"}, alice.access))
    # HEAD is a read.
    assert api.client.head(SESSIONS, HTTP_AUTHORIZATION=f"Bearer {alice.access}").status_code == 429


# --- who is counted ---------------------------------------------------------------------------


def test_a_users_tokens_share_one_limit_and_each_api_token_has_its_own(
    limits, api: Api, alice: Persona
) -> None:
    token = make_token(api, alice, ["sessions:read"])["token"]
    other_device = login_pair(api, alice)["access"]
    limits.CODITECT_RATE_READ_PER_MIN = 3
    spend(api, alice.access, 2)
    spend(api, other_device, 1)
    refused(api.get(AUTH + "me", alice.access))
    refused(api.get(AUTH + "me", other_device))
    # The API token is another principal: its own three.
    spend(api, token, 3, SESSIONS)
    refused(api.get(SESSIONS, token))
    # And a second API token of the same user has its own again.
    second = make_token(api, alice, ["sessions:read"])["token"]
    spend(api, second, 3, SESSIONS)


def test_the_tenant_limit_binds_its_members_together(
    limits, api: Api, alice: Persona, bob: Persona, charlie: Persona
) -> None:
    limits.CODITECT_RATE_TENANT_READ_PER_MIN = 4
    spend(api, alice.access, 3)
    spend(api, bob.access, 1)
    response = api.get(AUTH + "me", bob.access)
    refused(response)
    assert response["RateLimit-Limit"] == "4"  # the tenant's limit is the one exhausted
    refused(api.get(AUTH + "me", alice.access))
    # Another tenant is not limited by tenant A's burst.
    spend(api, charlie.access, 4)
    refused(api.get(AUTH + "me", charlie.access))


def test_one_tenants_burst_leaves_another_untouched(
    limits, alice: Persona, charlie: Persona
) -> None:
    limits.CODITECT_RATE_WRITE_PER_MIN = 2
    api = SessionApi()
    create_session(api, alice)
    create_session(api, alice)
    refused(api.create(alice.access, name="x", workspace_path="/srv/x"))
    created = api.create(charlie.access, name="x", workspace_path="/srv/x")
    assert created.status_code == 201
    assert rate(created)[:2] == (2, 1)


def test_the_scale_multiplies_the_limits(limits, api: Api, alice: Persona) -> None:
    limits.CODITECT_RATE_READ_PER_MIN = 2
    limits.CODITECT_THROTTLE_SCALE = 2
    spend(api, alice.access, 4)
    refused(api.get(AUTH + "me", alice.access))


# --- across processes --------------------------------------------------------------------------


def personas(api: Api) -> tuple[Persona, Persona]:
    """Alice and Bob of one tenant, made on the store the children share."""
    alice = register_persona(api, "Alice", "alice@example.com", tenant_name="Acme")
    return alice, invite_and_register(api, alice, "Bob", "bob@example.com")


def test_the_limit_is_exact_across_two_processes(
    api: Api, settings, children: Children, time_machine
) -> None:
    """Two processes on one store, three threads each, every request at once: exactly the
    user's limit passes, never one more."""
    alice, bob = personas(api)  # (the invitation is a write of the window before)
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=15)
    time_machine.move_to(start, tick=False)
    limit = {"CODITECT_THROTTLE_SCALE": "1", "CODITECT_RATE_READ_PER_MIN": "37"}
    limit["CODITECT_RATE_TENANT_READ_PER_MIN"] = "1000"
    limit["CODITECT_RATE_LEASE_MAX"] = "8"
    children.env.update(limit)
    me = {"method": "GET", "path": AUTH + "me"}
    alice_me = {**me, "extra": {"HTTP_AUTHORIZATION": f"Bearer {alice.access}"}}
    for _ in range(2):
        children.spawn([alice_me] * 15, threads=3, freeze=start.isoformat())
    children.start()
    seen = [item["status"] for child in children.results() for thread in child for item in thread]
    assert len(seen) == 90
    assert seen.count(200) == 37, seen
    assert seen.count(429) == 90 - 37, seen
    # This process shares the store: alice is refused here too, bob is not.
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_RATE_READ_PER_MIN = 37
    refused(api.get(AUTH + "me", alice.access))
    assert api.get(AUTH + "me", bob.access).status_code == 200


def test_the_tenant_limit_is_exact_across_two_processes(
    api: Api, children: Children, time_machine
) -> None:
    """Alice in one process and Bob in another create sessions at once: exactly the tenant's
    write limit passes, and a refused create made nothing."""
    alice, bob = personas(api)  # (the invitation is a write of the window before)
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1, seconds=15)
    time_machine.move_to(start, tick=False)
    children.env.update(
        {
            "CODITECT_THROTTLE_SCALE": "1",
            "CODITECT_RATE_WRITE_PER_MIN": "1000",
            "CODITECT_RATE_TENANT_WRITE_PER_MIN": "23",
        }
    )
    create = {"path": SESSIONS, "body": {"name": "raced", "workspace_path": "/srv/race"}}
    for persona in (alice, bob):
        request = {**create, "extra": {"HTTP_AUTHORIZATION": f"Bearer {persona.access}"}}
        children.spawn([request] * 10, threads=2, freeze=start.isoformat())
    children.start()
    seen = [item["status"] for child in children.results() for thread in child for item in thread]
    assert len(seen) == 40
    assert seen.count(201) == 23, seen
    assert seen.count(429) == 40 - 23, seen
    # Nothing was done for a refused create: exactly 23 sessions exist.
    api = SessionApi()
    listed = api.listing(alice.access, limit=200)
    assert listed.status_code == 200
    assert len(listed.json()["results"]) == 23


def test_refusals_are_counted_in_the_metrics(limits, api: Api, alice: Persona) -> None:
    from core.metrics import throttle_hits

    principal_read = throttle_hits.labels("rate_limit", "principal_read")
    tenant_read = throttle_hits.labels("rate_limit", "tenant_read")
    limits.CODITECT_RATE_READ_PER_MIN = 1
    before = principal_read._value.get(), tenant_read._value.get()
    spend(api, alice.access, 1)
    refused(api.get(AUTH + "me", alice.access))
    refused(api.get(AUTH + "me", alice.access))
    # Labelled by the limit that refused: alice's own.
    assert (principal_read._value.get(), tenant_read._value.get()) == (before[0] + 2, before[1])


def test_a_tenant_limit_refusal_is_counted_as_the_tenants(
    limits, api: Api, alice: Persona, bob: Persona
) -> None:
    from core.metrics import throttle_hits

    principal_read = throttle_hits.labels("rate_limit", "principal_read")
    tenant_read = throttle_hits.labels("rate_limit", "tenant_read")
    limits.CODITECT_RATE_TENANT_READ_PER_MIN = 2
    before = principal_read._value.get(), tenant_read._value.get()
    spend(api, alice.access, 1)
    spend(api, bob.access, 1)
    refused(api.get(AUTH + "me", bob.access))  # bob has 999 of his own left
    assert (principal_read._value.get(), tenant_read._value.get()) == (before[0], before[1] + 1)


def test_a_lease_waiting_on_storage_holds_no_one_else_up(limits, monkeypatch) -> None:
    """Alice's lease transaction is stuck in storage; Bob, of her tenant, is answered anyway.

    A lease used to run holding the tenant's bucket lock, so every member of the tenant waited
    for one member's storage transaction; with storage turns, the waiting thread held the
    process's turn while it waited. (Called directly: a request's storage turn would hold Bob
    up here for another reason.)"""
    import threading
    import uuid
    from types import SimpleNamespace

    import accounts.ratelimit
    import fdb_backend

    tenant = uuid.uuid4()
    alice = SimpleNamespace(api_token=None, user_id=uuid.uuid4(), tenant_id=tenant)
    bob = SimpleNamespace(api_token=None, user_id=uuid.uuid4(), tenant_id=tenant)
    reads = accounts.ratelimit._count
    entered, release = threading.Event(), threading.Event()
    stuck = threading.local()

    def count(value: bytes | None) -> int:
        if getattr(stuck, "me", False):
            entered.set()
            assert release.wait(30), "never released"
            stuck.me = False
        return reads(value)

    monkeypatch.setattr(accounts.ratelimit, "_count", count)
    db = fdb_backend.get_database()
    answers: dict[str, bool] = {}

    def spend_as(name: str, principal: Any, hold: bool = False) -> None:
        stuck.me = hold
        answers[name] = rate_limit_spend(db=db, principal=principal, write=False).allowed

    first = threading.Thread(target=spend_as, args=("alice", alice, True))
    first.start()
    try:
        assert entered.wait(30)
        second = threading.Thread(target=spend_as, args=("bob", bob))
        second.start()
        second.join(20)
        # Bob neither waited for Alice's lease nor was refused because of it.
        assert not second.is_alive(), "bob waited for alice's lease"
        assert answers == {"bob": True}
    finally:
        release.set()
        first.join(30)
    assert answers == {"bob": True, "alice": True}
