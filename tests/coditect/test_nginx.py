"""docs/deploy/nginx-compose.conf in front of two daphne processes and a gunicorn worker
sharing Redis and a store, as docs/deploy/compose.yaml runs them (services replaced by loopback
ports). docs/deploy/nginx-coditect.conf, the per-core deployment's site, is run by
tests/coditect/test_percore.py. Needs Debian's nginx (`make test` installs it where it can) and
Redis: skipped without them, failed under CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.realtime.helpers import redis_url_or_skip
from tests.realtime.servers import (
    Http,
    NetPeer,
    Servers,
    base_env,
    create_session,
    free_port,
    invite,
    net_open,
    register,
)
from tests.store import shared_store

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_CONF = ROOT / "docs" / "deploy" / "nginx-compose.conf"
REDIS_DB_COMPOSE = 12


def nginx_or_skip() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)), None
    )
    if found is None:
        reason = "nginx is not installed (Debian: apt-get install nginx-light)"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set: nginx is required)")
        pytest.skip(reason)
    return found


@dataclass
class Proxy:
    """nginx, shaped like a tests.realtime.servers.Server for Http and net_open."""

    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()


def run_nginx(
    binary: str, tmp_path: Path, site: str, expected: str
) -> tuple[Proxy, subprocess.Popen[bytes]]:
    port = free_port()
    site = site.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    assert expected in site and f":{port};" in site, "the example changed shape"
    (tmp_path / "coditect.conf").write_text(site)
    # What a distribution's nginx.conf provides around conf.d; here it runs unprivileged.
    (tmp_path / "nginx.conf").write_text(
        f"""
daemon off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {tmp_path}/nginx-access.log;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/coditect.conf;
}}
"""
    )
    process = subprocess.Popen(
        [binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    proxy = Proxy(port, tmp_path / "nginx-error.log")
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(proxy.base_url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return proxy, process
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"nginx did not come up:\n{proxy.log()}")
        time.sleep(0.05)


def start_gunicorn(tmp_path: Path, env: dict[str, str]) -> tuple[int, subprocess.Popen[bytes]]:
    """The compose file's WSGI API worker: gunicorn serving coditect.wsgi."""
    port = free_port()
    access_log = tmp_path / "gunicorn-access.log"
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "coditect.wsgi:application"),
            *("--bind", f"127.0.0.1:{port}", "--workers", "2"),
            *("--access-logfile", str(access_log)),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return port, process
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError((tmp_path / "gunicorn.log").read_text(errors="replace"))
        time.sleep(0.1)


async def test_the_compose_topology_without_containers(servers: Servers, tmp_path: Path) -> None:
    """docs/deploy/nginx-compose.conf as compose.yaml runs it: /api/ to the WSGI worker,
    WebSocket and pages to two daphnes sharing Redis (services replaced by loopback ports)."""
    binary = nginx_or_skip()
    redis_url = redis_url_or_skip(REDIS_DB_COMPOSE)
    env = base_env(
        shared_store(tmp_path),
        redis_url,
        CODITECT_TRUSTED_PROXIES="127.0.0.1",
        DATABASE_URL=f"sqlite:///{tmp_path / 'staff.sqlite3'}",
    )
    one = servers.start("one", env)
    two = servers.start("two", env)
    api_port, gunicorn = start_gunicorn(tmp_path, env)
    one.wait_ready()
    two.wait_ready()
    site = COMPOSE_CONF.read_text()
    site = site.replace(
        "server daphne:8000;",
        f"server 127.0.0.1:{one.port};\n    server 127.0.0.1:{two.port};",
    )
    site = site.replace("server api:8000;", f"server 127.0.0.1:{api_port};")
    proxy, nginx = run_nginx(binary, tmp_path, site, f"127.0.0.1:{api_port}")
    peers: list[NetPeer] = []
    try:
        http = Http(proxy)  # type: ignore[arg-type]
        alice = await asyncio.to_thread(register, http, "Alice", "alice@example.com", "Acme")
        bob = await asyncio.to_thread(invite, http, alice, "Bob", "bob@example.com")
        session = await asyncio.to_thread(create_session, http, alice)
        # The REST calls went to the WSGI worker, not to daphne.
        # (gunicorn logs a request after answering it: the line may come a moment later.)
        access_log = tmp_path / "gunicorn-access.log"
        deadline = time.monotonic() + 10
        while "POST /api/v5/sessions" not in access_log.read_text():
            assert time.monotonic() < deadline, access_log.read_text()
            await asyncio.sleep(0.05)
        assert "POST /api/v5/auth/register" in access_log.read_text()
        for name, server in (("one", one), ("two", two)):
            assert "/api/v5/" not in server.log(), f"daphne {name} served the API"

        # Sockets through nginx to both daphnes; events cross between them through Redis.
        for index in range(4):
            token = (alice, bob)[index % 2].access
            peers.append(await net_open(proxy, session["id"], token, f"peer-{index}"))  # type: ignore[arg-type]
        for index, peer in enumerate(peers):
            ack = await peer.ok("event.publish", event="hello", data={"from": index})
            for other in peers:
                await other.next("event", seq=ack["seq"], timeout=10)

        # Pages and probes go to daphne, which also serves the static files.
        # (Ready or not, which on a loaded machine may be a slow channel layer, /readyz names
        # the engine the processes share.)
        try:
            with urllib.request.urlopen(proxy.base_url + "/readyz", timeout=10) as response:
                ready = response.read()
        except urllib.error.HTTPError as error:
            ready = error.read()
        assert b'"storage":{"engine":"embedded"}' in ready.replace(b" ", b"")
        with urllib.request.urlopen(proxy.base_url + "/favicon.ico", timeout=10) as response:
            assert response.headers["Content-Type"] == "image/svg+xml"
        # Through the proxy every client would be the proxy's loopback address: no metrics.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(proxy.base_url + "/metrics", timeout=10)
        assert refused.value.code == 404
    finally:
        for peer in peers:
            with contextlib.suppress(Exception):  # the socket may be gone already
                await peer.close()
        nginx.terminate()
        nginx.wait(10)
        gunicorn.terminate()
        gunicorn.wait(10)
