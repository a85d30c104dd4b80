"""Mixed load (issue 8): logins, refreshes, session reads and patches, and open sockets.

Run from the repository root::

    python bench/load.py [--seconds 60] [--workers 16] [--sockets 100] [--json]

Against one daphne process (in-memory channel layer), then two daphne processes sharing Redis
(database 15, flushed first; skipped without Redis) and one embedded store: ``--workers``
HTTP clients on keep-alive connections (spread over the processes) each loop over a mix of
operations — ``GET /api/v5/sessions/{id}`` 50%, ``PATCH`` 34%, refresh rotation 15%, login 1%
(a login is an Argon2id hash, 0.2 s of CPU: more would make this an Argon2 benchmark) — for
``--seconds``, while ``--sockets`` WebSockets (spread over 10 sessions and the processes) stay
open and receive every patch as ``state.changed``. Reported: requests/s and p50/p99 per
operation, errors (any non-2xx answer, refused connection or socket closed by the server: the
bar is zero), deliveries to the sockets with any seq gap or repeat, and each server process's
resident memory at the start of the load, every 10 s, and at the end (the bar: no growth
trend, i.e. the last third of the samples no higher than the first third by more than 10%).
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
import random
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.typing import Origin, Subprotocol

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/load.py` puts bench/, not the root, first

from bench import common
from bench.sessions import PASSWORD, call, platform_daphnes, register

HOST = "127.0.0.1"
REDIS_URL = "redis://127.0.0.1:6379/15"
SESSIONS = 10
MIX = (("get", 50), ("patch", 34), ("refresh", 15), ("login", 1))
MEMORY_EVERY_S = 5.0
MEMORY_WARM_UP_S = 10.0  # caches and pools fill first; sampling starts after
GROWTH_BAR = 1.10


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    deliveries: int = 0
    seq_faults: int = 0
    socket_errors: int = 0

    def done(self, op: str, seconds: float) -> None:
        self.latencies.setdefault(op, []).append(seconds)

    def failed(self, op: str, what: str) -> None:
        key = f"{op}: {what}"
        self.errors[key] = self.errors.get(key, 0) + 1


class Connection:
    """One keep-alive HTTP/1.1 connection (the client must stay cheap next to the server)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        data = b"" if body is None else json.dumps(body).encode()
        head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", f"Content-Length: {len(data)}"]
        if body is not None:
            head.append("Content-Type: application/json")
        if token:
            head.append(f"Authorization: Bearer {token}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("closed by the server")
        status = int(status_line.split()[1])
        length, close, chunked = 0, False, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value == "close":
                close = True
            elif name == "transfer-encoding" and value == "chunked":
                chunked = True
        if chunked:
            parts = []
            while size := int((await self.reader.readline()).split(b";")[0], 16):
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            await self.reader.readexactly(2)
            raw = b"".join(parts)
        else:
            raw = await self.reader.readexactly(length) if length else b""
        if close:
            self.writer.close()
        return status, json.loads(raw) if raw else None


@dataclass
class Account:
    email: str
    access: str
    refresh: str


async def worker(
    port: int, account: Account, sessions: list[str], tally: Tally, end: float, rng: random.Random
) -> None:
    connection = Connection(port)
    names = [name for name, weight in MIX for _ in range(weight)]
    counter = 0
    while time.monotonic() < end:
        op = rng.choice(names)
        counter += 1
        started = time.perf_counter()
        body: Any
        try:
            if op == "get":
                path = f"/api/v5/sessions/{rng.choice(sessions)}"
                status, _ = await connection.request("GET", path, token=account.access)
            elif op == "patch":
                path = f"/api/v5/sessions/{rng.choice(sessions)}"
                body = {"editor_state": {"cursor": [counter, port], "note": "x" * 500}}
                status, _ = await connection.request("PATCH", path, body, account.access)
            elif op == "refresh":
                body = {"refresh": account.refresh}
                status, answer = await connection.request("POST", "/api/v5/auth/refresh", body)
                if status == 200:
                    account.access, account.refresh = answer["access"], answer["refresh"]
            else:
                body = {"email": account.email, "password": PASSWORD}
                status, answer = await connection.request("POST", "/api/v5/auth/login", body)
                if status == 200:
                    account.access, account.refresh = answer["access"], answer["refresh"]
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as error:
            tally.failed(op, type(error).__name__)
            connection = Connection(port)
            continue
        if 200 <= status < 300:
            tally.done(op, time.perf_counter() - started)
        else:
            tally.failed(op, str(status))


async def listener(url: str, token: str, tally: Tally, stop: asyncio.Event) -> None:
    try:
        async with connect(
            url,
            subprotocols=[Subprotocol("coditect.v5"), Subprotocol(f"bearer.{token}")],
            origin=Origin(f"http://{HOST}"),
            open_timeout=30,
            max_queue=None,
        ) as socket:
            welcome = json.loads(await socket.recv())
            last = int(welcome["seq"])
            pinged = time.monotonic()
            while not stop.is_set():
                if time.monotonic() - pinged > 20:  # the server closes idle sockets at 60 s
                    await socket.send(json.dumps({"type": "ping"}))
                    pinged = time.monotonic()
                try:
                    frame = await asyncio.wait_for(socket.recv(), 1.0)
                except TimeoutError:
                    continue
                message = json.loads(frame)
                if "seq" in message and message.get("type") != "ack":
                    seq = int(message["seq"])
                    if seq != last + 1:
                        tally.seq_faults += 1
                    last = max(last, seq)
                    tally.deliveries += 1
    except Exception:
        tally.socket_errors += 1


def rss_mib(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def sample_memory(
    pids: list[int], samples: dict[int, list[float]], stop: asyncio.Event
) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), MEMORY_WARM_UP_S)
    while True:
        for pid in pids:
            samples[pid].append(round(rss_mib(pid), 1))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), MEMORY_EVERY_S)
        if stop.is_set():
            for pid in pids:
                samples[pid].append(round(rss_mib(pid), 1))
            return


async def drive(
    ports: list[int], accounts: list[Account], sessions: list[str], pids: list[int],
    args: argparse.Namespace,
) -> dict[str, Any]:  # fmt: skip
    tally = Tally()
    stop = asyncio.Event()
    listeners = [
        asyncio.create_task(
            listener(
                f"ws://{HOST}:{ports[i % len(ports)]}/ws/sessions/{sessions[i % len(sessions)]}/",
                accounts[i % len(accounts)].access,
                tally,
                stop,
            )
        )
        for i in range(args.sockets)
    ]
    await asyncio.sleep(3)  # sockets open and welcomed
    samples: dict[int, list[float]] = {pid: [] for pid in pids}
    sampler = asyncio.create_task(sample_memory(pids, samples, stop))
    started = time.monotonic()
    end = started + args.seconds
    rng = random.Random(7)
    await asyncio.gather(
        *(
            worker(
                ports[i % len(ports)],
                accounts[i],
                sessions,
                tally,
                end,
                random.Random(rng.random()),
            )
            for i in range(args.workers)
        )
    )
    elapsed = time.monotonic() - started
    await asyncio.sleep(1)  # the last deliveries
    stop.set()
    await asyncio.gather(*listeners, sampler)
    ops = {}
    for op, values in sorted(tally.latencies.items()):
        ops[op] = {
            "requests": len(values),
            "per_s": round(len(values) / elapsed, 1),
            "p50_ms": round(common.percentile(values, 0.50) * 1000, 1),
            "p99_ms": round(common.percentile(values, 0.99) * 1000, 1),
        }
    total = sum(op["requests"] for op in ops.values())
    return {
        "seconds": round(elapsed, 1),
        "requests_per_s": round(total / elapsed, 1),
        "ops": ops,
        "errors": tally.errors,
        "deliveries": tally.deliveries,
        "deliveries_per_s": round(tally.deliveries / elapsed, 1),
        "seq_faults": tally.seq_faults,
        "socket_errors": tally.socket_errors,
        "memory_mib": {str(pid): values for pid, values in samples.items()},
    }


def run_variant(
    tmp: Path, processes: int, redis_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    with platform_daphnes(tmp, processes, redis_url) as (ports, procs):
        owner = register(ports[0], "load-owner@example.com")
        sessions = []
        for i in range(SESSIONS):
            body = {"name": f"load {i}", "workspace_path": f"/ws/load/{i}"}
            status, created = call(ports[0], "POST", "/api/v5/sessions", body, owner["access"])
            if status != 201:
                raise RuntimeError(f"create session: {status} {created}")
            sessions.append(created["id"])
        accounts = []
        for i in range(args.workers):
            # Each worker its own user of the owner's tenant, so refreshes never share a family.
            email = f"load-{i}@example.com"
            status, invited = call(
                ports[0], "POST", "/api/v5/tenant/invitations/",
                {"email": email, "role": "member"}, owner["access"],
            )  # fmt: skip
            if status != 201:
                raise RuntimeError(f"invite: {status} {invited}")
            status, joined = call(
                ports[0], "POST", "/api/v5/auth/register",
                {"email": email, "password": PASSWORD, "invitation": invited["token"]},
            )  # fmt: skip
            if status != 201:
                raise RuntimeError(f"register: {status} {joined}")
            accounts.append(Account(email, joined["access"], joined["refresh"]))
        result = asyncio.run(drive(ports, accounts, sessions, [p.pid for p in procs], args))
    return result


def bars(variant: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    errors = sum(result["errors"].values()) + result["socket_errors"] + result["seq_faults"]
    found = [
        {
            "bar": f"{variant}: zero errors (HTTP, sockets, seq gaps or repeats)",
            "ok": errors == 0,
            "value": errors,
        }
    ]
    for pid, values in result["memory_mib"].items():
        # The floor of each third: a login holds Argon2id's 64 MiB only while it hashes, so
        # single samples jump by that much and back; a leak raises the floor.
        third = max(1, len(values) // 3)
        first, last = min(values[:third]), min(values[-third:])
        found.append(
            {
                "bar": f"{variant}: memory of process {pid} without a growth trend "
                f"(floor of the last third {last:.1f} MiB <= {GROWTH_BAR:.2f} x floor of the "
                f"first {first:.1f} MiB)",
                "ok": last <= first * GROWTH_BAR,
                "value": round(last / first, 3) if first else None,
            }
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--sockets", type=int, default=100)
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    started = time.monotonic()
    report: dict[str, Any] = {"variants": {}, "bars": []}
    with tempfile.TemporaryDirectory(prefix="coditect-load-") as tmp_dir:
        tmp = Path(tmp_dir)
        variants = [("1 daphne, in-memory layer", 1, "")]
        if not args.no_redis:
            reason = common.redis_flush(REDIS_URL)
            if reason is None:
                variants.append(("2 daphne, Redis", 2, REDIS_URL))
            else:
                report["skipped"] = f"2 daphne, Redis: {reason}"
        for index, (name, processes, redis_url) in enumerate(variants):
            print(f"{time.monotonic() - started:6.0f} s  {name}", file=sys.stderr)
            result = run_variant(tmp / f"v{index}", processes, redis_url, args)
            report["variants"][name] = result
            report["bars"] += bars(name, result)
    cpu = common.cpu_model()
    report["machine"] = (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.2f} at end"
    )
    report["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    report["took_s"] = round(time.monotonic() - started)
    report["command"] = "python bench/load.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, result in report["variants"].items():
            print(f"\n{name}: {result['requests_per_s']} req/s over {result['seconds']} s, "
                  f"{result['deliveries_per_s']} deliveries/s to the sockets")  # fmt: skip
            for op, figures in result["ops"].items():
                print(f"  {op:8} {figures['per_s']:8.1f}/s  p50 {figures['p50_ms']:7.1f} ms  "
                      f"p99 {figures['p99_ms']:7.1f} ms  ({figures['requests']})")  # fmt: skip
            print(f"  errors {result['errors'] or 0}, socket errors {result['socket_errors']}, "
                  f"seq gaps/repeats {result['seq_faults']}")  # fmt: skip
            for pid, values in result["memory_mib"].items():
                print(f"  memory of {pid} (MiB, every {MEMORY_EVERY_S:.0f} s): {values}")
        if "skipped" in report:
            print(f"\nskipped: {report['skipped']}")
        print("\nbars:")
        for bar in report["bars"]:
            print(f"  {'PASS' if bar['ok'] else 'FAIL'}  {bar['bar']}")
        print(
            f"\nmachine: {report['machine']}\ndate:    {report['date']}, took {report['took_s']} s"
        )
        print(f"command: {report['command']}")
    return 0 if all(bar["ok"] for bar in report["bars"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
