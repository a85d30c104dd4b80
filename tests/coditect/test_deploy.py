"""Deployment: what an operator meets at start-up, and the container files (docs/deploy).

The FoundationDB client library (libfdb_c) is not installed on these machines, so a store
URL of ``fdb:`` exercises the missing-library path for real: one line, non-zero status.
"""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
