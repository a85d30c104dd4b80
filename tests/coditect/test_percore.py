"""The per-core deployment (``python -m coditect.percore``, issue 19) with real processes.

nginx (docs/deploy/nginx-coditect.conf, which is the launcher's own site) in front of two REST
processes (gunicorn, one worker each) and two daphnes sharing Redis and a store: REST goes to
the REST processes, balanced per request even on one keep-alive client connection; sockets go
to both daphnes and see each other's events; the client address the platform records is the
one nginx saw; SIGTERM stops every process. Needs Debian's nginx and Redis: skipped without
them, failed under CI (as tests/coditect/test_nginx.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from coditect import percore
from coditect.percore import nginx_site
from tests.coditect.test_nginx import nginx_or_skip
from tests.realtime.helpers import redis_url_or_skip
from tests.realtime.servers import (
    Http,
    NetPeer,
    base_env,
    create_session,
    free_port,
    invite,
    net_open,
    register,
)
from tests.store import shared_store

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "docs" / "deploy" / "nginx-coditect.conf"
REDIS_DB_PERCORE = 10
# An NCSA-style access line, as daphne and gunicorn write them: `... [07/Dec/2026:13:09:40]
# "GET /healthz" 200 16` (gunicorn's time has its zone).
SERVER_ACCESS_LINE = re.compile(r'\[\d\d/\w{3}/\d{4}:[^\]]+\] "[A-Z]+ /')


@dataclass
class Proxy:
    """The deployment's nginx, shaped like a tests.realtime.servers.Server for Http/net_open."""

    port: int
    run_dir: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        parts = []
        for path in sorted(self.run_dir.glob("*.log")):
            with contextlib.suppress(OSError):
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts)

    def upstreams(self, name: str) -> set[str]:
        """The addresses of one upstream block of the site the launcher wrote."""
        site = (self.run_dir / "coditect.conf").read_text()
        block = re.search(r"upstream " + name + r" \{(.*?)\}", site, re.S)
        assert block is not None, site
        return set(re.findall(r"server (\S+);", block.group(1)))

    def upstreams_of(self, uri: str) -> list[str]:
        return [upstream for upstream, _, logged in self.access() if logged == uri]

    def access(self) -> list[tuple[str, str, str]]:
        """(upstream address, method, path) of every request nginx logged so far."""
        path = self.run_dir / "access.log"
        rows = []
        for line in path.read_text().splitlines() if path.exists() else []:
            upstream, _status, method, uri = line.split(" ", 3)
            rows.append((upstream, method, uri))
        return rows


def test_the_documented_site_is_the_launchers() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "coditect.percore", "--print-nginx-conf"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert printed == nginx_site() == CONF.read_text()
    # Per request, over counters every nginx worker shares, with upstream keep-alive.
    for upstream in ("coditect_api", "coditect"):
        block = printed.split(f"upstream {upstream} {{", 1)[1].split("}", 1)[0]
        assert "least_conn;" in block and f"zone {upstream} " in block and "keepalive " in block


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_rest_processes_keep_connections_longer_than_nginx(server: str) -> None:
    argv = percore.api_server_argv(server, "127.0.0.1", 8101)
    option = "--timeout-keep-alive" if server == "uvicorn" else "--keep-alive"
    assert int(argv[argv.index(option) + 1]) > percore.UPSTREAM_IDLE_S
    if server == "uvicorn":
        # Whom to believe is the platform's decision (CODITECT_TRUSTED_PROXIES), not uvicorn's
        # (it would trust X-Forwarded-For from 127.0.0.1 by default).
        assert "--no-proxy-headers" in argv
        assert argv[argv.index("--http") + 1] == "httptools"
        assert argv[argv.index("--loop") + 1] == "uvloop"


def test_several_processes_need_redis() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    refused = subprocess.run(
        [sys.executable, "-m", "coditect.percore", "--processes", "2"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "REDIS_URL" in refused.stderr


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_per_core_topology_through_nginx(tmp_path: Path) -> None:
    nginx_or_skip()
    redis_url = redis_url_or_skip(REDIS_DB_PERCORE)
    env = base_env(
        shared_store(tmp_path), redis_url, DATABASE_URL=f"sqlite:///{tmp_path / 'staff.sqlite3'}"
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    port, run_dir = free_port(), tmp_path / "run"
    launcher = subprocess.Popen(
        [
            *(sys.executable, "-m", "coditect.percore", "--processes", "2"),
            *("--bind", f"127.0.0.1:{port}", "--run-dir", str(run_dir), "--access-log"),
            *("--seconds", "300"),  # stops by itself should the test die
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proxy = Proxy(port, run_dir)
    peers: list[NetPeer] = []
    try:
        assert launcher.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(launcher.stdout.readline), 120)
        assert line.startswith(f"ready: {proxy.base_url}"), line + proxy.log()
        api, daphnes = proxy.upstreams("coditect_api"), proxy.upstreams("coditect")
        assert len(api) == 2 and len(daphnes) == 2 and not api & daphnes

        api_client = Http(proxy)  # type: ignore[arg-type]
        alice = await asyncio.to_thread(register, api_client, "Alice", "alice@example.com", "Acme")
        bob = await asyncio.to_thread(invite, api_client, alice, "Bob", "bob@example.com")
        session = await asyncio.to_thread(create_session, api_client, alice)

        # One client keep-alive connection; its requests spread over both REST processes.
        bearer = {"Authorization": f"Bearer {alice.access}"}

        def on_one_connection() -> list[int]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            statuses = []
            try:
                for _ in range(8):
                    conn.request("GET", "/api/v5/auth/me", headers=bearer)
                    answer = conn.getresponse()
                    answer.read()
                    assert answer.getheader("Connection", "").lower() != "close"
                    statuses.append(answer.status)
            finally:
                conn.close()
            return statuses

        assert await asyncio.to_thread(on_one_connection) == [200] * 8
        # (nginx logs a request after answering it: the last line may come a moment later.)
        deadline = time.monotonic() + 10
        while len(me := proxy.upstreams_of("/api/v5/auth/me")) < 8:
            assert time.monotonic() < deadline, proxy.access()
            await asyncio.sleep(0.05)
        assert len(me) == 8 and set(me) == api, proxy.access()
        # Every API request went to a REST process, nothing else did.
        for upstream, method, uri in proxy.access():
            assert (upstream in api) == uri.startswith("/api/"), (upstream, method, uri)

        # The address the platform records is nginx's view of the client, not the header's.
        request = urllib.request.Request(
            proxy.base_url + "/api/v5/auth/sessions",
            headers={**bearer, "X-Forwarded-For": "203.0.113.9"},
        )
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=10).read())
        assert b"203.0.113.9" not in body
        assert b'"ip":"127.0.0.1"' in body.replace(b" ", b"")

        # Sockets through nginx to both daphnes; events cross between them through Redis,
        # REST writes (gunicorn) reach them too.
        for index in range(4):
            token = (alice, bob)[index % 2].access
            peers.append(await net_open(proxy, session["id"], token, f"peer-{index}"))  # type: ignore[arg-type]
        for index, peer in enumerate(peers):
            ack = await peer.ok("event.publish", event="hello", data={"from": index})
            for other in peers:
                await other.next("event", seq=ack["seq"], timeout=10)
        status, _ = await asyncio.to_thread(
            api_client.request,
            "PATCH",
            f"/api/v5/sessions/{session['id']}",
            {"editor_state": {"cursor": [1, 2]}},
            alice.access,
        )
        assert status == 200
        for peer in peers:
            await peer.next("state.changed", timeout=10, origin="")
        for peer in peers:
            peer.assert_contiguous()
            await peer.close()
        peers.clear()
        deadline = time.monotonic() + 10
        while {u for u, _, uri in proxy.access() if uri.startswith("/ws/")} != daphnes:
            assert time.monotonic() < deadline, proxy.access()
            await asyncio.sleep(0.1)
    finally:
        for peer in peers:
            with contextlib.suppress(Exception):  # the socket may be gone already
                await peer.close()
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGTERM)
        try:
            code = launcher.wait(30)
        except subprocess.TimeoutExpired:
            launcher.kill()
            raise
    # SIGTERM stopped the deployment: the launcher exited cleanly, nothing listens any more.
    assert code == 0, proxy.log()
    addresses = api | daphnes | {f"127.0.0.1:{port}"}
    assert not [a for a in addresses if _listening(int(a.rpartition(":")[2]))]
    # One access line per request, the platform's own, in the log of the process that served
    # it: gunicorn writes no access log (none configured), daphne none (python -m
    # coditect.serve turns its off); nginx's is the one asked for with --access-log.
    logs = {p.name: p.read_text(errors="replace") for p in run_dir.glob("[aw][ps]*-*.log")}
    assert sorted(logs) == ["api-0.log", "api-1.log", "ws-0.log", "ws-1.log"]
    for name, text in logs.items():
        assert not [line for line in text.splitlines() if SERVER_ACCESS_LINE.search(line)], name
    me_lines = [
        line
        for text in logs.values()
        for line in text.splitlines()
        if " coditect.access " in line and " GET /api/v5/auth/me 200 " in line
    ]
    assert len(me_lines) == 8, me_lines
    request_ids = {line.split("[", 1)[1].split("]", 1)[0] for line in me_lines}
    assert len(request_ids) == 8 and "-" not in request_ids


def test_the_launcher_stops_everything_when_one_process_dies(tmp_path: Path) -> None:
    """A deployment missing a process is not left half up: the launcher stops the rest and
    exits 1 (so a supervisor restarts the whole set)."""
    nginx_or_skip()
    env = base_env(shared_store(tmp_path), DATABASE_URL=f"sqlite:///{tmp_path / 'staff.sqlite3'}")
    port, run_dir = free_port(), tmp_path / "run"
    launcher = subprocess.Popen(
        [
            *(sys.executable, "-m", "coditect.percore", "--processes", "1"),
            *("--bind", f"127.0.0.1:{port}", "--run-dir", str(run_dir), "--seconds", "120"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    proxy = Proxy(port, run_dir)
    try:
        assert launcher.stdout is not None
        line = launcher.stdout.readline()
        assert line.startswith(f"ready: {proxy.base_url}"), line + proxy.log()
        backends = proxy.upstreams("coditect_api") | proxy.upstreams("coditect")
        os.kill(int((run_dir / "nginx.pid").read_text()), signal.SIGKILL)
        code = launcher.wait(60)
        rest = launcher.stdout.read()
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    assert code == 1 and "nginx exited" in rest, rest
    assert not [a for a in backends if _listening(int(a.rpartition(":")[2]))]
