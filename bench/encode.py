"""What one hot operation costs the process, in instructions and CPU time: a socket
``state.patch`` (validation, the service, the broadcast's encoding), a REST PATCH and a
token refresh.

Throughput benchmarks (bench/sessions.py, bench/realtime.py) need a quiet machine; this one
does not. Under ``--callgrind`` it runs itself twice under valgrind's callgrind, with N and
2N operations, and reports the difference divided by N: instructions per operation, the
same figure on a busy machine as on an idle one (set-up, imports and the first calls cancel
out). Without it, it reports process CPU time per operation, min/median/max over rounds.

    python bench/encode.py                     # CPU time, 5 rounds of 300 operations each
    python bench/encode.py --callgrind         # instructions per operation (slow: ~2 min)

The state patched is an editor state of about 5 kB, as an IDE tab sends.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OPERATIONS = ("socket_patch", "rest_patch", "refresh")


def _editor_state(n: int) -> dict[str, Any]:
    return {
        "cursor": {"line": n, "column": 7},
        "folds": [[i, i + 3] for i in range(0, 120, 4)],
        "buffers": {
            f"/src/module_{i}.py": {"dirty": i % 2 == 0, "scroll": i * 13} for i in range(60)
        },
    }


def _setup() -> dict[str, Callable[[int], None]]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")
    os.environ["CODITECT_STORAGE_URL"] = "memory:"
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    os.environ.setdefault("CODITECT_THROTTLE_SCALE", "1000000")
    import django

    django.setup()
    from django.test import Client

    import fdb_backend
    from accounts.services import principal_authenticate
    from workspaces import services
    from workspaces.serializers import SessionPatchIn

    # What the consumer calls: session_update without the related ids where it takes
    # related=, session_patch where that exists, else session_update.
    patch: Any = getattr(services, "session_patch", services.session_update)
    if "related" in inspect.signature(services.session_update).parameters:
        patch = functools.partial(services.session_update, related=False)

    client = Client(HTTP_HOST="127.0.0.1")
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": "correct horse battery staple 9"}
    registered = client.post("/api/v5/auth/register", body, content_type="application/json")
    assert registered.status_code == 201, registered.content
    tokens = registered.json()
    auth = {"Authorization": f"Bearer {tokens['access']}"}
    created = client.post(
        "/api/v5/sessions",
        {"name": "bench", "workspace_path": "/work/bench"},
        content_type="application/json",
        headers=auth,
    )
    assert created.status_code == 201, created.content
    session_id = uuid.UUID(created.json()["id"])
    db = fdb_backend.get_database()
    principal = principal_authenticate(db=db, token=tokens["access"])
    refresh = [tokens["refresh"]]

    def socket_patch(n: int) -> None:
        # What the consumer does with a state.patch message (realtime/consumers.py).
        serializer = SessionPatchIn(data={"editor_state": _editor_state(n)})
        assert serializer.is_valid()
        patch(
            db=db,
            principal=principal,
            session_id=session_id,
            changes=dict(serializer.validated_data),
            expected_version=None,
            origin="bench",
        )

    def rest_patch(n: int) -> None:
        answer = client.patch(
            f"/api/v5/sessions/{session_id}",
            {"editor_state": _editor_state(n)},
            content_type="application/json",
            headers=auth,
        )
        assert answer.status_code == 200, answer.content

    def refresh_once(n: int) -> None:
        answer = client.post(
            "/api/v5/auth/refresh", {"refresh": refresh[0]}, content_type="application/json"
        )
        assert answer.status_code == 200, answer.content
        refresh[0] = answer.json()["refresh"]

    return {"socket_patch": socket_patch, "rest_patch": rest_patch, "refresh": refresh_once}


def _run(only: list[str], ops: int, rounds: int) -> dict[str, list[float]]:
    operations = _setup()
    results: dict[str, list[float]] = {}
    for name in only:
        operation = operations[name]
        for n in range(20):  # warm-up: caches, first-call imports
            operation(n)
        per_op = []
        for _ in range(rounds):
            start = time.process_time()
            for n in range(ops):
                operation(n)
            per_op.append((time.process_time() - start) / ops * 1e6)
        results[name] = per_op
    return results


def _instructions(name: str, ops: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                __file__,
                "--only",
                name,
                "--ops",
                str(ops),
                "--rounds",
                "1",
            ],
            check=True,
            capture_output=True,
        )
        summary = re.search(rb"^summary: (\d+)", out.read_bytes(), re.MULTILINE)
        assert summary is not None
        return int(summary.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=OPERATIONS)
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true")
    args = parser.parse_args()
    only = args.only or list(OPERATIONS)
    from bench.common import revision

    if args.callgrind:
        ops = min(args.ops, 100)
        print(f"revision {revision('workspaces', 'accounts', 'realtime', 'core')}")
        for name in only:
            once, twice = _instructions(name, ops), _instructions(name, 2 * ops)
            print(f"{name:14s} {(twice - once) / ops:12,.0f} instructions/op")
        return
    results = _run(only, args.ops, args.rounds)
    print(f"revision {revision('workspaces', 'accounts', 'realtime', 'core')}")
    for name, values in results.items():
        print(
            f"{name:14s} CPU us/op min {min(values):8.1f}  median {statistics.median(values):8.1f}"
            f"  max {max(values):8.1f}  ({args.rounds} rounds of {args.ops})"
        )


if __name__ == "__main__":
    main()
