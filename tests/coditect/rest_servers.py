"""Real servers of the API for tests: daphne, or a REST process (uvicorn, gunicorn) started
as coditect/percore.py starts it."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from coditect.percore import api_server_argv
from tests.realtime.servers import ROOT, Server, Servers


class RestProcess(Server):
    """A REST process (uvicorn or gunicorn) as coditect/percore.py starts it."""

    def __init__(self, kind: str, log_path: Path, env: dict[str, str]) -> None:
        super().__init__(kind, log_path, env)
        self.kind = kind

    def start(self) -> None:
        self._log = self.log_path.open("wb")
        argv = api_server_argv(self.kind, "127.0.0.1", self.port)
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )


@contextlib.contextmanager
def serving(kind: str, tmp_path: Path, env: dict[str, str]) -> Iterator[Server]:
    """A real server of ``kind`` (daphne, uvicorn, gunicorn) with ``env``, ready; stopped
    after."""
    servers = Servers(tmp_path)
    try:
        if kind == "daphne":
            (server,) = servers.start_all((kind, env))
        else:
            server = RestProcess(kind, tmp_path / f"{kind}.log", env)
            servers.started.append(server)
            server.start()
            server.wait_ready()
        yield server
    finally:
        servers.stop_all()
