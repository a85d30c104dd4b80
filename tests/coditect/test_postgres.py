"""Staff tables on PostgreSQL through DATABASE_URL (DESIGN §5), against a real server.

Skips with the reason when no PostgreSQL answers; under CI (which runs one) that is a
failure instead, so a broken driver or URL parsing cannot hide behind a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def database_url() -> Iterator[str]:
    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {SERVER} under CI: {error}")
        pytest.skip(f"no PostgreSQL at {SERVER} ({error}); set TEST_POSTGRES_URL to test it")
    name = f"coditect_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield SERVER.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_staff_tables_migrate_and_work_on_postgres(database_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CODITECT_STORAGE_URL": f"embedded://{tmp_path}/store.sqlite3",
        "DJANGO_SETTINGS_MODULE": "coditect.settings",
    }
    script = (
        "import django; django.setup();"
        "from django.core.management import call_command;"
        "call_command('migrate', verbosity=0);"
        "from django.contrib.auth.models import User;"
        "User.objects.create_superuser('root', 'root@example.com', 'a long pass phrase 42');"
        "from django.db import connection;"
        "print(connection.vendor, User.objects.filter(is_staff=True).count())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["postgresql", "1"]
