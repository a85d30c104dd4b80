"""Password hashing (Argon2id, RFC 9106) and the password policy.

Parameters come from settings so tests can use cheap ones; production defaults are RFC 9106's
second recommended option (64 MiB, t=3, p=4). A stored hash made with other parameters is
upgraded at the next successful login (``PasswordCheck.new_hash``).

A process computes at most ``CODITECT_ARGON2_CONCURRENCY`` hashes at once (default: its CPU
cores); more requests wait their turn. Each hash holds its 64 MiB for its whole run, so a
login storm would otherwise hold a gigabyte per 16 logins; and hashes beyond the cores only
fight for memory bandwidth: on the 2-core benchmark machine 16 at once verified 10.4
passwords/s, 2 at once 11.4.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from difflib import SequenceMatcher

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from django.conf import settings
from django.contrib.auth.password_validation import (
    CommonPasswordValidator,
    NumericPasswordValidator,
    exceeds_maximum_length_ratio,
)
from django.core.exceptions import ValidationError

from core.metrics import argon2_queue_seconds

MIN_LENGTH = 8
MAX_LENGTH = 1024


@dataclass(frozen=True)
class PasswordCheck:
    ok: bool
    new_hash: str | None = None  # set when the stored hash should be replaced


@functools.cache
def _hasher(time_cost: int, memory_cost: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_cost,
        parallelism=parallelism,
        hash_len=32,
        salt_len=16,
        type=Type.ID,
    )


def hasher() -> PasswordHasher:
    return _hasher(
        settings.CODITECT_ARGON2_TIME_COST,
        settings.CODITECT_ARGON2_MEMORY_KIB,
        settings.CODITECT_ARGON2_PARALLELISM,
    )


@functools.cache
def _slots(count: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(count)


def hash_concurrency() -> int:
    """How many hashes this process computes at once."""
    configured: int = settings.CODITECT_ARGON2_CONCURRENCY
    return configured or len(os.sched_getaffinity(0))


@contextlib.contextmanager
def _hashing() -> Iterator[None]:
    started = time.perf_counter()
    with _slots(hash_concurrency()):
        argon2_queue_seconds.observe(time.perf_counter() - started)
        yield


@functools.cache
def _dummy_hash(time_cost: int, memory_cost: int, parallelism: int) -> str:
    with _hashing():
        return _hasher(time_cost, memory_cost, parallelism).hash("not a password: timing only")


def password_hash(*, password: str) -> str:
    with _hashing():
        return hasher().hash(password)


def password_check(*, encoded: str, password: str) -> PasswordCheck:
    """Verify ``password``; says whether ``encoded`` should be rehashed with today's parameters."""
    current = hasher()
    try:
        with _hashing():
            current.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return PasswordCheck(ok=False)
    if current.check_needs_rehash(encoded):
        return PasswordCheck(ok=True, new_hash=password_hash(password=password))
    return PasswordCheck(ok=True)


def password_check_dummy(*, password: str) -> None:
    """Spend the time a real check takes, so unknown emails answer as slowly as known ones."""
    current = hasher()
    encoded = _dummy_hash(
        settings.CODITECT_ARGON2_TIME_COST,
        settings.CODITECT_ARGON2_MEMORY_KIB,
        settings.CODITECT_ARGON2_PARALLELISM,
    )
    with contextlib.suppress(VerificationError), _hashing():
        current.verify(encoded, password)


def _too_similar(password: str, value: str, max_similarity: float = 0.7) -> bool:
    """Django's UserAttributeSimilarityValidator rule, for people who are not Django users."""
    if not value:
        return False
    lowered = password.lower()
    whole = value.lower()
    for part in [*re.split(r"\W+", whole), whole]:
        if not part or exceeds_maximum_length_ratio(lowered, max_similarity, part):
            continue
        if SequenceMatcher(a=lowered, b=part).quick_ratio() >= max_similarity:
            return True
    return False


def password_problems(*, password: str, email: str = "", display_name: str = "") -> list[str]:
    """Why ``password`` is refused (empty when it is acceptable); no truncation anywhere."""
    if len(password) < MIN_LENGTH:
        return [f"Password must be at least {MIN_LENGTH} characters."]
    if len(password) > MAX_LENGTH:
        return [f"Password must be at most {MAX_LENGTH} characters."]
    problems: list[str] = []
    for validator in (CommonPasswordValidator(), NumericPasswordValidator()):
        try:
            validator.validate(password)
        except ValidationError as error:
            problems.extend(error.messages)
    if _too_similar(password, email) or _too_similar(password, display_name):
        problems.append("The password is too similar to your email or name.")
    return problems
