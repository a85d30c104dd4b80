"""Real daphne processes for the realtime tests, an HTTP client for them, and a TCP peer.

``Servers`` starts ``python -m coditect.serve`` (daphne) on free ports with the environment a
test gives (one embedded store file, optionally one Redis database), waits for ``/healthz``,
and kills every process it started when the test ends. ``NetPeer`` is a ``Peer`` over a real
WebSocket connection made with the ``websockets`` package.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from tests.accounts.helpers import PASSWORD
from tests.realtime.helpers import ABNORMAL, Peer, bearer, ws_path

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def base_env(store_url: str, redis_url: str = "", **extra: str) -> dict[str, str]:
    """The environment of a daphne under test: cheap hashing, no throttles in the way."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CODITECT_", "DJANGO_", "REDIS_URL"))
    }
    env = {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "coditect.settings",
        "DJANGO_DEBUG": "1",
        "DJANGO_SECRET_KEY": "realtime-tests-" + "k" * 50,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_LOG_LEVEL": "WARNING",
        "CODITECT_STORAGE_URL": store_url,
        "CODITECT_ARGON2_TIME_COST": "1",
        "CODITECT_ARGON2_MEMORY_KIB": "8",
        "CODITECT_ARGON2_PARALLELISM": "1",
        "CODITECT_THROTTLE_SCALE": "1000",
        "PYTHONUNBUFFERED": "1",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


class Server:
    """One daphne process."""

    def __init__(
        self,
        name: str,
        log_path: Path,
        env: dict[str, str],
        args: tuple[str, ...] = (),
        plain_daphne: bool = False,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.env = env
        self.args = args
        self.plain_daphne = plain_daphne
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        # The README's entry point (daphne with the platform's WebSocket options), so the
        # tests exercise what is served; it always serves coditect.asgi:application.
        module = "daphne" if self.plain_daphne else "coditect.serve"
        command = [sys.executable, "-m", module, "-b", "127.0.0.1", "-p", str(self.port)]
        command += self.args
        if self.plain_daphne:
            command.append("coditect.asgi:application")
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"daphne {self.name} exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.base_url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"daphne {self.name} not ready in {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, like a machine that loses power."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log is not None:
            self._log.close()
            self._log = None


class Servers:
    """The daphne processes of one test; every one is stopped at the end, whatever happened."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[Server] = []

    def start(
        self,
        name: str,
        env: dict[str, str],
        args: tuple[str, ...] = (),
        plain_daphne: bool = False,
    ) -> Server:
        server = Server(name, self.tmp_path / f"daphne-{name}.log", env, args, plain_daphne)
        self.started.append(server)
        server.start()
        return server

    def start_all(self, *specs: tuple[str, dict[str, str]]) -> list[Server]:
        servers = [self.start(name, env) for name, env in specs]
        for server in servers:
            server.wait_ready()
        return servers

    def stop_all(self) -> None:
        for server in self.started:
            try:
                server.stop()
            except Exception:  # the others must stop too
                server.kill()


# --- HTTP -------------------------------------------------------------------------------


class Http:
    """JSON over HTTP to one server, with urllib (blocking: call it with asyncio.to_thread)."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def request(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.server.base_url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        return status, (json.loads(raw) if raw else None)

    def expect(
        self, status: int, method: str, path: str, body: Any = None, token: str | None = None
    ) -> Any:
        got, answer = self.request(method, path, body, token)
        assert got == status, (method, path, got, answer, self.server.log())
        return answer


@dataclass
class Account:
    name: str
    access: str
    user_id: str
    tenant_id: str


def register(
    http: Http, name: str, email: str, tenant_name: str = "", invitation: str = ""
) -> Account:
    body: dict[str, Any] = {"email": email, "password": PASSWORD, "display_name": name}
    if tenant_name:
        body["tenant_name"] = tenant_name
    if invitation:
        body["invitation"] = invitation
    answer = http.expect(201, "POST", "/api/v5/auth/register", body)
    user = answer["user"]
    return Account(name, answer["access"], user["id"], user["tenant_id"])


def invite(http: Http, inviter: Account, name: str, email: str) -> Account:
    answer = http.expect(
        201,
        "POST",
        "/api/v5/tenant/invitations/",
        {"email": email, "role": "member"},
        inviter.access,
    )
    return register(http, name, email, invitation=answer["token"])


def create_session(http: Http, owner: Account, name: str = "shared") -> dict[str, Any]:
    body = {"name": name, "workspace_path": "/srv/project"}
    answer: dict[str, Any] = http.expect(201, "POST", "/api/v5/sessions", body, owner.access)
    return answer


# --- WebSocket over TCP -----------------------------------------------------------------


class NetPeer(Peer):
    """A real WebSocket client connection."""

    def __init__(self, connection: ClientConnection, name: str) -> None:
        super().__init__(name)
        self.connection = connection

    async def _read(self, timeout: float) -> dict[str, Any] | int:
        try:
            frame = await asyncio.wait_for(self.connection.recv(), timeout)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else ABNORMAL
        assert isinstance(frame, str), f"{self.name}: a binary frame from the server"
        message = json.loads(frame)
        assert isinstance(message, dict), message
        assert isinstance(message.get("type"), str), message
        return message

    async def send_text(self, text: str) -> None:
        await self.connection.send(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.connection.send(data)

    async def close(self) -> None:
        await asyncio.wait_for(self.connection.close(), 10)


async def net_open(server: Server, session_id: str, token: str, name: str) -> NetPeer:
    """A connection with the token as subprotocol, after its welcome."""
    connection = await connect(
        server.ws_url(ws_path(session_id)),
        subprotocols=[Subprotocol(protocol) for protocol in bearer(token)],
        origin=Origin(server.base_url),
        open_timeout=10,
        close_timeout=5,
    )
    assert connection.subprotocol == "coditect.v5", connection.subprotocol
    peer = NetPeer(connection, name)
    peer.welcome = await peer.next("welcome", timeout=10)
    return peer


async def net_refused(server: Server, path: str, protocols: list[str]) -> int | None:
    """The close code of a connection that is refused (None: refused at the handshake)."""
    try:
        connection = await connect(
            server.ws_url(path),
            subprotocols=[Subprotocol(protocol) for protocol in protocols],
            origin=Origin(server.base_url),
            open_timeout=10,
        )
    except InvalidStatus:
        return None
    peer = NetPeer(connection, "refused")
    code = await peer.expect_close(10)
    assert not [m for m in peer.received if m.get("type") == "welcome"], peer.received
    return code
