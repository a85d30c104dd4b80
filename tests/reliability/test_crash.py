"""Crash safety (issue 8): a writer SIGKILLed twenty times at random moments loses nothing it
acknowledged and leaves nothing half-written.

The writer (``tests/reliability/crash_writer.py``, a separate process on the real embedded
store in a temporary directory) creates workspace sessions, patches them and refreshes its
token through the HTTP API, and reports each success only after the call returned. After each
kill this test, in its own process on the same store:

* runs ``manage.py storage check``: no orphan, no missing, dangling or stale index entry, no
  record that fails to decode (a half-written record would);
* reads every session the writer touched: each acknowledged creation is there, and each
  session holds the state of its last acknowledged patch, or of the one patch that was in
  flight when the writer died (never a mix of two: editor state, path and version agree);
* finds each such session through the indexes (listing, and listing by workspace path);
* refreshes with the last refresh token the writer was given: the token family still works
  (the token is current, or the one just rotated by a refresh that committed unacknowledged,
  which the grace window answers), and its new access token is accepted.

At the end the SQLite file passes ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

import fdb_backend
from tests.accounts.helpers import register_persona
from tests.workspaces.helpers import SessionApi, list_ids, read_session

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
KILLS = 20
SEED = 20261126
START_TIMEOUT_S = 60  # Django's start on a loaded 2-core machine
ACK_TIMEOUT_S = 20


@dataclass(frozen=True)
class Seen:
    """What a session holds: its version, the patch step of its editor state, the state's
    size and its workspace path."""

    version: int
    step: int
    size: int
    path: str


@dataclass
class Ledger:
    """What the writers reported, read back from the report file."""

    path: Path
    read_lines: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    # The last state observed for each session (at the previous check).
    observed: dict[str, Seen] = field(default_factory=dict)

    def lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        text = self.path.read_text()
        # A line the writer was killed in the middle of (it never is, one write per line,
        # but it would be no acknowledgement).
        return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

    def acks(self) -> int:
        lines = self.lines()
        errors = [line for line in lines if line["op"] == "error"]
        assert not errors, errors
        return sum(1 for line in lines if not line["op"].endswith("-intent"))

    def new_round(self) -> list[dict[str, Any]]:
        lines = self.lines()
        fresh = lines[self.read_lines :]
        self.read_lines = len(lines)
        self.errors += [line for line in fresh if line["op"] == "error"]
        return fresh


class Zygote:
    """The writer process's parent (see crash_writer.py), spoken to over a pipe."""

    def __init__(self, spec: dict[str, Any], env: dict[str, str], log: Path) -> None:
        self.writers: set[int] = set()
        self.log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.crash_writer", json.dumps(spec)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        assert self.answer(START_TIMEOUT_S) == "ready", self.logged()

    def logged(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]

    def answer(self, timeout: float) -> str:
        assert self.process.stdout is not None
        # The zygote answers each command at once; a dead one answers EOF.
        deadline = time.monotonic() + timeout
        line = ""
        while not line.endswith("\n"):
            if time.monotonic() > deadline or (self.process.poll() is not None and not line):
                raise AssertionError(f"the writer's zygote did not answer: {self.logged()}")
            line += self.process.stdout.readline()
        return line.strip()

    def ask(self, command: str, timeout: float = 10) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.answer(timeout)

    def fork(self, round_: int) -> int:
        pid = int(self.ask(f"fork {round_}"))
        self.writers.add(pid)
        return pid

    def kill(self, pid: int) -> str:
        """SIGKILL a writer; how it ended, as its parent saw it."""
        os.kill(pid, signal.SIGKILL)  # no cleanup, no atexit, possibly mid-commit
        self.writers.discard(pid)
        return self.ask(f"reap {pid}")

    def close(self) -> None:
        for pid in list(self.writers):  # a test that failed midway leaves no writer behind
            with contextlib.suppress(AssertionError, BrokenPipeError, ProcessLookupError):
                self.kill(pid)
        if self.process.poll() is None:
            with contextlib.suppress(AssertionError, BrokenPipeError):
                self.ask("exit")
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture
def store(settings, tmp_path: Path) -> Iterator[str]:
    url = f"embedded://{tmp_path}/store.sqlite3"
    fdb_backend.reset_database()
    settings.CODITECT_STORAGE_URL = url
    # The test refreshes with tokens a killed writer may have rotated just before dying;
    # the grace window (10 s by default) must outlast the checks before it, however slow.
    settings.CODITECT_REFRESH_GRACE_S = 3600
    yield url
    fdb_backend.reset_database()


def writer_env(url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "coditect.settings",
        "DJANGO_SECRET_KEY": django_settings.SECRET_KEY,  # the signing keys are sealed with it
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DJANGO_LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"sqlite:///{tmp_path}/staff.sqlite3",
        "CODITECT_STORAGE_URL": url,
        "CODITECT_ARGON2_TIME_COST": str(django_settings.CODITECT_ARGON2_TIME_COST),
        "CODITECT_ARGON2_MEMORY_KIB": str(django_settings.CODITECT_ARGON2_MEMORY_KIB),
        "CODITECT_ARGON2_PARALLELISM": str(django_settings.CODITECT_ARGON2_PARALLELISM),
        "CODITECT_THROTTLE_SCALE": "1000",
    }


def storage_check() -> dict[str, Any]:
    out = io.StringIO()
    try:
        call_command("storage", "check", "--json", stdout=out)
    except CommandError as error:
        raise AssertionError(f"storage check: {error}\n{out.getvalue()}") from None
    report: dict[str, Any] = json.loads(out.getvalue())
    return report


def allowed_states(ledger: Ledger, fresh: list[dict[str, Any]]) -> dict[str, set[Seen]]:
    """For every session this round touched: the states it may hold now."""
    allowed: dict[str, set[Seen]] = {}
    acked: dict[str, Seen] = {}
    pending: dict[str, dict[str, Any]] = {}
    for line in fresh:
        op = line["op"]
        if op in ("create", "patch"):
            acked[line["sid"]] = Seen(line["version"], line["step"], line["size"], line["path"])
            pending.pop(line["sid"], None)
        elif op == "patch-intent":
            pending[line["sid"]] = line
    for sid in {*acked, *pending}:
        base = acked.get(sid) or ledger.observed.get(sid)
        assert base is not None, f"a patch of {sid}, which no writer reported creating"
        allowed[sid] = {base}
        if sid in pending:
            intent = pending[sid]
            # The patch in flight when the writer died: done whole, or not at all.
            allowed[sid].add(Seen(base.version + 1, intent["step"], intent["size"], intent["path"]))
    return allowed


def observe(api: SessionApi, persona: Any, sid: str) -> Seen:
    body = read_session(api, persona, sid)
    editor = body["editor_state"]
    assert set(editor) == {"step", "blob"}, editor.keys()
    assert editor["blob"] == "x" * len(editor["blob"]), "an editor state with foreign bytes"
    return Seen(body["version"], editor["step"], len(editor["blob"]), body["workspace_path"])


def test_sigkilled_writers_lose_nothing_acknowledged(store: str, tmp_path: Path) -> None:
    api = SessionApi()
    owner = register_persona(api, "Owner", "owner@example.com", tenant_name="Crash")
    report = tmp_path / "report.jsonl"
    report.touch()
    spec = {"report": str(report), "email": owner.email, "password": owner.password, "seed": SEED}
    ledger = Ledger(report)
    rng = random.Random(SEED)
    zygote = Zygote(spec, writer_env(store, tmp_path), tmp_path / "writer.log")
    kills: list[dict[str, Any]] = []
    try:
        for round_ in range(KILLS):
            before = ledger.acks()
            wanted = before + rng.randint(2, 12)  # a login and a few writes, at least
            pid = zygote.fork(round_)
            deadline = time.monotonic() + ACK_TIMEOUT_S
            while ledger.acks() < wanted:  # polled: the writer's only signal is its report
                assert time.monotonic() < deadline, f"round {round_}: {zygote.logged()}"
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.03))  # somewhere in the next write, or between two
            assert zygote.kill(pid) == "signal 9", zygote.logged()
            kills.append(check_round(api, owner, ledger, round_))
    finally:
        zygote.close()

    assert not ledger.errors, ledger.errors
    # Most kills landed in the middle of a call (an intent without its acknowledgement).
    in_flight = [kill["in_flight"] for kill in kills if kill["in_flight"]]
    assert len(in_flight) >= KILLS // 4, kills
    final = storage_check()
    assert final["problems"] == []
    db = sqlite3.connect(store.removeprefix("embedded://"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()


def check_round(api: SessionApi, owner: Any, ledger: Ledger, round_: int) -> dict[str, Any]:
    """Everything the killed writer acknowledged is there, whole; nothing else is broken."""
    fresh = ledger.new_round()
    assert not ledger.errors, ledger.errors
    checked = storage_check()
    assert checked["problems"] == [], (round_, checked)

    allowed = allowed_states(ledger, fresh)
    for sid, states in sorted(allowed.items()):
        seen = observe(api, owner, sid)
        assert seen in states, (round_, sid, seen, states)
        ledger.observed[sid] = seen
        # The path index finds it where its record says it is.
        assert sid in list_ids(api, owner, workspace_path=seen.path, owner="all"), (round_, sid)
    listed = set(list_ids(api, owner, limit=200))
    missing = set(ledger.observed) - listed
    assert not missing, (round_, missing)

    # The token family of the killed writer still works from its last acknowledged token.
    tokens = [line["refresh"] for line in fresh if line["op"] in ("login", "refresh")]
    assert tokens, (round_, "the writer never signed in")
    response = api.refresh(tokens[-1])
    assert response.status_code == 200, (round_, response.content)
    assert api.me(response.json()["access"]).status_code == 200
    last = fresh[-1]["op"] if fresh else "nothing"
    return {"round": round_, "in_flight": last if last.endswith("-intent") else None}


def test_the_writer_reports_only_what_returned(store: str, tmp_path: Path) -> None:
    """The ledger's rules on a made-up report: an intent is no acknowledgement."""
    ledger = Ledger(tmp_path / "report.jsonl")
    ledger.observed["s"] = Seen(3, 7, 16, "/a")
    fresh = [
        {"op": "patch-intent", "sid": "s", "step": 8, "size": 4000, "path": "/b"},
        {"op": "patch", "sid": "s", "version": 4, "step": 8, "size": 4000, "path": "/b"},
        {"op": "patch-intent", "sid": "s", "step": 9, "size": 16, "path": "/c"},
    ]
    assert allowed_states(ledger, fresh) == {"s": {Seen(4, 8, 4000, "/b"), Seen(5, 9, 16, "/c")}}
    assert allowed_states(ledger, fresh[:1]) == {
        "s": {Seen(3, 7, 16, "/a"), Seen(4, 8, 4000, "/b")}
    }
