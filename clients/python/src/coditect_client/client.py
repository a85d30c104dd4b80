"""The REST side: sign-in and tokens, workspace sessions, the event log; sockets from here.

HTTP is the standard library's urllib, run in a worker thread so every method is a coroutine
like the socket's: an agent has one style, ``async with Client(...)``.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from coditect_client.errors import (
    CoditectError,
    ProblemError,
    TokenExpired,
    TransportError,
    Unauthorized,
)
from coditect_client.models import Event, Session
from coditect_client.sockets import ClosedOnExit, SessionSocket, SocketOptions

API = "/api/v5"
USER_AGENT = "coditect-client/0.1 (python)"
# Refresh this long before the access token expires (at most a quarter of its lifetime).
REFRESH_MARGIN_S = 60.0


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: Any


class Client(ClosedOnExit):
    """One principal's client of one platform.

    ``Client(base_url, token=...)`` uses a bearer token as given (an access token, or an
    API token ``cdt_...``); ``await client.login(email, password)`` signs in and then keeps
    the access token fresh with the refresh token: before it expires, and once more on a
    ``401 token_expired``. ``refresh_token=`` hands over a pair obtained elsewhere.

    ``origin`` is the ``Origin`` header of socket handshakes. Default: none, as a program
    that is not a browser page sends (CONTRACT §4); ``True`` sends the base URL's scheme,
    host and port, a string that origin.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        refresh_token: str | None = None,
        expires_in: float | None = None,
        origin: str | bool | None = None,
        timeout: float = 20.0,
        socket_options: SocketOptions | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("base_url must be an http(s) URL such as http://127.0.0.1:8000")
        self.base_url = f"{parsed.scheme}://{parsed.netloc}"
        self.ws_base = ("wss" if parsed.scheme == "https" else "ws") + f"://{parsed.netloc}"
        self.origin: str | None = (
            self.base_url if origin is True else (origin if isinstance(origin, str) else None)
        )
        self.timeout = timeout
        self.socket_options = socket_options or SocketOptions()
        self.user: dict[str, Any] | None = None
        self._access = token
        self._refresh = refresh_token
        self._expires_at: float | None = None
        self._lifetime = 0.0
        if expires_in is not None:
            self._set_expiry(expires_in)
        self._refreshing = asyncio.Lock()
        self._sockets: list[SessionSocket] = []

    async def __aenter__(self) -> Client:
        return self

    async def close(self) -> None:
        """Close every socket this client opened (their leases are released first)."""
        for sock in list(self._sockets):
            await sock.close()
        self._sockets.clear()

    # --- tokens ---------------------------------------------------------------------------

    @property
    def can_refresh(self) -> bool:
        return self._refresh is not None

    def _set_expiry(self, expires_in: float) -> None:
        self._lifetime = float(expires_in)
        self._expires_at = time.monotonic() + self._lifetime

    def _adopt(self, pair: Mapping[str, Any]) -> None:
        self._access = str(pair["access"])
        if pair.get("refresh"):
            self._refresh = str(pair["refresh"])
        if isinstance(pair.get("expires_in"), int | float):
            self._set_expiry(float(pair["expires_in"]))

    async def login(self, email: str, password: str) -> dict[str, Any]:
        """Sign in; returns the ``user``. 401 ``invalid_credentials`` is an Unauthorized."""
        answer = await self._call(
            "POST", "/auth/login", {"email": email, "password": password}, auth=False
        )
        self._adopt(answer.body)
        user = answer.body.get("user")
        self.user = dict(user) if isinstance(user, dict) else None
        return self.user or {}

    async def refresh(self) -> str:
        """A new access token from the refresh token (rotating it); returns the access token.

        Concurrent callers share one refresh. Unauthorized when the sign-in is gone.
        """
        stale = self._access
        async with self._refreshing:
            if self._access != stale and self._access is not None:
                return self._access  # another caller refreshed meanwhile
            if self._refresh is None:
                raise Unauthorized(
                    code="token_expired", detail="No refresh token to renew the access token."
                )
            answer = await self._call(
                "POST", "/auth/refresh", {"refresh": self._refresh}, auth=False
            )
            self._adopt(answer.body)
            assert self._access is not None
            return self._access

    async def access_token(self) -> str:
        """The bearer token to use now, refreshed first when it is about to expire."""
        if self._access is None:
            raise Unauthorized(code="not_authenticated", detail="Log in or give a token first.")
        if self._refresh is not None and self._expires_at is not None:
            margin = min(REFRESH_MARGIN_S, self._lifetime / 4)
            if time.monotonic() >= self._expires_at - margin:
                return await self.refresh()
        return self._access

    def refresh_due_in(self) -> float | None:
        """Seconds until the access token should be refreshed (None: never, or unknown)."""
        if self._refresh is None or self._expires_at is None:
            return None
        margin = min(REFRESH_MARGIN_S, self._lifetime / 4)
        return max(0.0, self._expires_at - margin - time.monotonic())

    async def logout(self) -> None:
        """End this sign-in: its tokens stop working at once."""
        await self._call("POST", "/auth/logout")
        self._access = self._refresh = None

    async def me(self) -> dict[str, Any]:
        answer = await self._call("GET", "/auth/me")
        return dict(answer.body)

    # --- workspace sessions ---------------------------------------------------------------

    async def create_session(
        self,
        *,
        name: str,
        workspace_path: str,
        active_files: list[str] | None = None,
        editor_state: dict[str, Any] | None = None,
        terminal_state: dict[str, Any] | None = None,
        parent_session_id: str | None = None,
    ) -> Session:
        body: dict[str, Any] = {"name": name, "workspace_path": workspace_path}
        optional = {
            "active_files": active_files,
            "editor_state": editor_state,
            "terminal_state": terminal_state,
            "parent_session_id": parent_session_id,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        answer = await self._call("POST", "/sessions", body)
        return Session.from_json(answer.body)

    async def get_session(self, session_id: str) -> Session:
        answer = await self._call("GET", f"/sessions/{_segment(session_id)}")
        return Session.from_json(answer.body)

    async def list_sessions_page(
        self,
        *,
        owner: str = "all",
        workspace_path: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Session], str | None]:
        """One page (most recently active first) and the cursor of the next, or None."""
        query: dict[str, str] = {"owner": owner, "limit": str(limit)}
        if workspace_path is not None:
            query["workspace_path"] = workspace_path
        if cursor is not None:
            query["cursor"] = cursor
        answer = await self._call("GET", "/sessions?" + urllib.parse.urlencode(query))
        results = [Session.from_json(item) for item in answer.body["results"]]
        return results, answer.body.get("next_cursor")

    async def list_sessions(
        self, *, owner: str = "all", workspace_path: str | None = None, page_size: int = 50
    ) -> AsyncIterator[Session]:
        """Every session, page after page (``async for session in client.list_sessions()``)."""
        cursor: str | None = None
        while True:
            page, cursor = await self.list_sessions_page(
                owner=owner, workspace_path=workspace_path, limit=page_size, cursor=cursor
            )
            for session in page:
                yield session
            if cursor is None:
                return

    async def patch_session(
        self, session_id: str, *, if_match: int | None = None, **changes: Any
    ) -> Session:
        """Replace top-level fields. With ``if_match`` (a version), a stale one raises
        VersionConflict (412) whose ``current_version`` is the version now."""
        headers = {} if if_match is None else {"If-Match": f'"{if_match}"'}
        answer = await self._call(
            "PATCH", f"/sessions/{_segment(session_id)}", changes, headers=headers
        )
        return Session.from_json(answer.body)

    async def delete_session(self, session_id: str, *, if_match: int | None = None) -> None:
        headers = {} if if_match is None else {"If-Match": f'"{if_match}"'}
        await self._call("DELETE", f"/sessions/{_segment(session_id)}", headers=headers)

    async def fork_session(self, session_id: str, *, name: str | None = None) -> Session:
        body = {} if name is None else {"name": name}
        answer = await self._call("POST", f"/sessions/{_segment(session_id)}/fork", body)
        return Session.from_json(answer.body)

    async def related_sessions(self, session_id: str) -> list[Session]:
        answer = await self._call("GET", f"/sessions/{_segment(session_id)}/related")
        return [Session.from_json(item) for item in answer.body["results"]]

    # --- events ---------------------------------------------------------------------------

    async def publish_event(self, session_id: str, event: str, data: Any = None) -> int:
        """Publish over REST; returns its seq. (On a socket, SessionSocket.publish.)"""
        answer = await self._call(
            "POST", f"/sessions/{_segment(session_id)}/events", {"event": event, "data": data}
        )
        return int(answer.body["seq"])

    async def events_page(
        self, session_id: str, *, after_seq: int = 0, limit: int = 200
    ) -> tuple[list[Event], int]:
        """Logged events with seq > after_seq (at most ``limit``) and the session's latest
        seq. ResyncRequired (410) when the log no longer reaches back to after_seq + 1."""
        query = urllib.parse.urlencode({"after_seq": after_seq, "limit": limit})
        answer = await self._call("GET", f"/sessions/{_segment(session_id)}/events?{query}")
        events = [Event.from_log(item) for item in answer.body["results"]]
        return events, int(answer.body.get("latest_seq", events[-1].seq if events else 0))

    async def events(
        self, session_id: str, *, after_seq: int = 0, page_size: int = 200
    ) -> AsyncIterator[Event]:
        """Every logged event after ``after_seq`` up to the latest, in seq order."""
        while True:
            page, latest = await self.events_page(session_id, after_seq=after_seq, limit=page_size)
            for event in page:
                yield event
            if not page or page[-1].seq >= latest:
                return
            after_seq = page[-1].seq

    # --- sockets --------------------------------------------------------------------------

    def socket(self, session_id: str, options: SocketOptions | None = None) -> SessionSocket:
        """A socket on the session, not yet open: ``async with client.socket(id) as sock``."""
        sock = SessionSocket(self, session_id, options or self.socket_options)
        self._sockets.append(sock)
        return sock

    async def connect(self, session_id: str, options: SocketOptions | None = None) -> SessionSocket:
        """An open socket on the session, after its first ``welcome``."""
        sock = self.socket(session_id, options)
        await sock.open()
        return sock

    def ws_url(self, session_id: str) -> str:
        return f"{self.ws_base}/ws/sessions/{_segment(session_id)}/"

    def _forget(self, sock: SessionSocket) -> None:
        if sock in self._sockets:
            self._sockets.remove(sock)

    # --- HTTP -----------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> Response:
        """One API call; a refresh and one retry on 401 token_expired; ProblemError on 4xx/5xx."""
        token = await self.access_token() if auth else None
        try:
            return await self._send(method, path, body, headers, token)
        except TokenExpired:
            if not auth or self._refresh is None:
                raise
        token = await self.refresh()
        return await self._send(method, path, body, headers, token)

    async def _send(
        self,
        method: str,
        path: str,
        body: Any,
        headers: Mapping[str, str] | None,
        token: str | None,
    ) -> Response:
        all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        # An http(s) URL: Client.__init__ refuses other schemes.
        # The scheme is http(s) only, checked when the Client was made (S310 below).
        request = urllib.request.Request(  # noqa: S310
            self.base_url + API + path, data=data, method=method, headers=all_headers
        )
        status, raw_headers, raw = await asyncio.to_thread(_fetch, request, self.timeout)
        answer_headers = {key.lower(): value for key, value in raw_headers}
        parsed: Any = None
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        if status >= 400:
            problem = (
                parsed
                if isinstance(parsed, dict)
                else {"detail": raw[:200].decode("utf-8", "replace")}
            )
            raise ProblemError.from_problem(status, problem, answer_headers)
        return Response(status, answer_headers, parsed if parsed is not None else {})


def _fetch(
    request: urllib.request.Request, timeout: float
) -> tuple[int, list[tuple[str, str]], bytes]:
    # Only the API's own http(s) base URL gets here (checked in Client.__init__).
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - as above
            return response.status, list(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, list(error.headers.items()), error.read()
    except (urllib.error.URLError, OSError) as error:
        raise TransportError(f"{request.get_method()} {request.full_url}: {error}") from error


def _segment(value: str) -> str:
    """A path segment: ids are UUIDs, but nothing a caller passes may change the path."""
    return urllib.parse.quote(str(value), safe="")


__all__ = ["Client", "CoditectError"]
