"""Throttles and refresh rotation hold across processes that share one embedded store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from tests.accounts.helpers import AUTH, OTHER_PASSWORD, Api, Persona, problem, register_persona
from tests.store import shared_store as store_shared_with_servers

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


class Children:
    """Child processes that start their requests together when told to."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.go = tmp_path / "go"
        self.processes: list[tuple[subprocess.Popen[str], Path]] = []

    def spawn(self, requests: list[dict[str, Any]], threads: int = 1, freeze: str = "") -> None:
        ready = self.tmp_path / f"ready-{len(self.processes)}"
        spec = {
            "ready": str(ready),
            "go": str(self.go),
            "threads": threads,
            "freeze": freeze,
            "requests": requests,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.accounts.workers", json.dumps(spec)],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append((process, ready))

    def start(self) -> None:
        # Generous: on a machine busy with other test runs, Django's start-up takes a while.
        deadline = time.monotonic() + 90
        while not all(ready.exists() for _, ready in self.processes):
            for process, _ in self.processes:
                if process.poll() is not None:
                    raise AssertionError(process.communicate())
            assert time.monotonic() < deadline, "children did not start within 90 s"
            time.sleep(0.01)
        self.go.touch()

    def results(self) -> list[list[list[dict[str, Any]]]]:
        out = []
        for process, _ in self.processes:
            stdout, stderr = process.communicate(timeout=120)
            assert process.returncode == 0, stderr
            out.append(json.loads(stdout.strip().splitlines()[-1]))
        return out

    def kill(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def shared_store(settings, tmp_path: Path) -> str:
    url = store_shared_with_servers(tmp_path)
    settings.CODITECT_STORAGE_URL = url
    return url


@pytest.fixture
def children(tmp_path: Path, shared_store: str):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "coditect.settings",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DJANGO_LOG_LEVEL": "WARNING",
        "CODITECT_STORAGE_URL": shared_store,
        "CODITECT_ARGON2_TIME_COST": "1",
        "CODITECT_ARGON2_MEMORY_KIB": "8",
        "CODITECT_ARGON2_PARALLELISM": "1",
        "CODITECT_THROTTLE_SCALE": str(django_settings.CODITECT_THROTTLE_SCALE),
    }
    group = Children(tmp_path, env)
    yield group
    group.kill()


def login_request(email: str, password: str) -> dict[str, Any]:
    return {"path": AUTH + "login", "body": {"email": email, "password": password}}


def statuses(seen: list[dict[str, Any]]) -> list[int]:
    return [item["status"] for item in seen]


def frozen_start() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=5, microsecond=0) + timedelta(hours=1)


def test_login_throttle_counts_across_processes(
    api: Api, settings, children: Children, time_machine
) -> None:
    start = frozen_start()
    time_machine.move_to(start, tick=False)
    alice = register_persona(api, "Alice", "alice@example.com")
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_LOGIN_PER_EMAIL = 4
    children.env.update({"CODITECT_THROTTLE_SCALE": "1", "CODITECT_THROTTLE_LOGIN_PER_EMAIL": "4"})
    for _ in range(2):
        problem(api.login(alice.email, OTHER_PASSWORD), 401, "invalid_credentials")
    children.spawn([login_request(alice.email, OTHER_PASSWORD)] * 3, freeze=start.isoformat())
    children.start()
    ((seen,),) = children.results()
    assert statuses(seen) == [401, 401, 429], seen
    assert seen[2]["body"]["code"] == "throttled"
    # And the parent sees the child's attempts.
    problem(api.login(alice.email, alice.password), 429, "throttled")


def test_concurrent_logins_in_two_processes_share_one_limit(
    api: Api, settings, children: Children, time_machine
) -> None:
    start = frozen_start()
    time_machine.move_to(start, tick=False)
    alice = register_persona(api, "Alice", "alice@example.com")
    children.env.update({"CODITECT_THROTTLE_SCALE": "1", "CODITECT_THROTTLE_LOGIN_PER_EMAIL": "6"})
    for _ in range(2):
        children.spawn(
            [login_request(alice.email, OTHER_PASSWORD)] * 2, threads=6, freeze=start.isoformat()
        )
    children.start()
    seen = [item for child in children.results() for thread in child for item in thread]
    assert len(seen) == 24
    assert set(statuses(seen)) <= {401, 429}, seen
    allowed = statuses(seen).count(401)
    assert 1 <= allowed <= 6, statuses(seen)
    assert statuses(seen).count(429) >= 24 - 6
    settings.CODITECT_THROTTLE_SCALE = 1
    settings.CODITECT_THROTTLE_LOGIN_PER_EMAIL = 6
    problem(api.login(alice.email, alice.password), 429, "throttled")


def test_refresh_race_across_processes_leaves_one_live_token(api: Api, children: Children) -> None:
    alice: Persona = register_persona(api, "Alice", "alice@example.com")
    request = {"path": AUTH + "refresh", "body": {"refresh": alice.refresh}}
    for _ in range(2):
        children.spawn([request], threads=3)
    children.start()
    seen = [item for child in children.results() for thread in child for item in thread]
    assert len(seen) == 6
    assert set(statuses(seen)) <= {200, 401}, seen
    # One rotation; the grace answers hand back the spent token, not the live one.
    answered = [item["body"]["refresh"] for item in seen if item["status"] == 200]
    winners = {token for token in answered if token != alice.refresh}
    assert len(winners) == 1, seen
    assert answered.count(alice.refresh) == len(answered) - 1, seen
    for item in seen:
        if item["status"] == 401:
            assert item["body"]["code"] != "token_reused", item
    (live,) = winners
    for _ in range(2):
        response = api.refresh(live)
        assert response.status_code == 200, response.content
        live = response.json()["refresh"]
        access = response.json()["access"]
    assert api.me(access).status_code == 200
    assert len(api.get(AUTH + "sessions", access).json()["results"]) == 1
