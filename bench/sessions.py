"""Workspace-sessions benchmark (issue 4): the platform against the comparison app, one run.

Run from the repository root::

    python bench/sessions.py [--seconds N] [--warm-up N] [--json]

It starts four servers over temporary databases: the platform under one daphne process and
in its per-core deployment (``python -m coditect.percore``: nginx balancing each request over
a REST process, gunicorn with one gthread worker, and a daphne per core), the
conventional comparison app (bench/comparison: DRF + simplejwt + ORM on SQLite) under one
daphne process and under gunicorn with one sync worker per core. Each app gets a user and
``SEEDED`` sessions with a few kB of state; then ``wrk`` loads each server at concurrency 16,
one at a time, with GET one session (a random seeded one), GET ?limit=20, POST (create) and
PATCH (a random seeded one, no If-Match), and the report gives req/s, p50, p99 and non-2xx.

Then "list latency flat": two more platform tenants are seeded directly through the records
layer (``workspaces.records``, transactions of ``SEED_BATCH`` sessions) with 10^2 and 10^5
sessions, and GET ?limit=20 (first page, then a page from a cursor) is loaded against each on
the one-daphne server. This is a benchmark, not a test. See bench/README.md and
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import http.client
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if sys.path[0] != str(ROOT):
    # `python bench/sessions.py` puts bench/ first, whose realtime.py would shadow the realtime
    # package in the seeding child (django.setup() imports it), even with the root on PYTHONPATH.
    sys.path.insert(0, str(ROOT))

from bench import common
from bench.comparison import run as comparison

HOST = "127.0.0.1"
CONCURRENCY = 16
PASSWORD = "correct horse battery staple"  # passes both apps' password validators
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
SEEDED = 200  # sessions per app for the four loads; GET and PATCH pick among them
FLAT_SIZES = (100, 100_000)
# Sessions per transaction when seeding the list-flat tenants: the embedded engine re-sorts a
# transaction's write buffer on each read after a write, so bigger batches cost quadratically.
SEED_BATCH = 100
SEED_PROCESSES = CORES
DAPHNE_BAR = 2.0  # platform, 1 daphne / comparison, 1 daphne (GET and list)
PER_CORE_BAR = 1.0  # platform, 1 process per core / comparison, gunicorn per core (all four)
FLAT_BAR = 1.5  # list p50 and p99 at 10^5 sessions / at 10^2 sessions, at most
ENDPOINTS = ("get", "list", "create", "patch")
WRK_TIMEOUT = "10s"


def state_of(i: int, size: int = 3000) -> dict[str, Any]:
    """A session state of about ``size`` bytes of JSON: some files, an editor, a terminal."""
    files = [f"/ws/project/src/module_{i}_{n}.py" for n in range(20)]
    text = ("x" * 64 + "\n") * max(1, (size - 1000) // 65)
    return {
        "active_files": files,
        "editor_state": {"cursor": [i % 100, 7], "open": files[:5], "buffer": text},
        "terminal_state": {"cwd": "/ws/project", "history": ["make test", "git status"]},
    }


# --- the wrk script ----------------------------------------------------------------------------

# BENCH_MODE chooses the load; BENCH_TOKEN is the Bearer access token; BENCH_IDS a file of
# session ids (one a line) that get and patch pick from at random; BENCH_PATH the list path.
# done() writes counts and the latency histogram (microseconds, count) as JSON to BENCH_OUT.
WRK_SCRIPT = r"""
local mode = os.getenv("BENCH_MODE")
local out_path = os.getenv("BENCH_OUT")
local token = os.getenv("BENCH_TOKEN")
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("number", counter)
  threads[#threads + 1] = thread
end

non2xx = 0
local auth = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
local filler = string.rep("y", 900)

function init(args)
  math.randomseed(os.time() * 100 + number)
  if mode == "list" then
    wrk.method = "GET"
    wrk.path = os.getenv("BENCH_PATH")
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

if mode ~= "list" then
  local n = 0
  function request()
    n = n + 1
    if mode == "get" then
      return wrk.format("GET", "/api/v5/sessions/" .. ids[math.random(#ids)], auth)
    elseif mode == "patch" then
      local body = string.format('{"editor_state":{"cursor":[%d,%d],"note":"%s"}}',
                                 number, n, filler)
      return wrk.format("PATCH", "/api/v5/sessions/" .. ids[math.random(#ids)], auth, body)
    else
      local body = string.format(
        '{"name":"wrk %d-%d","workspace_path":"/ws/wrk/%d",' ..
        '"active_files":["/ws/wrk/a.py","/ws/wrk/b.py"],' ..
        '"editor_state":{"buffer":"%s%s%s"}}', number, n, number, filler, filler, filler)
      return wrk.format("POST", "/api/v5/sessions", auth, body)
    end
  end
end

function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end

function done(summary, latency, requests)
  local bad, histogram = 0, {}
  for _, thread in ipairs(threads) do bad = bad + (thread:get("non2xx") or 0) end
  for i = 1, #latency do
    local value, count = latency(i)
    if count > 0 then histogram[#histogram + 1] = string.format("[%d, %d]", value, count) end
  end
  local e = summary.errors
  local out = io.open(out_path, "w")
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"latency_us": [%s]}\n',
    summary.requests, summary.duration, bad, e.connect + e.read + e.write + e.timeout,
    table.concat(histogram, ", ")))
  out:close()
end
"""


# --- the platform's servers ------------------------------------------------------------------


class Platform:
    """The platform over one temporary store and staff database."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = dict(os.environ)
        self.env.update(
            DJANGO_SETTINGS_MODULE="coditect.settings",
            PYTHONPATH=str(ROOT),
            DJANGO_DEBUG="0",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DJANGO_SECURE_SSL_REDIRECT="0",
            CODITECT_STORAGE_URL="embedded://" + urllib.parse.quote(str(tmp / "store.sqlite3")),
            DATABASE_URL=f"sqlite:///{tmp / 'staff.sqlite3'}",
            CODITECT_THROTTLE_SCALE="100000",  # load from one address: raise, don't disable
        )

    def prepare(self) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
            cwd=ROOT,
            env=self.env,
            check=True,
            timeout=120,
        )

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log_path = self.tmp / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stop() reaps its workers
            )
        proc.log_path = log_path  # type: ignore[attr-defined]  # for run.wait_ready's messages
        return proc

    def daphne(self, port: int) -> subprocess.Popen[bytes]:
        return self.spawn(f"daphne-{port}", common.platform_daphne("-b", HOST, "-p", str(port)))

    def percore(self, port: int) -> subprocess.Popen[bytes]:
        return self.spawn(f"percore-{port}", common.platform_percore(port, CORES))

    def seed(self, tenant_id: str, owner_id: str, count: int) -> float:
        """Write ``count`` sessions into a tenant through the records layer; return seconds.

        ``SEED_PROCESSES`` children each write a share (disjoint keys: their transactions do
        not conflict, and encoding runs on every core while commits take turns).
        """
        started = time.perf_counter()
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(milliseconds=count + 10)
        shares = [
            (count * n // SEED_PROCESSES, count * (n + 1) // SEED_PROCESSES)
            for n in range(SEED_PROCESSES)
        ]
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__)),
                    "--seed",
                    tenant_id,
                    owner_id,
                    start.isoformat(),
                    str(first),
                    str(last),
                ],
                cwd=ROOT,
                env=self.env,
            )
            for first, last in shares
        ]
        try:
            for child in children:
                if child.wait(timeout=300) != 0:
                    raise RuntimeError(f"seeding child exited with {child.returncode}")
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()
        return time.perf_counter() - started


def seed_worker(tenant: str, owner: str, start_at: str, first: int, last: int) -> None:
    """In a child with the platform's settings: sessions first..last-1, ``SEED_BATCH`` a commit.

    Heads and states as ``workspaces.services.session_create`` writes them (the records layer
    keeps every index), each with its own ``last_active_at`` one millisecond apart.
    """
    import django

    django.setup()
    import fdb_backend
    from workspaces.records import WorkspaceSession, WorkspaceState, heads, states

    tenant_id, owner_id = uuid.UUID(tenant), uuid.UUID(owner)
    db = fdb_backend.get_database()
    start = datetime.datetime.fromisoformat(start_at)
    head_store, state_store = heads(tenant_id), states(tenant_id)

    @fdb_backend.transactional
    def batch(tr: Any, first: int, last: int) -> None:
        for i in range(first, last):
            when = start + datetime.timedelta(milliseconds=i)
            session_id = uuid.uuid4()
            head_store.save(
                tr,
                WorkspaceSession(
                    id=session_id,
                    owner_id=owner_id,
                    name=f"seeded {i}",
                    workspace_path=f"/ws/seeded/{i % 50}",
                    created_at=when,
                    last_active_at=when,
                ),
                now=when,
            )
            state_store.save(
                tr,
                WorkspaceState(
                    id=session_id, active_files=[f"/ws/f{i}.py"], editor_state={}, terminal_state={}
                ),
                now=when,
            )

    for begin in range(first, last, SEED_BATCH):
        batch(db, begin, min(last, begin + SEED_BATCH))


@contextlib.contextmanager
def platform_daphnes(
    tmp: Path, processes: int, redis_url: str
) -> Iterator[tuple[list[int], list[subprocess.Popen[bytes]]]]:
    """``processes`` platform daphnes over one new store in ``tmp`` (with Redis as their
    channel layer when ``redis_url`` is set), listening; their ports and processes, stopped
    afterwards."""
    app = Platform(tmp)
    tmp.mkdir()
    if redis_url:
        app.env["REDIS_URL"] = redis_url
    else:
        app.env.pop("REDIS_URL", None)
    app.prepare()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = [comparison.free_port() for _ in range(processes)]
        procs = [app.daphne(port) for port in ports]
        for port, proc in zip(ports, procs, strict=True):
            common.wait_listening(port, proc)
        yield ports, procs
    finally:
        for proc in procs:
            comparison.stop(proc)


# --- HTTP from this process (setup only; the measured load is wrk's) -----------------------------


def call(
    port: int, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        data = None if body is None else json.dumps(body)
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            raise RuntimeError(
                f"{method} {path} on {port}: {response.status} {raw[:300]!r}"
            ) from None
    finally:
        conn.close()


def register(port: int, email: str) -> dict[str, Any]:
    status, body = call(
        port, "POST", "/api/v5/auth/register", {"email": email, "password": PASSWORD}
    )
    if status != 201:
        raise RuntimeError(f"register {email} on {port}: {status} {body}")
    return dict(body)


def create_sessions(port: int, token: str, count: int) -> list[str]:
    def one(i: int) -> str:
        body = {"name": f"seeded {i}", "workspace_path": f"/ws/seeded/{i % 20}", **state_of(i)}
        status, answer = call(port, "POST", "/api/v5/sessions", body, token)
        if status != 201:
            raise RuntimeError(f"create session on {port}: {status} {answer}")
        return str(answer["id"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


# --- machine load ------------------------------------------------------------------------------

BUSY_NAMES = ("daphne", "gunicorn", "wrk", "pytest", "uvicorn", "bench/")


def foreign_processes(ours: set[int]) -> list[str]:
    """Other heavy processes on the machine (servers, load generators, test runs), not ours."""
    found = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
            pgid = os.getpgid(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
        if pgid in ours or pgid == os.getpgid(0):
            continue
        if any(name in cmd for name in BUSY_NAMES):
            found.append(f"{entry.name}: {cmd[:80]}")
    return found


def load_note(ours: set[int], max_wait: float) -> dict[str, Any]:
    """The 1-minute load and other heavy processes; waits up to ``max_wait`` s for them to go."""
    waited = 0.0
    others = foreign_processes(ours)
    while others and waited < max_wait:
        time.sleep(2.0)
        waited += 2.0
        others = foreign_processes(ours)
    return {"load_1min": os.getloadavg()[0], "others": len(others), "waited_s": waited}


# --- wrk runs --------------------------------------------------------------------------------


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("bench/sessions.py needs wrk: `apt-get install -y wrk` (Debian, Ubuntu)")
    return found


@dataclass
class App:
    """What the loads of one app need: its token, its seeded ids."""

    name: str
    token: str
    ids_file: Path


@dataclass
class Server:
    key: str
    label: str
    app: App
    port: int
    proc: subprocess.Popen[bytes]


@dataclass
class Measurement:
    config: str
    endpoint: str
    requests: int
    seconds: float
    rate: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    socket_errors: int
    notes: dict[str, Any] = field(default_factory=dict)


def percentile(histogram: list[list[int]], fraction: float) -> float:
    total = sum(count for _, count in histogram)
    if not total:
        return float("nan")
    wanted, seen = max(1, round(fraction * total)), 0
    for value, count in sorted(histogram):
        seen += count
        if seen >= wanted:
            return float(value)
    return float(max(value for value, _ in histogram))


def wrk(
    tmp: Path,
    port: int,
    app: App,
    mode: str,
    seconds: float,
    path: str = "/api/v5/sessions?limit=20",
    connections: int = CONCURRENCY,
) -> dict[str, Any]:
    script = tmp / "sessions.lua"
    if not script.exists():
        script.write_text(WRK_SCRIPT)
    out = tmp / "wrk-out.json"
    out.unlink(missing_ok=True)
    env = dict(os.environ)
    env.update(
        BENCH_MODE=mode,
        BENCH_OUT=str(out),
        BENCH_TOKEN=app.token,
        BENCH_IDS=str(app.ids_file),
        BENCH_PATH=path,
    )
    argv = [
        wrk_path(),
        f"-t{connections}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={WRK_TIMEOUT}",
        "-s",
        str(script),
        f"http://{HOST}:{port}/",
    ]
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, timeout=seconds + 60)
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def measure(
    tmp: Path,
    server: Server,
    mode: str,
    seconds: float,
    warm_up: float,
    note: dict[str, Any],
    path: str = "/api/v5/sessions?limit=20",
) -> Measurement:
    if warm_up > 0:
        wrk(tmp, server.port, server.app, mode, warm_up, path)
    r = wrk(tmp, server.port, server.app, mode, seconds, path)
    elapsed = r["duration_us"] / 1e6
    return Measurement(
        config=server.key,
        endpoint=mode,
        requests=r["requests"],
        seconds=round(elapsed, 2),
        rate=r["requests"] / elapsed if elapsed else float("nan"),
        p50_ms=percentile(r["latency_us"], 0.50) / 1000,
        p99_ms=percentile(r["latency_us"], 0.99) / 1000,
        non2xx=r["non2xx"],
        socket_errors=r["socket_errors"],
        notes=dict(note),
    )


# --- the bars ----------------------------------------------------------------------------------


def rate_of(results: list[Measurement], config: str, endpoint: str) -> float | None:
    for r in results:
        if r.config == config and r.endpoint == endpoint:
            return r.rate
    return None


def bars(results: list[Measurement], flat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    pairs = [
        ("platform-daphne-1", "comparison-daphne-1", DAPHNE_BAR, ("get", "list")),
        (f"platform-percore-{CORES}", f"comparison-gunicorn-{CORES}", PER_CORE_BAR, ENDPOINTS),
    ]
    for ours, theirs, minimum, endpoints in pairs:
        for endpoint in endpoints:
            mine, other = rate_of(results, ours, endpoint), rate_of(results, theirs, endpoint)
            if mine is None or other is None:
                continue
            checks.append(
                {
                    "name": f"{endpoint}, {ours} / {theirs}: {mine:,.0f} vs {other:,.0f} req/s",
                    "value": mine / other,
                    "minimum": minimum,
                    "passed": mine / other >= minimum,
                }
            )
    for page in ("first page", "cursor page"):
        rows = {row["sessions"]: row for row in flat if row["page"] == page}
        small, large = rows.get(FLAT_SIZES[0]), rows.get(FLAT_SIZES[1])
        if small is None or large is None:
            continue
        for stat in ("p50_ms", "p99_ms"):
            ratio = large[stat] / small[stat]
            checks.append(
                {
                    "name": f"list {page} {stat[:3]} flat: {large[stat]:.1f} ms at "
                    f"{FLAT_SIZES[1]:,} vs {small[stat]:.1f} ms at {FLAT_SIZES[0]:,} sessions",
                    "value": ratio,
                    "maximum": FLAT_BAR,
                    "passed": ratio <= FLAT_BAR,
                }
            )
    errors = sum(r.non2xx + r.socket_errors for r in results)
    errors += sum(row["non2xx"] + row["socket_errors"] for row in flat)
    checks.append(
        {"name": "every response 2xx, no socket errors", "value": errors, "passed": errors == 0}
    )
    return checks


# --- the run -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = common.cpu_model()
    version = subprocess.run([wrk_path(), "-v"], capture_output=True, text=True, check=False)
    return {
        "cpu": model,
        "cores": CORES,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": " ".join(version.stdout.split("\n")[0].split()[:2]),
        "load_1min": os.getloadavg()[0],
    }


def revision() -> str:
    return common.revision("accounts", "coditect", "fdb_backend", "workspaces")


def command(args: argparse.Namespace) -> str:
    words = ["python", "bench/sessions.py", "--seconds", f"{args.seconds:g}"]
    if args.warm_up != DEFAULT_WARM_UP:
        words += ["--warm-up", f"{args.warm_up:g}"]
    if args.flat_seconds != DEFAULT_FLAT_SECONDS:
        words += ["--flat-seconds", f"{args.flat_seconds:g}"]
    if args.wait_quiet != DEFAULT_WAIT_QUIET:
        words += ["--wait-quiet", f"{args.wait_quiet:g}"]
    return shlex.join(words)


def progress(args: argparse.Namespace, started: float, what: str) -> None:
    if not args.json:
        print(f"  {time.monotonic() - started:4.0f} s  {what}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.datetime.now(datetime.UTC)
    wrk_path()
    host = machine()
    clock = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="coditect-bench-sessions-"))
    servers: list[Server] = []
    results: list[Measurement] = []
    flat: list[dict[str, Any]] = []
    seeding: dict[str, float] = {}
    try:
        platform_app = Platform(tmp / "platform")
        platform_app.tmp.mkdir()
        platform_app.prepare()
        comparison.prepare(tmp / "comparison")
        starts: list[tuple[str, str, str, Callable[[int], subprocess.Popen[bytes]]]] = [
            (
                "comparison-daphne-1",
                "comparison, 1 daphne",
                "comparison",
                lambda port: comparison.start_daphne(port, db_dir=tmp / "comparison"),
            ),
            ("platform-daphne-1", "platform, 1 daphne", "platform", platform_app.daphne),
            (
                f"comparison-gunicorn-{CORES}",
                f"comparison, gunicorn {CORES} sync",
                "comparison",
                lambda port: comparison.start_gunicorn(port, CORES, db_dir=tmp / "comparison"),
            ),
            (
                f"platform-percore-{CORES}",
                f"platform, per core ({CORES}+{CORES}, nginx)",
                "platform",
                platform_app.percore,
            ),
        ]
        ports: list[tuple[str, str, str, int, subprocess.Popen[bytes]]] = []
        for key, label, app_name, start in starts:
            port = comparison.free_port()
            ports.append((key, label, app_name, port, start(port)))
            servers.append(Server(key, label, App(app_name, "", Path()), port, ports[-1][4]))
        for _, _, _, port, proc in ports:
            comparison.wait_ready(port, 60, proc=proc)
        apps: dict[str, App] = {}
        for server in servers:
            if server.app.name in apps:
                continue
            account = register(server.port, f"bench-{server.app.name}@example.com")
            ids = create_sessions(server.port, account["access"], SEEDED)
            ids_file = tmp / f"ids-{server.app.name}.txt"
            ids_file.write_text("".join(i + "\n" for i in ids))
            apps[server.app.name] = App(server.app.name, account["access"], ids_file)
        for server in servers:
            server.app = apps[server.app.name]
        progress(args, clock, f"{len(servers)} servers up, {SEEDED} sessions per app")
        ours = {server.proc.pid for server in servers}

        for endpoint in ENDPOINTS:
            for server in servers:
                note = load_note(ours, args.wait_quiet)
                results.append(measure(tmp, server, endpoint, args.seconds, args.warm_up, note))
            progress(args, clock, endpoint)

        daphne = next(s for s in servers if s.key == "platform-daphne-1")
        for size in FLAT_SIZES:
            account = register(daphne.port, f"flat-{size}@example.com")
            seeding[f"{size:,}"] = round(
                platform_app.seed(account["tenant"]["id"], account["user"]["id"], size), 1
            )
            app = App("platform", account["access"], apps["platform"].ids_file)
            flat_server = Server(daphne.key, daphne.label, app, daphne.port, daphne.proc)
            status, page = call(daphne.port, "GET", "/api/v5/sessions?limit=20", None, app.token)
            if status != 200 or not page.get("next_cursor"):
                raise RuntimeError(f"list of the {size} tenant: {status} {page}")
            cursor = urllib.parse.quote(page["next_cursor"])
            paths = {
                "first page": "/api/v5/sessions?limit=20",
                "cursor page": f"/api/v5/sessions?limit=20&cursor={cursor}",
            }
            for name, path in paths.items():
                note = load_note(ours, args.wait_quiet)
                m = measure(tmp, flat_server, "list", args.flat_seconds, 0.5, note, path)
                flat.append({"sessions": size, "page": name, **asdict(m)})
            progress(
                args, clock, f"list flat, {size:,} sessions (seeded in {seeding[f'{size:,}']} s)"
            )
    finally:
        for server in servers:
            comparison.stop(server.proc)
        shutil.rmtree(tmp, ignore_errors=True)
    labels = {server.key: server.label for server in servers}
    return {
        "date": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "revision": revision(),
        "command": command(args),
        "duration_s": round(time.monotonic() - clock),
        "concurrency": CONCURRENCY,
        "results": [{**asdict(r), "label": labels[r.config]} for r in results],
        "flat": flat,
        "seeding_s": seeding,
        "bars": bars(results, flat),
        "machine": {**host, "load_1min_end": os.getloadavg()[0]},
    }


# --- output ------------------------------------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    header = (
        f"{'config':<28} {'endpoint':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non2xx':>6}"
        f" {'sockerr':>7}  load (1 min, other heavy procs)"
    )
    lines = [header]
    for r in report["results"]:
        n = r["notes"]
        waited = f", waited {n['waited_s']:.0f} s" if n.get("waited_s") else ""
        lines.append(
            f"{r['label']:<28} {r['endpoint']:<8} {r['rate']:>8,.1f} {r['p50_ms']:>8.1f}"
            f" {r['p99_ms']:>8.1f} {r['non2xx']:>6} {r['socket_errors']:>7}"
            f"  {n['load_1min']:.2f}, {n['others']}{waited}"
        )
    lines += [
        "",
        "list latency (GET ?limit=20, platform, 1 daphne) against tenant size; seeded in "
        + ", ".join(f"{k} sessions: {v} s" for k, v in report["seeding_s"].items()),
    ]
    for row in report["flat"]:
        n = row["notes"]
        lines.append(
            f"  {row['sessions']:>7,} sessions  {row['page']:<12} {row['rate']:>8,.1f} req/s"
            f"  p50 {row['p50_ms']:6.1f} ms  p99 {row['p99_ms']:6.1f} ms  non2xx {row['non2xx']}"
            f"  load {n['load_1min']:.2f}, {n['others']} other"
        )
    lines += ["", f"bars (concurrency {report['concurrency']}):"]
    for b in report["bars"]:
        verdict = "PASS" if b["passed"] else "FAIL"
        if "minimum" in b:
            lines.append(f"  {verdict}  {b['name']}: {b['value']:.2f} (>= {b['minimum']:.2f})")
        elif "maximum" in b:
            lines.append(f"  {verdict}  {b['name']}: {b['value']:.2f} (<= {b['maximum']:.2f})")
        else:
            lines.append(f"  {verdict}  {b['name']}: {b['value']}")
    m = report["machine"]
    lines += [
        "",
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['wrk']}",
        f"         {m['platform']}, load average {m['load_1min']:.2f} at start,"
        f" {m['load_1min_end']:.2f} at end",
        f"date:    {report['date']}, revision {report['revision']}, took {report['duration_s']} s",
        f"command: {report['command']}",
    ]
    return "\n".join(lines)


DEFAULT_SECONDS = 6.0
DEFAULT_WARM_UP = 1.0
DEFAULT_FLAT_SECONDS = 3.0
DEFAULT_WAIT_QUIET = 20.0


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:2] == ["--seed"]:  # the seeding child (Platform.seed)
        seed_worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="per measurement")
    parser.add_argument("--warm-up", type=float, default=DEFAULT_WARM_UP, help="before each")
    parser.add_argument(
        "--flat-seconds", type=float, default=DEFAULT_FLAT_SECONDS, help="per list-flat load"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=DEFAULT_WAIT_QUIET,
        metavar="SECONDS",
        help="before each load, wait up to this long while other servers, wrk or pytest run",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # so the finally block stops the servers on SIGTERM too

    signal.signal(signal.SIGTERM, interrupted)
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
