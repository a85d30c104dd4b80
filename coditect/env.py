"""Typed, strict readers of environment variables for the settings.

A value that does not parse stops the process at start-up with the variable's name, rather than
letting a typo such as ``DJANGO_DEBUG=flase`` silently pick a behaviour.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable
from ipaddress import ip_network
from pathlib import Path
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

N = TypeVar("N", int, float)

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _raw(name: str) -> str | None:
    # An empty value counts as unset: compose files and shells often export `NAME=`.
    value = os.environ.get(name, "").strip()
    return value or None


def env_str(name: str, default: str) -> str:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}"
    )


def env_list(name: str, default: list[str]) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_networks(name: str) -> list[str]:
    """Comma-separated IP addresses or CIDR networks (``10.0.0.0/8``, ``::1``), normalised."""
    networks = []
    for entry in env_list(name, default=[]):
        try:
            networks.append(str(ip_network(entry, strict=False)))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name} must list IP addresses or networks (10.0.0.0/8); got {entry!r}"
            ) from None
    return networks


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    return _env_number(
        name, default, int, "an integer", lambda n: n >= minimum, f"at least {minimum}"
    )


def env_positive_float(name: str, default: float) -> float:
    return _env_number(
        name,
        default,
        float,
        "a number",
        lambda n: math.isfinite(n) and n > 0,
        "a finite number above 0",
    )


def _env_number(
    name: str,
    default: N,
    parse: Callable[[str], N],
    noun: str,
    valid: Callable[[N], bool],
    rule: str,
) -> N:
    """The variable as a number (``default`` when unset), refused at start-up when it does
    not parse as ``noun`` or breaks ``rule``."""
    value = _raw(name)
    if value is None:
        return default
    try:
        number = parse(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be {noun}; got {value!r}") from None
    if not valid(number):
        raise ImproperlyConfigured(f"{name} must be {rule}; got {value!r}")
    return number


def dev_secret_key(path: Path) -> str:
    """A random development key, written once to ``path`` and reused.

    Kept on disk so that admin sessions and anything signed survive a restart and agree
    between processes on one machine; never used when DEBUG is off.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as staged:
            staged.write("django-insecure-" + secrets.token_urlsafe(50))
        try:
            # A hard link never replaces an existing file, so racing processes all keep the
            # first key written, and none reads a half-written one.
            os.link(staging, path)
        except FileExistsError:
            pass
        finally:
            staging.unlink()
    return path.read_text().strip()
