"""Large rooms (issue 19, sockets): 1,000 sockets on one session of one daphne process.

Run from the repository root::

    python bench/rooms.py [--runs N] [--sockets N] [--patches N] [--json]

Each run starts a new ``python -m coditect.serve`` (one process, in-memory channel layer, a new
embedded store) on 127.0.0.1 and measures, from this one asyncio process:

1. join: ``--sockets`` (1,000) authenticated sockets open on one session, at most 50 handshakes
   in flight (a slot is freed when its socket has its ``welcome``); the time from the first
   handshake until every socket has its welcome (bar: <= 5 s), the welcome's size, and the
   server's memory per idle authenticated socket (its RSS after the join and a short settle,
   less its RSS before, over the sockets), and the CPU time the server and this client
   spent on the join (which a busy machine does not inflate as it does the wall time);
2. fan-out: one socket sends ``state.patch`` at 2/s (``--patches``, each with the version of the
   previous ack); the time from sending until the last of the sockets has its
   ``state.changed`` (bar: p99 <= 250 ms) and nothing lost (every socket sees every patch,
   seq rising by exactly one), and the server's CPU time per patch (background work
   included: heartbeats, the watch);
3. rate: on a new server, 100 sockets on one session, then offered rates from a ladder, each
   for ``--step-seconds``: ``event.publish`` from as many senders as the per-socket limit needs
   (<= 25/s each, persisted and broadcast as a patch is, with no version to race on), open
   loop, after an uncounted warm-up; a step (at least 100 messages) passes with p99 (send to
   the last socket) <= 100 ms and nothing lost, and a failed step is tried once more (a
   shared machine's hiccup is not the server's rate). The highest passing rate, the
   platform's against the stock Channels consumer's (bench/stock_consumer) the same way
   (bar: >= 2x). Publishes the server refused (an ``error`` reply such as ``rate_limited``,
   or a send on a socket already closed) and those never answered are counted apart from
   lost deliveries (a delivery missing for a publish the server acked): either fails the
   step, and neither is counted as loss or as a delivery.

The platform's sockets send ``ping`` every KEEPALIVE_S, as docs/protocol.md asks of a client:
the server closes a socket that sends nothing for CODITECT_WS_IDLE_TIMEOUT_S (60 s, close
4408), and the rate ladder lasts longer than that, so without the pings every receiving socket
was closed around the 60/s step, which the bench reported as lost deliveries (the "60/s
cliff"). The stock consumer has no idle timeout and would broadcast a ping as an event, so
its sockets send none.

Every figure is printed with min/median/max over the runs and PASS/FAIL. A benchmark, not a
test: see bench/README.md and docs/benchmarks.md ("Large rooms").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin, Subprotocol

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/rooms.py` puts bench/, not the root, first

from bench import common
from bench.comparison import run as comparison
from bench.realtime import machine, start_stock
from bench.sessions import Platform, call, foreign_processes

HOST = common.HOST
JOIN_CONCURRENCY = 50
JOIN_BAR_S = 5.0
PATCH_RATE = 2.0
FANOUT_BAR_MS = 250.0
RATE_SOCKETS = 100
RATE_BAR_MS = 100.0
RATE_RATIO_BAR = 2.0
SENDER_MAX_RATE = 25.0  # half the per-socket limit of 50 messages/s: a late client bursts
LADDER = (5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 125, 160, 200, 250, 320, 400, 500, 640)
STEP_MESSAGES = 100  # at least this many messages a step (its p99 is then not its maximum)
TOKENS = 10  # sign-ins (auth sessions) the sockets' tokens come from
DELIVERY_TIMEOUT = 5.0
KEEPALIVE_S = 20.0  # docs/protocol.md "Keep-alive"; the server closes a socket idle 60 s


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@contextlib.contextmanager
def platform_server(tmp: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """One ``python -m coditect.serve`` over a new store in ``tmp``."""
    app = Platform(tmp)
    tmp.mkdir()
    app.env.pop("REDIS_URL", None)
    app.prepare()
    port = comparison.free_port()
    argv = [sys.executable, "-m", "coditect.serve", "-b", HOST, "-p", str(port)]
    proc = app.spawn(f"serve-{port}", [*argv, "--verbosity", "0"])
    try:
        common.wait_listening(port, proc)
        yield port, proc
    finally:
        comparison.stop(proc)


def sign_in(port: int, count: int) -> tuple[list[str], str]:
    """``count`` access tokens of one new user (each its own auth session) and a session."""
    email = f"rooms-{time.monotonic_ns()}@example.com"
    status, body = call(
        port,
        "POST",
        "/api/v5/auth/register",
        {"email": email, "password": "bench-password-1234", "display_name": "Bench"},
    )
    if status != 201:
        raise RuntimeError(f"register: {status} {body}")
    tokens = [body["access"]]
    for _ in range(count - 1):
        status, answer = call(
            port, "POST", "/api/v5/auth/login", {"email": email, "password": "bench-password-1234"}
        )
        if status != 200:
            raise RuntimeError(f"login: {status} {answer}")
        tokens.append(answer["access"])
    status, created = call(
        port, "POST", "/api/v5/sessions", {"name": "room", "workspace_path": "/ws/room"}, tokens[0]
    )
    if status != 201:
        raise RuntimeError(f"create session: {status} {created}")
    return tokens, str(created["id"])


class Room:
    """Sockets on one session and the bookkeeping of what each received."""

    def __init__(self, url: str, origin: str, protocols: list[list[str]], platform: bool) -> None:
        self.url, self.origin, self.protocols, self.platform = url, origin, protocols, platform
        self.sockets: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []
        self.welcomes: list[asyncio.Future[dict[str, Any]]] = []
        self.welcome_bytes: list[int] = []
        self.last_seq: list[int | None] = []
        self.seq_breaks = 0
        self.errors: list[str] = []
        self.pending: dict[tuple[int, Any], asyncio.Future[dict[str, Any]]] = {}
        self.arrivals: dict[str, int] = {}  # marker -> sockets that had it
        self.everywhere: dict[str, asyncio.Future[float]] = {}
        self.version = 0
        self.keepalive: asyncio.Task[None] | None = None

    async def open(self, count: int, concurrency: int) -> float:
        """Open ``count`` sockets, ``concurrency`` at a time until welcomed; seconds taken."""
        loop = asyncio.get_running_loop()
        start = len(self.sockets)
        self.sockets += [None] * count  # type: ignore[list-item]
        self.readers += [None] * count  # type: ignore[list-item]
        self.last_seq += [None] * count
        self.welcomes += [loop.create_future() for _ in range(count)]
        slots = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with slots:
                ws = await connect(
                    self.url,
                    subprotocols=[Subprotocol(p) for p in self.protocols[i % len(self.protocols)]],
                    origin=Origin(self.origin),
                    compression=None,
                    open_timeout=60,
                    max_size=2**24,
                    ping_interval=None,
                    close_timeout=2,
                )
                self.sockets[i] = ws
                self.readers[i] = asyncio.create_task(self.read(i, ws))
                if self.platform:
                    await self.welcomes[i]
                else:
                    self.welcomes[i].set_result({})

        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(start, start + count)))
        took = time.perf_counter() - began
        if self.platform and self.keepalive is None:
            self.keepalive = asyncio.create_task(self.keep_alive())
        return took

    async def keep_alive(self) -> None:
        """A ``ping`` from every socket every KEEPALIVE_S, spread over the interval (a client's
        keep-alive, docs/protocol.md); the ``pong`` is ignored."""
        n = 0
        while True:
            count = len(self.sockets)
            for i in range(count):
                await asyncio.sleep(KEEPALIVE_S / count)
                ws = self.sockets[i]
                if ws is not None and ws.close_code is None:
                    n += 1
                    with contextlib.suppress(Exception):
                        await ws.send(json.dumps({"type": "ping", "id": f"k{n}"}))

    def closed(self) -> dict[int, int]:
        """Close code -> how many of the sockets are closed with it."""
        codes: dict[int, int] = {}
        for ws in self.sockets:
            if ws is not None and ws.close_code is not None:
                codes[ws.close_code] = codes.get(ws.close_code, 0) + 1
        return codes

    async def read(self, i: int, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                now = time.perf_counter()
                msg = orjson.loads(raw)
                kind = msg.get("type")
                if kind == "welcome":
                    self.last_seq[i] = int(msg["seq"])
                    self.welcome_bytes.append(len(raw))
                    self.version = max(self.version, int(msg["version"]))
                    self.welcomes[i].set_result(msg)
                    continue
                if kind in ("ack", "error"):
                    future = self.pending.pop((i, msg.get("id")), None)
                    if future is not None and not future.done():
                        future.set_result(msg)
                    elif kind == "error":
                        self.errors.append(f"socket {i}: {msg}")
                    continue
                seq = msg.get("seq")
                if isinstance(seq, int):
                    last = self.last_seq[i]
                    if last is not None and seq != last + 1:
                        self.seq_breaks += 1
                    self.last_seq[i] = seq
                marker = _marker(msg)
                if marker is None:
                    continue
                seen = self.arrivals.get(marker, 0) + 1
                self.arrivals[marker] = seen
                if seen == len(self.sockets):
                    done = self.everywhere.get(marker)
                    if done is not None and not done.done():
                        done.set_result(now)
        except Exception as error:
            self.errors.append(f"socket {i} reader: {type(error).__name__}: {error}")
        finally:
            if ws.close_code not in (None, 1000):
                self.errors.append(f"socket {i} closed {ws.close_code} {ws.close_reason}")

    async def settled(self, timeout: float = 60.0) -> bool:
        """Every socket at the same seq (platform: presence has reached everyone)."""
        if not self.platform:
            await asyncio.sleep(0.5)
            return True
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seqs = set(self.last_seq)
            if len(seqs) == 1 and None not in seqs:
                return True
            await asyncio.sleep(0.05)
        return False

    async def send(
        self, i: int, msg: dict[str, Any], marker: str
    ) -> asyncio.Future[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self.pending[(i, msg["id"])] = future
        self.everywhere[marker] = loop.create_future()
        await self.sockets[i].send(json.dumps(msg))
        return future

    async def close(self) -> None:
        if self.keepalive is not None:
            self.keepalive.cancel()
            await asyncio.gather(self.keepalive, return_exceptions=True)
        await asyncio.gather(
            *(asyncio.wait_for(ws.close(), 5) for ws in self.sockets if ws is not None),
            return_exceptions=True,
        )
        for reader in self.readers:
            if reader is not None:
                reader.cancel()
        await asyncio.gather(*(r for r in self.readers if r is not None), return_exceptions=True)


def _marker(msg: dict[str, Any]) -> str | None:
    if msg.get("type") == "state.changed":
        found = ((msg.get("changes") or {}).get("editor_state") or {}).get("b")
    elif msg.get("type") == "event":
        found = (msg.get("data") or {}).get("b")
    else:
        return None
    return found if isinstance(found, str) else None


async def fanout_phase(room: Room, patches: int) -> dict[str, Any]:
    """One socket patches at PATCH_RATE; send to the last socket's state.changed."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.05
    for n in range(1, patches + 1):
        delay = start + (n - 1) / PATCH_RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        marker = f"p{n}"
        msg = {
            "type": "state.patch",
            "id": n,
            "base_version": room.version,
            "changes": {"editor_state": {"b": marker, "cursor": [n, 1]}},
        }
        sent = time.perf_counter()
        ack = await asyncio.wait_for(await room.send(0, msg, marker), 30)
        if ack.get("type") == "error":
            errors += 1
            room.errors.append(f"patch {n}: {ack}")
            continue
        room.version = int(ack["version"])
        with contextlib.suppress(TimeoutError):
            done = await asyncio.wait_for(room.everywhere[marker], DELIVERY_TIMEOUT)
            latencies.append(1000 * (done - sent))
    await asyncio.sleep(0.5)
    lost = sum(len(room.sockets) - room.arrivals.get(f"p{n}", 0) for n in range(1, patches + 1))
    return {
        "p50_ms": common.percentile(latencies, 0.50),
        "p99_ms": common.percentile(latencies, 0.99) if len(latencies) == patches else math.inf,
        "max_ms": max(latencies, default=math.inf),
        "lost": lost,
        "errors": errors,
    }


async def rate_step(room: Room, rate: float, seconds: float, step: int) -> dict[str, Any]:
    """Publish at ``rate`` for ``seconds`` (open loop); p99 and losses.

    A publish the server refused (``error`` reply, or the sender's socket already closed) is
    counted in ``refused`` by its code, one never answered in ``unanswered``; losses and p99
    are over the publishes the server acked."""
    senders = max(1, math.ceil(rate / SENDER_MAX_RATE))
    per_sender = rate / senders
    chosen = [round(k * len(room.sockets) / senders) for k in range(senders)]
    sent_at: dict[str, float] = {}
    acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
    refused: dict[str, int] = {}

    async def one(slot: int) -> None:
        begin = time.perf_counter() + slot / rate
        n = 0
        while True:
            at = begin + n / per_sender
            if at - begin >= seconds:
                return
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            n += 1
            marker = f"r{step}.{slot}.{n}"
            msg = {
                "type": "event.publish",
                "id": marker,  # unique, so a late answer cannot be taken for another's
                "event": "bench.tick",
                "data": {"b": marker},
                "b": marker,
            }
            at = time.perf_counter()
            try:
                acks[marker] = await room.send(chosen[slot], msg, marker)
            except ConnectionClosed as error:
                code = error.rcvd.code if error.rcvd is not None else "closed"
                refused[f"closed {code}"] = refused.get(f"closed {code}", 0) + 1
                room.pending.pop((chosen[slot], marker), None)
                continue
            sent_at[marker] = at

    await asyncio.gather(*(one(slot) for slot in range(senders)))
    deadline = time.perf_counter() + DELIVERY_TIMEOUT
    if acks:  # asyncio.wait, unlike wait_for, leaves the unanswered ones pending
        await asyncio.wait(list(acks.values()), timeout=DELIVERY_TIMEOUT)
    accepted: dict[str, float] = {}
    unanswered = 0
    for marker, at in sent_at.items():
        future = acks[marker]
        if not future.done():
            unanswered += 1
        elif future.result().get("type") == "error":
            code = str(future.result().get("code"))
            refused[code] = refused.get(code, 0) + 1
        else:
            accepted[marker] = at
    latencies = []
    for marker, at in accepted.items():
        with contextlib.suppress(TimeoutError):
            done = await asyncio.wait_for(
                room.everywhere[marker], max(0.01, deadline - time.perf_counter())
            )
            latencies.append(1000 * (done - at))
    lost = sum(len(room.sockets) - room.arrivals.get(m, 0) for m in accepted)
    p99 = common.percentile(latencies, 0.99) if len(latencies) == len(accepted) else math.inf
    return {
        "rate": rate,
        "senders": senders,
        "offered": len(sent_at) + sum(refused.values()),
        "messages": len(accepted),
        "refused": refused,
        "unanswered": unanswered,
        "p99_ms": p99 if accepted else math.inf,
        "lost": lost,
        "closed": room.closed(),
    }


async def rate_search(room: Room, seconds: float) -> dict[str, Any]:
    """Climb the ladder until a rate fails twice in a row (one retry: a shared machine's
    hiccup is not the server's rate); each step runs for at least STEP_MESSAGES messages.
    A warm-up step at the first rate comes first and is not counted."""
    await rate_step(room, float(LADDER[0]), 1.0, 0)
    best, steps, attempt = 0.0, [], 0
    for step, rate in enumerate(LADDER, start=1):
        for attempt in range(2):
            errors_before, breaks_before = len(room.errors), room.seq_breaks
            duration = max(seconds, STEP_MESSAGES / rate)
            result = await rate_step(room, float(rate), duration, 2 * step + attempt)
            result["errors"] = len(room.errors) - errors_before
            result["seq_breaks"] = room.seq_breaks - breaks_before
            steps.append(result)
            ok = result["p99_ms"] <= RATE_BAR_MS and result["lost"] == 0
            ok = ok and not result["refused"] and result["unanswered"] == 0
            ok = ok and result["errors"] == 0 and result["seq_breaks"] == 0
            ok = ok and not result["closed"]
            await asyncio.sleep(0.3)
            if ok:
                break
        else:
            break
        best = float(rate)
    return {"best": best, "steps": steps, "errors": room.errors[:5]}


async def rate_room(
    url: str, origin: str, protocols: list[list[str]], platform: bool, args: Any
) -> dict[str, Any]:
    room = Room(url, origin, protocols, platform)
    try:
        await room.open(RATE_SOCKETS, JOIN_CONCURRENCY)
        await room.settled()
        await asyncio.sleep(0.5)
        return await rate_search(room, args.step_seconds)
    finally:
        await room.close()


def run_platform(tmp: Path, args: Any) -> dict[str, Any]:
    with platform_server(tmp) as (port, proc):
        tokens, sid = sign_in(port, TOKENS)
        before = rss_kib(proc.pid)
        result: dict[str, Any] = {}

        async def joined() -> dict[str, Any]:
            url = f"ws://{HOST}:{port}/ws/sessions/{sid}/"
            protocols = [["coditect.v5", f"bearer.{t}"] for t in tokens]
            room = Room(url, f"http://{HOST}:{port}", protocols, True)
            try:
                server0, client0 = cpu_s(proc.pid), time.process_time()
                join_s = await room.open(args.sockets, JOIN_CONCURRENCY)
                server1, client1 = cpu_s(proc.pid), time.process_time()
                settled = await room.settled()
                await asyncio.sleep(2.0)
                after = rss_kib(proc.pid)
                server2 = cpu_s(proc.pid)
                fan = await fanout_phase(room, args.patches)
                fan["server_cpu_ms_per_patch"] = 1000 * (cpu_s(proc.pid) - server2) / args.patches
                return {
                    "join_s": join_s,
                    "join_server_cpu_s": server1 - server0,
                    "join_client_cpu_s": client1 - client0,
                    "settled": settled,
                    "socket_kib": (after - before) / args.sockets,
                    "welcome_bytes_max": max(room.welcome_bytes, default=0),
                    "fanout": fan,
                    "seq_breaks": room.seq_breaks,
                    "errors": room.errors[:5],
                    "error_count": len(room.errors),
                }
            finally:
                await room.close()

        result = asyncio.run(joined())
        result["load"] = os.getloadavg()[0]
        result["others"] = len(foreign_processes({proc.pid}))
    return result


def run_rates(tmp: Path, args: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    with platform_server(tmp) as (port, _proc):
        tokens, sid = sign_in(port, 1)
        url = f"ws://{HOST}:{port}/ws/sessions/{sid}/"
        ours = asyncio.run(
            rate_room(
                url, f"http://{HOST}:{port}", [["coditect.v5", f"bearer.{tokens[0]}"]], True, args
            )
        )
    port = comparison.free_port()
    proc = start_stock(tmp, port, "")
    try:
        common.wait_listening(port, proc)
        url = f"ws://{HOST}:{port}/ws/sessions/0f0e0d0c0b0a09080706050403020100/"
        stock = asyncio.run(rate_room(url, f"http://{HOST}:{port}", [[]], False, args))
    finally:
        comparison.stop(proc)
    return ours, stock


def spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f}"


def report(runs: list[dict[str, Any]], args: Any, started: str, took: float) -> dict[str, Any]:
    joins = [r["join"]["join_s"] for r in runs]
    p99s = [r["join"]["fanout"]["p99_ms"] for r in runs]
    lost = [
        r["join"]["fanout"]["lost"] + r["join"]["seq_breaks"] + r["join"]["error_count"]
        for r in runs
    ]
    kib = [r["join"]["socket_kib"] for r in runs]
    ours = [r["rates"]["platform"]["best"] for r in runs]
    stock = [r["rates"]["stock"]["best"] for r in runs]
    ratios = [o / s if s else (math.inf if o else 0.0) for o, s in zip(ours, stock, strict=True)]
    bars = [
        {
            "name": f"{args.sockets} sockets all welcomed, max of runs {max(joins):.2f} s"
            f" <= {JOIN_BAR_S:g} s",
            "passed": max(joins) <= JOIN_BAR_S,
        },
        {
            "name": f"fan-out to {args.sockets} at {PATCH_RATE:g}/s: p99 max of runs"
            f" {max(p99s):.1f} ms <= {FANOUT_BAR_MS:g} ms",
            "passed": max(p99s) <= FANOUT_BAR_MS,
        },
        {
            "name": f"fan-out to {args.sockets}: lost/seq breaks/errors {sum(lost):g} == 0",
            "passed": sum(lost) == 0,
        },
        {
            "name": f"rate at {RATE_SOCKETS} sockets (p99 <= {RATE_BAR_MS:g} ms, no loss):"
            f" platform/stock min of runs {min(ratios):.2f}x >= {RATE_RATIO_BAR:g}x",
            "passed": min(ratios) >= RATE_RATIO_BAR,
        },
    ]
    return {
        "date": started,
        "revision": common.revision("realtime", "workspaces", "coditect", "accounts"),
        "command": shlex.join(["python", "bench/rooms.py", *sys.argv[1:]]),
        "duration_s": round(took),
        "figures": {
            "join_s": spread(joins),
            "join_server_cpu_s": spread([r["join"]["join_server_cpu_s"] for r in runs]),
            "join_client_cpu_s": spread([r["join"]["join_client_cpu_s"] for r in runs]),
            "fanout_p99_ms": spread(p99s),
            "fanout_p50_ms": spread([r["join"]["fanout"]["p50_ms"] for r in runs]),
            "fanout_server_cpu_ms_per_patch": spread(
                [r["join"]["fanout"]["server_cpu_ms_per_patch"] for r in runs]
            ),
            "fanout_lost": spread([float(x) for x in lost]),
            "welcome_bytes_max": spread([float(r["join"]["welcome_bytes_max"]) for r in runs]),
            "kib_per_idle_socket": spread(kib),
            "rate_platform_per_s": spread(ours),
            "rate_stock_per_s": spread(stock),
            "rate_ratio": spread(ratios),
            # Over every step of the ladder, the failing ones included: publishes the server
            # refused or never answered (not deliveries, not losses).
            "rate_platform_refused_sends": spread(
                [float(sum(_refusals(r["rates"]["platform"]["steps"]).values())) for r in runs]
            ),
            "rate_platform_unanswered": spread(
                [float(sum(s["unanswered"] for s in r["rates"]["platform"]["steps"])) for r in runs]
            ),
            "rate_stock_refused_sends": spread(
                [float(sum(_refusals(r["rates"]["stock"]["steps"]).values())) for r in runs]
            ),
        },
        "bars": bars,
        "runs": runs,
        # machine() reads the load now, at the end: the start's is the first run's.
        "machine": {
            **machine(),
            "load_1min": runs[0]["load"][0] if runs and "load" in runs[0] else math.nan,
            "load_1min_end": os.getloadavg()[0],
        },
    }


def _refusals(steps: list[dict[str, Any]]) -> dict[str, int]:
    """Refused sends over the steps, by code."""
    total: dict[str, int] = {}
    for step in steps:
        for code, count in step["refused"].items():
            total[code] = total.get(code, 0) + count
    return total


def format_report(r: dict[str, Any]) -> str:
    lines = ["figure                                   min / median / max"]
    for name, value in r["figures"].items():
        lines.append(f"  {name:<38} {value}")
    lines += ["", "per run:"]
    for n, run in enumerate(r["runs"], 1):
        j = run["join"]
        lines.append(
            f"  run {n}: join {j['join_s']:.2f} s, fan-out p50 {j['fanout']['p50_ms']:.1f} p99"
            f" {j['fanout']['p99_ms']:.1f} max {j['fanout']['max_ms']:.1f} ms, lost"
            f" {j['fanout']['lost']}, seq breaks {j['seq_breaks']}, errors {j['error_count']},"
            f" {j['socket_kib']:.1f} KiB/socket, welcome <= {j['welcome_bytes_max']} B;"
            f" rate platform {run['rates']['platform']['best']:g}/s, stock"
            f" {run['rates']['stock']['best']:g}/s; load {j['load']:.2f} after the join"
            + (
                f" ({run['load'][0]:.2f} at start, {run['load'][1]:.2f} at end)"
                if "load" in run
                else ""
            )
            + f", {j['others']} other"
        )
        for side in ("platform", "stock"):
            steps = run["rates"][side]["steps"]
            shown = ", ".join(
                f"{s['rate']:g}:{s['p99_ms']:.0f}ms/{s['lost']}/{sum(s['refused'].values())}"
                f"/{s['unanswered']}" + (f" closed {s['closed']}" if s["closed"] else "")
                for s in steps[-3:]
            )
            lines.append(
                f"    {side} last steps (rate:p99/lost deliveries/refused sends/unanswered):"
                f" {shown}"
            )
            refused = _refusals(steps)
            if refused:
                lines.append(f"    {side} refused sends by code: {refused}")
            for error in run["rates"][side].get("errors", [])[:2]:
                lines.append(f"    {side} rate: {error[:150]}")
        for error in j["errors"][:3]:
            lines.append(f"    {error[:150]}")
    lines += ["", "bars:"]
    for b in r["bars"]:
        lines.append(f"  {'PASS' if b['passed'] else 'FAIL'}  {b['name']}")
    m = r["machine"]
    lines += [
        "",
        f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, load {m['load_1min']:.2f}"
        f" at start, {m['load_1min_end']:.2f} at end (shared with other work)",
        f"date:    {r['date']}, revision {r['revision']}, took {r['duration_s']} s",
        f"command: {r['command']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--patches", type=int, default=30, help="fan-out phase, at 2/s")
    parser.add_argument("--step-seconds", type=float, default=3.0, help="rate ladder step")
    parser.add_argument("--skip-rates", action="store_true", help="join and fan-out only")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    clock = time.monotonic()
    runs = []
    with tempfile.TemporaryDirectory(prefix="coditect-bench-rooms-") as name:
        tmp = Path(name)
        for n in range(args.runs):
            load_start = os.getloadavg()[0]
            joined = run_platform(tmp / f"join-{n}", args)
            print(f"  run {n + 1}: join {joined['join_s']:.2f} s, fan-out p99"
                  f" {joined['fanout']['p99_ms']:.1f} ms", file=sys.stderr, flush=True)  # fmt: skip
            empty = {"best": 0.0, "steps": []}
            if args.skip_rates:
                ours, stock = empty, empty
            else:
                ours, stock = run_rates(tmp / f"rate-{n}", args)
            runs.append(
                {
                    "join": joined,
                    "rates": {"platform": ours, "stock": stock},
                    "load": [load_start, os.getloadavg()[0]],
                }
            )
    result = report(runs, args, started, time.monotonic() - clock)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
