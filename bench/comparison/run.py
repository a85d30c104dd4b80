"""Launcher of the conventional comparison app, for benchmarks and by hand.

Benchmarks call::

    from bench.comparison import run
    run.prepare(db_dir)                       # fresh, migrated SQLite database
    proc = run.start_gunicorn(port, workers)  # or run.start_daphne(port)
    run.wait_ready(port, timeout=30)
    ...
    run.stop(proc)

By hand::

    python bench/comparison/run.py --smoke
    python bench/comparison/run.py --serve gunicorn --port 8001 --workers 2
    python bench/comparison/run.py --serve daphne --port 8002

Servers bind 127.0.0.1 only. Every setting the app needs travels in the environment this module
builds (DJANGO_SETTINGS_MODULE, PYTHONPATH, COMPAPP_DB_DIR, COMPAPP_SECRET_KEY), so the caller's
own Django settings, if any, never leak into the comparison app.
This module imports nothing from the app itself: the app runs only in the child processes.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_DB_DIR = HERE / "var"
DB_FILE = "compapp.sqlite3"
HOST = "127.0.0.1"

# One key for every server this process starts: a token issued by one gunicorn worker must
# verify in the others (and in a daphne process over the same database).
_SECRET_KEY = os.environ.get("COMPAPP_SECRET_KEY") or secrets.token_urlsafe(50)
# The directory of the last prepare(); servers started without db_dir use it.
_db_dir: Path | None = None


def _resolve_db_dir(db_dir: str | os.PathLike[str] | None) -> Path:
    if db_dir is not None:
        return Path(db_dir).resolve()
    return _db_dir or DEFAULT_DB_DIR


def app_env(db_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Environment for a child process running the comparison app."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="compapp.settings",
        # Only this directory: the platform's packages (coditect, ...) stay unimportable, so
        # nothing of the platform can be picked up by accident.
        PYTHONPATH=str(HERE),
        COMPAPP_DB_DIR=str(_resolve_db_dir(db_dir)),
        COMPAPP_SECRET_KEY=_SECRET_KEY,
    )
    return env


def prepare(db_dir: str | os.PathLike[str]) -> None:
    """Create ``db_dir`` and migrate a fresh SQLite database in it (any old one is removed)."""
    global _db_dir
    path = Path(db_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (path / f"{DB_FILE}{suffix}").unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, str(HERE / "manage.py"), "migrate", "--noinput", "--verbosity", "0"],
        cwd=HERE,
        env=app_env(path),
        check=True,
    )
    _db_dir = path


def _spawn(name: str, port: int, argv: list[str], db_dir: Path) -> subprocess.Popen[bytes]:
    db_dir.mkdir(parents=True, exist_ok=True)
    log_path = db_dir / f"{name}-{port}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=HERE,
            env=app_env(db_dir),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Own process group: a Ctrl-C meant for the benchmark does not reach the server
            # half-way through a run, and stop() can reap workers the master left behind.
            start_new_session=True,
        )
    proc.log_path = log_path  # type: ignore[attr-defined]  # for error messages
    return proc


def start_gunicorn(
    port: int, workers: int, *, db_dir: str | os.PathLike[str] | None = None
) -> subprocess.Popen[bytes]:
    """gunicorn with ``workers`` sync workers on 127.0.0.1:``port`` (the WSGI setup)."""
    path = _resolve_db_dir(db_dir)
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{HOST}:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        # gunicorn >= 25 opens a control socket at one fixed path per user by default, so two
        # servers started side by side would fight over it; benchmarks do not use it.
        "--no-control-socket",
        # stop() sends SIGTERM; in-flight requests get this long before workers are killed.
        "--graceful-timeout",
        "5",
        "compapp.wsgi:application",
    ]
    return _spawn("gunicorn", port, argv, path)


def start_daphne(
    port: int, *, db_dir: str | os.PathLike[str] | None = None
) -> subprocess.Popen[bytes]:
    """One daphne process on 127.0.0.1:``port`` (the ASGI setup)."""
    path = _resolve_db_dir(db_dir)
    argv = [
        sys.executable,
        "-m",
        "daphne",
        "--bind",
        HOST,
        "--port",
        str(port),
        # Verbosity 1 (the default) writes an access-log line per request to stdout: I/O that
        # gunicorn (no access log by default) does not pay. 0 keeps warnings and errors.
        "--verbosity",
        "0",
        "compapp.asgi:application",
    ]
    return _spawn("daphne", port, argv, path)


def _log_tail(proc: subprocess.Popen[bytes] | None, lines: int = 20) -> str:
    log_path = getattr(proc, "log_path", None)
    if log_path is None:
        return ""
    with contextlib.suppress(OSError):
        return "\n".join(Path(log_path).read_text(errors="replace").splitlines()[-lines:])
    return ""


def wait_ready(
    port: int, timeout: float = 30.0, *, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``GET /healthz`` until it answers 200; raise if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"server on port {port} exited with {proc.returncode}:\n{_log_tail(proc)}"
            )
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass  # not listening yet
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"server on port {port} not ready after {timeout} s")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the server and wait; SIGKILL its process group if it outstays ``timeout``."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # The group is the one _spawn created for this server alone (its id is the server's pid):
    # whatever is left in it is a worker orphaned by a master that died.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (good enough for a smoke run)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --- smoke test (standard library HTTP client only) ------------------------------------------


class SmokeFailure(AssertionError):
    pass


def _call(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request; returns (status, headers with lower-case names, decoded JSON or None)."""
    send = {"Accept": "application/json", **(headers or {})}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        send["Content-Type"] = "application/json"
    if token is not None:
        send["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(method, path, body=data, headers=send)
        response = conn.getresponse()
        raw = response.read()
        received = {name.lower(): value for name, value in response.getheaders()}
        return response.status, received, json.loads(raw) if raw else None
    finally:
        conn.close()


def _expect(
    what: str, got: tuple[int, dict[str, str], Any], status: int, code: str | None = None
) -> tuple[dict[str, str], Any]:
    got_status, headers, body = got
    if got_status != status:
        raise SmokeFailure(f"{what}: expected {status}, got {got_status}: {body}")
    if code is not None and (not isinstance(body, dict) or body.get("code") != code):
        raise SmokeFailure(f"{what}: expected code {code!r}, got {body}")
    return headers, body


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise SmokeFailure(what)


def smoke_flow(port: int, tag: str) -> None:
    """Exercise every endpoint once against the server on ``port``; raise SmokeFailure."""
    email = f"smoke-{tag}@example.com"
    password = "correct horse battery staple"  # passes Django's default validators
    pair_keys = {"access", "refresh", "token_type", "expires_in", "refresh_expires_in"}

    # Accounts. Paths alternate with and without trailing slash: both must be served as is.
    register = {"email": email, "password": password, "tenant_name": f"Smoke {tag}"}
    _, body = _expect("register", _call(port, "POST", "/api/v5/auth/register", register), 201)
    _check(pair_keys | {"user", "tenant"} <= body.keys(), f"register body: {body}")
    _check(body["user"]["role"] == "owner", f"register role: {body['user']}")
    _check(body["user"]["tenant_id"] == body["tenant"]["id"], "register tenant ids differ")
    _expect(
        "register again",
        _call(port, "POST", "/api/v5/auth/register/", register),
        409,
        "email_taken",
    )
    _expect(
        "weak password",
        _call(port, "POST", "/api/v5/auth/register", {"email": f"w-{email}", "password": "1234"}),
        400,
        "invalid",
    )

    login = {"email": email.upper(), "password": password}
    _, body = _expect("login", _call(port, "POST", "/api/v5/auth/login/", login), 200)
    _check(pair_keys | {"user"} <= body.keys(), f"login body: {body}")
    _check(body["user"]["email"] == email, f"login user: {body['user']}")
    wrong = {"email": email, "password": password + "!"}
    _expect(
        "login wrong password",
        _call(port, "POST", "/api/v5/auth/login", wrong),
        401,
        "invalid_credentials",
    )

    # Rotation: each refresh gives a new pair, and the refresh token it consumed is refused.
    refresh1 = body["refresh"]
    _, body = _expect(
        "refresh 1", _call(port, "POST", "/api/v5/auth/refresh", {"refresh": refresh1}), 200
    )
    refresh2, access = body["refresh"], body["access"]
    _check(pair_keys <= body.keys() and refresh2 != refresh1, f"refresh 1 body: {body}")
    _expect(
        "reused refresh 1", _call(port, "POST", "/api/v5/auth/refresh/", {"refresh": refresh1}), 401
    )
    _, body = _expect(
        "refresh 2", _call(port, "POST", "/api/v5/auth/refresh/", {"refresh": refresh2}), 200
    )
    refresh3, access = body["refresh"], body["access"]
    _expect(
        "reused refresh 2", _call(port, "POST", "/api/v5/auth/refresh", {"refresh": refresh2}), 401
    )

    _, me = _expect("me", _call(port, "GET", "/api/v5/auth/me", token=access), 200)
    _check(me["email"] == email and me["tenant"]["name"] == f"Smoke {tag}", f"me: {me}")
    headers, _ = _expect("me without token", _call(port, "GET", "/api/v5/auth/me/"), 401)
    _check(headers.get("www-authenticate", "").startswith("Bearer"), "401 lacks WWW-Authenticate")

    # Workspace sessions.
    new = {
        "name": "first",
        "workspace_path": "/ws/one",
        "active_files": ["/ws/one/a.py"],
        "editor_state": {"cursor": [1, 2]},
    }
    headers, first = _expect(
        "create", _call(port, "POST", "/api/v5/sessions", new, token=access), 201
    )
    sid = first["id"]
    _check(headers.get("location") == f"/api/v5/sessions/{sid}", f"Location: {headers}")
    _check(headers.get("etag") == '"1"' and first["version"] == 1, f"ETag: {headers}")
    _check(first["owner_id"] == me["id"] and first["tenant_id"] == me["tenant_id"], "ids")
    child = {"name": "second", "workspace_path": "/ws/two", "parent_session_id": sid}
    _, second = _expect(
        "create child", _call(port, "POST", "/api/v5/sessions/", child, token=access), 201
    )
    _check(second["parent_session_id"] == sid, f"child: {second}")

    # Most recently active first, one per page, following the opaque cursor to the end.
    _, page = _expect("list", _call(port, "GET", "/api/v5/sessions?limit=1", token=access), 200)
    _check([s["id"] for s in page["results"]] == [second["id"]], f"page 1: {page}")
    cursor = page["next_cursor"]
    _check(isinstance(cursor, str) and "/" not in cursor.rstrip("="), f"cursor: {cursor!r}")
    query = urllib.parse.urlencode({"limit": 1, "cursor": cursor})
    _, page = _expect("list 2", _call(port, "GET", f"/api/v5/sessions/?{query}", token=access), 200)
    _check([s["id"] for s in page["results"]] == [sid], f"page 2: {page}")
    _, page = _expect("list all", _call(port, "GET", "/api/v5/sessions", token=access), 200)
    _check(len(page["results"]) == 2 and page["next_cursor"] is None, f"list all: {page}")
    _expect("bad cursor", _call(port, "GET", "/api/v5/sessions?cursor=abc", token=access), 400)

    url = f"/api/v5/sessions/{sid}"
    headers, got = _expect("get", _call(port, "GET", url, token=access), 200)
    _check(got == first and headers.get("etag") == '"1"', f"get: {got} {headers}")
    _expect("get bad id", _call(port, "GET", "/api/v5/sessions/not-a-uuid", token=access), 404)

    patch = {"active_files": ["/ws/one/a.py", "/ws/one/b.py"], "terminal_state": {"cwd": "/ws/one"}}
    if_match = {"If-Match": '"1"'}
    headers, got = _expect(
        "patch", _call(port, "PATCH", url, patch, token=access, headers=if_match), 200
    )
    _check(got["version"] == 2 and headers.get("etag") == '"2"', f"patch: {got} {headers}")
    _check(
        got["active_files"] == ["/ws/one/a.py", "/ws/one/b.py"] and got["name"] == "first",
        f"patch: {got}",
    )
    _expect(
        "stale patch",
        _call(port, "PATCH", url + "/", {"name": "x"}, token=access, headers=if_match),
        412,
        "version_conflict",
    )
    _, got = _expect(
        "patch no If-Match", _call(port, "PATCH", url, {"name": "renamed"}, token=access), 200
    )
    _check(got["version"] == 3 and got["name"] == "renamed", f"patch 2: {got}")

    # Another tenant sees nothing of ours: 404, not 403.
    other = {"email": f"other-{email}", "password": password}
    _, body = _expect("register other", _call(port, "POST", "/api/v5/auth/register", other), 201)
    _expect("other tenant get", _call(port, "GET", url, token=body["access"]), 404)
    _, page = _expect(
        "other list", _call(port, "GET", "/api/v5/sessions", token=body["access"]), 200
    )
    _check(page["results"] == [], f"other tenant list: {page}")

    _expect(
        "stale delete",
        _call(port, "DELETE", url, token=access, headers=if_match),
        412,
        "version_conflict",
    )
    _expect("delete", _call(port, "DELETE", url + "/", token=access), 204)
    _expect("get deleted", _call(port, "GET", url, token=access), 404)

    # Logout blacklists the given refresh token.
    _expect(
        "logout",
        _call(port, "POST", "/api/v5/auth/logout", {"refresh": refresh3}, token=access),
        204,
    )
    _expect(
        "refresh after logout",
        _call(port, "POST", "/api/v5/auth/refresh", {"refresh": refresh3}),
        401,
    )


def smoke() -> None:
    """gunicorn (2 sync workers) and daphne over one fresh database, the flow on each."""
    with tempfile.TemporaryDirectory(prefix="compapp-smoke-") as tmp:
        prepare(tmp)
        servers: list[tuple[str, int, subprocess.Popen[bytes]]] = []
        try:
            port = free_port()
            servers.append(("gunicorn", port, start_gunicorn(port, 2)))
            port = free_port()
            servers.append(("daphne", port, start_daphne(port)))
            for _, port, proc in servers:
                wait_ready(port, 30, proc=proc)
            for name, port, proc in servers:
                started = time.monotonic()
                try:
                    smoke_flow(port, name)
                except Exception:
                    print(f"--- {name} log ---\n{_log_tail(proc, 40)}", file=sys.stderr)
                    raise
                print(f"{name} on {HOST}:{port}: ok ({time.monotonic() - started:.1f} s)")
        finally:
            for _, _, proc in servers:
                stop(proc)
    print("OK")


def serve(server: str, port: int, workers: int, db_dir: Path) -> None:
    """Fresh database, one server, until Ctrl-C."""
    prepare(db_dir)
    proc = start_gunicorn(port, workers) if server == "gunicorn" else start_daphne(port)
    try:
        wait_ready(port, 30, proc=proc)
        print(f"{server} on http://{HOST}:{port}/ (db and log in {db_dir}); Ctrl-C stops it")
        proc.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop(proc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--smoke", action="store_true", help="run the smoke test and exit")
    mode.add_argument("--serve", choices=("gunicorn", "daphne"), help="run one server")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--db-dir", type=Path, default=DEFAULT_DB_DIR)
    args = parser.parse_args(argv)
    if args.smoke:
        try:
            smoke()
        except SmokeFailure as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
        return 0
    serve(args.serve, args.port, args.workers, args.db_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
