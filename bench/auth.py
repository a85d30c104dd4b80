"""Accounts benchmark: the platform against the conventional comparison app, in one run.

Run from the repository root::

    python bench/auth.py [--seconds N] [--wait-quiet S] [--json]

In one run on one machine it starts five server configurations side by side on 127.0.0.1
(idle ones cost nothing) and loads one at a time at concurrency 16:

- the platform under one daphne process, in its per-core deployment (``python -m
  coditect.percore``: nginx balancing each request over a REST process, uvicorn and the API
  lane, and a daphne per core), and under one daphne process per core sharing a
  listening socket;
- the comparison app (bench/comparison: DRF + simplejwt + ORM) under one daphne process and
  under gunicorn with one sync worker per core.

Loads: logins (``POST /api/v5/auth/login``, a fixed number per connection from this process,
timed until the last answer), ``GET /api/v5/auth/me`` with a Bearer access token, and refresh
rotation (``POST /api/v5/auth/refresh``, each connection chaining its own tokens), the last two
from ``wrk`` in two rounds per server, the servers taking turns. Next to each login run it
measures the Argon2id bound: verifications per second of the same parameters, one thread per
core verifying in parallel in this process, just before and just after the run. It prints req/s,
p50 and p99 latency, errors and CPU per request, then issue 3's bars with PASS or FAIL. This is
a benchmark, not a test. See bench/README.md and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import http.client
import json
import math
import os
import platform
import resource
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from argon2 import PasswordHasher, Type
from django.contrib.auth.hashers import Argon2PasswordHasher as Django

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/auth.py` puts bench/, not the root, first

from bench import common
from bench.comparison import run as comparison

HOST = "127.0.0.1"
CONCURRENCY = 16
USERS = 16  # registered per app; logins cycle through them
PASSWORD = "correct horse battery staple"  # passes both apps' password validators
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
LOGIN_BAR = 0.90  # login rate / Argon2id bound
ME_REFRESH_DAPHNE_BAR = 2.0  # platform, 1 daphne / comparison, 1 daphne
ME_REFRESH_PER_CORE_BAR = 1.0  # platform, a process per core / comparison, gunicorn per core
WRK_TIMEOUT = "30s"  # a login waits behind 15 others for ~2 s: far below this
CLK_TCK = os.sysconf("SC_CLK_TCK")
ENDPOINTS = ("login", "me", "refresh")
ROUNDS = 2  # me and refresh: each server measured twice, in alternating order

T = TypeVar("T")

# Passwords as accounts/passwords.py hashes them (hash_len=32, salt_len=16, Argon2id); the
# time, memory and parallelism come from the platform's own settings (platform_argon2()).
PLATFORM_HASH_LEN, PLATFORM_SALT_LEN = 32, 16


# --- the wrk script ----------------------------------------------------------------------------

# The me and refresh loads, chosen by BENCH_MODE. Each wrk thread has one connection (-t16
# -c16) and one token pair from BENCH_TOKENS (a line "access refresh" per thread), so
# per-thread state is per-connection state: in refresh mode each connection sends the refresh
# token of its own previous response. done() writes what wrk does not print as JSON: non-2xx
# counts from response() and the latency histogram (microseconds, count) for merging rounds.
WRK_SCRIPT = r"""
local mode = os.getenv("BENCH_MODE")
local out_path = os.getenv("BENCH_OUT")
local threads = {}
local started = 0
local tokens = nil

function setup(thread)
  started = started + 1
  if tokens == nil then
    tokens = {}
    for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
  end
  local access, refresh = tokens[started]:match("^(%S+) (%S+)$")
  thread:set("token", mode == "me" and access or refresh)
  threads[#threads + 1] = thread
end

non2xx = 0
local json_headers = {["Content-Type"] = "application/json"}

function init(args)
  if mode == "me" then  -- the same request every time: let wrk build it once
    wrk.method = "GET"
    wrk.path = "/api/v5/auth/me"
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

if mode == "refresh" then
  function request()
    return wrk.format("POST", "/api/v5/auth/refresh", json_headers,
                      '{"refresh":"' .. token .. '"}')
  end
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    return
  end
  if mode == "refresh" then
    token = body:match('"refresh"%s*:%s*"([^"]+)"') or token
  end
end

function done(summary, latency, requests)
  local bad, histogram = 0, {}
  for _, thread in ipairs(threads) do bad = bad + (thread:get("non2xx") or 0) end
  for i = 1, #latency do  -- latency(i): the i-th distinct value (microseconds) and its count
    local value, count = latency(i)
    if count > 0 then histogram[#histogram + 1] = string.format("[%d, %d]", value, count) end
  end
  local e = summary.errors
  local out = io.open(out_path, "w")
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "non2xx": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "latency_us": [%s]}\n',
    summary.requests, summary.duration, bad, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(histogram, ", ")))
  out:close()
end
"""


# --- machine accounting: CPU of the servers, of wrk, of everything else ------------------------


def _group_stats(pgids: set[int]) -> Iterator[tuple[int, list[str]]]:
    """(pid, fields of /proc/PID/stat from field 3 on) of each live process in ``pgids``."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) in pgids:  # fields[0] is field 3 (state), [2] field 5 (pgrp)
            yield int(entry.name), fields


def group_cpu(pgids: set[int]) -> dict[int, float]:
    """CPU seconds used so far by each live process in the given process groups."""
    # utime and stime are fields 14 and 15.
    return {
        pid: (int(fields[11]) + int(fields[12])) / CLK_TCK for pid, fields in _group_stats(pgids)
    }


def group_running(pgids: set[int]) -> bool:
    """Whether any thread of the groups' processes is running or waiting for a core."""
    for pid, _ in _group_stats(pgids):
        with contextlib.suppress(OSError):
            for task in os.scandir(f"/proc/{pid}/task"):
                with open(f"{task.path}/stat") as fh:
                    stat = fh.read()
                if stat[stat.rindex(")") + 2] == "R":
                    return True
    return False


def machine_busy() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat, idle and iowait excluded)."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / CLK_TCK


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuWindow:
    """CPU used during a measurement: by the server's processes, by wrk, by the rest."""

    server_s: float = 0.0
    client_s: float = 0.0
    other_s: float = 0.0
    wall_s: float = 0.0
    per_process: list[float] = field(default_factory=list)  # server CPU by process, largest first


@contextlib.contextmanager
def cpu_window(
    pgids: set[int], client_cpu: Callable[[], float] | None = None
) -> Iterator[CpuWindow]:
    """CPU time of the servers in ``pgids``, of the client and of the rest, while in the block.

    The client is wrk by default: the only child process that ends inside the block.
    """
    clock = client_cpu or children_cpu
    window = CpuWindow()
    server, client, busy = group_cpu(pgids), clock(), machine_busy()
    start = time.perf_counter()
    yield window
    window.wall_s = time.perf_counter() - start
    after = group_cpu(pgids)
    window.per_process = sorted((after[pid] - server.get(pid, 0.0) for pid in after), reverse=True)
    window.server_s = sum(window.per_process)
    window.client_s = clock() - client
    window.other_s = max(0.0, machine_busy() - busy - window.server_s - window.client_s)


QUIET_CORES = 0.15  # --wait-quiet: other work below this many cores counts as quiet
RETRY_OTHER_CORES = 0.25  # --wait-quiet: a measurement with more other work is tried again
CLEAN_TRIES = 3


def wait_quiet(max_wait: float) -> float:
    """Wait up to ``max_wait`` seconds for other work on the machine to stop; return the wait.

    Quiet is a half second in which everything but this process kept the cores busy for
    less than QUIET_CORES in all (the servers are idle between measurements, so that is
    other people's work). On a shared machine this keeps bursts of it out of the figures.
    """
    start = time.monotonic()
    while time.monotonic() - start < max_wait:
        busy, mine = machine_busy(), own_cpu()
        time.sleep(0.5)
        if (machine_busy() - busy) - (own_cpu() - mine) < QUIET_CORES * 0.5:
            break
    return time.monotonic() - start


def wait_idle(pgids: set[int], timeout: float = 60.0) -> None:
    """Wait until the servers finish the requests a stopped wrk run left in flight.

    A sync view runs to its end even when its client has gone, so the logins cut off at the
    end of one run would otherwise take CPU from the next. Idle means no thread of theirs
    running or runnable at five checks in a row, 20 ms apart (CPU time alone misleads when
    other work on the machine starves them).
    """
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 5 and time.monotonic() < deadline:
        quiet = 0 if group_running(pgids) else quiet + 1
        time.sleep(0.02)


# --- the Argon2id bound ------------------------------------------------------------------------


@dataclass(frozen=True)
class Argon2Params:
    time_cost: int
    memory_kib: int
    parallelism: int
    hash_len: int
    salt_len: int

    def hasher(self) -> PasswordHasher:
        return PasswordHasher(
            time_cost=self.time_cost,
            memory_cost=self.memory_kib,
            parallelism=self.parallelism,
            hash_len=self.hash_len,
            salt_len=self.salt_len,
            type=Type.ID,
        )

    def label(self) -> str:
        return f"t={self.time_cost}, m={self.memory_kib} KiB, p={self.parallelism}"


def verify_rate(params: Argon2Params, threads: int, seconds: float) -> dict[str, float]:
    """Verifications per second of ``threads`` threads verifying one hash in a loop.

    argon2-cffi releases the GIL while it hashes, so threads verify in parallel, as the
    server's request threads or worker processes do; each verification also runs its own
    ``parallelism`` lanes on threads of libargon2. Also says how many cores other work on the
    machine took meanwhile.
    """
    hasher = params.hasher()
    encoded = hasher.hash(PASSWORD)
    hasher.verify(encoded, PASSWORD)  # page in the memory once
    counts = [0] * threads
    finished = [0.0] * threads
    start = time.perf_counter()
    deadline = start + seconds

    def loop(index: int) -> None:
        while time.perf_counter() < deadline:
            hasher.verify(encoded, PASSWORD)
            counts[index] += 1
        finished[index] = time.perf_counter()

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    with cpu_window(set(), own_cpu) as window:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    return {
        "rate": sum(counts) / (max(finished) - start),
        "cpu_ms": 1000 * window.client_s / max(1, sum(counts)),  # this process: the verifier
        "other_cores": window.other_s / window.wall_s,
    }


def bound_of(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """The Argon2id bound of one login run: the mean of the rates just before and after it."""
    return {
        "before": before["rate"],
        "after": after["rate"],
        "bound": (before["rate"] + after["rate"]) / 2,
        "cpu_ms": (before["cpu_ms"] + after["cpu_ms"]) / 2,
        "other_cores": (before["other_cores"] + after["other_cores"]) / 2,
    }


# --- the servers -------------------------------------------------------------------------------


@dataclass
class Config:
    key: str
    app: str  # "platform" or "comparison"
    label: str
    start: Callable[[int], list[subprocess.Popen[bytes]]]


class Platform:
    """The platform's servers over one temporary store and staff database."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = dict(os.environ)
        self.env.update(
            DJANGO_SETTINGS_MODULE="coditect.settings",
            PYTHONPATH=str(ROOT),
            DJANGO_DEBUG="0",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DJANGO_SECURE_SSL_REDIRECT="0",
            CODITECT_STORAGE_URL="embedded://" + quote(str(tmp / "store.sqlite3")),
            DATABASE_URL=f"sqlite:///{tmp / 'staff.sqlite3'}",
            # Every throttle limit x100,000: the load comes from one address, over a few accounts.
            CODITECT_THROTTLE_SCALE="100000",
        )

    def prepare(self) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
            cwd=ROOT,
            env=self.env,
            check=True,
        )

    def argon2(self) -> Argon2Params:
        """The Argon2id parameters the servers will read from their settings."""
        code = (
            "import json, coditect.settings as s; print(json.dumps([s.CODITECT_ARGON2_TIME_COST,"
            " s.CODITECT_ARGON2_MEMORY_KIB, s.CODITECT_ARGON2_PARALLELISM]))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        time_cost, memory, parallelism = json.loads(out)
        return Argon2Params(time_cost, memory, parallelism, PLATFORM_HASH_LEN, PLATFORM_SALT_LEN)

    def _spawn(
        self, name: str, argv: list[str], processes: int = 1, **kwargs: Any
    ) -> subprocess.Popen[bytes]:
        log_path = self.tmp / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**self.env, **common.hash_concurrency_env(processes)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stop() reaps workers, Ctrl-C spares it
                **kwargs,
            )
        proc.log_path = log_path  # type: ignore[attr-defined]  # run.wait_ready's messages
        return proc

    def daphne(self, port: int) -> list[subprocess.Popen[bytes]]:
        argv = common.platform_daphne("-b", HOST, "-p", str(port))
        return [self._spawn(f"daphne-{port}", argv)]

    def daphnes(self, port: int, count: int) -> list[subprocess.Popen[bytes]]:
        """``count`` daphne processes accepting on one listening socket (daphne --fd).

        daphne has no SO_REUSEPORT option, but it adopts an inherited listening socket, so the
        processes share one accept queue, as gunicorn's workers do.
        """
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((HOST, port))
            listener.listen(1024)
            fd = listener.fileno()
            argv = common.platform_daphne("--fd", str(fd))
            return [
                self._spawn(
                    f"daphne-{port}-{i}",
                    argv,
                    processes=count,
                    pass_fds=(fd,),
                )
                for i in range(count)
            ]  # the parent's copy closes here; the children keep theirs

    def percore(self, port: int) -> list[subprocess.Popen[bytes]]:
        argv = common.platform_percore(port, CORES)
        return [self._spawn(f"percore-{port}", argv, processes=CORES)]


def configs(platform_app: Platform, db_dir: Path) -> list[Config]:
    """Every configuration, each platform one next to its comparison counterpart."""
    chosen = [
        Config(
            "comparison-daphne-1",
            "comparison",
            "comparison, 1 daphne",
            lambda port: [comparison.start_daphne(port, db_dir=db_dir)],
        ),
        Config("platform-daphne-1", "platform", "platform, 1 daphne", platform_app.daphne),
        Config(
            f"comparison-gunicorn-{CORES}",
            "comparison",
            f"comparison, gunicorn {CORES} sync",
            lambda port: [comparison.start_gunicorn(port, CORES, db_dir=db_dir)],
        ),
        Config(
            f"platform-percore-{CORES}",
            "platform",
            label_of(f"platform-percore-{CORES}"),
            platform_app.percore,
        ),
        Config(
            f"platform-daphne-{CORES}",
            "platform",
            f"platform, {CORES} daphne",
            lambda port: platform_app.daphnes(port, CORES),
        ),
    ]
    return chosen if CORES > 1 else chosen[:-1]  # on one core, 1 daphne is 1 per core


# --- HTTP from this process: registrations, extra logins ----------------------------------------


def post(port: int, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        conn.request(
            "POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else {}
    finally:
        conn.close()


def in_parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    with concurrent.futures.ThreadPoolExecutor(CONCURRENCY) as pool:
        return list(pool.map(lambda call: call(), calls))


def register_users(port: int) -> None:
    def register(i: int) -> Callable[[], None]:
        def call() -> None:
            body = {"email": f"bench-{i}@example.com", "password": PASSWORD}
            status, answer = post(port, "/api/v5/auth/register", body)
            if status != 201:
                raise RuntimeError(f"register bench-{i}: {status} {answer}")

        return call

    in_parallel([register(i) for i in range(USERS)])


def log_in(port: int, count: int) -> list[str]:
    """``count`` fresh token pairs, as "access refresh" lines."""

    def login(i: int) -> Callable[[], str]:
        def call() -> str:
            body = {"email": f"bench-{i % USERS}@example.com", "password": PASSWORD}
            status, answer = post(port, "/api/v5/auth/login", body)
            if status != 200:
                raise RuntimeError(f"login bench-{i}: {status} {answer}")
            return f"{answer['access']} {answer['refresh']}"

        return call

    return list(in_parallel([login(i) for i in range(count)]))


# --- the loads: logins from this process, me and refresh from wrk -------------------------------


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(
            "bench/auth.py needs wrk (https://github.com/wg/wrk), a C load generator light enough"
            " to share 2 cores with the servers. Install it: `apt-get install wrk` (Debian,"
            " Ubuntu), `brew install wrk` (macOS), or build it from source."
        )
    return found


@dataclass
class Server:
    config: Config
    port: int
    procs: list[subprocess.Popen[bytes]]

    @property
    def pgids(self) -> set[int]:
        return {proc.pid for proc in self.procs}  # each was started in a session of its own


@dataclass
class Round:
    """One run of a load: its counts, its latency histogram (microseconds -> count), its CPU."""

    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    histogram: dict[int, int]
    cpu: CpuWindow

    def other_cores(self) -> float:
        return self.cpu.other_s / self.cpu.wall_s if self.cpu.wall_s else 0.0


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
    server_ms_per_request: float
    client_cores: float
    other_cores: float
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors


def percentile(histogram: dict[int, int], fraction: float) -> float:
    """The smallest recorded value with at least ``fraction`` of all values at or below it."""
    total = sum(histogram.values())
    if not total:
        return float("nan")
    wanted, seen = max(1, round(fraction * total)), 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= wanted:
            return float(value)
    return float(max(histogram))


def combine(config: str, endpoint: str, rounds: list[Round]) -> Measurement:
    """One measurement from the rounds: rates over the summed time, merged latencies."""
    histogram: dict[int, int] = {}
    for r in rounds:
        for value, count in r.histogram.items():
            histogram[value] = histogram.get(value, 0) + count
    done = sum(r.requests for r in rounds)
    elapsed = sum(r.seconds for r in rounds)
    wall = sum(r.cpu.wall_s for r in rounds)
    server = sum(r.cpu.server_s for r in rounds)
    notes: dict[str, Any] = {}
    if len(rounds) > 1:
        notes["req/s by round"] = [round(r.requests / r.seconds, 1) for r in rounds]
    per_process = [sum(x) for x in zip(*(r.cpu.per_process for r in rounds), strict=False)]
    if len(per_process) > 1 and server > 0:
        notes["server CPU by process %"] = [round(100 * x / server) for x in per_process]
    return Measurement(
        config=config,
        endpoint=endpoint,
        requests=done,
        seconds=round(elapsed, 2),
        rate=done / elapsed if elapsed else float("nan"),
        p50_ms=percentile(histogram, 0.50) / 1000,
        p99_ms=percentile(histogram, 0.99) / 1000,
        non2xx=sum(r.non2xx for r in rounds),
        socket_errors=sum(r.socket_errors for r in rounds),
        server_ms_per_request=1000 * server / done if done else float("nan"),
        client_cores=sum(r.cpu.client_s for r in rounds) / wall,
        other_cores=sum(r.cpu.other_s for r in rounds) / wall,
        notes=notes,
    )


class Driver:
    """Runs the loads: wrk runs, token pairs for them (per app), waiting for a quiet machine."""

    def __init__(self, tmp: Path, quiet_wait: float = 0.0) -> None:
        self.tmp = tmp
        self.quiet_wait = quiet_wait  # --wait-quiet
        self.waited = 0.0
        self.retries = 0
        self.script = tmp / "auth.lua"
        self.script.write_text(WRK_SCRIPT)
        self.pairs: dict[str, list[str]] = {"platform": [], "comparison": []}

    def run(self, server: Server, mode: str, seconds: float, tokens: list[str]) -> Round:
        """One wrk run of ``mode`` (me or refresh), a token pair per connection."""
        out = self.tmp / f"wrk-{mode}.json"
        token_file = self.tmp / f"tokens-{mode}.txt"
        token_file.write_text("".join(line + "\n" for line in tokens))
        env = {**os.environ, "BENCH_MODE": mode, "BENCH_OUT": str(out)}
        env["BENCH_TOKENS"] = str(token_file)
        argv = [
            wrk_path(),
            f"-t{CONCURRENCY}",
            f"-c{CONCURRENCY}",
            f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds
            f"--timeout={WRK_TIMEOUT}",
            "-s",
            str(self.script),
            f"http://{HOST}:{server.port}/",
        ]
        with cpu_window(server.pgids) as window:
            subprocess.run(
                argv, env=env, check=True, stdout=subprocess.DEVNULL, timeout=seconds + 60
            )
        result = json.loads(out.read_text())
        wait_idle(server.pgids)  # requests cut off at the end must not run into the next load
        return Round(
            requests=result["requests"],
            seconds=result["duration_us"] / 1e6,
            non2xx=result["non2xx"],
            socket_errors=sum(result[k] for k in ("connect", "read", "write", "timeout")),
            histogram={value: count for value, count in result["latency_us"]},
            cpu=window,
        )

    def quiet(self) -> None:
        """Before a measurement: wait for other work on the machine (--wait-quiet)."""
        if self.quiet_wait > 0:
            self.waited += wait_quiet(self.quiet_wait)

    def clean(self, measure: Callable[[], T], other_cores: Callable[[T], float]) -> T:
        """``measure()``; with --wait-quiet, after waiting for quiet, and again while others took
        more than RETRY_OTHER_CORES during it (CLEAN_TRIES in all), keeping the cleanest try.
        """
        best: T | None = None
        tries = CLEAN_TRIES if self.quiet_wait > 0 else 1
        for attempt in range(tries):
            self.quiet()
            result = measure()
            if best is None or other_cores(result) < other_cores(best):
                best = result
            if other_cores(best) <= RETRY_OTHER_CORES or attempt == tries - 1:
                break
            self.retries += 1
        assert best is not None
        return best

    def fresh(self, server: Server, count: int) -> list[str]:
        """``count`` token pairs never used for a refresh (logging in more if short)."""
        pool = self.pairs[server.config.app]
        if len(pool) < count:
            pool += log_in(server.port, count - len(pool))
        taken, pool[:] = pool[:count], pool[count:]
        return taken


def login_round(server: Server, per_connection: int, deadline_s: float) -> tuple[Round, list[str]]:
    """Every connection logs in ``per_connection`` times in a row; timed until the last answer.

    A fixed amount of work, not a fixed time: a login takes up to seconds at concurrency 16,
    so a timed run would cut off up to 16 of them (whole waves of them under daphne, which
    works on all 16 at once), and those would be neither counted nor free. Connections stop
    early, uncounted work and all, only if ``deadline_s`` passes.
    """
    barrier = threading.Barrier(CONCURRENCY)
    latencies: list[float] = []
    ends: list[float] = []
    statuses: list[int] = []
    socket_errors = [0]
    pairs: list[str] = []
    headers = {"Content-Type": "application/json"}
    started = [0.0]

    def connection(index: int) -> None:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=120)
        if barrier.wait() == 0:
            started[0] = time.perf_counter()
        stop_at = time.perf_counter() + deadline_s
        try:
            for number in range(per_connection):
                if time.perf_counter() > stop_at:
                    return
                user = (index + number * CONCURRENCY) % USERS
                body = json.dumps({"email": f"bench-{user}@example.com", "password": PASSWORD})
                sent = time.perf_counter()
                try:
                    # http.client reconnects by itself after a `Connection: close` (gunicorn)
                    conn.request("POST", "/api/v5/auth/login", body=body, headers=headers)
                    response = conn.getresponse()
                    raw = response.read()
                except (OSError, http.client.HTTPException):
                    socket_errors[0] += 1
                    conn.close()
                    continue
                done = time.perf_counter()
                latencies.append(done - sent)
                ends.append(done)
                statuses.append(response.status)
                if response.status == 200:
                    answer = json.loads(raw)
                    pairs.append(f"{answer['access']} {answer['refresh']}")
        finally:
            conn.close()

    workers = [threading.Thread(target=connection, args=(i,)) for i in range(CONCURRENCY)]
    with cpu_window(server.pgids, own_cpu) as window:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    histogram: dict[int, int] = {}
    for latency in latencies:
        micros = round(latency * 1e6)
        histogram[micros] = histogram.get(micros, 0) + 1
    measured = Round(
        requests=len(latencies),
        seconds=(max(ends) - started[0]) if ends else float("nan"),
        non2xx=sum(1 for status in statuses if not 200 <= status <= 299),
        socket_errors=socket_errors[0],
        histogram=histogram,
        cpu=window,
    )
    return measured, pairs


def measure_login(driver: Driver, server: Server, seconds: float, bound: float) -> Measurement:
    """About ``seconds`` of logins at concurrency 16, after 2 logins per core to warm up.

    Each connection logs in as many times as the Argon2id bound allows in ``seconds``.
    """
    driver.pairs[server.config.app] += log_in(server.port, 2 * CORES)
    per_connection = max(1, math.ceil(bound * seconds / CONCURRENCY))

    def measure() -> Round:
        measured, pairs = login_round(server, per_connection, deadline_s=3 * seconds)
        driver.pairs[server.config.app] += pairs  # sessions for the me and refresh loads
        return measured

    measured = driver.clean(measure, Round.other_cores)
    result = combine(server.config.key, "login", [measured])
    result.notes["logins per connection"] = per_connection
    return result


def measure_rounds(
    driver: Driver, servers: list[Server], endpoint: str, seconds: float, warm_up: float
) -> list[Measurement]:
    """``endpoint`` on every server: a warm-up each, then rounds taking turns.

    The servers are all up but only one is loaded at a time; each round goes through them
    in the opposite order to the one before, so a burst of other load on the machine hits
    them alike. Refresh chains are single-use, so every run gets fresh token pairs; the me
    load reuses its access tokens.
    """

    def tokens(server: Server) -> list[str]:
        if endpoint == "me":
            pool = driver.pairs[server.config.app]
            if len(pool) < CONCURRENCY:
                pool += log_in(server.port, CONCURRENCY - len(pool))
            return pool[:CONCURRENCY]
        return driver.fresh(server, CONCURRENCY)

    for server in servers:
        driver.run(server, endpoint, warm_up, tokens(server))
    rounds: dict[str, list[Round]] = {server.config.key: [] for server in servers}
    for number in range(ROUNDS):
        for server in servers if number % 2 == 0 else servers[::-1]:

            def measure(server: Server = server) -> Round:
                return driver.run(server, endpoint, seconds / ROUNDS, tokens(server))

            rounds[server.config.key].append(driver.clean(measure, Round.other_cores))
    return [combine(key, endpoint, measured) for key, measured in rounds.items()]


# --- the bars ----------------------------------------------------------------------------------


def rate_of(results: list[Measurement], config: str, endpoint: str) -> float | None:
    for r in results:
        if r.config == config and r.endpoint == endpoint:
            return r.rate
    return None


def bars(results: list[Measurement], bounds: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    logins = {r.config: r for r in results if r.endpoint == "login"}
    for config, argon2 in bounds.items():
        login = logins.get(config)
        if login is None or not config.startswith("platform"):
            continue
        ratio = login.rate / argon2["bound"]
        checks.append(
            {
                "name": f"login, {config}: {login.rate:.2f}/s vs the Argon2id bound"
                f" {argon2['bound']:.2f}/s (CPU per login {login.server_ms_per_request:.0f} ms,"
                f" per verification {argon2['cpu_ms']:.0f} ms)",
                "value": ratio,
                "minimum": LOGIN_BAR,
                "passed": ratio >= LOGIN_BAR,
            }
        )
    pairs = [
        ("platform-daphne-1", "comparison-daphne-1", ME_REFRESH_DAPHNE_BAR),
        (f"platform-percore-{CORES}", f"comparison-gunicorn-{CORES}", ME_REFRESH_PER_CORE_BAR),
    ]
    if CORES > 1:  # one daphne per core is a second way to use every core
        pairs.append(
            (f"platform-daphne-{CORES}", f"comparison-gunicorn-{CORES}", ME_REFRESH_PER_CORE_BAR)
        )
    for endpoint in ("me", "refresh"):
        for ours, theirs, minimum in pairs:
            mine, other = rate_of(results, ours, endpoint), rate_of(results, theirs, endpoint)
            if mine is None or other is None:
                continue
            ratio = mine / other
            checks.append(
                {
                    "name": f"{endpoint}, {ours} / {theirs}: {mine:,.0f} vs {other:,.0f} req/s",
                    "value": ratio,
                    "minimum": minimum,
                    "passed": ratio >= minimum,
                }
            )
    errors = sum(r.errors for r in results)
    checks.append(
        {
            "name": "every response 2xx, no socket errors or timeouts",
            "value": errors,
            "minimum": 0,
            "passed": errors == 0,
        }
    )
    return checks


# --- the run -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = common.cpu_model()
    wrk_version = subprocess.run(
        [wrk_path(), "-v"], capture_output=True, text=True, check=False
    ).stdout.split("\n")[0]
    return {
        "cpu": model,
        "cores": CORES,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "wrk": " ".join(wrk_version.split()[:2]),
        "load_1min": os.getloadavg()[0],  # other work on the machine skews the figures
    }


def revision() -> str:
    return common.revision("accounts", "coditect", "fdb_backend")


def command(args: argparse.Namespace) -> str:
    words = ["python", "bench/auth.py", "--seconds", f"{args.seconds:g}"]
    if args.warm_up != DEFAULT_WARM_UP:
        words += ["--warm-up", f"{args.warm_up:g}"]
    if args.bound_seconds != DEFAULT_BOUND_SECONDS:
        words += ["--bound-seconds", f"{args.bound_seconds:g}"]
    if args.wait_quiet:
        words += ["--wait-quiet", f"{args.wait_quiet:g}"]
    if args.only:
        words += ["--only", ",".join(args.only)]
    return shlex.join(words)


def progress(args: argparse.Namespace, started: float, what: str) -> None:
    if not args.json:
        print(f"  {time.monotonic() - started:4.0f} s  {what}", file=sys.stderr, flush=True)


def start_servers(chosen: list[Config]) -> list[Server]:
    """Start every configuration at once (idle servers cost nothing) and wait for them."""
    servers: list[Server] = []
    try:
        for config in chosen:
            port = comparison.free_port()
            servers.append(Server(config, port, []))
            servers[-1].procs = config.start(port)
        for server in servers:
            for proc in server.procs:
                comparison.wait_ready(server.port, 60, proc=proc)
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: list[Server]) -> None:
    for server in servers:
        for proc in server.procs:
            comparison.stop(proc)


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.datetime.now(datetime.UTC)
    wrk_path()  # fail before starting anything
    host = machine()
    clock = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="coditect-bench-auth-"))
    servers: list[Server] = []
    try:
        (tmp / "platform").mkdir()
        platform_app = Platform(tmp / "platform")
        platform_app.prepare()
        comparison.prepare(tmp / "comparison")
        ours = platform_app.argon2()
        theirs = Argon2Params(Django.time_cost, Django.memory_cost, Django.parallelism, 16, 16)
        chosen = [
            c
            for c in configs(platform_app, tmp / "comparison")
            if not args.only or c.key in args.only
        ]
        servers = start_servers(chosen)
        for app in ("comparison", "platform"):
            first = next((s for s in servers if s.config.app == app), None)
            if first is not None:
                register_users(first.port)
        progress(args, clock, f"{len(servers)} servers up, {USERS} users registered per app")

        driver = Driver(tmp, args.wait_quiet)
        results: list[Measurement] = []
        bounds: dict[str, dict[str, Any]] = {}
        single = {  # for the reading: what one verification at a time achieves
            app: verify_rate(params, 1, args.bound_seconds)
            for app, params in (("platform", ours), ("comparison", theirs))
        }
        for server in servers:
            params = ours if server.config.app == "platform" else theirs

            def bound(params: Argon2Params = params) -> dict[str, float]:
                return verify_rate(params, CORES, args.bound_seconds)

            before = driver.clean(bound, lambda rate: rate["other_cores"])
            results.append(measure_login(driver, server, args.seconds, before["rate"]))
            after = driver.clean(bound, lambda rate: rate["other_cores"])
            bounds[server.config.key] = bound_of(before, after)
            progress(args, clock, f"login, {server.config.label}")
        for endpoint in ("me", "refresh"):
            results += measure_rounds(driver, servers, endpoint, args.seconds, args.warm_up)
            progress(args, clock, endpoint)
    finally:
        stop_servers(servers)
        shutil.rmtree(tmp, ignore_errors=True)
    order = {c.key: i for i, c in enumerate(configs(platform_app, tmp))}
    results.sort(key=lambda r: (order[r.config], ENDPOINTS.index(r.endpoint)))
    return {
        "date": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "revision": revision(),
        "command": command(args),
        "duration_s": round(time.monotonic() - clock),
        "waited_for_quiet_s": round(driver.waited),
        "measurements_retried": driver.retries,
        "concurrency": CONCURRENCY,
        "argon2": {
            "platform": ours.label(),
            "comparison": theirs.label() + " (Django's defaults)",
            "threads": CORES,
            "one_thread": single,
        },
        "bounds": bounds,
        "results": [
            {**asdict(r), "errors": r.errors, "label": label_of(r.config)} for r in results
        ],
        "bars": bars(results, bounds),
        "machine": {**host, "load_1min_end": os.getloadavg()[0]},
    }


def label_of(key: str) -> str:
    app, server, count = key.split("-")
    if server == "percore":
        return f"{app}, per core ({count} REST + {count} daphne, nginx)"
    if server == "gunicorn":
        return f"{app}, gunicorn {count} sync"
    return f"{app}, {count} daphne"


# --- output ------------------------------------------------------------------------------------


def format_report(report: dict[str, Any]) -> str:
    header = (
        f"{'config':<30} {'endpoint':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
        f" {'srv cpu ms/req':>14} {'client cores':>12} {'other cores':>11}"
    )
    lines = [header]
    for r in report["results"]:
        lines.append(
            f"{r['label']:<30} {r['endpoint']:<8} {r['rate']:>8,.1f} {r['p50_ms']:>8.1f}"
            f" {r['p99_ms']:>8.1f} {r['errors']:>6} {r['server_ms_per_request']:>14.2f}"
            f" {r['client_cores']:>12.2f} {r['other_cores']:>11.2f}"
        )
        for name, value in r["notes"].items():
            lines.append(f"    {name}: {value}")
    a = report["argon2"]
    lines += [
        "",
        f"Argon2id bound: verifications/s of {a['threads']} threads verifying in parallel"
        " (argon2-cffi), just before and after each login run:",
    ]
    for config, b in report["bounds"].items():
        params = a[config.split("-")[0]].split(" (")[0]
        lines.append(
            f"  {label_of(config):<30} {params:<28} {b['before']:6.2f} {b['after']:6.2f}"
            f"  -> {b['bound']:.2f}/s, {b['cpu_ms']:.0f} ms CPU each"
            f" (other cores {b['other_cores']:.2f})"
        )
    one = ", ".join(f"{app} {r['rate']:.2f}/s" for app, r in a["one_thread"].items())
    lines.append(f"  one thread, for comparison: {one}")
    lines += ["", f"bars (concurrency {report['concurrency']}):"]
    for b in report["bars"]:
        verdict = "PASS" if b["passed"] else "FAIL"
        if isinstance(b["value"], float):
            lines.append(f"  {verdict}  {b['name']}: {b['value']:.2f} (>= {b['minimum']:.2f})")
        else:
            lines.append(f"  {verdict}  {b['name']}: {b['value']}")
    m = report["machine"]
    lines += [
        "",
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['wrk']}",
        f"         {m['platform']}, load average {m['load_1min']:.2f} at start,"
        f" {m['load_1min_end']:.2f} at end",
        f"date:    {report['date']}, revision {report['revision']}",
        f"took:    {report['duration_s']} s, of which {report['waited_for_quiet_s']} s waiting"
        " for other work on the machine to stop;"
        f" {report['measurements_retried']} measurements taken again for it",
        f"command: {report['command']}",
    ]
    return "\n".join(lines)


DEFAULT_SECONDS = 6.0
DEFAULT_WARM_UP = 1.0
DEFAULT_BOUND_SECONDS = 1.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="per measurement")
    parser.add_argument("--warm-up", type=float, default=DEFAULT_WARM_UP, help="before each")
    parser.add_argument(
        "--bound-seconds",
        type=float,
        default=DEFAULT_BOUND_SECONDS,
        help="per Argon2id rate (1 thread, 1 per core) before each login run",
    )
    parser.add_argument(
        "--only",
        type=lambda value: value.split(","),
        default=None,
        help="comma-separated configurations, e.g. platform-daphne-1,comparison-daphne-1",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement, wait up to this long for other work on the machine to"
        " stop (for shared machines)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    def interrupted(signum: int, frame: Any) -> None:
        # Once: a second signal (timeout(1) signals the child and then its group) must not
        # cut short the finally blocks that stop the servers.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # so every finally block stops its servers
    signal.signal(signal.SIGINT, interrupted)
    try:
        report = run(args)
    except KeyboardInterrupt:
        print("interrupted; servers stopped, temporary files removed", file=sys.stderr)
        return 130
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
