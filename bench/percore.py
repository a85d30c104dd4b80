"""Per-core and one-process throughput with the spread (issue 19): the platform against the
comparison app, every comparison run several times, interleaved.

Run from the repository root::

    python bench/percore.py [--runs 5] [--seconds 5] [--concurrency 16 64] [--json]
    python bench/percore.py --profile 10     # also: a CPU profile of each endpoint (--endpoints)

Servers, all up for the whole run over temporary stores:

- **platform, per core**: ``coditect.percore`` (docs/operations.md): a REST process per core
  (uvicorn and the API lane) and a daphne per core behind nginx balancing each request;
- **comparison, gunicorn per core**: bench/comparison (DRF + simplejwt + ORM) under gunicorn
  with one sync worker per core;
- **platform, 1 daphne** and **comparison, 1 daphne**.

Each run measures, for every endpoint (GET one session, list of 20, create, PATCH, refresh
rotation) and every concurrency (wrk keep-alive connections, 16 and 64 by default), the
platform and its counterpart one after the other, the order flipped every run; then logins of
the platform (per core, and 1 daphne) against the Argon2id bound measured right before and
after. Every measurement notes how busy the machine was (all cores, /proc/stat) and how many
cores the server used; one with the machine under 90% busy is flagged (a server that leaves a
core idle). The report gives min / median / max per figure and the bars on the minimum of the
runs' ratios, PASS or FAIL each. A benchmark, not a test: docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import os
import pstats
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/percore.py` puts bench/, not the root, first

from bench import auth, common, sessions
from bench.comparison import run as comparison
from coditect.percore import PerCore

HOST = "127.0.0.1"
CORES = auth.CORES
ENDPOINTS = ("get", "list", "create", "patch", "refresh")
REDIS_URL = "redis://127.0.0.1:6379/7"
BUSY_FLAG = 0.90  # a measurement with the machine less busy than this is flagged
PER_CORE_BAR = 1.5  # platform per core / comparison gunicorn per core, every endpoint
DAPHNE_BARS = {"get": 3.0, "list": 3.0, "create": 2.0, "patch": 2.0, "refresh": 2.0}
LOGIN_BAR = auth.LOGIN_BAR
WRK_TIMEOUT = "10s"
PAIRS = {  # pair name -> (platform config, comparison config)
    "per core": ("platform-percore", "comparison-gunicorn"),
    "1 daphne": ("platform-daphne-1", "comparison-daphne-1"),
}
LABELS = {
    "platform-percore": f"platform, per core ({CORES} REST + {CORES} daphne, nginx)",
    "comparison-gunicorn": f"comparison, gunicorn {CORES} sync",
    "platform-daphne-1": "platform, 1 daphne",
    "comparison-daphne-1": "comparison, 1 daphne",
}


@dataclass
class Target:
    key: str
    app: str  # "platform" or "comparison"
    port: int
    procs: list[subprocess.Popen[bytes]]

    @property
    def pgids(self) -> set[int]:
        return {proc.pid for proc in self.procs}

    def as_auth(self) -> auth.Server:
        config = auth.Config(self.key, self.app, LABELS[self.key], lambda port: [])
        return auth.Server(config, self.port, self.procs)


@dataclass
class Sample:
    run: int
    config: str
    endpoint: str
    concurrency: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    busy: float  # the machine: busy CPU time / (wall time x cores)
    server_cores: float
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return self.busy < BUSY_FLAG


class Bench:
    def __init__(self, tmp: Path, args: argparse.Namespace) -> None:
        self.tmp = tmp
        self.args = args
        self.targets: dict[str, Target] = {}
        self.deployment: PerCore | None = None
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, Path] = {}
        self.samples: list[Sample] = []
        self.logins: list[dict[str, Any]] = []
        (tmp / "sessions.lua").write_text(sessions.WRK_SCRIPT)
        (tmp / "auth.lua").write_text(auth.WRK_SCRIPT)

    # --- servers --------------------------------------------------------------------------

    def start(self) -> None:
        platform = sessions.Platform(self.tmp / "platform")
        platform.tmp.mkdir()
        platform.prepare()
        self.platform = platform
        comparison.prepare(self.tmp / "comparison")
        db_dir = self.tmp / "comparison"
        redis_error = common.redis_flush(REDIS_URL)
        env = dict(platform.env)
        if redis_error is None:
            env["REDIS_URL"] = REDIS_URL
        else:
            env.pop("REDIS_URL", None)
        self.redis = redis_error or REDIS_URL
        self.deployment = PerCore(
            processes=CORES, port=comparison.free_port(), run_dir=self.tmp / "percore", env=env
        )
        self.deployment.start()
        deployment = self.deployment
        self.targets["platform-percore"] = Target(
            "platform-percore", "platform", deployment.port, [c.proc for c in deployment.children]
        )
        starts = {
            "comparison-gunicorn": (
                "comparison",
                lambda port: comparison.start_gunicorn(port, CORES, db_dir=db_dir),
            ),
            "platform-daphne-1": ("platform", platform.daphne),
            "comparison-daphne-1": (
                "comparison",
                lambda port: comparison.start_daphne(port, db_dir=db_dir),
            ),
        }
        for key, (app, start) in starts.items():
            port = comparison.free_port()
            self.targets[key] = Target(key, app, port, [start(port)])
        for target in self.targets.values():
            comparison.wait_ready(target.port, 60, proc=target.procs[0])
        for app, key in (("platform", "platform-percore"), ("comparison", "comparison-gunicorn")):
            port = self.targets[key].port
            auth.register_users(port)
            self.renew(app)
            ids = sessions.create_sessions(port, self.tokens[app], sessions.SEEDED)
            self.ids[app] = self.tmp / f"ids-{app}.txt"
            self.ids[app].write_text("".join(i + "\n" for i in ids))

    def renew(self, app: str) -> None:
        """A fresh access token of bench-0 (who owns the seeded sessions) for the wrk loads."""
        key = "platform-percore" if app == "platform" else "comparison-gunicorn"
        self.tokens[app] = auth.log_in(self.targets[key].port, 1)[0].split()[0]

    def stop(self) -> None:
        for key, target in self.targets.items():
            if key != "platform-percore":
                for proc in target.procs:
                    comparison.stop(proc)
        if self.deployment is not None:
            self.deployment.stop()

    # --- loads ----------------------------------------------------------------------------

    def wrk(self, target: Target, endpoint: str, concurrency: int, seconds: float) -> Sample:
        out = self.tmp / "wrk-out.json"
        out.unlink(missing_ok=True)
        env = {**os.environ, "BENCH_MODE": endpoint, "BENCH_OUT": str(out)}
        if endpoint == "refresh":
            pairs = auth.log_in(target.port, concurrency)  # fresh chains: each is single-use
            token_file = self.tmp / "tokens.txt"
            token_file.write_text("".join(line + "\n" for line in pairs))
            env["BENCH_TOKENS"] = str(token_file)
            script, threads = self.tmp / "auth.lua", concurrency  # a chain per connection
        else:
            env.update(
                BENCH_TOKEN=self.tokens[target.app],
                BENCH_IDS=str(self.ids[target.app]),
                BENCH_PATH="/api/v5/sessions?limit=20",
            )
            script, threads = self.tmp / "sessions.lua", min(concurrency, 16)
        argv = [
            auth.wrk_path(),
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={WRK_TIMEOUT}",
            "-s",
            str(script),
            f"http://{HOST}:{target.port}/",
        ]
        busy = auth.machine_busy()
        with auth.cpu_window(target.pgids) as window:
            subprocess.run(
                argv, env=env, check=True, stdout=subprocess.DEVNULL, timeout=seconds + 60
            )
        busy = (auth.machine_busy() - busy) / (window.wall_s * CORES)
        auth.wait_idle(target.pgids)
        result = json.loads(out.read_text())
        histogram = {value: count for value, count in result["latency_us"]}
        elapsed = result["duration_us"] / 1e6
        errors = result["non2xx"] + result.get("socket_errors", 0)
        errors += sum(result.get(k, 0) for k in ("connect", "read", "write", "timeout"))
        notes: dict[str, Any] = {}
        if len(window.per_process) > 1 and window.server_s > 0:
            notes["server CPU by process %"] = [
                round(100 * x / window.server_s) for x in window.per_process if x > 0.01
            ]
        return Sample(
            run=0,
            config=target.key,
            endpoint=endpoint,
            concurrency=concurrency,
            rate=result["requests"] / elapsed if elapsed else float("nan"),
            p50_ms=auth.percentile(histogram, 0.50) / 1000,
            p99_ms=auth.percentile(histogram, 0.99) / 1000,
            errors=errors,
            busy=busy,
            server_cores=window.server_s / window.wall_s,
            notes=notes,
        )

    def measure(self, run: int, target: Target, endpoint: str, concurrency: int) -> None:
        # Refresh needs fresh chains (logins, which the comparison's hash makes slow); the
        # loads before it have warmed every server up already.
        if self.args.warm_up > 0 and endpoint != "refresh":
            self.wrk(target, endpoint, concurrency, self.args.warm_up)
        sample = self.wrk(target, endpoint, concurrency, self.args.seconds)
        sample.run = run
        self.samples.append(sample)

    def login(self, run: int, key: str, params: auth.Argon2Params) -> None:
        """Logins at concurrency 16 against the Argon2id bound measured just before and after."""
        target = self.targets[key].as_auth()
        before = auth.verify_rate(params, CORES, 1.5)
        driver = auth.Driver(self.tmp)
        measured = auth.measure_login(driver, target, self.args.login_seconds, before["rate"])
        after = auth.verify_rate(params, CORES, 1.5)
        bound = auth.bound_of(before, after)
        self.logins.append(
            {
                "run": run,
                "config": key,
                "rate": measured.rate,
                "bound": bound["bound"],
                "ratio": measured.rate / bound["bound"],
                "errors": measured.errors,
                "p99_ms": measured.p99_ms,
            }
        )

    def run(self, progress: Any) -> None:
        params = self.platform_argon2()
        for run in range(self.args.runs):
            for endpoint in self.args.endpoints:
                if endpoint != "refresh":
                    self.renew("platform")
                    self.renew("comparison")
                for concurrency in self.args.concurrency:
                    for ours, theirs in PAIRS.values():
                        order = (ours, theirs) if run % 2 == 0 else (theirs, ours)
                        for key in order:
                            self.measure(run, self.targets[key], endpoint, concurrency)
                progress(f"run {run + 1}: {endpoint}")
            if not self.args.no_login:
                for key in ("platform-percore", "platform-daphne-1"):
                    self.login(run, key, params)
                progress(f"run {run + 1}: login")

    def platform_argon2(self) -> auth.Argon2Params:
        platform = auth.Platform(self.tmp / "platform")
        platform.env = self.platform.env
        return platform.argon2()

    # --- profile --------------------------------------------------------------------------

    def profile(self, seconds: float, endpoints: list[str]) -> dict[str, Any]:
        """CPU time of the per-core deployment's REST processes during each of ``endpoints``
        at concurrency 16, by owner: a second deployment over the same store whose REST processes
        are gunicorn workers (the same middleware and views as the deployment's uvicorn, the
        sync chain of the API lane) running cProfile in every thread on the thread's CPU clock
        (bench/profile_gunicorn.py)."""
        found: dict[str, Any] = {}
        for endpoint in endpoints:
            out = self.tmp / f"profile-{endpoint}"
            out.mkdir()
            env = {**self.platform.env, "CODITECT_BENCH_PROFILE_DIR": str(out)}
            deployment = PerCore(
                processes=CORES,
                port=comparison.free_port(),
                run_dir=self.tmp / f"percore-profile-{endpoint}",
                env=env,
                api_server="gunicorn",
                api_args=("-c", str(ROOT / "bench" / "profile_gunicorn.py")),
            )
            deployment.start()
            try:
                target = Target("platform-percore", "platform", deployment.port, [])
                target.procs = [c.proc for c in deployment.children]
                self.renew("platform")
                self.wrk(target, endpoint, 16, 1)  # warm-up
                sample = self.wrk(target, endpoint, 16, seconds)
            finally:
                deployment.stop()  # the workers write their profiles as they exit
            stats = None
            for path in sorted(out.glob("*.pstats")):
                if stats is None:
                    stats = pstats.Stats(str(path))
                else:
                    stats.add(str(path))
            if stats is None:
                found[endpoint] = {"rate": sample.rate, "skipped": "no profile written"}
                continue
            found[endpoint] = {"rate": sample.rate, **classify(stats)}
        return found


# --- profile classification -------------------------------------------------------------------

OURS = ("accounts", "core", "workspaces", "realtime", "operations", "coditect", "fdb_backend")
FuncKey = tuple[str, int, str]
# Blocking waits: the engine's checkpoint thread between checkpoints (threading's Event.wait),
# gthread's pool threads waiting for work. They showed seconds of "CPU" on the loaded VM
# (4.06 s in 84 timed waits of the checkpoint thread), which is not request work: reported
# apart, outside the shares.
WAITS = (
    "<method 'acquire' of '_thread.lock' objects>",
    "<method 'get' of '_queue.SimpleQueue' objects>",
)


def direct_owner(key: FuncKey) -> str | None:
    """Whose code a profiled function is, or None (standard library, other packages, C
    builtins other than sqlite3's): those count for their heaviest caller."""
    path, _, name = key
    if path == "~" and name in WAITS:
        return "waiting"
    if path == "~":
        return "SQLite" if "sqlite3." in name else None
    if "/rest_framework/" in path:
        return "DRF"
    if "/django/" in path:
        return "Django"
    if "/gunicorn/" in path:
        return "gunicorn"
    if "site-packages" not in path and any(f"/{p}/" in path for p in OURS):
        return "ours"
    return None


def classify(stats: Any) -> dict[str, Any]:
    """Shares of the REST processes' thread CPU time (cProfile's own time per function, each
    function to its owner; a function of nobody's to its heaviest caller's owner)."""
    table: dict[FuncKey, Any] = stats.stats
    memo: dict[FuncKey, str] = {}

    def owner_of(key: FuncKey, depth: int = 0) -> str:
        if key in memo:
            return memo[key]
        found = direct_owner(key)
        if found is None:
            callers = table.get(key, (0, 0, 0, 0, {}))[4]
            heaviest = max(callers.items(), key=lambda kv: kv[1][3], default=None)
            found = "other" if heaviest is None or depth > 30 else owner_of(heaviest[0], depth + 1)
        memo[key] = found
        return found

    shares: collections.Counter[str] = collections.Counter()
    ours: collections.Counter[str] = collections.Counter()
    heaviest: collections.Counter[str] = collections.Counter()
    for key, (_, _, own, _, _) in table.items():
        kind = owner_of(key)
        shares[kind] += own
        path, line, name = key
        short = name if path == "~" else f"{name} ({'/'.join(Path(path).parts[-2:])}:{line})"
        if kind != "waiting":
            heaviest[f"{short} [{kind}]"] += own
        if direct_owner(key) in ("ours", "SQLite"):
            path, line, name = key
            where = name if path == "~" else f"{name} ({Path(path).relative_to(ROOT)}:{line})"
            ours[where] += own
    waiting = shares.pop("waiting", 0.0)
    total = sum(shares.values())
    return {
        "cpu_s": round(total, 2),
        "waiting_s": round(waiting, 2),
        "share %": {k: round(100 * v / total, 1) for k, v in shares.most_common() if total},
        "ours, own time %": [
            (where, round(100 * t / total, 1)) for where, t in ours.most_common(10) if total
        ],
        "heaviest, own time %": [
            (where, round(100 * t / total, 1)) for where, t in heaviest.most_common(12) if total
        ],
    }


# --- report -----------------------------------------------------------------------------------


def spread(values: list[float]) -> tuple[float, float, float]:
    return min(values), statistics.median(values), max(values)


def summarise(bench: Bench) -> dict[str, Any]:
    rows = []
    groups: dict[tuple[str, str, int], list[Sample]] = collections.defaultdict(list)
    for s in bench.samples:
        groups[(s.config, s.endpoint, s.concurrency)].append(s)
    for (config, endpoint, concurrency), found in groups.items():
        rows.append(
            {
                "config": config,
                "endpoint": endpoint,
                "concurrency": concurrency,
                "rate": spread([s.rate for s in found]),
                "p99_ms_median": statistics.median(s.p99_ms for s in found),
                "busy_min": min(s.busy for s in found),
                "server_cores_median": statistics.median(s.server_cores for s in found),
                "flagged_runs": [s.run + 1 for s in found if s.flagged],
                "errors": sum(s.errors for s in found),
            }
        )
    bars = []
    for pair, (ours, theirs) in PAIRS.items():
        for endpoint in bench.args.endpoints:
            minimum = PER_CORE_BAR if pair == "per core" else DAPHNE_BARS[endpoint]
            for concurrency in bench.args.concurrency:
                mine = {s.run: s for s in groups.get((ours, endpoint, concurrency), [])}
                other = {s.run: s for s in groups.get((theirs, endpoint, concurrency), [])}
                ratios = [mine[r].rate / other[r].rate for r in sorted(mine) if r in other]
                if not ratios:
                    continue
                low, middle, high = spread(ratios)
                bars.append(
                    {
                        "name": f"{pair}: {endpoint} at c{concurrency}, platform / comparison",
                        "ratios": [round(r, 2) for r in ratios],
                        "min": low,
                        "median": middle,
                        "max": high,
                        "minimum": minimum,
                        "passed": low >= minimum,
                    }
                )
    for key in ("platform-percore", "platform-daphne-1"):
        found_logins = [row for row in bench.logins if row["config"] == key]
        if found_logins:
            ratios = [row["ratio"] for row in found_logins]
            low, middle, high = spread(ratios)
            bars.append(
                {
                    "name": f"login, {LABELS[key]} / Argon2id bound",
                    "ratios": [round(r, 2) for r in ratios],
                    "min": low,
                    "median": middle,
                    "max": high,
                    "minimum": LOGIN_BAR,
                    "passed": low >= LOGIN_BAR,
                }
            )
    errors = sum(s.errors for s in bench.samples) + sum(r["errors"] for r in bench.logins)
    bars.append(
        {"name": "every response 2xx, no socket errors", "value": errors, "passed": errors == 0}
    )
    return {"rows": rows, "bars": bars}


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"{'config':<52} {'endpoint':<8} {'c':>3} {'req/s min / median / max':>28}"
        f" {'p99 ms':>8} {'server cores':>12} {'machine busy min':>16}  flagged runs"
    ]
    for row in sorted(report["rows"], key=lambda r: (r["endpoint"], r["concurrency"])):
        low, middle, high = row["rate"]
        flagged = ",".join(map(str, row["flagged_runs"])) or "-"
        lines.append(
            f"{LABELS[row['config']]:<52} {row['endpoint']:<8} {row['concurrency']:>3}"
            f" {f'{low:,.0f} / {middle:,.0f} / {high:,.0f}':>28} {row['p99_ms_median']:>8.1f}"
            f" {row['server_cores_median']:>12.2f} {100 * row['busy_min']:>15.0f}%  {flagged}"
        )
    if report["logins"]:
        lines += ["", "logins (concurrency 16) against the Argon2id bound of the same run:"]
        for row in report["logins"]:
            lines.append(
                f"  run {row['run'] + 1}  {LABELS[row['config']]:<52} {row['rate']:6.2f}/s,"
                f" bound {row['bound']:.2f}/s: {row['ratio']:.2f}, p99 {row['p99_ms']:,.0f} ms"
            )
    lines += ["", f"bars (on the minimum of the runs' ratios; {report['runs']} runs):"]
    for b in report["bars"]:
        verdict = "PASS" if b["passed"] else "FAIL"
        if "minimum" in b:
            lines.append(
                f"  {verdict}  {b['name']}: min {b['min']:.2f} / median {b['median']:.2f} /"
                f" max {b['max']:.2f} (>= {b['minimum']:.2f}) runs {b['ratios']}"
            )
        else:
            lines.append(f"  {verdict}  {b['name']}: {b['value']}")
    if report.get("profile"):
        lines += ["", "profile (cProfile on thread CPU time, the per-core REST processes, c16):"]
        for endpoint, found in report["profile"].items():
            if "skipped" in found:
                lines.append(f"  {endpoint}: skipped, {found['skipped']}")
                continue
            lines.append(
                f"  {endpoint}: {found['rate']:,.0f} req/s, REST threads' CPU {found['cpu_s']} s"
                f" (and {found['waiting_s']} s in blocking waits, left out): {found['share %']}"
            )
            lines.append("    heaviest functions (own time) [counted for]:")
            for frame, share in found["heaviest, own time %"]:
                lines.append(f"      {share:5.1f}%  {frame}")
            lines.append("    heaviest of ours and SQLite's:")
            for frame, share in found["ours, own time %"]:
                lines.append(f"      {share:5.1f}%  {frame}")
    m = report["machine"]
    lines += [
        "",
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['wrk']},"
        f" load average {m['load_1min']:.2f} at start, {m['load_1min_end']:.2f} at end;"
        f" runs with the machine < {100 * BUSY_FLAG:.0f}% busy are flagged",
        f"channel layer of the per-core deployment: {report['redis']}",
        f"date:    {report['date']}, revision {report['revision']}, took {report['duration_s']} s",
        f"command: {report['command']}",
    ]
    return "\n".join(lines)


def command(args: argparse.Namespace) -> str:
    words = [
        "python",
        "bench/percore.py",
        "--runs",
        str(args.runs),
        "--seconds",
        f"{args.seconds:g}",
    ]
    words += ["--concurrency", *map(str, args.concurrency)]
    if tuple(args.endpoints) != ENDPOINTS:
        words += ["--endpoints", *args.endpoints]
    if args.no_login:
        words.append("--no-login")
    if args.profile:
        words += ["--profile", f"{args.profile:g}"]
    return shlex.join(words)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    parser.add_argument("--warm-up", type=float, default=1.0, help="before each measurement")
    parser.add_argument("--login-seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--endpoints", nargs="+", choices=ENDPOINTS, default=list(ENDPOINTS))
    parser.add_argument("--no-login", action="store_true", help="skip the login bar")
    parser.add_argument("--profile", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # so the finally block stops the servers on SIGTERM too

    signal.signal(signal.SIGTERM, interrupted)
    started = datetime.datetime.now(datetime.UTC)
    clock = time.monotonic()
    host = sessions.machine()

    def progress(what: str) -> None:
        if not args.json:
            print(f"  {time.monotonic() - clock:4.0f} s  {what}", file=sys.stderr, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="coditect-bench-percore-"))
    bench = Bench(tmp, args)
    profile: dict[str, Any] = {}
    try:
        bench.start()
        progress("servers up")
        bench.run(progress)
        if args.profile > 0:
            profile = bench.profile(args.profile, args.endpoints)
    finally:
        bench.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "date": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "revision": common.revision("accounts", "coditect", "fdb_backend", "workspaces", "bench"),
        "command": command(args),
        "duration_s": round(time.monotonic() - clock),
        "runs": args.runs,
        "redis": bench.redis,
        "samples": [asdict(s) for s in bench.samples],
        "logins": bench.logins,
        "profile": profile,
        "machine": {**host, "load_1min_end": os.getloadavg()[0]},
        **summarise(bench),
    }
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0 if all(b["passed"] for b in report["bars"]) else 1


if __name__ == "__main__":
    sys.exit(main())
