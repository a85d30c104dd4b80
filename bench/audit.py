"""The tenant audit log's latency with 10^3 and 10^5 auth events in a tenant (issue 16 part 2).

In one process, through Django's test client (the whole middleware and DRF stack, no HTTP
server), on a temporary embedded store and staff database: two tenants' owners register,
then each log is seeded directly through the accounts event writer (each event with its
index entries, 1,000 per transaction): N ``refresh`` events of the owner among which 60
``rare`` events of another user, evenly spread (1 in 17 at 10^3, 1 in 1,667 at 10^5), and
60 staff actions on the tenant. Every query then returns a full page of 50 at both sizes;
it times ``GET /api/v5/tenant/audit?limit=50`` unfiltered, its second page (cursor),
``?kind=rare``, ``?user_id=`` of the rare user and ``?kind=staff.user_lock``, one request
of each size in turn (so the machine's other load hits both alike), and reports median and
p90 in ms. The bar: each query's median at 10^5 within 1.5x of its median at 10^3 (what the
indexes are for: a filter reads only what it matches).

    python bench/audit.py                 # about a minute
    python bench/audit.py --requests 50   # quicker, noisier
    python bench/audit.py --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import cpu_model, percentile, revision

SIZES = (1_000, 100_000)
RARE = 60  # rare events and staff actions per tenant: more than a page of 50 at each size
BATCH = 1_000
PASSWORD = "Tr0ub4dor&3-horse-staple"


def configure(tmp: Path) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "coditect.settings",
            "DJANGO_SECRET_KEY": "bench-audit-" + "k" * 50,
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "DJANGO_LOG_LEVEL": "ERROR",
            "CODITECT_STORAGE_URL": f"embedded://{tmp}/store.sqlite3",
            "DATABASE_URL": f"sqlite:///{tmp}/staff.sqlite3",
            "CODITECT_ARGON2_TIME_COST": "1",
            "CODITECT_ARGON2_MEMORY_KIB": "8",
            "CODITECT_ARGON2_PARALLELISM": "1",
            "CODITECT_THROTTLE_SCALE": "100000",
        }
    )
    import django

    django.setup()
    logging.disable(logging.INFO)  # no access line per request
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def seed(tenant_id: uuid.UUID, owner: uuid.UUID, rare_user: uuid.UUID, count: int) -> float:
    import fdb_backend
    from accounts.models import StaffAuditEntry
    from accounts.services.common import Client, event

    db = fdb_backend.get_database()
    start = datetime.now(UTC) - timedelta(days=30)
    client = Client(ip="203.0.113.9", user_agent="bench")

    every = count // RARE

    @fdb_backend.transactional
    def write(tr: Any, first: int) -> None:
        for i in range(first, min(first + BATCH, count)):
            rare = i % every == every // 2
            event(
                tr,
                tenant_id=tenant_id,
                event_id=uuid.uuid4(),
                type="rare" if rare else "refresh",
                at=start + timedelta(seconds=i),
                client=client,
                user_id=rare_user if rare else owner,
                n=i,
            )

    began = time.perf_counter()
    for first in range(0, count, BATCH):
        write(db, first)
    StaffAuditEntry.objects.bulk_create(
        StaffAuditEntry(
            staff_username="bench",
            action="user_lock",
            target_type="user",
            target_id=str(rare_user),
            tenant_id=tenant_id,
            user_id=rare_user,
            reason="bench",
            created_at=start + timedelta(seconds=i * every + 1),
        )
        for i in range(RARE)
    )
    return time.perf_counter() - began


def timed(client: Any, path: str, token: str) -> float:
    """One request's time in ms; it must be a full page."""
    began = time.perf_counter()
    response = client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")
    elapsed = (time.perf_counter() - began) * 1000
    assert response.status_code == 200, response.content[:300]
    assert len(response.json()["results"]) == 50, path
    return elapsed


def run(requests: int) -> dict[str, Any]:
    from django.test import Client

    client = Client()
    seeding: dict[str, float] = {}
    paths: dict[int, dict[str, str]] = {}
    tokens: dict[int, str] = {}
    for size in SIZES:
        answer = client.post(
            "/api/v5/auth/register",
            {"email": f"owner-{size}@example.com", "password": PASSWORD, "tenant_name": "B"},
            content_type="application/json",
        )
        assert answer.status_code == 201, answer.content[:300]
        body = answer.json()
        tokens[size] = token = body["access"]
        tenant_id, owner = uuid.UUID(body["tenant"]["id"]), uuid.UUID(body["user"]["id"])
        rare_user = uuid.uuid4()
        seeding[str(size)] = round(seed(tenant_id, owner, rare_user, size), 1)
        first = client.get(
            "/api/v5/tenant/audit?limit=50", HTTP_AUTHORIZATION=f"Bearer {token}"
        ).json()
        paths[size] = {
            "all": "/api/v5/tenant/audit?limit=50",
            "all, page 2": f"/api/v5/tenant/audit?limit=50&cursor={first['next_cursor']}",
            "kind=rare": "/api/v5/tenant/audit?limit=50&kind=rare",
            "user_id= (rare user)": f"/api/v5/tenant/audit?limit=50&user_id={rare_user}",
            "kind=staff.user_lock": "/api/v5/tenant/audit?limit=50&kind=staff.user_lock",
        }
    rows: list[dict[str, Any]] = []
    bars = []
    for name in paths[SIZES[0]]:
        times: dict[int, list[float]] = {size: [] for size in SIZES}
        for _ in range(requests):
            for size in SIZES:
                times[size].append(timed(client, paths[size][name], tokens[size]))
        medians = {}
        for size in SIZES:
            medians[size] = statistics.median(times[size])
            rows.append(
                {
                    "events": size,
                    "query": name,
                    "median_ms": medians[size],
                    "p90_ms": percentile(times[size], 0.9),
                }
            )
        ratio = medians[SIZES[-1]] / medians[SIZES[0]]
        bars.append({"query": name, "ratio": round(ratio, 2), "pass": ratio <= 1.5})
    return {
        "rows": rows,
        "bars": bars,
        "seeding_s": seeding,
        "requests": requests,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "load": os.getloadavg()},
        "revision": revision("accounts", "fdb_backend"),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def report_text(report: dict[str, Any]) -> str:
    lines = [f"{'events':>8}  {'query':<24} {'median ms':>10} {'p90 ms':>8}"]
    for row in report["rows"]:
        timing = f"{row['median_ms']:>10.2f} {row['p90_ms']:>8.2f}"
        lines.append(f"{row['events']:>8,}  {row['query']:<24} {timing}")
    lines.append("")
    for bar in report["bars"]:
        verdict = "PASS" if bar["pass"] else "FAIL"
        lines.append(f"{bar['query']:<24} 10^5 / 10^3 median: {bar['ratio']:.2f}x  {verdict}")
    machine = report["machine"]
    lines += [
        "",
        f"seeding (s): {report['seeding_s']}; {report['requests']} requests per query",
        f"machine: {machine['cpu']}, {machine['cores']} cores, load {machine['load']}",
        f"revision {report['revision']}, {report['date']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="per query and size")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        configure(Path(tmp))
        report = run(args.requests)
    print(json.dumps(report, indent=2) if args.json else report_text(report))
    return 0 if all(bar["pass"] for bar in report["bars"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
