"""Filtered session lists against tenant size (issue 16, part 6): latency and keys read per
request of ``GET /api/v5/sessions`` for every filter, in a tenant of 10^2 and of 10^5
sessions, including filters that match 1 session in 1,000.

Run from the repository root::

    python bench/lists.py [--runs 5] [--requests 100] [--json]

In this process, over a temporary embedded store (a durable SQLite file, as one machine
runs it): two tenants are registered through the API (an owner and three members each), then
seeded through the records layer (``workspaces.records``, heads and states as
``session_create`` writes them, every index kept by ``Collection.save``, ``SEED_BATCH``
sessions a transaction). Each filter is requested through Django's test client (the whole
request: authentication, middleware, the view, rendering), first page and the page of its
cursor, ``--requests`` times in each of ``--runs`` runs, the two tenants taking turns
request by request so that the machine's other load hits both alike. Per run the median latency is
kept; the report gives min / median / max of those over the runs, the ratio of the medians
(10^5 / 10^2), and the keys the request read (``fdb_backend.read_count``: authentication,
the page's index entries, heads, states, related ids, live connections), counted once per
filter, page and size. Bars: median latency at 10^5 at most ``FLAT_BAR`` times that at 10^2,
and the same keys read at both sizes. Then the new index is dropped from the large tenant
(a store made before it) and ``storage check --repair`` rebuilds it, timed.

A benchmark, not a test: bench/README.md, docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/lists.py` puts bench/, not the root, first

from bench import common

SIZES = (100, 100_000)
LIMIT = 5  # a page: every filter matches more than two pages at both sizes
SEED_BATCH = 100  # sessions a transaction (bench/sessions.py says why not more)
FLAT_BAR = 1.5
PASSWORD = "correct horse battery staple"
COMMON = "/ws/app"  # a sixth of the tenant (and where the rare member works)
RARE_PATH = "/ws/rare"


def rare_count(size: int) -> int:
    """Sessions a sparse filter matches: 1 in 1,000, but more than two pages (at 10^2 there
    is no 1 in 1,000 that fills the two pages measured)."""
    return max(size // 1000, 2 * LIMIT + 1)


# (name, who asks, query): who is "owner" (a member with half the tenant's sessions) or
# "rare" (a member with 1 in 1,000 of them, all in COMMON).
FILTERS: list[tuple[str, str, dict[str, str]]] = [
    ("none", "owner", {}),
    ("owner=me", "owner", {"owner": "me"}),
    ("workspace_path", "owner", {"workspace_path": COMMON}),
    ("owner=me&workspace_path", "owner", {"owner": "me", "workspace_path": COMMON}),
    ("sparse owner=me", "rare", {"owner": "me"}),
    ("sparse workspace_path", "owner", {"workspace_path": RARE_PATH}),
    ("sparse owner=me&workspace_path", "rare", {"owner": "me", "workspace_path": COMMON}),
]


def environment(tmp: Path) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="coditect.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS="testserver,127.0.0.1,localhost",
        DJANGO_SECURE_SSL_REDIRECT="0",
        CODITECT_STORAGE_URL="embedded://" + urllib.parse.quote(str(tmp / "store.sqlite3")),
        DATABASE_URL=f"sqlite:///{tmp / 'staff.sqlite3'}",
        CODITECT_THROTTLE_SCALE="100000",  # one client, many requests: raise, don't disable
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",  # not on the report
    )


class Api:
    """JSON over Django's test client (the whole request path, in this process)."""

    def __init__(self) -> None:
        from django.test import Client

        self.client = Client()

    def call(self, method: str, path: str, body: Any = None, token: str = "") -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if method == "GET":
            response = self.client.get(path, headers=headers)
        else:
            response = self.client.post(
                path, json.dumps(body), content_type="application/json", headers=headers
            )
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.content!r}")
        return json.loads(response.content) if response.content else None


@dataclass
class Tenant:
    size: int
    tenant_id: uuid.UUID
    tokens: dict[str, str]  # "owner" and each of MEMBERS
    users: dict[str, uuid.UUID]
    seed_s: float = 0.0


MEMBERS = ("rare", "other-0", "other-1")  # invited by the owner; the others never ask


def register(api: Api, size: int) -> Tenant:
    """A tenant with its owner and MEMBERS, registered through the API (every session's
    owner is a user: storage check deletes sessions of a missing owner)."""
    owner = api.call(
        "POST",
        "/api/v5/auth/register",
        {"email": f"owner-{size}@example.com", "password": PASSWORD},
    )
    tokens = {"owner": owner["access"]}
    users = {"owner": uuid.UUID(owner["user"]["id"])}
    for name in MEMBERS:
        email = f"{name}-{size}@example.com"
        invitation = api.call(
            "POST",
            "/api/v5/tenant/invitations/",
            {"email": email, "role": "member"},
            owner["access"],
        )
        member = api.call(
            "POST",
            "/api/v5/auth/register",
            {"email": email, "password": PASSWORD, "invitation": invitation["token"]},
        )
        tokens[name] = member["access"]
        users[name] = uuid.UUID(member["user"]["id"])
    return Tenant(size, uuid.UUID(owner["tenant"]["id"]), tokens, users)


def layout(tenant: Tenant) -> list[tuple[uuid.UUID, str]]:
    """(owner id, path) of each session, oldest first: the sparse ones spread evenly
    through the tenant's history, the rest alternating between the owner and other members
    over six paths."""
    size, rare = tenant.size, rare_count(tenant.size)
    others = [tenant.users[name] for name in MEMBERS[1:]]
    step = size / rare
    rare_member = {round(k * step) for k in range(rare)}
    rare_path = {round(k * step + step / 2) for k in range(rare)} - rare_member
    sessions = []
    plain = 0
    for i in range(size):
        if i in rare_member:
            sessions.append((tenant.users["rare"], COMMON))
        elif i in rare_path:
            sessions.append((others[i % len(others)], RARE_PATH))
        else:
            owner = tenant.users["owner"] if plain % 2 == 0 else others[plain // 2 % len(others)]
            sessions.append((owner, COMMON if plain % 6 == 0 else f"/ws/p{plain % 6}"))
            plain += 1
    return sessions


def seed(db: Any, tenant: Tenant) -> float:
    """Write the tenant's sessions, ``SEED_BATCH`` a transaction; return seconds."""
    import fdb_backend
    from workspaces.records import WorkspaceSession, WorkspaceState, heads, states

    started = time.perf_counter()
    plan = layout(tenant)
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(milliseconds=len(plan) + 10)
    head_store, state_store = heads(tenant.tenant_id), states(tenant.tenant_id)

    @fdb_backend.transactional
    def batch(tr: Any, first: int, last: int) -> None:
        for i in range(first, last):
            when = start + datetime.timedelta(milliseconds=i)
            owner_id, path = plan[i]
            session_id = uuid.uuid4()
            head_store.save(
                tr,
                WorkspaceSession(
                    id=session_id,
                    owner_id=owner_id,
                    name=f"seeded {i}",
                    workspace_path=path,
                    created_at=when,
                    last_active_at=when,
                ),
                now=when,
            )
            state_store.save(
                tr,
                WorkspaceState(
                    id=session_id,
                    active_files=[f"{path}/f{i}.py"],
                    editor_state={"cursor": [i % 100, 7]},
                    terminal_state={},
                ),
                now=when,
            )

    for first in range(0, len(plan), SEED_BATCH):
        batch(db, first, min(len(plan), first + SEED_BATCH))
    return time.perf_counter() - started


def path_of(query: dict[str, str], cursor: str | None = None) -> str:
    params = {**query, "limit": str(LIMIT), **({"cursor": cursor} if cursor else {})}
    return "/api/v5/sessions?" + urllib.parse.urlencode(params)


@dataclass
class Case:
    filter: str
    page: str  # "first" or "cursor"
    size: int
    token: str
    path: str
    results: int = 0
    more: bool = False
    keys: int = 0
    reads: int = 0


def cases_of(api: Api, tenant: Tenant) -> list[Case]:
    """Each filter's first page and the page of its cursor, with the keys each reads."""
    import fdb_backend
    from fdb_backend.read_count import ReadCounting

    found = []
    real = fdb_backend.get_database
    for name, who, query in FILTERS:
        token = tenant.tokens[who]
        first = api.call("GET", path_of(query), token=token)
        if len(first["results"]) != LIMIT or not first["next_cursor"]:
            raise RuntimeError(f"{name} at {tenant.size}: not a full page with a cursor")
        for page, path in (
            ("first", path_of(query)),
            ("cursor", path_of(query, first["next_cursor"])),
        ):
            case = Case(name, page, tenant.size, token, path)
            counting = ReadCounting(real())
            with mock.patch.object(fdb_backend, "get_database", lambda c=counting: c):
                body = api.call("GET", path, token=token)
            case.results, case.more = len(body["results"]), body["next_cursor"] is not None
            case.keys, case.reads = counting.reads.keys, counting.reads.calls
            found.append(case)
    return found


def timed(api: Api, pair: list[Case], requests: int) -> list[list[float]]:
    """Milliseconds of each of ``requests`` requests of each case of ``pair``, the cases
    taking turns request by request, so that the machine's other load hits both alike."""
    client = api.client
    took: list[list[float]] = [[] for _ in pair]
    for number in range(requests):
        for index in (0, 1) if number % 2 == 0 else (1, 0):
            case = pair[index]
            started = time.perf_counter()
            response = client.get(case.path, headers={"Authorization": f"Bearer {case.token}"})
            took[index].append((time.perf_counter() - started) * 1000)
            if response.status_code != 200:
                raise RuntimeError(f"{case.path}: {response.status_code}")
    return took


def repair_timing(db: Any, tenant: Tenant) -> dict[str, Any]:
    """Drop the new index of the large tenant (a store made before it) and time
    ``storage check --repair`` building it, then a clean check."""
    from fdb_backend import keyspace
    from operations.storage import storage_check

    index = keyspace.tenant(tenant.tenant_id).collection("workspace_sessions")
    entries = index.index("sessions_by_owner_workspace").range()
    db.clear_range(entries.begin, entries.end)
    started = time.perf_counter()
    repaired = storage_check(db=db, repair=True)
    repair_s = time.perf_counter() - started
    started = time.perf_counter()
    after = storage_check(db=db)
    return {
        "sessions": tenant.size,
        "problems": len(repaired.problems),
        "repaired": repaired.repaired,
        "repair_s": round(repair_s, 1),
        "check_after_s": round(time.perf_counter() - started, 1),
        "problems_after": len(after.problems),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="bench-lists-"))
    load_start = os.getloadavg()[0]
    try:
        environment(tmp)
        import django

        django.setup()
        logging.disable(logging.INFO)  # the access log of every request
        from django.core.management import call_command

        import fdb_backend

        call_command("migrate", "--noinput", verbosity=0)
        db = fdb_backend.get_database()
        api = Api()
        tenants = []
        for size in args.sizes:
            tenant = register(api, size)
            tenant.seed_s = seed(db, tenant)
            say(args, clock, f"seeded {size:,} sessions in {tenant.seed_s:.1f} s")
            tenants.append(tenant)
        cases = [case for tenant in tenants for case in cases_of(api, tenant)]
        small, large = args.sizes
        pairs = [
            [c for c in cases if (c.filter, c.page) == (name, page)]
            for name, _, _ in FILTERS
            for page in ("first", "cursor")
        ]
        for pair in pairs:  # warm up: caches, the reader pool, first-use imports
            timed(api, pair, 3)
        medians: dict[tuple[str, str, int], list[float]] = {}
        for number in range(args.runs):
            for pair in pairs if number % 2 == 0 else pairs[::-1]:
                for case, took in zip(pair, timed(api, pair, args.requests), strict=True):
                    key = (case.filter, case.page, case.size)
                    medians.setdefault(key, []).append(statistics.median(took))
            say(args, clock, f"run {number + 1} of {args.runs}")
        repair = None if args.no_repair else repair_timing(db, tenants[-1])
        if repair is not None:
            say(args, clock, f"storage check --repair: {repair['repair_s']} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    sizes = (small, large)
    for name, _, _ in FILTERS:
        for page in ("first", "cursor"):
            by_size = {c.size: c for c in cases if c.filter == name and c.page == page}
            row: dict[str, Any] = {"filter": name, "page": page}
            for size in sizes:
                runs = medians[name, page, size]
                row[str(size)] = {
                    "min_ms": round(min(runs), 2),
                    "median_ms": round(statistics.median(runs), 2),
                    "max_ms": round(max(runs), 2),
                    "keys": by_size[size].keys,
                    "reads": by_size[size].reads,
                    "results": by_size[size].results,
                    "next_cursor": by_size[size].more,
                }
            ratio = row[str(large)]["median_ms"] / row[str(small)]["median_ms"]
            row["ratio"] = round(ratio, 2)
            row["latency_pass"] = ratio <= FLAT_BAR
            row["keys_pass"] = row[str(large)]["keys"] == row[str(small)]["keys"]
            rows.append(row)
    return {
        "date": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "revision": common.revision("workspaces", "fdb_backend", "operations"),
        "command": "python bench/lists.py " + " ".join(sys.argv[1:]),
        "duration_s": round(time.monotonic() - clock),
        "runs": args.runs,
        "requests": args.requests,
        "limit": LIMIT,
        "sizes": list(sizes),
        "sparse_matches": {str(size): rare_count(size) for size in sizes},
        "seeding_s": {str(t.size): round(t.seed_s, 1) for t in tenants},
        "rows": rows,
        "repair": repair,
        "passed": all(r["latency_pass"] and r["keys_pass"] for r in rows),
        "machine": {
            "cpu": common.cpu_model(),
            "cores": len(os.sched_getaffinity(0)),
            "python": sys.version.split()[0],
            "load_1min_start": round(load_start, 2),
            "load_1min_end": round(os.getloadavg()[0], 2),
        },
    }


def say(args: argparse.Namespace, clock: float, what: str) -> None:
    if not args.json:
        print(f"[{time.monotonic() - clock:6.1f} s] {what}", file=sys.stderr, flush=True)


def format_report(report: dict[str, Any]) -> str:
    small, large = (str(s) for s in report["sizes"])
    lines = [
        f"GET /api/v5/sessions?limit={report['limit']}: per-run median latency, ms "
        f"(min / median / max over {report['runs']} runs of {report['requests']} requests), "
        "keys read per request",
        f"sparse filters match {report['sparse_matches'][large]} of {int(large):,} sessions "
        f"(1 in 1,000) and {report['sparse_matches'][small]} of {int(small)}",
        "",
        f"{'filter':<31} {'page':<6} {small + ' ms':>20} {large + ' ms':>20} {'ratio':>5}"
        f" {'keys small/large':>16}  verdict",
    ]
    for row in report["rows"]:
        a, b = row[small], row[large]
        verdict = "PASS" if row["latency_pass"] and row["keys_pass"] else "FAIL"
        lines.append(
            f"{row['filter']:<31} {row['page']:<6}"
            f" {a['min_ms']:6.2f}/{a['median_ms']:6.2f}/{a['max_ms']:6.2f}"
            f" {b['min_ms']:6.2f}/{b['median_ms']:6.2f}/{b['max_ms']:6.2f}"
            f" {row['ratio']:5.2f} {a['keys']:>8}/{b['keys']:<7}  {verdict}"
        )
    lines.append("")
    lines.append(
        f"bars: median at {int(large):,} / at {int(small):,} <= {FLAT_BAR}, same keys read at "
        "both sizes: " + ("PASS" if report["passed"] else "FAIL")
    )
    repair = report["repair"]
    if repair:
        lines.append(
            f"storage check --repair after dropping sessions_by_owner_workspace of the "
            f"{repair['sessions']:,}-session tenant: {repair['repaired']} of "
            f"{repair['problems']} problems repaired in {repair['repair_s']} s; the check "
            f"after: {repair['problems_after']} problems, {repair['check_after_s']} s"
        )
    machine = report["machine"]
    lines += [
        "",
        f"seeding: {report['seeding_s']} s; {report['date']}, revision {report['revision']}, "
        f"{report['duration_s']} s",
        f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, "
        f"load (1 min) {machine['load_1min_start']} at the start, {machine['load_1min_end']} "
        "at the end",
        f"command: {report['command']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100, help="per case and run")
    parser.add_argument("--no-repair", action="store_true", help="skip the repair timing")
    parser.add_argument(
        "--sizes", type=int, nargs=2, default=SIZES, help="small and large tenant (quick tries)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
