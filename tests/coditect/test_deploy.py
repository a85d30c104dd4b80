"""Deployment: what an operator meets at start-up, and the container files (docs/deploy).

The FoundationDB client library (libfdb_c) is not installed on these machines, so a store
URL of ``fdb:`` exercises the missing-library path for real: one line, non-zero status.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.realtime.servers import base_env, free_port

ROOT = Path(__file__).resolve().parents[2]


def _libfdb_installed() -> bool:
    return ctypes.util.find_library("fdb_c") is not None or Path("/usr/lib/libfdb_c.so").exists()


needs_no_libfdb = pytest.mark.skipif(
    _libfdb_installed(), reason="libfdb_c is installed here: the missing-library path cannot run"
)


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = base_env("fdb:", DATABASE_URL=f"sqlite:///{tmp_path / 'staff.sqlite3'}")
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@needs_no_libfdb
@pytest.mark.parametrize(
    ("args", "program"),
    [
        (["-m", "coditect.serve", "-b", "127.0.0.1", "-p", str(free_port())], "coditect.serve"),
        (["manage.py", "tenants", "list"], "manage.py"),
    ],
)
def test_a_missing_foundationdb_client_is_one_line(tmp_path, args, program):
    result = run(args, tmp_path)
    assert result.returncode != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{program}: CODITECT_STORAGE_URL is fdb: but the FoundationDB")
    assert "libfdb_c" in lines[0]
    assert "foundationdb-clients" in lines[0]
    assert "Traceback" not in result.stderr


DEPLOY = ROOT / "docs" / "deploy"


def compose_client() -> list[str] | None:
    """`docker compose` (the v2 plugin) or Debian's `docker-compose`, whichever is here."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


@pytest.mark.skipif(compose_client() is None, reason="no docker compose client on this machine")
def test_the_compose_file_is_valid_for_the_compose_client():
    client = compose_client()
    assert client is not None
    env = {**os.environ, "DJANGO_SECRET_KEY": "x" * 50}
    ran = subprocess.run(
        [*client, "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert ran.returncode == 0, ran.stderr
    # Without a secret key the file refuses to start rather than run with a guessable one.
    env.pop("DJANGO_SECRET_KEY")
    ran = subprocess.run(
        [*client, "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert ran.returncode != 0
    assert "DJANGO_SECRET_KEY" in ran.stderr


def test_the_compose_topology_and_image():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) >= {"fdb", "fdb-init", "redis", "migrate", "daphne", "api", "nginx"}
    assert services["daphne"]["command"] == ["python", "-m", "coditect.serve"]
    assert services["api"]["command"][:2] == ["gunicorn", "coditect.wsgi:application"]
    # One access line per request, the platform's: no gunicorn access log beside it.
    assert not [arg for arg in services["api"]["command"] if arg.startswith("--access-log")]
    # The cluster file the server writes is the one every platform container reads.
    assert "fdb-cluster:/var/fdb/shared" in services["fdb"]["volumes"]
    assert services["fdb"]["environment"]["FDB_CLUSTER_FILE"] == "/var/fdb/shared/fdb.cluster"
    for name in ("migrate", "daphne", "api"):
        assert "fdb-cluster:/etc/foundationdb" in services[name]["volumes"], name
        assert services[name]["environment"]["CODITECT_STORAGE_URL"] == "fdb:", name
    nginx_conf = services["nginx"]["volumes"][0].split(":")[0]
    assert (DEPLOY / nginx_conf).is_file()

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    # The client library is the server's release; installs come hashed from the lock.
    fdb_image = services["fdb"]["image"]
    assert f"ARG FDB_VERSION={fdb_image.split(':')[1]}" in dockerfile
    assert "--require-hashes --no-deps -r /tmp/requirements.lock" in dockerfile
    assert "requirements-dev" not in dockerfile
    assert "\nUSER coditect\n" in dockerfile
    assert (ROOT / ".dockerignore").read_text().count("\n.venv\n") == 1


def test_the_locks_are_hashed_and_cover_the_requirements():
    runtime = (ROOT / "requirements.lock").read_text()
    dev = (ROOT / "requirements-dev.lock").read_text()
    for lock in (runtime, dev):
        pins = [line for line in lock.splitlines() if "==" in line and not line.startswith("#")]
        assert pins and all(line.endswith("\\") for line in pins), "every pin has hashes"
        assert "-e " not in lock, "an editable path cannot be hashed: installed apart"
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith(("#", "-")):
            name, version = line.split("==")
            name = name.split("[")[0].lower().replace("_", "-")
            assert f"\n{name}=={version} " in runtime.lower(), name
            assert f"\n{name}=={version} " in dev.lower(), name
    assert "\npytest==" not in runtime and "\npytest==" in dev
    # The installer `make start` puts in the virtualenv first: hashed, the dev lock's pip.
    installer = (ROOT / "requirements-pip.lock").read_text()
    pins = [line for line in installer.splitlines() if "==" in line and not line.startswith("#")]
    assert len(pins) == 1 and pins[0].startswith("pip==") and pins[0].endswith("\\")
    assert f"\n{pins[0].split()[0]} " in dev
