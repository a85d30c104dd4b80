"""The cost of the API's rate limits (issue 16 part 4) on its cheapest read: GET one session.

Run from the repository root::

    python bench/ratelimit.py [--rounds 5] [--seconds 8] [--connections 16] [--json]

Two platform daphne processes over one new embedded store: the platform as served
(``coditect.asgi:application``) and the same application with the rate limits taken out
(``bench/ratelimit_off.py``: every request allowed without spending, no RateLimit-* headers).
Limits are scaled by ``CODITECT_THROTTLE_SCALE=100000`` so none is reached: what is measured
is the counting (leases from storage, spending them in memory, the headers), with the default
``CODITECT_RATE_LEASE_MAX``. One user and 50 sessions are made through a third daphne (stopped
before the loads, so neither measured server did the set-up); then, in ``--rounds`` rounds,
each server in turn (the order alternating between rounds) gets a warm-up and a
``--seconds`` load of ``GET /api/v5/sessions/{id}`` (a random seeded id) on ``--connections``
keep-alive connections, only one server loaded at a time. The load is ``wrk`` when it is
installed, else this process's asyncio HTTP/1.1 client (``bench/load.py``'s ``Connection``).

Then, in a child process on the same store, the same GET through Django's test client (no
server, no load generator) with the limits on and off by turns, ``--in-process`` rounds of
1,000 requests each: CPU time per request, the cost measure a busy machine disturbs least.

With ``--callgrind N``, the same GET is also run under valgrind's callgrind, N and 2N times
after a warm-up, with the limits on and off: instructions per request, the same figure on a
busy machine as on an idle one.

Reported: requests/s of each run, min/median/max per variant, the cost (1 - with/without) of
each round and the median cost; the bar is a median cost of at most 10%. Also the server's CPU
time per request (from /proc) and its cost per round, which other load on the machine disturbs
far less than throughput, and the 1-minute load average before each run: on a shared machine
compare runs, not absolute figures.
This is a benchmark, not a test. See bench/README.md and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/ratelimit.py` puts bench/, not the root, first

from bench import common
from bench.comparison import run as comparison
from bench.load import Connection
from bench.sessions import Platform, call, create_sessions, register

HOST = "127.0.0.1"
SEEDED = 50
BAR = 0.10
VARIANTS = {"with": "coditect.asgi:application", "without": "bench.ratelimit_off:application"}

WRK_SCRIPT = """
local ids = {}
for line in io.lines(os.getenv("BENCH_IDS")) do ids[#ids + 1] = line end
local auth = {["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")}
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/api/v5/sessions/" .. ids[math.random(#ids)], auth)
end
done = function(summary, latency, requests)
  io.write(string.format('{"requests": %d, "seconds": %.6f, "errors": %d, "non2xx": %d}\\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def daphne(app: Platform, port: int, target: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), "--verbosity", "0"]
    return app.spawn(f"daphne-{port}", [*argv, target])


async def _python_load(
    port: int, token: str, ids: list[str], seconds: float, connections: int
) -> dict[str, Any]:
    done = errors = 0
    deadline = time.perf_counter() + seconds
    rng = random.Random(port)  # picks ids, not secrets

    async def one() -> None:
        nonlocal done, errors
        conn = Connection(port)
        while time.perf_counter() < deadline:
            status, _ = await conn.request(
                "GET", f"/api/v5/sessions/{rng.choice(ids)}", None, token
            )
            if status == 200:
                done += 1
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    return {"requests": done, "seconds": elapsed, "errors": errors, "non2xx": errors}


def load(
    tmp: Path, port: int, token: str, ids: list[str], seconds: float, connections: int
) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return asyncio.run(_python_load(port, token, ids, seconds, connections))
    script, ids_file = tmp / "get.lua", tmp / "ids.txt"
    script.write_text(WRK_SCRIPT)
    ids_file.write_text("\n".join(ids) + "\n")
    threads = min(connections, 2)
    duration = f"-d{max(1, round(seconds))}s"
    argv = [wrk, f"-t{threads}", f"-c{connections}", duration, "-s", str(script)]
    out = subprocess.run(
        [*argv, f"http://{HOST}:{port}/"],
        env={**os.environ, "BENCH_IDS": str(ids_file), "BENCH_TOKEN": token},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def _in_process_client(freeze: bool = False) -> tuple[Any, str, dict[str, Any], Any]:
    """In a child with the platform's settings: a test client, the path of one session, the
    bearer header, and a function that turns the rate limits on (True) or off (False)."""
    import logging

    import django

    django.setup()
    logging.disable(logging.INFO)
    if freeze:  # one rate-limit window however slowly this runs (under valgrind)
        import datetime

        import time_machine

        time_machine.travel(datetime.datetime.now(datetime.UTC), tick=False).start()
    from django.test import Client

    import accounts.authentication
    import coditect.middleware
    from accounts.ratelimit import RateLimit

    spend, of = accounts.authentication.rate_limit_spend, coditect.middleware.rate_limit_of
    allowed = RateLimit(allowed=True, limit=0, remaining=0, reset=0)

    def switch(on: bool) -> None:
        if on:
            accounts.authentication.rate_limit_spend = spend
            coditect.middleware.rate_limit_of = of
        else:
            accounts.authentication.rate_limit_spend = lambda **kwargs: allowed
            coditect.middleware.rate_limit_of = lambda request: None

    client = Client()
    email = f"bench-{os.getpid()}@example.com"
    answer = client.post(
        "/api/v5/auth/register",
        {"email": email, "password": "c0rrect-Battery-h0rse!x"},
        content_type="application/json",
    )
    auth: dict[str, Any] = {"HTTP_AUTHORIZATION": f"Bearer {answer.json()['access']}"}
    made = client.post(
        "/api/v5/sessions",
        {"name": "bench", "workspace_path": "/ws/bench"},
        content_type="application/json",
        **auth,
    )
    return client, f"/api/v5/sessions/{made.json()['id']}", auth, switch


def in_process(rounds: int, requests: int) -> dict[str, list[float]]:
    """CPU time per ``GET /api/v5/sessions/{id}`` through Django's test client (the whole
    middleware stack, no HTTP server), the rate limits on and taken out by turns (as
    bench/ratelimit_off.py does), ``rounds`` each."""
    client, path, auth, switch = _in_process_client()
    cpu: dict[str, list[float]] = {"with": [], "without": []}
    for round_no in range(rounds):
        for name in ("with", "without") if round_no % 2 == 0 else ("without", "with"):
            switch(name == "with")
            started = time.process_time()
            for _ in range(requests):
                response = client.get(path, **auth)
            cpu[name].append((time.process_time() - started) / requests * 1e6)
            assert response.status_code == 200, response.content
    return cpu


CALLGRIND_WARM_UP = 300  # requests before the measured ones: leases grown past what follows


def callgrind_child(variant: str, requests: int) -> None:
    """``CALLGRIND_WARM_UP`` then ``requests`` GETs with the limits on or off (under valgrind:
    the parent subtracts a run of N from a run of 2N, so set-up and warm-up cancel out)."""
    client, path, auth, switch = _in_process_client(freeze=True)
    switch(variant == "with")
    for _ in range(CALLGRIND_WARM_UP + requests):
        response = client.get(path, **auth)
    assert response.status_code == 200, response.content


def instructions_per_request(env: dict[str, str], requests: int) -> dict[str, float]:
    """Instructions per GET with the limits on and off: (run of 2N - run of N) / N, the four
    valgrind runs at once (each is mostly Django's start-up under valgrind)."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for variant in ("with", "without"):
            for count in (requests, 2 * requests):
                out = Path(tmp) / f"callgrind-{variant}-{count}.out"
                valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
                child = ["-m", "bench.ratelimit", "--callgrind-child", variant, str(count)]
                proc = subprocess.Popen(
                    [*valgrind, sys.executable, *child],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                runs[(variant, count)] = (proc, out)
        total = {}
        for key, (proc, out) in runs.items():
            _, stderr = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"callgrind run {key} failed:\n{stderr[-3000:]}")
            summary = re.search(rb"^summary: (\d+)", out.read_bytes(), re.MULTILINE)
            assert summary is not None
            total[key] = int(summary.group(1))
    return {
        variant: (total[(variant, 2 * requests)] - total[(variant, requests)]) / requests
        for variant in ("with", "without")
    }


def headers_of(port: int, token: str, session_id: str) -> dict[str, str]:
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(
            "GET", f"/api/v5/sessions/{session_id}", headers={"Authorization": f"Bearer {token}"}
        )
        response = conn.getresponse()
        response.read()
        return {k: v for k, v in response.getheaders() if k.lower().startswith("ratelimit")}
    finally:
        conn.close()


def run(args: argparse.Namespace) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ratelimit-") as tmpdir:
        tmp = Path(tmpdir)
        app = Platform(tmp)
        app.prepare()
        # The user and the sessions are made through a third server, stopped before the
        # loads: a server that hashed a password and served the creations answers the same GET
        # ~15% slower afterwards (measured), which would be charged to one variant.
        setup_port = comparison.free_port()
        setup = daphne(app, setup_port, VARIANTS["with"])
        try:
            common.wait_listening(setup_port, setup)
            token = register(setup_port, "bench-ratelimit@example.com")["access"]
            ids = create_sessions(setup_port, token, SEEDED)
        finally:
            comparison.stop(setup)
        ports = {name: comparison.free_port() for name in VARIANTS}
        procs = {name: daphne(app, ports[name], target) for name, target in VARIANTS.items()}
        try:
            for name, proc in procs.items():
                common.wait_listening(ports[name], proc)
            status, _ = call(ports["without"], "GET", f"/api/v5/sessions/{ids[0]}", None, token)
            assert status == 200, status
            seen = {name: headers_of(port, token, ids[0]) for name, port in ports.items()}
            assert seen["with"] and not seen["without"], seen
            for round_no in range(args.rounds):
                order = list(VARIANTS) if round_no % 2 == 0 else list(reversed(VARIANTS))
                for name in order:
                    load(tmp, ports[name], token, ids, args.warm_up, args.connections)
                    load_1min = os.getloadavg()[0]
                    cpu = cpu_seconds(procs[name].pid)
                    result = load(tmp, ports[name], token, ids, args.seconds, args.connections)
                    cpu = cpu_seconds(procs[name].pid) - cpu
                    rate = result["requests"] / result["seconds"]
                    cpu_us = cpu / max(1, result["requests"]) * 1e6
                    runs.append(
                        {"round": round_no, "variant": name, "rps": rate, "load_1min": load_1min}
                        | {"cpu_us": cpu_us, "errors": result["errors"], "non2xx": result["non2xx"]}
                    )
                    print(
                        f"round {round_no} {name:8s} {rate:8.1f} req/s {cpu_us:7.1f} us CPU/req",
                        file=sys.stderr,
                    )
        finally:
            for proc in procs.values():
                comparison.stop(proc)
        child = subprocess.run(
            [sys.executable, "-m", "bench.ratelimit", "--in-process-child", str(args.in_process)],
            cwd=ROOT,
            env=app.env | {"DJANGO_ALLOWED_HOSTS": "testserver", "DJANGO_LOG_LEVEL": "WARNING"},
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            raise RuntimeError(f"the in-process measure failed:\n{child.stderr[-3000:]}")
        inproc: dict[str, list[float]] = json.loads(child.stdout.strip().splitlines()[-1])
        instructions: dict[str, float] = {}
        if args.callgrind:
            child_env = app.env | {
                "DJANGO_ALLOWED_HOSTS": "testserver",
                "DJANGO_LOG_LEVEL": "WARNING",
                "CODITECT_STORAGE_URL": "embedded://" + str(tmp / "callgrind.sqlite3"),
                # The one registration hashes a password: cheaply, it is not what is measured.
                "CODITECT_ARGON2_TIME_COST": "1",
                "CODITECT_ARGON2_MEMORY_KIB": "8",
                "CODITECT_ARGON2_PARALLELISM": "1",
            }
            instructions = instructions_per_request(child_env, args.callgrind)
    summary: dict[str, Any] = {}
    for name in VARIANTS:
        rates = [r["rps"] for r in runs if r["variant"] == name]
        cpus = [r["cpu_us"] for r in runs if r["variant"] == name]
        summary[name] = {
            "min": min(rates),
            "median": statistics.median(rates),
            "max": max(rates),
            "cpu_us_min": min(cpus),
            "cpu_us_median": statistics.median(cpus),
            "cpu_us_max": max(cpus),
        }
    costs, cpu_costs = [], []
    for round_no in range(args.rounds):
        by = {r["variant"]: r for r in runs if r["round"] == round_no}
        costs.append(1 - by["with"]["rps"] / by["without"]["rps"])
        cpu_costs.append(by["with"]["cpu_us"] / by["without"]["cpu_us"] - 1)
    cost = statistics.median(costs)
    inproc_costs = [w / wo - 1 for w, wo in zip(inproc["with"], inproc["without"], strict=True)]
    return {
        "in_process_cpu_us": {
            name: {"min": min(v), "median": statistics.median(v), "max": max(v)}
            for name, v in inproc.items()
        },
        "in_process_round_costs": inproc_costs,
        "in_process_cost_of_minimums": min(inproc["with"]) / min(inproc["without"]) - 1,
        "instructions_per_request": instructions,
        "runs": runs,
        "summary": summary,
        "round_costs": costs,
        "median_cost": cost,
        "round_cpu_costs": cpu_costs,
        "median_cpu_cost": statistics.median(cpu_costs),
        "cost_of_medians": 1 - summary["with"]["median"] / summary["without"]["median"],
        "bar": {"max_cost": BAR, "pass": cost <= BAR},
        "errors": sum(r["errors"] + r["non2xx"] for r in runs),
        "headers": seen["with"],
        "load_generator": "wrk" if shutil.which("wrk") else "python asyncio (bench/load.py)",
        "machine": {
            "cpu": common.cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "revision": common.revision("accounts", "coditect", "bench"),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python bench/ratelimit.py " + shlex.join(sys.argv[1:]),
    }


def format_report(report: dict[str, Any]) -> str:
    lines = ["GET /api/v5/sessions/{id}: req/s and server CPU us/request (min / median / max):"]
    for name, s in report["summary"].items():
        lines.append(
            f"  {name:8s} {s['min']:8.1f} {s['median']:8.1f} {s['max']:8.1f} req/s   "
            f"{s['cpu_us_min']:7.1f} {s['cpu_us_median']:7.1f} {s['cpu_us_max']:7.1f} us"
        )
    costs = ", ".join(f"{c * 100:+.1f}%" for c in report["round_costs"])
    lines.append(f"throughput cost per round: {costs}")
    cpu_costs = ", ".join(f"{c * 100:+.1f}%" for c in report["round_cpu_costs"])
    lines.append(
        f"CPU per request cost per round: {cpu_costs} "
        f"(median {report['median_cpu_cost'] * 100:+.1f}%)"
    )
    verdict = "PASS" if report["bar"]["pass"] else "FAIL"
    lines.append(
        f"median cost {report['median_cost'] * 100:+.1f}% (bar <= {BAR * 100:.0f}%): {verdict}; "
        f"cost of the medians {report['cost_of_medians'] * 100:+.1f}%"
    )
    lines.append("in process (test client), CPU us/request (min / median / max):")
    for name, v in report["in_process_cpu_us"].items():
        lines.append(f"  {name:8s} {v['min']:7.1f} {v['median']:7.1f} {v['max']:7.1f}")
    inproc = ", ".join(f"{c * 100:+.1f}%" for c in report["in_process_round_costs"])
    lines.append(
        f"in-process cost per round: {inproc}; "
        f"of the minimums {report['in_process_cost_of_minimums'] * 100:+.1f}%"
    )
    ins = report["instructions_per_request"]
    if ins:
        lines.append(
            f"instructions per request (callgrind): with {ins['with']:,.0f}, without "
            f"{ins['without']:,.0f}: {(ins['with'] / ins['without'] - 1) * 100:+.1f}%"
        )
    loads = ", ".join(f"{r['load_1min']:.2f}" for r in report["runs"])
    lines.append(f"1-min load before each run: {loads}")
    lines.append(f"errors: {report['errors']}; headers seen: {report['headers']}")
    m = report["machine"]
    lines.append(f"load: {report['load_generator']}; {m['cpu']}, {m['cores']} cores, {m['python']}")
    lines.append(f"{report['date']}, revision {report['revision']}; {report['command']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warm-up", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--in-process", type=int, default=8, help="rounds of the in-process CPU measure"
    )
    parser.add_argument(
        "--callgrind",
        type=int,
        default=0,
        metavar="N",
        help="also count instructions per request under valgrind (N and 2N requests; slow)",
    )
    parser.add_argument("--in-process-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--callgrind-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.in_process_child is not None:
        print(json.dumps(in_process(args.in_process_child, 1000)))
        return 0
    if args.callgrind_child is not None:
        callgrind_child(args.callgrind_child[0], int(args.callgrind_child[1]))
        return 0
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if report["bar"]["pass"] and not report["errors"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
