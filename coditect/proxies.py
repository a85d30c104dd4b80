"""The client's address and scheme behind a reverse proxy, believed only from trusted proxies.

Per-address throttles, the IP shown in device lists and the auth event log all read the
client address Django gets (``REMOTE_ADDR``, from the ASGI scope's ``client`` or the WSGI
environ). ``daphne --proxy-headers`` rewrites it from ``X-Forwarded-For`` for any peer, so a
client that reaches daphne directly picks its own address. Here, the headers are believed only
when the direct peer is in ``CODITECT_TRUSTED_PROXIES`` (IP addresses and CIDR networks; empty by
default: nobody is trusted):

* the client is the rightmost ``X-Forwarded-For`` hop that is not itself a trusted proxy (hops
  to its left were written by the client, or by proxies we do not know, and are ignored); when
  every hop is trusted, the leftmost; without ``X-Forwarded-For``, ``X-Real-IP``;
* the scheme is the last ``X-Forwarded-Proto`` value, when it is ``http`` or ``https``;
* from any other peer, ``X-Forwarded-For``, ``X-Forwarded-Proto``, ``X-Forwarded-Host``,
  ``X-Forwarded-Port`` and ``X-Real-IP`` are removed, so that nothing later (Django's
  ``SECURE_PROXY_SSL_HEADER`` among them) reads what the client wrote there.

``TrustedProxies`` applies this to ASGI HTTP and WebSocket scopes (coditect/asgi.py),
``trusted_proxies_wsgi`` to WSGI environs (coditect/wsgi.py).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Any

from django.conf import settings

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

# Header names as ASGI gives them (lower-case bytes) and as WSGI does (META keys).
_FOR, _PROTO, _REAL_IP = b"x-forwarded-for", b"x-forwarded-proto", b"x-real-ip"
FORWARDING_HEADERS = frozenset({_FOR, _PROTO, b"x-forwarded-host", b"x-forwarded-port", _REAL_IP})
_WSGI_HEADERS = {
    "HTTP_" + name.decode().upper().replace("-", "_"): name for name in FORWARDING_HEADERS
}


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ip_network(entry, strict=False) for entry in entries)


def trusted_networks() -> tuple[Network, ...]:
    """CODITECT_TRUSTED_PROXIES, parsed (read per request, so tests may change it)."""
    return _networks(tuple(settings.CODITECT_TRUSTED_PROXIES))


def _address(text: str) -> Address | None:
    """An address from a header or a peer: ``1.2.3.4``, ``1.2.3.4:80``, ``::1``, ``[::1]:80``;
    an IPv4-mapped IPv6 address as its IPv4 address. None for anything else."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        found = ip_address(text)
    except ValueError:
        return None
    if isinstance(found, IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _trusted(address: Address, networks: Sequence[Network]) -> bool:
    return any(address in network for network in networks)


# Answers kept for headers up to this many characters in all: a proxy's request is a handful
# of addresses its clients reuse, so the same answer is asked for again and again (parsing the
# addresses was a twentieth of a REST process's event loop behind nginx); longer ones, which a
# client can vary at will, are worked out each time and never fill the memo with big keys.
_MEMO_CHARS = 512

# forwarded_client's arguments, hashable: what it was told, and by whom.
_Told = tuple[str | None, tuple[str, ...], str | None, str | None, tuple[Network, ...]]
_Answer = tuple[str | None, str | None] | None


def forwarded_client(
    *,
    peer: str | None,
    forwarded_for: Sequence[str],
    real_ip: str | None,
    proto: str | None,
    networks: Sequence[Network],
) -> _Answer:
    """What a trusted peer says of the client: (address or None, "http"/"https" or None).

    None when ``peer`` is not a trusted proxy: nothing it forwarded is to be believed.
    """
    told: _Told = (peer, tuple(forwarded_for), real_ip, proto, tuple(networks))
    size = sum(len(part) for part in told[1]) + len(peer or "") + len(real_ip or "")
    if size + len(proto or "") > _MEMO_CHARS:
        return _believed(told)
    return _believed_memo(told)


def _believed(told: _Told) -> _Answer:
    peer, forwarded_for, real_ip, proto, networks = told
    peer_address = _address(peer) if peer else None
    if peer_address is None or not _trusted(peer_address, networks):
        return None
    client: Address | None = None
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break  # not an address: a hop we cannot vouch for, nor for any left of it
        client = address
        if not _trusted(address, networks):
            break
    if not hops and real_ip is not None:
        client = _address(real_ip)
    scheme = None
    if proto is not None:
        last = proto.rpartition(",")[2].strip().lower()
        scheme = last if last in ("http", "https") else None
    return (None if client is None else str(client)), scheme


# A pure function of what it was told (the trusted networks among it, so a changed setting
# is a different key): its answers can be kept.
_believed_memo = functools.lru_cache(maxsize=1024)(_believed)


def _values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> Iterator[str]:
    for key, value in headers:
        if key == name:
            yield value.decode("latin-1")


def _last(values: Iterable[str]) -> str | None:
    """The last of ``values``: a repeated single-valued header counts as its last line."""
    found = list(values)
    return found[-1] if found else None


def scope_forwarded(scope: dict[str, Any]) -> dict[str, Any]:
    """``scope`` as the application should see it (a copy when anything changes)."""
    headers: list[tuple[bytes, bytes]] = scope.get("headers") or []
    if not any(key in FORWARDING_HEADERS for key, _ in headers):
        return scope
    client = scope.get("client")
    told = forwarded_client(
        peer=client[0] if client else None,
        forwarded_for=list(_values(headers, _FOR)),
        real_ip=_last(_values(headers, _REAL_IP)),
        proto=_last(_values(headers, _PROTO)),
        networks=trusted_networks(),
    )
    if told is None:
        kept = [(key, value) for key, value in headers if key not in FORWARDING_HEADERS]
        return {**scope, "headers": kept}
    address, scheme = told
    changed = dict(scope)
    if address is not None:
        changed["client"] = [address, 0]
    if scheme is not None:
        secure = scheme == "https"
        if scope["type"] == "websocket":
            changed["scheme"] = "wss" if secure else "ws"
        else:
            changed["scheme"] = scheme
    return changed


Receive = Callable[[], Awaitable[Any]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class TrustedProxies:
    """ASGI middleware: HTTP and WebSocket scopes with the client a trusted proxy reports."""

    def __init__(self, app: Callable[[dict[str, Any], Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = scope_forwarded(scope)
        await self.app(scope, receive, send)


WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Any]


def trusted_proxies_wsgi(app: WsgiApp) -> WsgiApp:
    """WSGI middleware: ``REMOTE_ADDR`` and ``wsgi.url_scheme`` as a trusted proxy reports."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        present = [key for key in _WSGI_HEADERS if key in environ]
        if present:
            # A WSGI server joins repeated headers with commas, which is how they are read.
            forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
            told = forwarded_client(
                peer=environ.get("REMOTE_ADDR"),
                forwarded_for=[] if forwarded_for is None else [forwarded_for],
                real_ip=environ.get("HTTP_X_REAL_IP"),
                proto=environ.get("HTTP_X_FORWARDED_PROTO"),
                networks=trusted_networks(),
            )
            environ = dict(environ)
            if told is None:
                for key in present:
                    del environ[key]
            else:
                address, scheme = told
                if address is not None:
                    environ["REMOTE_ADDR"] = address
                if scheme is not None:
                    environ["wsgi.url_scheme"] = scheme
        return app(environ, start_response)

    return application
