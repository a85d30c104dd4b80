"""permessage-deflate on the session socket (issue 14 #2): bytes on the wire and latency.

Run from the repository root::

    python bench/compression.py [--runs 5] [--patches 100] [--welcomes 20] [--memory 200]
                                [--json]

One ``python -m coditect.serve`` process (compression accepted, which is the default) serves
both variants; whether a socket is compressed is the client's offer (``websockets``'
``compression="deflate"`` or ``None``), so both variants meet the same server, and the runs
interleave them (plain, deflate, deflate, plain, ...) so that other load on the machine hits
both alike. Bytes are counted at the TCP level: what the client's connection receives from its
transport, the opening handshake's response included.

1. ``welcome``: a session whose editor state is 200 kB of JSON (many files' cursors, folds and
   selections); ``--welcomes`` connections per run and variant, each timed from the start of
   the handshake until its welcome is parsed; bytes of each connection until then.
2. fan-out: 100 sockets on the session, one of them sends ``state.patch`` with a 5 kB
   ``editor_state`` at 20/s (``--patches`` per run); latency from sending a patch until the
   last of the 100 sockets has its ``state.changed``; p50/p99 per run, bytes per patch over
   all sockets.

3. memory (first, in the fresh process): ``--memory`` idle plain sockets, then as many idle
   compressed ones (all kept open, ten per session, each after its welcome of 64 kB of state);
   the server's resident memory before and after each batch, divided by the count.
4. small messages: what the server sends in a short session (welcome, presence, pong, acks,
   cursor-sized ``state.changed``, locks, an event), each deflated alone at the configured
   level: the bytes it saves and what the deflate costs, which sets
   CODITECT_WS_COMPRESSION_MIN_BYTES.

The bar: compression costs at most 10% of the fan-out p99, on the minimum over the runs of
each variant (the run least disturbed by other load; the medians are reported too). The
report names the machine's load: with a 1-minute load above the core count the machine was
saturated and the latencies say more about it than about compression.
This is a benchmark, not a test. Figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/compression.py` puts bench/, not the root, first

from bench import common

HOST = "127.0.0.1"
SOCKETS = 100
PATCH_RATE = 20.0
STATE_BYTES = 200_000
PATCH_BYTES = 5_000
P99_COST_BAR = 0.10
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
PASSWORD = "bench-Password-1234!"


class Counting(ClientConnection):
    """A client connection that counts the bytes its transport delivers."""

    received_bytes = 0

    def data_received(self, data: bytes) -> None:
        self.received_bytes += len(data)
        super().data_received(data)


# --- the server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODITECT_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="coditect.settings",
        DJANGO_DEBUG="1",
        DJANGO_ALLOWED_HOSTS=f"{HOST},localhost",
        DJANGO_LOG_LEVEL="WARNING",
        CODITECT_STORAGE_URL=f"embedded://{tmp}/store.sqlite3",
        CODITECT_THROTTLE_SCALE="1000",
        CODITECT_ARGON2_TIME_COST="1",
        CODITECT_ARGON2_MEMORY_KIB="8",
        CODITECT_ARGON2_PARALLELISM="1",
    )
    log = (tmp / "serve.log").open("ab")
    argv = [sys.executable, "-m", "coditect.serve", "-b", HOST, "-p", str(port), "-v", "0"]
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def call(port: int, method: str, path: str, body: Any, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}", json.dumps(body).encode(), headers, method=method
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


# --- payloads --------------------------------------------------------------------------------


def editor_state(size: int, seed: int) -> dict[str, Any]:
    """An editor state of about ``size`` bytes of JSON: per-file cursors, folds, selections."""
    rng = random.Random(seed)
    files: dict[str, Any] = {}
    n = 0
    while len(json.dumps(files, separators=(",", ":"))) < size:
        n += 1
        line = rng.randrange(1, 4000)
        files[f"/srv/project/src/pkg_{n % 17}/module_{n}.py"] = {
            "cursor": {"line": line, "column": rng.randrange(0, 120)},
            "scroll": line - rng.randrange(0, 40),
            "folds": sorted(rng.sample(range(1, 4000), 4)),
            "selection": [line, rng.randrange(0, 80), line + rng.randrange(0, 9), 0],
        }
    return {"files": files}


# --- phases ----------------------------------------------------------------------------------


async def open_socket(url: str, token: str, compression: str | None) -> Counting:
    connection = await connect(
        url,
        subprotocols=[Subprotocol("coditect.v5")],
        additional_headers={"Authorization": f"Bearer {token}"},
        compression=compression,
        max_size=None,
        open_timeout=30,
        create_connection=Counting,
    )
    assert isinstance(connection, Counting)
    return connection


async def welcome_once(url: str, token: str, compression: str | None) -> tuple[float, int]:
    started = time.perf_counter()
    connection = await open_socket(url, token, compression)
    while True:
        message = json.loads(await connection.recv())
        if message["type"] == "welcome":
            break
    elapsed = 1000 * (time.perf_counter() - started)
    received = connection.received_bytes
    await connection.close()
    return elapsed, received


async def welcomes(url: str, token: str, compression: str | None, count: int) -> dict[str, Any]:
    times, sizes = [], []
    for _ in range(count):
        elapsed, received = await welcome_once(url, token, compression)
        times.append(elapsed)
        sizes.append(received)
    return {"p50_ms": statistics.median(times), "bytes": statistics.median(sizes)}


async def fan_out(
    url: str, token: str, compression: str | None, patches: int, seed: int, server_pid: int
) -> dict[str, Any]:
    sockets = [await open_socket(url, token, compression) for _ in range(SOCKETS)]
    arrived: dict[int, int] = {}
    done: dict[int, asyncio.Future[float]] = {}
    loop = asyncio.get_running_loop()
    acks: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    version = 0

    async def read(index: int, connection: Counting) -> None:
        nonlocal version
        async for raw in connection:
            message = json.loads(raw)
            kind = message["type"]
            if kind == "welcome" and index == 0:
                version = message["version"]
            elif kind == "ack" and index == 0:
                acks.put_nowait(message)
            elif kind == "state.changed":
                n = message["changes"]["editor_state"].get("n")
                if n is None:
                    continue
                arrived[n] = arrived.get(n, 0) + 1
                if arrived[n] == SOCKETS and n in done and not done[n].done():
                    done[n].set_result(time.perf_counter())

    readers = [asyncio.ensure_future(read(i, s)) for i, s in enumerate(sockets)]
    await asyncio.sleep(1.0)  # welcomes and presence joins settle
    before = sum(s.received_bytes for s in sockets)
    server_cpu, client_cpu = cpu_seconds(server_pid), time.process_time()
    latencies, missing = [], 0
    start = time.perf_counter()
    for n in range(1, patches + 1):
        delay = start + (n - 1) / PATCH_RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        state = editor_state(PATCH_BYTES, seed * 100_000 + n)
        state["n"] = n
        done[n] = loop.create_future()
        sent = time.perf_counter()
        patch = {"type": "state.patch", "id": n, "base_version": version}
        patch["changes"] = {"editor_state": state}
        await sockets[0].send(json.dumps(patch))
        ack = await asyncio.wait_for(acks.get(), 30)
        if ack.get("type") == "ack":
            version = ack["version"]
        try:
            latencies.append(1000 * (await asyncio.wait_for(done[n], 30) - sent))
        except TimeoutError:
            missing += 1  # not at every socket within 30 s: reported, not timed
    received = sum(s.received_bytes for s in sockets) - before
    server_cpu = cpu_seconds(server_pid) - server_cpu
    client_cpu = time.process_time() - client_cpu
    for connection in sockets:
        await connection.close()
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return {
        "p50_ms": common.percentile(latencies, 0.50),
        "p99_ms": common.percentile(latencies, 0.99),
        "bytes_per_patch": received / patches,
        "server_cpu_ms_per_patch": 1000 * server_cpu / patches,
        "client_cpu_ms_per_patch": 1000 * client_cpu / patches,
        "missing": missing,
    }


async def idle_memory(port: int, token: str, server_pid: int, count: int) -> dict[str, float]:
    """Server memory per idle socket, plain then compressed, every socket kept open.

    Ten sockets per session (so that presence joins stay few), each session with 64 kB of
    state: a welcome larger than deflate's 32 kB window, which it fills.
    """
    sockets: list[Counting] = []
    per_socket = {}
    body: dict[str, Any] = {"name": "idle", "workspace_path": "/srv/project"}
    body["editor_state"] = editor_state(64_000, 2)
    for variant, compression in (("plain", None), ("deflate", "deflate")):
        urls = []
        for _ in range(-(-count // 10)):
            session = call(port, "POST", "/api/v5/sessions", body, token)
            urls.append(f"ws://{HOST}:{port}/ws/sessions/{session['id']}/")
        await asyncio.sleep(1.0)
        before = rss_bytes(server_pid)
        for n in range(count):
            connection = await open_socket(urls[n // 10], token, compression)
            while json.loads(await connection.recv())["type"] != "welcome":
                pass
            sockets.append(connection)
        await asyncio.sleep(2.0)  # presence joins settle
        per_socket[variant] = (rss_bytes(server_pid) - before) / count
    for connection in sockets:
        await connection.close()
    return per_socket


def deflate(payload: bytes, level: int, window_bits: int, mem_level: int) -> bytes:
    """One permessage-deflate message without context takeover, as the server sends it."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -window_bits, mem_level)
    return (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def small_messages(port: int) -> list[dict[str, Any]]:
    """What a short session sends a plain client, and what deflating each alone does to it."""
    body = {"email": "m@example.com", "password": PASSWORD, "display_name": "Maria Example"}
    token = call(port, "POST", "/api/v5/auth/register", body)["access"]
    session = call(
        port, "POST", "/api/v5/sessions", {"name": "app", "workspace_path": "/srv/p"}, token
    )
    url = f"ws://{HOST}:{port}/ws/sessions/{session['id']}/"
    received: list[str] = []

    async def drain(connection: Counting) -> None:
        while True:
            try:
                received.append(str(await asyncio.wait_for(connection.recv(), 0.5)))
            except TimeoutError:
                return

    first = await open_socket(url, token, None)
    await drain(first)
    second = await open_socket(url, token, None)
    await drain(first)
    version = json.loads(received[0])["version"]
    path = "/srv/p/src/app/views.py"
    cursor = {"files": {path: {"cursor": {"line": 120, "column": 17}, "scroll": 100}}}
    for message in [
        {"type": "ping", "id": 1},
        {
            "type": "state.patch",
            "id": 2,
            "base_version": version,
            "changes": {"editor_state": cursor},
        },
        {"type": "lock.acquire", "id": 3, "path": path},
        {"type": "event.publish", "id": 4, "event": "run.output", "data": {"line": "12 passed"}},
        {"type": "lock.release", "id": 5, "path": path},
        {"type": "lock.release", "id": 6, "path": path},
    ]:
        await first.send(json.dumps(message))
        await drain(first)
    await second.close()
    await drain(first)
    await first.close()
    level = int(os.environ.get("CODITECT_WS_COMPRESSION_LEVEL", "1"))
    rows = []
    for text in received:
        raw = text.encode()
        deflated = deflate(raw, level, 15, 8)
        started = time.perf_counter()
        for _ in range(1000):
            deflate(raw, level, 15, 8)
        rows.append(
            {
                "type": json.loads(text)["type"],
                "bytes": len(raw),
                "deflated": len(deflated),
                "deflate_us": 1000 * (time.perf_counter() - started),
            }
        )
    return rows


# --- the run ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


async def measure(port: int, server_pid: int, args: argparse.Namespace) -> dict[str, Any]:
    user = call(
        port, "POST", "/api/v5/auth/register", {"email": "b@example.com", "password": PASSWORD}
    )
    token = user["access"]
    body: dict[str, Any] = {"name": "bench", "workspace_path": "/srv/project"}
    body["editor_state"] = editor_state(STATE_BYTES, 1)
    # One session keeps its 200 kB state for the welcomes; the patches go to another.
    big = call(port, "POST", "/api/v5/sessions", body, token)
    del body["editor_state"]
    patched = call(port, "POST", "/api/v5/sessions", body, token)
    url, fan_url = (f"ws://{HOST}:{port}/ws/sessions/{s['id']}/" for s in (big, patched))
    results: dict[str, dict[str, list[float]]] = {"plain": {}, "deflate": {}}
    # First, while the process has allocated little: what it grows by is the sockets'.
    memory = await idle_memory(port, token, server_pid, args.memory) if args.memory else {}
    loads = [os.getloadavg()[0]]
    for run in range(args.runs):
        order = ["plain", "deflate"] if run % 2 == 0 else ["deflate", "plain"]
        for variant in order:
            compression = "deflate" if variant == "deflate" else None
            loads.append(os.getloadavg()[0])
            welcome = await welcomes(url, token, compression, args.welcomes)
            fan = await fan_out(fan_url, token, compression, args.patches, run, server_pid)
            row = results[variant]
            for key, value in [
                ("welcome_p50_ms", welcome["p50_ms"]),
                ("welcome_bytes", welcome["bytes"]),
                ("fanout_p50_ms", fan["p50_ms"]),
                ("fanout_p99_ms", fan["p99_ms"]),
                ("fanout_bytes_per_patch", fan["bytes_per_patch"]),
                ("fanout_server_cpu_ms_per_patch", fan["server_cpu_ms_per_patch"]),
                ("fanout_client_cpu_ms_per_patch", fan["client_cpu_ms_per_patch"]),
                ("fanout_missing", fan["missing"]),
            ]:
                row.setdefault(key, []).append(value)
            print(f"run {run + 1} {variant}: {json.dumps(fan)}", file=sys.stderr)
    summary = {v: {k: spread(vals) for k, vals in row.items()} for v, row in results.items()}
    costs = {}
    if args.runs:
        for stat in ("min", "median"):
            plain_p99 = summary["plain"]["fanout_p99_ms"][stat]
            costs[stat] = summary["deflate"]["fanout_p99_ms"][stat] / plain_p99 - 1
    return {
        "summary": summary,
        "p99_cost": costs,
        "bar": ("PASS" if costs["min"] <= P99_COST_BAR else "FAIL") if costs else "-",
        "memory": memory,
        "messages": await small_messages(port),
        "load_1min": spread(loads),
        "saturated": max(loads) > CORES,
        "cores": CORES,
        "cpu": common.cpu_model(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "revision": common.revision(),
        "command": " ".join(["python", "bench/compression.py", *sys.argv[1:]]),
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        "| measure | plain (min / median / max) | deflate (min / median / max) |",
        "|---|---|---|",
    ]
    for key in report["summary"]["plain"]:
        cells = []
        for variant in ("plain", "deflate"):
            s = report["summary"][variant][key]
            cells.append(f"{s['min']:,.1f} / {s['median']:,.1f} / {s['max']:,.1f}")
        lines.append(f"| {key} | {cells[0]} | {cells[1]} |")
    load = report["load_1min"]
    if report["p99_cost"]:
        cost = report["p99_cost"]
        lines += [
            "",
            f"fan-out p99 cost of compression: {100 * cost['min']:+.1f}% on the minimum of runs, "
            f"{100 * cost['median']:+.1f}% on the median (bar <= +{100 * P99_COST_BAR:.0f}% "
            f"on the minimum): {report['bar']}",
        ]
    if report["memory"]:
        memory = report["memory"]
        lines.append(
            f"server memory per idle socket: plain {memory['plain'] / 1024:,.1f} kB, "
            f"deflate {memory['deflate'] / 1024:,.1f} kB"
        )
    lines += [
        "",
        "| message | bytes | deflated alone | saved | us per deflate |",
        "|---|---|---|---|---|",
    ]
    for row in report["messages"]:
        saved = row["bytes"] - row["deflated"]
        lines.append(
            f"| {row['type']} | {row['bytes']} | {row['deflated']} | {saved} "
            f"({100 * saved / row['bytes']:.0f}%) | {row['deflate_us']:.1f} |"
        )
    lines += [
        "",
        f"machine: {report['cpu']}, {report['cores']} cores; 1-min load "
        f"{load['min']:.1f}..{load['max']:.1f}"
        + (" (SATURATED: above the core count)" if report["saturated"] else ""),
        f"{report['date']}, revision {report['revision']}: {report['command']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--patches", type=int, default=100)
    parser.add_argument("--welcomes", type=int, default=20)
    parser.add_argument("--memory", type=int, default=200, help="idle sockets; 0: skip")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-compression-") as tmp:
        port = free_port()
        proc = start_server(Path(tmp), port)
        try:
            wait_ready(port, proc)
            report = asyncio.run(measure(port, proc.pid, args))
        except BaseException:
            print((Path(tmp) / "serve.log").read_text(errors="replace")[-4000:], file=sys.stderr)
            raise
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # nothing of it is kept
            proc.wait(10)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
