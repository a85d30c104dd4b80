"""The lean API path's thread pool (coditect/lean.py): its size, and that one thread serves
concurrent requests, including writes that broadcast, without waiting on itself."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from django.test import AsyncClient, override_settings

from fdb_backend.pool import api_threads
from tests.accounts.helpers import Persona
from tests.workspaces.conftest import accounts_environment, alice, alice_session, api, sessions
from tests.workspaces.helpers import session_url

__all__ = ["accounts_environment", "alice", "alice_session", "api", "sessions"]


@pytest.mark.parametrize(
    ("url", "configured", "expected"),
    [
        ("embedded:///var/lib/coditect/store.sqlite3", 0, 1),
        ("memory:", 0, 1),
        ("fdb:", 0, 8),
        ("fdb:///etc/foundationdb/fdb.cluster", 0, 8),
        ("embedded:///var/lib/coditect/store.sqlite3", 3, 3),
        ("fdb:", 2, 2),
    ],
)
def test_the_pool_size_follows_the_engine_unless_configured(
    url: str, configured: int, expected: int
) -> None:
    with override_settings(CODITECT_STORAGE_URL=url, CODITECT_API_THREADS=configured):
        assert api_threads() == expected


def test_concurrent_reads_and_broadcasting_writes_all_complete(
    alice: Persona, alice_session: dict[str, Any]
) -> None:
    """Forty requests at once through the ASGI handler: lists, reads, events (which broadcast
    from inside the view) and PATCHes. With a one-thread pool a view that waited on another
    lean request would hang here; every answer must come, each seq exactly once."""
    url = session_url(alice_session["id"])
    events_url = session_url(alice_session["id"], "events")
    auth = {"Authorization": f"Bearer {alice.access}"}

    async def burst() -> list[Any]:
        client = AsyncClient()
        calls = []
        for n in range(10):
            calls.append(client.get("/api/v5/sessions/?limit=20", headers=auth))
            calls.append(client.get(url, headers=auth))
            calls.append(
                client.post(
                    events_url, {"event": "note", "data": {"n": n}},
                    content_type="application/json", headers=auth,
                )
            )  # fmt: skip
            calls.append(
                client.patch(
                    url, {"name": f"name {n}"}, content_type="application/json", headers=auth
                )
            )
        return await asyncio.wait_for(asyncio.gather(*calls), timeout=60)

    responses = asyncio.run(burst())
    assert sorted({r.status_code for r in responses}) == [200, 202]
    log = asyncio.run(AsyncClient().get(events_url + "?after_seq=0", headers=auth)).json()
    assert [event["seq"] for event in log["results"]] == list(range(1, 21))


def test_wsgi_threads_take_turns_for_lean_requests_and_logins_pass_by(
    monkeypatch: pytest.MonkeyPatch, alice: Persona, alice_session: dict[str, Any]
) -> None:
    """Under WSGI (gunicorn's gthread workers) lean requests run one at a time per process
    with the embedded engine's default, while a login is not held up by them. (A request
    that commits gives its turn back at the commit and finishes without one,
    fdb_backend/turns.py: the GETs below are made first so that the process's rate-limit
    leases, which double from one unit, hold enough for the readers and none of them
    commits.)"""
    from django.test import Client

    from workspaces import services

    auth = {"Authorization": f"Bearer {alice.access}"}
    for _ in range(16):  # leases of 1, 2, 4, 8 and 16 units: 15 left after these
        assert Client().get(session_url(alice_session["id"]), headers=auth).status_code == 200

    lock = threading.Lock()
    running = [0]
    most = [0]
    hold = threading.Event()
    first_in = threading.Event()
    real_get = services.session_get

    def counted_get(**kwargs: Any) -> Any:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        first_in.set()
        try:
            hold.wait(10)
            return real_get(**kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(services, "session_get", counted_get)
    statuses: list[int] = []

    def read() -> None:
        response = Client().get(session_url(alice_session["id"]), headers=auth)
        with lock:
            statuses.append(response.status_code)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for thread in readers:
        thread.start()
    assert first_in.wait(10)
    # One reader holds the slot (and waits on `hold`); a login goes through meanwhile.
    login = Client().post(
        "/api/v5/auth/login",
        {"email": alice.email, "password": alice.password},
        content_type="application/json",
    )
    assert login.status_code == 200
    assert running[0] == 1
    hold.set()
    for thread in readers:
        thread.join(timeout=30)
    assert statuses == [200] * 4
    assert most[0] == 1
