"""A process computes at most CODITECT_ARGON2_CONCURRENCY password hashes at once."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pytest
from argon2 import PasswordHasher
from django.test import Client

from accounts.passwords import hash_concurrency
from tests.accounts.conftest import accounts_environment, alice, api
from tests.accounts.helpers import Persona

__all__ = ["accounts_environment", "alice", "api"]


def test_the_default_is_the_cores_of_the_process(settings: Any) -> None:
    settings.CODITECT_ARGON2_CONCURRENCY = 0
    assert hash_concurrency() == len(os.sched_getaffinity(0))
    settings.CODITECT_ARGON2_CONCURRENCY = 3
    assert hash_concurrency() == 3


@pytest.mark.parametrize("limit", [1, 2])
def test_racing_logins_hash_at_most_the_limit_at_once(
    settings: Any, monkeypatch: pytest.MonkeyPatch, alice: Persona, limit: int
) -> None:
    settings.CODITECT_ARGON2_CONCURRENCY = limit
    lock = threading.Lock()
    running = [0]
    most = [0]
    verify = PasswordHasher.verify

    def counted_verify(self: PasswordHasher, encoded: Any, password: Any) -> Any:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.05)  # long enough for every racer to be waiting meanwhile
            return verify(self, encoded, password)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(PasswordHasher, "verify", counted_verify)
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def login(n: int) -> None:
        # Known and unknown emails alike hash (the unknown one against a dummy hash).
        email = alice.email if n % 2 else f"nobody{n}@example.com"
        body = json.dumps({"email": email, "password": alice.password})
        barrier.wait(timeout=10)
        response = Client().post("/api/v5/auth/login", body, content_type="application/json")
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=login, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200] * 3 + [401] * 3
    assert most[0] == limit
