"""API requests under daphne through Django's sync handler, in one thread hop.

Django's ASGI handler is made for async views: per request it spools the body into a
``SpooledTemporaryFile``, starts two tasks (the request and a listener for the client's
disconnect) and waits on both, awaits every middleware as a coroutine, and hops to a thread
twice more (the ``request_started`` signal and ``response.close()``). For the API, whose views
are all sync, that machinery cost one daphne process 1.35 ms of CPU per ``GET`` on its event
loop, against 0.5 ms for the whole request through the WSGI handler (docs/benchmarks.md,
"The API lane").

This ASGI app answers API paths (core.problems.is_api_path) the way a WSGI server does: it
reads the body on the loop, then builds the request, runs the sync middleware chain and the
view, and closes the response in one call on a thread of its own pool, and sends the answer.
The middleware chain is the one gunicorn runs (``load_middleware(is_async=False)``) less the
page middleware, which hands API paths on untouched (coditect/pages_only.py), so both servers
answer alike; the lean views (coditect/lean.py) take a storage turn in that thread as
they do under WSGI. Everything else (pages, the admin, static files, sockets) goes on to the
app it wraps.

What a view sends through the channel layer still runs on this process's event loop: the
thread has the loop noted as ``sync_to_async`` notes it for Django's own sync views
(core/loops.py reads the note), so the in-memory layer's queues are only touched from it.

A request waits for a pool thread (and a lean one for a storage turn) when the process is
busy. While it waits, its task listens to its client (``_run_heard``): a request whose client
disconnected before its work started is not run (a create is not made, no CPU is spent for
nobody), only counted and logged with status 499, nginx's "client closed request". Work that
started runs to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import IO, Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.asgi import ASGIRequest, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import ResolverMatch, set_script_prefix

from coditect.api_chain import api_chain
from coditect.lean import lean_route
from coditect.metrics import observed
from core.problems import is_api_path, problem_response
from core.request_id import assign_request_id, echo_request_id
from fdb_backend.pool import in_turn, storage_executor

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# Threads for the API requests that are not lean (logins hashing a password, registration,
# the admin's API): as many as a gthread worker would have beside the storage pool's.
THREADS = 8

_UNREADABLE = "The query string or a header of the request cannot be decoded."
_CRASHED = "The server failed to handle the request; quote its request_id when reporting it."

request_log = logging.getLogger("django.request")


class _SyncHandler(BaseHandler):
    """Django's request handling with the sync middleware chain, as under WSGI."""

    def __init__(self) -> None:
        super().__init__()
        with api_chain():  # API paths only: without the page middleware
            self.load_middleware(is_async=False)

    def respond(
        self, scope: Scope, body: IO[bytes], lean_match: ResolverMatch | None, arrived: float
    ) -> HttpResponseBase:
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request: Any
        response: HttpResponseBase
        try:
            request = ASGIRequest(scope, body)
        except ValueError:
            # The client's query string or headers: one not in UTF-8 (a 400 from Django's ASGI
            # handler too), or a header parameter in an encoding Python does not know (which
            # Django lets escape: the server's 500 page and a traceback, for any client).
            response = _problem(400, "bad_request", _UNREADABLE)
        except RequestDataTooBig:
            response = HttpResponse("413 Payload too large", status=413)
        else:
            request.lean_match = lean_match  # coditect/lean.py uses it rather than resolve again
            # Timed from here by coditect/metrics.py: the wait for a pool thread and a storage
            # turn is the request's too (it was when the view waited for them in the chain).
            request.arrived = arrived
            response = self.get_response(request)
        if isinstance(response, HttpResponse):
            # The content is in hand: close now (request_finished and the request's files),
            # in this thread, rather than with another hop after sending, as Django does. The
            # early 400 and 413 too: request_started was sent, request_finished is due.
            response.close()
            # Its length, so the server need not send it chunked (CommonMiddleware, which sets
            # it on pages, is skipped on API paths); never on a 204 or 304 (RFC 9110 §8.6).
            if response.status_code not in (204, 304) and not response.has_header("Content-Length"):
                response["Content-Length"] = str(len(response.content))
        return response


# Status of the access line of a request not run: its client left first (nginx's code).
CLIENT_GONE = 499


class _Client:
    """What a request's task heard from its client while the request's job waited.

    ``gone`` is set on the event loop, read once by the job's thread when it starts (a bool,
    so no lock): a job that started runs to its end, whatever the client does next.
    """

    __slots__ = ("gone", "listening", "task", "woken")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.gone = False
        self.listening = False  # the task awaits receive(): the job's end interrupts it
        self.woken = False
        self.task = task

    def job_done(self, done: asyncio.Future[Any]) -> None:
        # On the loop, when the job has ended: stop listening, the answer is ready.
        if self.listening:
            self.listening = False
            self.woken = True
            self.task.cancel()


Job = Callable[[Scope, IO[bytes], ResolverMatch | None, float, _Client], HttpResponseBase | None]


class ApiLane:
    """ASGI app: API paths through ``_SyncHandler`` on a pool thread, the rest to ``app``.

    A lean request (coditect/lean.py) runs on the storage pool (fdb_backend/pool.py), whose
    few threads take turns at storage, as the lean views did before. The others run on a
    pool of ``THREADS``, so that logins waiting for a hash never hold up the storage pool.
    """

    def __init__(self, app: App, *, threads: int = THREADS) -> None:
        self.app = app
        self.threads = threads
        self._jobs: tuple[tuple[Job, Executor], tuple[Job, Executor]] | None = None

    def _lanes(self) -> tuple[tuple[Job, Executor], tuple[Job, Executor]]:
        """The job and pool of a lean request, and those of the others."""
        # Made on first use: the middleware chain and the pools read settings, which are not
        # configured when a tool imports the ASGI module only to look at it.
        if self._jobs is None:
            job = _unless_gone(_SyncHandler().respond)
            others = ThreadPoolExecutor(self.threads, thread_name_prefix="api-request")
            # A lean request holds its storage turn throughout, not only in its view, so that
            # its middleware does not run beside the view of the thread holding the turn
            # (whose SQLite steps hand the GIL to it at every step). Its client is looked at
            # once it has the turn: the wait for one is where a busy process's requests queue.
            self._jobs = ((in_turn(job), storage_executor()), (job, others))
        return self._jobs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path_info = _path_info(scope) if scope["type"] == "http" else ""
        if not is_api_path(path_info):
            await self.app(scope, receive, send)
            return
        # A body declared over the limit is refused by the middleware on its length alone
        # (coditect/middleware.py reject_large_body): not read, it is not spooled to disk.
        # One sent without a length (chunked) is read to one byte past the limit at most: the
        # middleware answers 413 on finding that byte, or gives the request the body's length.
        declared = _declared_length(scope)
        if declared is not None and declared > settings.CODITECT_MAX_BODY_BYTES:
            body: IO[bytes] | None = io.BytesIO()
        else:
            cap = settings.CODITECT_MAX_BODY_BYTES + 1 if declared is None else None
            body = await _body(receive, cap)
        if body is None:
            return  # the client left before its request was whole
        arrived = time.perf_counter()
        lean, other = self._lanes()
        try:
            response: HttpResponseBase | None
            try:
                match = lean_route(path_info, scope["method"])
                job, pool = lean if match is not None else other
                response = await _run_heard(receive, pool, job, scope, body, match, arrived)
            except Exception:
                # Outside the middleware chain (a signal receiver, closing the answer): nothing
                # else makes it a problem, and the server would answer its own 500 page (daphne
                # at its next check, up to a second later).
                response = _problem(500, "server_error", _CRASHED)
                request_log.error("Internal Server Error: %s", path_info, exc_info=True)
            if response is not None:  # (None: not run, nobody to answer)
                await _send_response(response, send)
        finally:
            body.close()


async def _run_heard(
    receive: Receive,
    pool: Executor,
    job: Job,
    scope: Scope,
    body: IO[bytes],
    lean_match: ResolverMatch | None,
    arrived: float,
) -> HttpResponseBase | None:
    """The job's answer, from a thread of ``pool``; None when the job found its client gone.

    While the job waits and runs, the request's own task listens to the client rather than
    awaiting the job: no second task per request (Django's handler starts one to listen).
    The job's end interrupts the listening (``_Client.job_done`` cancels the task's await of
    ``receive()``, which the task takes back with ``uncancel``); a disconnect heard first
    marks the client gone, which the job looks at when it starts.
    """
    task = asyncio.current_task()
    assert task is not None  # (a coroutine an ASGI server runs is a task's)
    client = _Client(task)
    done = _in_pool(pool, job, scope, body, lean_match, arrived, client)
    done.add_done_callback(client.job_done)
    try:
        while not done.done():
            client.listening = True
            message = await receive()
            client.listening = False
            # What comes instead is the rest of a body the lane left unread (one over the
            # limit): dropped, as the server would drop it.
            if message["type"] == "http.disconnect":
                client.gone = True
                break
    except asyncio.CancelledError:
        client.listening = False
        if not client.woken or task.uncancel():
            # The server's cancel (daphne's, when a gone client's request outlives its
            # application_close_timeout): a job not started yet need not start.
            client.gone = True
            raise
    return await done


def _in_pool(pool: Executor, job: Job, *args: Any) -> asyncio.Future[HttpResponseBase | None]:
    """``job(*args)`` on a thread of ``pool``, as ``sync_to_async`` runs a function (in a copy
    of the task's context, the loop noted in the thread), but as a future, which the task
    need not await to learn of its end."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return loop.run_in_executor(pool, _with_loop_noted, loop, context, job, args)


def _with_loop_noted(
    loop: asyncio.AbstractEventLoop, context: contextvars.Context, job: Job, args: Any
) -> HttpResponseBase | None:
    # The note sync_to_async leaves in its threads: async_to_sync reads it to run a coroutine
    # on this loop (a view's channel-layer send), and core/loops.py to know there is one.
    local = SyncToAsync.threadlocal
    local.main_event_loop = loop
    local.main_event_loop_pid = os.getpid()
    return context.run(job, *args)


def _unless_gone(respond: Callable[..., HttpResponseBase]) -> Job:
    """``respond``, unless the client disconnected before the job started."""

    def job(
        scope: Scope,
        body: IO[bytes],
        lean_match: ResolverMatch | None,
        arrived: float,
        client: _Client,
    ) -> HttpResponseBase | None:
        if client.gone:
            _not_run(scope, arrived)
            return None
        return respond(scope, body, lean_match, arrived)

    return job


def _not_run(scope: Scope, arrived: float) -> None:
    """Count a request whose client left before its work started, and write its access line:
    status 499 in ``coditect_http_requests`` and the log, by its route, with its request id."""
    request: HttpRequest
    try:
        request = ASGIRequest(scope, io.BytesIO())
    except (ValueError, RequestDataTooBig):
        request = HttpRequest()  # (its query string or a header cannot be decoded)
        request.method = scope["method"]
        request.path_info = _path_info(scope)
    assign_request_id(request)
    observed(request, HttpResponse(status=CLIENT_GONE), time.perf_counter() - arrived)


def _problem(status: int, code: str, detail: str) -> HttpResponse:
    # An answer made without the middleware chain: a problem with a request id of its own
    # (in the context from here, so a line logged next carries it).
    request = HttpRequest()
    response = problem_response(request, status=status, code=code, detail=detail)
    echo_request_id(request, response)
    return response


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length of the request, or None when it has none. (One that is not a
    number counts as 0 here: the middleware answers it, after reading as usual.)"""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return None


def _path_info(scope: Scope) -> str:
    # As ASGIRequest finds it: the path below the script prefix.
    path: str = scope["path"]
    prefix = get_script_prefix(scope)
    return path.removeprefix(prefix) if prefix else path


async def _body(receive: Receive, cap: int | None = None) -> IO[bytes] | None:
    """The request body as a file, or None when the client disconnected first. A body in one
    message (any request daphne has whole) is wrapped as it is; a longer one is spooled as
    Django's handler spools it. With a ``cap``, no more than its bytes are read (the rest
    is left unread)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    if not message.get("more_body", False):
        return io.BytesIO(message.get("body", b"")[:cap])
    with contextlib.ExitStack() as closing:
        spooled = closing.enter_context(
            tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)
        )
        while True:
            part: bytes = message.get("body", b"")
            if cap is not None:
                part = part[: cap - spooled.tell()]
            spooled.write(part)
            if not message.get("more_body", False) or spooled.tell() == cap:
                break
            message = await receive()
            if message["type"] == "http.disconnect":
                return None  # (closed on the way out)
        closing.pop_all()  # whole: the caller closes it
    spooled.seek(0)
    return spooled


def _headers(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    # As Django's ASGI handler encodes them: names ASCII, values Latin-1, cookies last.
    headers = [(name.encode("ascii"), value.encode("latin1")) for name, value in response.items()]
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
    return headers


async def _send_response(response: HttpResponseBase, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": _headers(response),
        }
    )
    if isinstance(response, HttpResponse):
        await send({"type": "http.response.body", "body": response.content})
        return
    # No API view streams today; if one does, its parts are made in the pool, one at a time.
    parts: Iterator[bytes] = iter(response)
    next_part = sync_to_async(_next_or_none, thread_sensitive=False)
    try:
        while (part := await next_part(parts)) is not None:
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        await sync_to_async(response.close, thread_sensitive=False)()


def _next_or_none(parts: Iterator[bytes]) -> bytes | None:
    return next(parts, None)
