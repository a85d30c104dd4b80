"""Racing creates in several processes sharing one embedded store never pass the quota."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

import fdb_backend
from operations.usage import usage_recount
from tests.accounts.helpers import Api, register_persona
from tests.accounts.test_processes import Children
from tests.store import shared_store as store_shared_with_servers

pytestmark = pytest.mark.slow


class SlowChildren(Children):
    """Children given longer to start: Django's start-up on a shared, busy machine."""

    def start(self) -> None:
        deadline = time.monotonic() + 120
        while not all(ready.exists() for _, ready in self.processes):
            for process, _ in self.processes:
                if process.poll() is not None:
                    raise AssertionError(process.communicate())
            assert time.monotonic() < deadline, "children did not start within 120 s"
            time.sleep(0.01)
        self.go.touch()


@pytest.fixture
def children(settings, tmp_path: Path):
    url = store_shared_with_servers(tmp_path)
    settings.CODITECT_STORAGE_URL = url
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "coditect.settings",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DJANGO_LOG_LEVEL": "WARNING",
        "CODITECT_STORAGE_URL": url,
        "CODITECT_ARGON2_TIME_COST": "1",
        "CODITECT_ARGON2_MEMORY_KIB": "8",
        "CODITECT_ARGON2_PARALLELISM": "1",
        "CODITECT_THROTTLE_SCALE": str(django_settings.CODITECT_THROTTLE_SCALE),
        "CODITECT_QUOTA_SESSIONS": "7",
    }
    group = SlowChildren(tmp_path, env)
    yield group
    group.kill()


def test_racing_creates_in_processes_never_pass_the_quota(
    api: Api, settings, children: Children
) -> None:
    settings.CODITECT_QUOTA_SESSIONS = 7
    alice = register_persona(api, "Alice", "alice@example.com")
    create = {
        "path": "/api/v5/sessions",
        "body": {"name": "raced", "workspace_path": "/w"},
        "extra": {"HTTP_AUTHORIZATION": f"Bearer {alice.access}"},
    }
    for _ in range(3):
        children.spawn([create] * 4, threads=2)
    children.start()
    seen = [item for child in children.results() for thread in child for item in thread]
    statuses = [item["status"] for item in seen]
    assert len(statuses) == 24
    assert statuses.count(201) == 7, statuses
    assert {item["body"]["code"] for item in seen if item["status"] != 201} == {"quota_exceeded"}
    listed = api.get("/api/v5/sessions?limit=100", alice.access).json()["results"]
    assert len(listed) == 7
    counted = usage_recount(db=fdb_backend.get_database(), tenant_id=alice.tenant_uuid)
    assert counted.used["sessions"] == 7
    assert api.get("/api/v5/tenant/", alice.access).json()["usage"] == counted.used
