"""The writer of the crash test: ``python -m tests.reliability.crash_writer SPEC_JSON``.

Django takes seconds to start on this machine, and the test kills twenty writers, so this
process starts Django once (a "zygote") and forks one writer per round on request; the test
SIGKILLs the writer (the child), never the zygote. Each writer is a fresh process with
Django already imported; the storage engine reopens its files after fork.

Protocol on stdin/stdout, one line each: the zygote prints ``ready`` once Django is up; then
``fork ROUND`` answers the writer's pid, ``reap PID`` waits for that writer and answers how it
ended (``signal 9``, ``exit 0``), and ``exit`` ends the zygote.

A writer signs in (``POST /api/v5/auth/login``), then creates workspace sessions, patches them
(editor state of up to 300 KB, so records span several keys, and the workspace path, which is
indexed) and refreshes its token, through Django's test client: the whole HTTP stack, in
process. Before each call it appends an *intent* line to the report; after the call returned
success it appends the acknowledgement and fsyncs, so every line that says "done" was done.
Any other answer is reported as an ``error`` line (the test fails on it).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
import traceback
from typing import Any

SESSIONS = "/api/v5/sessions"
AUTH = "/api/v5/auth/"
# Editor states of these sizes: small, one value, and split over 2 and 4 keys (100 KB each).
STATE_SIZES = (16, 4_000, 150_000, 320_000)
WRITER_LIFETIME_S = 30  # a writer the test forgot still ends


def state(step: int, size: int) -> dict[str, Any]:
    """The editor state of one patch: its step, and a blob of ``size`` characters."""
    return {"step": step, "blob": "x" * size}


class Report:
    """The report file: one JSON object per line, appended with one write each."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def intent(self, **line: Any) -> None:
        os.write(self.fd, (json.dumps(line) + "\n").encode())

    def done(self, **line: Any) -> None:
        os.write(self.fd, (json.dumps(line) + "\n").encode())
        os.fsync(self.fd)


def acknowledged_sessions(path: str) -> list[str]:
    """Ids of the sessions whose creation an earlier writer reported."""
    ids = []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.endswith("\n"):
                entry = json.loads(line)
                if entry["op"] == "create":
                    ids.append(entry["sid"])
    return ids


def write(spec: dict[str, Any], round_: int) -> None:
    """Sign in and write until killed."""
    from django.test import Client

    client = Client(raise_request_exception=False)
    report = Report(spec["report"])
    rng = random.Random(spec["seed"] * 1000 + round_)

    def call(method: str, path: str, body: Any, token: str | None) -> Any:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        data = json.dumps(body)
        return getattr(client, method)(path, data, content_type="application/json", **headers)

    def failed(what: str, response: Any) -> None:
        report.done(op="error", round=round_, what=what, status=response.status_code,
                    body=response.content[:500].decode(errors="replace"))  # fmt: skip

    response = call(
        "post", AUTH + "login", {"email": spec["email"], "password": spec["password"]}, None
    )
    if response.status_code != 200:
        failed("login", response)
        return
    access, refresh = response.json()["access"], response.json()["refresh"]
    report.done(op="login", round=round_, refresh=refresh)
    known = acknowledged_sessions(spec["report"])
    step = round_ * 100_000
    deadline = time.monotonic() + WRITER_LIFETIME_S
    while time.monotonic() < deadline:
        step += 1
        roll = rng.random()
        if roll < 0.25 or not known:
            size = rng.choice(STATE_SIZES)
            path = f"/crash/r{round_}/s{step}"
            report.intent(op="create-intent", round=round_, step=step)
            response = call(
                "post",
                SESSIONS,
                {
                    "name": f"crash {step}",
                    "workspace_path": path,
                    "editor_state": state(step, size),
                },
                access,
            )
            if response.status_code != 201:
                failed("create", response)
                continue
            sid = response.json()["id"]
            known.append(sid)
            report.done(op="create", round=round_, sid=sid, version=response.json()["version"],
                        step=step, size=size, path=path)  # fmt: skip
        elif roll < 0.85:
            sid = rng.choice(known)
            size = rng.choice(STATE_SIZES)
            path = f"/crash/r{round_}/p{step}"
            report.intent(op="patch-intent", round=round_, sid=sid, step=step, size=size, path=path)
            response = call(
                "patch",
                f"{SESSIONS}/{sid}",
                {"editor_state": state(step, size), "workspace_path": path},
                access,
            )
            if response.status_code != 200:
                failed("patch", response)
                continue
            report.done(op="patch", round=round_, sid=sid, version=response.json()["version"],
                        step=step, size=size, path=path)  # fmt: skip
        else:
            report.intent(op="refresh-intent", round=round_)
            response = call("post", AUTH + "refresh", {"refresh": refresh}, None)
            if response.status_code != 200:
                failed("refresh", response)
                continue
            access, refresh = response.json()["access"], response.json()["refresh"]
            report.done(op="refresh", round=round_, refresh=refresh)


def main(spec: dict[str, Any]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coditect.settings")
    import django

    django.setup()
    from django.test import Client

    # Load the URLconf, middleware and views before forking (touches no storage).
    Client(raise_request_exception=False).get("/healthz")
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "fork":
            pid = os.fork()
            if pid == 0:  # the writer
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)
                status = 0
                try:
                    write(spec, int(argument))
                except BaseException:
                    traceback.print_exc()
                    status = 1
                finally:
                    os._exit(status)
            print(pid, flush=True)
        elif command == "reap":
            _, status = os.waitpid(int(argument), 0)
            ended = (
                f"signal {os.WTERMSIG(status)}"
                if os.WIFSIGNALED(status)
                else f"exit {os.WEXITSTATUS(status)}"
            )
            print(ended, flush=True)
        elif command == "exit":
            return


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
