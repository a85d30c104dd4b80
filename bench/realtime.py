"""Realtime benchmark (issue 5): the platform's session socket against a stock Channels consumer.

Run from the repository root::

    python bench/realtime.py [--patches N] [--seconds N] [--senders N] [--json]

For each variant — one daphne process with the in-memory channel layer, then two daphne
processes with channels_redis (``REDIS_URL``, database 15, flushed first; skipped if Redis is
not reachable) — it runs the platform (``coditect.asgi``: auth, persistence of every event
before it is sent, seq ordering) and the stock consumer (bench/stock_consumer: a plain
``AsyncJsonWebsocketConsumer`` that fans every message out to its group, nothing else), each
with 100 sockets on one session opened from this one asyncio process (one clock), and
measures:

1. fan-out latency: one socket sends ``state.patch`` at 20/s (``--patches``, default 200, each
   with the version of the previous ack); the time from sending a patch until the last of the
   100 sockets has its ``state.changed``, p50/p99 over the patches;
2. sustained deliveries/s: ``--senders`` sockets (default 5) publish for ``--seconds``
   (default 10) at most 45 messages/s each (the per-connection limit is 50/s), each with at
   most ``WINDOW`` messages not yet delivered to every socket (so queues stay bounded and the
   rate is what the server sustains, not what it buffers); the platform uses ``event.publish``
   (persisted and broadcast like a patch, no version to race on).

Every message carries a marker (sender, counter, send time); every socket checks that it gets
each sender's counters exactly once and in order, and on the platform that ``seq`` rises by
exactly one. The report prints both phases per server with PASS/FAIL against issue 5's bars.
This is a benchmark, not a test. See bench/README.md and docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/realtime.py` puts bench/, not the root, first

from bench import common
from bench.comparison import run as comparison
from bench.sessions import (
    call,
    foreign_processes,
    platform_daphnes,
    register,
)

HOST = "127.0.0.1"
SOCKETS = 100
PATCH_RATE = 20.0  # phase 1: patches per second from one socket
SEND_RATE = 45.0  # phase 2: messages per second per sender, under the 50/s limit
WINDOW = 2  # phase 2: messages per sender not yet delivered to every socket
P99_BAR_MS = 50.0
REDIS_URL = "redis://127.0.0.1:6379/15"
DELIVERY_TIMEOUT = 10.0  # a message not delivered everywhere by then counts as missing
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# --- servers ---------------------------------------------------------------------------------


def start_stock(tmp: Path, port: int, redis_url: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(DJANGO_SETTINGS_MODULE="bench.stock_consumer.settings", PYTHONPATH=str(ROOT))
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    argv = [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), "--verbosity", "0"]
    log_path = tmp / f"stock-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*argv, "bench.stock_consumer.asgi:application"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc.log_path = log_path  # type: ignore[attr-defined]
    return proc


# --- the client ------------------------------------------------------------------------------


def marker_of(msg: dict[str, Any]) -> dict[str, Any] | None:
    """The benchmark's marker in a broadcast message, wherever the message type carries it."""
    if msg.get("type") == "state.changed":
        changes = msg.get("changes") or {}
        found = (changes.get("editor_state") or {}).get("b")
    elif msg.get("type") == "event":
        found = (msg.get("data") or {}).get("b")
    else:
        return None
    return found if isinstance(found, dict) else None


@dataclass
class Counts:
    deliveries: int = 0
    missing: int = 0  # a counter skipped, or never delivered at all
    duplicated: int = 0
    out_of_order: int = 0
    seq_gaps: int = 0  # platform: seq skipped forward
    seq_repeats: int = 0  # platform: seq at or below the last one
    errors: list[str] = field(default_factory=list)


class Client:
    """``SOCKETS`` sockets on one session, their readers, and the bookkeeping of deliveries."""

    def __init__(self, urls: list[str], subprotocols: list[str], origins: list[str]) -> None:
        self.urls, self.subprotocols, self.origins = urls, subprotocols, origins
        self.sockets: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []
        self.last_seq: list[int | None] = [None] * SOCKETS
        self.version = 0
        self.pending: dict[tuple[int, Any], asyncio.Future[dict[str, Any]]] = {}
        self.last_counter: list[dict[int, int]] = [{} for _ in range(SOCKETS)]
        self.arrivals: dict[tuple[int, int], list[float]] = {}  # (sender, n) -> [count, last]
        self.sent_at: dict[tuple[int, int], float] = {}
        self.everywhere: dict[tuple[int, int], asyncio.Future[float]] = {}
        self.counts = Counts()
        self.welcomed: list[asyncio.Future[dict[str, Any]]] = []

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self.welcomed = [loop.create_future() for _ in range(SOCKETS)]

        async def one(i: int) -> None:
            url = self.urls[i % len(self.urls)]
            ws = await connect(
                url,
                subprotocols=self.subprotocols,  # type: ignore[arg-type]
                origin=self.origins[i % len(self.origins)],  # type: ignore[arg-type]
                compression=None,
                open_timeout=30,
                max_size=2**22,
                ping_interval=None,
            )
            self.sockets[i] = ws
            self.readers[i] = asyncio.create_task(self.read(i, ws))

        self.sockets = [None] * SOCKETS  # type: ignore[list-item]
        self.readers = [None] * SOCKETS  # type: ignore[list-item]
        for start in range(0, SOCKETS, 10):  # ten handshakes at a time
            await asyncio.gather(*(one(i) for i in range(start, min(SOCKETS, start + 10))))

    async def settle(self, platform_side: bool, timeout: float = 30.0) -> None:
        """Platform: wait for every welcome and until every socket saw every presence.join."""
        if not platform_side:
            await asyncio.sleep(0.5)
            return
        welcomes = await asyncio.wait_for(asyncio.gather(*self.welcomed), timeout)
        self.version = max(int(w["version"]) for w in welcomes)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seqs = set(self.last_seq)
            if len(seqs) == 1 and None not in seqs:
                break
            await asyncio.sleep(0.05)
        else:
            self.counts.errors.append(f"presence never settled: {sorted(set(map(str, seqs)))}")
        await asyncio.sleep(0.3)

    async def read(self, i: int, ws: ClientConnection) -> None:
        counts = self.counts
        last_counter = self.last_counter[i]
        try:
            async for raw in ws:
                now = time.perf_counter()
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "welcome":
                    self.last_seq[i] = int(msg["seq"])
                    self.welcomed[i].set_result(msg)
                    continue
                if kind in ("ack", "error"):
                    future = self.pending.pop((i, msg.get("id")), None)
                    if future is not None and not future.done():
                        future.set_result(msg)
                    elif kind == "error":
                        counts.errors.append(f"socket {i}: {msg}")
                    continue
                seq = msg.get("seq")
                if isinstance(seq, int):
                    last = self.last_seq[i]
                    if last is not None:
                        if seq <= last:
                            counts.seq_repeats += 1
                        elif seq > last + 1:
                            counts.seq_gaps += 1
                    self.last_seq[i] = seq if last is None else max(last, seq)
                marker = marker_of(msg)
                if marker is None:
                    continue
                sender, n = int(marker["s"]), int(marker["n"])
                previous = last_counter.get(sender, 0)
                if n == previous + 1:
                    last_counter[sender] = n
                elif n <= previous:
                    counts.duplicated += 1
                    continue
                else:
                    counts.out_of_order += 1
                    last_counter[sender] = n
                counts.deliveries += 1
                key = (sender, n)
                seen = self.arrivals.get(key)
                if seen is None:
                    seen = self.arrivals[key] = [0, 0.0]
                seen[0] += 1
                seen[1] = now
                if seen[0] == SOCKETS:
                    done = self.everywhere.get(key)
                    if done is not None and not done.done():
                        done.set_result(now)
        except Exception as error:  # a reader that dies is an error of the run, not a crash
            counts.errors.append(f"socket {i} reader: {type(error).__name__}: {error}")
        finally:
            if ws.close_code not in (None, 1000):
                counts.errors.append(f"socket {i} closed {ws.close_code} {ws.close_reason}")

    async def request(self, i: int, msg: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[(i, msg["id"])] = future
        key = (int(msg["b"]["s"]), int(msg["b"]["n"]))
        del msg["b"]
        self.sent_at[key] = time.perf_counter()
        self.everywhere[key] = asyncio.get_running_loop().create_future()
        await self.sockets[i].send(json.dumps(msg))
        return future

    async def close(self) -> None:
        for ws in self.sockets:
            if ws is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(), 5)
        for reader in self.readers:
            if reader is not None:
                reader.cancel()
        await asyncio.gather(*(r for r in self.readers if r is not None), return_exceptions=True)


async def phase1(client: Client, patches: int) -> dict[str, Any]:
    """One socket patches at PATCH_RATE; time until all SOCKETS have each state.changed."""
    sender, latencies, conflicts, errors = 0, [], 0, 0
    start = time.perf_counter() + 0.05
    for n in range(1, patches + 1):
        delay = start + (n - 1) / PATCH_RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        marker = {"s": sender, "n": n, "t": time.time()}
        msg = {
            "type": "state.patch",
            "id": n,
            "base_version": client.version,
            "changes": {"editor_state": {"b": marker, "cursor": [n, 1]}},
            "b": marker,
        }
        ack = await asyncio.wait_for(await client.request(sender, msg), DELIVERY_TIMEOUT)
        if ack.get("type") == "error":
            conflicts += ack.get("code") == "version_conflict"
            errors += 1
            client.counts.errors.append(f"patch {n}: {ack}")
            continue
        if "version" in ack:
            client.version = int(ack["version"])
        try:
            done = await asyncio.wait_for(client.everywhere[(sender, n)], DELIVERY_TIMEOUT)
        except TimeoutError:
            continue  # counted as missing below
        latencies.append(1000 * (done - client.sent_at[(sender, n)]))
    expected = patches - errors
    return {
        "patches": patches,
        "p50_ms": common.percentile(latencies, 0.50),
        "p99_ms": common.percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
        "complete": len(latencies),
        "expected": expected,
        "version_conflicts": conflicts,
        "errors": errors,
    }


async def phase2(
    client: Client, senders: int, seconds: float, platform_side: bool
) -> dict[str, Any]:
    """``senders`` sockets publish for ``seconds``; deliveries/s while every one arrives."""
    chosen = [round(k * SOCKETS / senders) for k in range(senders)]  # spread over processes
    acks: list[asyncio.Task[None]] = []
    sent = [0] * senders
    ack_errors: list[str] = []
    before = client.counts.deliveries
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    stop_at = start + seconds

    async def check_ack(future: asyncio.Future[dict[str, Any]]) -> None:
        try:
            ack = await asyncio.wait_for(future, DELIVERY_TIMEOUT)
        except TimeoutError:
            ack_errors.append("no ack")
            return
        if ack.get("type") == "error":
            ack_errors.append(str(ack))

    async def one(slot: int) -> None:
        index = 1000 + slot  # sender ids of phase 2: apart from phase 1's
        window = asyncio.Semaphore(WINDOW)
        next_at = start
        n = 0
        waiting: list[asyncio.Task[Any]] = []
        while True:
            await window.acquire()
            now = time.perf_counter()
            if now >= stop_at:
                break
            if next_at > now:
                await asyncio.sleep(next_at - now)
            n += 1
            marker = {"s": index, "n": n, "t": time.time()}
            msg = {  # the same message to both servers; the stock one fans it out as is
                "type": "event.publish",
                "id": n,
                "event": "bench.tick",
                "data": {"b": marker},
                "b": marker,
            }
            next_at = time.perf_counter() + 1 / SEND_RATE
            acks.append(asyncio.create_task(check_ack(await client.request(chosen[slot], msg))))
            sent[slot] = n
            everywhere = client.everywhere[(index, n)]

            async def release(done: asyncio.Future[float] = everywhere) -> None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(done), DELIVERY_TIMEOUT)
                window.release()

            waiting.append(asyncio.create_task(release()))
        await asyncio.gather(*waiting)

    await asyncio.gather(*(one(slot) for slot in range(senders)))
    await asyncio.gather(*acks)
    keys = [(1000 + slot, n) for slot in range(senders) for n in range(1, sent[slot] + 1)]
    last = max((client.arrivals[k][1] for k in keys if k in client.arrivals), default=start)
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    delivered = client.counts.deliveries - before
    expected = len(keys) * SOCKETS
    latencies = [
        1000 * (client.everywhere[k].result() - client.sent_at[k])
        for k in keys
        if client.everywhere[k].done()
    ]
    client_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    elapsed = last - start
    return {
        "senders": senders,
        "messages": len(keys),
        "deliveries": delivered,
        "expected": expected,
        "seconds": round(elapsed, 2),
        "deliveries_per_s": delivered / elapsed if elapsed > 0 else float("nan"),
        "messages_per_s": len(keys) / elapsed if elapsed > 0 else float("nan"),
        "p50_ms": common.percentile(latencies, 0.50),
        "p99_ms": common.percentile(latencies, 0.99),
        "ack_errors": len(ack_errors),
        "client_cores": client_cpu / elapsed if elapsed > 0 else float("nan"),
    }


async def drive(
    urls: list[str],
    subprotocols: list[str],
    origins: list[str],
    platform_side: bool,
    args: argparse.Namespace,
) -> dict[str, Any]:
    client = Client(urls, subprotocols, origins)
    try:
        await client.open()
        await client.settle(platform_side)
        first = await phase1(client, args.patches)
        second = await phase2(client, args.senders, args.seconds, platform_side)
        await asyncio.sleep(0.5)  # late duplicates would show up now
    finally:
        await client.close()
    counts = client.counts
    missing = (first["expected"] * SOCKETS) + second["expected"] - counts.deliveries
    return {
        "phase1": first,
        "phase2": second,
        "missing": max(0, missing) + counts.out_of_order,  # a skipped counter is missing too
        "duplicated": counts.duplicated,
        "out_of_order": counts.out_of_order,
        "seq_gaps": counts.seq_gaps,
        "seq_repeats": counts.seq_repeats,
        "errors": counts.errors[:10],
        "error_count": len(counts.errors) + first["errors"] + second["ack_errors"],
    }


# --- the variants ----------------------------------------------------------------------------


def run_platform(
    tmp: Path, processes: int, redis_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    with platform_daphnes(tmp, processes, redis_url) as (ports, procs):
        account = register(ports[0], "bench-realtime@example.com")
        token = account["access"]
        status, created = call(
            ports[0], "POST", "/api/v5/sessions", {"name": "rt", "workspace_path": "/ws/rt"}, token
        )
        if status != 201:
            raise RuntimeError(f"create session: {status} {created}")
        sid = created["id"]
        note = machine_load({p.pid for p in procs})
        result = asyncio.run(
            drive(
                [f"ws://{HOST}:{port}/ws/sessions/{sid}/" for port in ports],
                ["coditect.v5", f"bearer.{token}"],
                [f"http://{HOST}:{port}" for port in ports],
                True,
                args,
            )
        )
    return {**result, "load": note}


def run_stock(
    tmp: Path, processes: int, redis_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = [comparison.free_port() for _ in range(processes)]
        for port in ports:
            procs.append(start_stock(tmp, port, redis_url))
        for port, proc in zip(ports, procs, strict=True):
            common.wait_listening(port, proc)
        note = machine_load({p.pid for p in procs})
        sid = "0f0e0d0c0b0a09080706050403020100"
        result = asyncio.run(
            drive(
                [f"ws://{HOST}:{port}/ws/sessions/{sid}/" for port in ports],
                [],
                [f"http://{HOST}:{port}" for port in ports],
                False,
                args,
            )
        )
    finally:
        for proc in procs:
            comparison.stop(proc)
    return {**result, "load": note}


def machine_load(ours: set[int], max_wait: float = 20.0) -> dict[str, Any]:
    """The 1-minute load and other heavy processes; waits up to ``max_wait`` s for them."""
    waited = 0.0
    others = foreign_processes(ours)
    while others and waited < max_wait:
        time.sleep(2.0)
        waited += 2.0
        others = foreign_processes(ours)
    return {"load_1min": os.getloadavg()[0], "others": len(others), "waited_s": waited}


def bars(variant: str, ours: dict[str, Any], stock: dict[str, Any]) -> list[dict[str, Any]]:
    p1, s1 = ours["phase1"], stock["phase1"]
    rate, stock_rate = ours["phase2"]["deliveries_per_s"], stock["phase2"]["deliveries_per_s"]
    broken = ours["missing"] + ours["duplicated"] + ours["out_of_order"]
    broken += ours["seq_gaps"] + ours["seq_repeats"] + ours["error_count"]
    stock_broken = stock["missing"] + stock["duplicated"] + stock["out_of_order"]
    return [
        {
            "name": f"{variant}: fan-out p99 {p1['p99_ms']:.1f} ms <= {P99_BAR_MS:.0f} ms",
            "passed": p1["p99_ms"] <= P99_BAR_MS,
        },
        {
            "name": f"{variant}: fan-out p99 {p1['p99_ms']:.1f} ms no worse than stock "
            f"{s1['p99_ms']:.1f} ms",
            "passed": p1["p99_ms"] <= s1["p99_ms"],
        },
        {
            "name": f"{variant}: deliveries/s {rate:,.0f} at least stock {stock_rate:,.0f}",
            "passed": rate >= stock_rate,
        },
        {
            "name": f"{variant}: platform missing/duplicated/out-of-order/seq/errors = "
            f"{ours['missing']}/{ours['duplicated']}/{ours['out_of_order']}/"
            f"{ours['seq_gaps'] + ours['seq_repeats']}/{ours['error_count']}",
            "passed": broken == 0,
        },
        {
            "name": f"{variant}: (stock consumer's own: missing/duplicated/out-of-order = "
            f"{stock['missing']}/{stock['duplicated']}/{stock['out_of_order']})",
            "passed": stock_broken == 0,
            "info": True,
        },
    ]


def machine() -> dict[str, Any]:
    model = common.cpu_model()
    import websockets

    return {
        "cpu": model,
        "cores": CORES,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "websockets": websockets.__version__,
        "load_1min": os.getloadavg()[0],
    }


def revision() -> str:
    return common.revision("realtime", "workspaces", "coditect", "fdb_backend")


def command(args: argparse.Namespace) -> str:
    words = ["python", "bench/realtime.py"]
    for name, default in (("patches", 200), ("seconds", 10.0), ("senders", 5)):
        value = getattr(args, name)
        if value != default:
            words += [f"--{name}", f"{value:g}"]
    if args.no_redis:
        words.append("--no-redis")
    return shlex.join(words)


def progress(args: argparse.Namespace, started: float, what: str) -> None:
    if not args.json:
        print(f"  {time.monotonic() - started:4.0f} s  {what}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.datetime.now(datetime.UTC)
    host = machine()
    clock = time.monotonic()
    variants: list[tuple[str, int, str]] = [("in-memory, 1 daphne", 1, "")]
    skipped = None
    if not args.no_redis:
        skipped = common.redis_flush(REDIS_URL)
        if skipped is None:
            variants.append(("redis, 2 daphne", 2, REDIS_URL))
        else:
            progress(args, clock, f"Redis at {REDIS_URL} not reachable, skipped: {skipped}")
    results: dict[str, dict[str, Any]] = {}
    checks: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="coditect-bench-realtime-") as name:
        tmp = Path(name)
        for number, (variant, processes, redis_url) in enumerate(variants):
            if redis_url:
                common.redis_flush(redis_url)
            stock = run_stock(tmp, processes, redis_url, args)
            progress(args, clock, f"stock consumer, {variant}")
            if redis_url:
                common.redis_flush(redis_url)
            ours = run_platform(tmp / f"platform-{number}", processes, redis_url, args)
            progress(args, clock, f"platform, {variant}")
            results[variant] = {"platform": ours, "stock": stock}
            checks += bars(variant, ours, stock)
    return {
        "date": started.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "revision": revision(),
        "command": command(args),
        "duration_s": round(time.monotonic() - clock),
        "sockets": SOCKETS,
        "senders": args.senders,
        "redis_skipped": skipped,
        "results": results,
        "bars": checks,
        "machine": {**host, "load_1min_end": os.getloadavg()[0]},
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"{report['sockets']} sockets on one session, one client process;"
        f" phase 1: one socket patches at {PATCH_RATE:g}/s; phase 2: {report['senders']}"
        f" senders at <= {SEND_RATE:g}/s each, <= {WINDOW} undelivered each",
        "",
        f"{'variant':<22} {'server':<9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}"
        f" {'deliv/s':>8} {'msgs/s':>7} {'p2 p99':>7} {'missing':>7} {'dup':>4} {'ooo':>4}"
        f" {'seq':>4} {'errors':>6} {'client':>6}  load",
    ]
    for variant, pair in report["results"].items():
        for server in ("stock", "platform"):
            r = pair[server]
            p1, p2, load = r["phase1"], r["phase2"], r["load"]
            waited = f", waited {load['waited_s']:.0f} s" if load["waited_s"] else ""
            lines.append(
                f"{variant:<22} {server:<9} {p1['p50_ms']:>7.1f} {p1['p99_ms']:>7.1f}"
                f" {p1['max_ms']:>7.1f} {p2['deliveries_per_s']:>8,.0f}"
                f" {p2['messages_per_s']:>7,.1f} {p2['p99_ms']:>7.1f} {r['missing']:>7}"
                f" {r['duplicated']:>4} {r['out_of_order']:>4}"
                f" {r['seq_gaps'] + r['seq_repeats']:>4} {r['error_count']:>6}"
                f" {p2['client_cores']:>6.2f}  {load['load_1min']:.2f}, {load['others']} other"
                f"{waited}"
            )
            for error in r["errors"][:3]:
                lines.append(f"    {error[:150]}")
    if report["redis_skipped"]:
        lines.append(f"Redis variant skipped: {report['redis_skipped']}")
    lines += [
        "",
        "columns: p50/p99/max ms = phase 1, send to the last of the sockets receiving it;"
        " deliv/s, msgs/s, p2 p99 = phase 2; client = cores this client process used in phase 2",
        "",
        "bars:",
    ]
    for b in report["bars"]:
        verdict = "PASS" if b["passed"] else "FAIL"
        lines.append(f"  {'info' if b.get('info') else verdict:<4}  {b['name']}")
    m = report["machine"]
    lines += [
        "",
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']},"
        f" websockets {m['websockets']}",
        f"         {m['platform']}, load average {m['load_1min']:.2f} at start,"
        f" {m['load_1min_end']:.2f} at end",
        f"date:    {report['date']}, revision {report['revision']}, took {report['duration_s']} s",
        f"command: {report['command']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--patches", type=int, default=200, help="phase 1: patches at 20/s")
    parser.add_argument("--seconds", type=float, default=10.0, help="phase 2: publishing time")
    parser.add_argument("--senders", type=int, default=5, help="phase 2: publishing sockets")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis variant")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # so the finally blocks stop the servers on SIGTERM too

    signal.signal(signal.SIGTERM, interrupted)
    report = run(args)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
