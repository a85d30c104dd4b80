"""Pages of records and the opaque continuations that resume them.

A continuation is base64url (no padding) of::

    0x01 | binding (8 bytes) | boundary suffix

* ``binding``: BLAKE2b-64 of the queried range and direction, so a continuation works only
  for the query that produced it (same collection or index, same prefix, same tenant, same
  direction); anything else is rejected with a clear error instead of paging something else.
* ``boundary suffix``: where the next page starts (forward) or ends (reverse), relative to
  the collection's or index's subspace. It is checked to lie inside the queried range
  before use, so a continuation, forged or not, can never read outside that range.
"""

from __future__ import annotations

import binascii
import hashlib
import struct
from base64 import b64decode, urlsafe_b64encode
from dataclasses import dataclass
from typing import Generic, TypeVar

from fdb_backend import tuples
from fdb_backend.records.errors import InvalidContinuation

R = TypeVar("R")

CONTINUATION_FORMAT = 0x01
_BINDING_SIZE = 8
# Keys are at most 10,000 bytes; base64 of that and the header stays well under this.
_MAX_CONTINUATION_CHARS = 14_000


@dataclass(frozen=True)
class Page(Generic[R]):
    """One page of a listing; ``continuation`` is None when the range is exhausted."""

    records: list[R]
    continuation: str | None


def _binding(begin: bytes, end: bytes, reverse: bool) -> bytes:
    h = hashlib.blake2b(digest_size=_BINDING_SIZE, person=b"cdt-cont")
    h.update(struct.pack(">IIB", len(begin), len(end), reverse))
    h.update(begin)
    h.update(end)
    return h.digest()


def encode_continuation(
    prefix: bytes, begin: bytes, end: bytes, reverse: bool, boundary: bytes
) -> str:
    """The continuation that resumes the range ``[begin, end)`` at ``boundary``."""
    if not boundary.startswith(prefix):
        raise ValueError("continuation boundary is outside the subspace")
    raw = bytes([CONTINUATION_FORMAT]) + _binding(begin, end, reverse) + boundary[len(prefix) :]
    return urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_continuation(
    token: str,
    prefix: bytes,
    begin: bytes,
    end: bytes,
    reverse: bool,
    *,
    key_arity: int | None = None,
) -> tuple[bytes, bytes]:
    """The ``(begin, end)`` that resume the query; raises InvalidContinuation.

    ``key_arity`` set: a record listing, whose boundaries fall between whole records
    (``pack(pk)``, or ``pack(pk) + 0xff`` going forward). None: an index listing, whose
    boundaries are entry keys (``+ 0x00`` going forward).
    """
    if not isinstance(token, str) or not token or len(token) > _MAX_CONTINUATION_CHARS:
        raise InvalidContinuation("not a continuation string")
    try:
        raw = b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidContinuation("not base64url") from None
    if len(raw) < 1 + _BINDING_SIZE or raw[0] != CONTINUATION_FORMAT:
        raise InvalidContinuation("unknown continuation format")
    if raw[1 : 1 + _BINDING_SIZE] != _binding(begin, end, reverse):
        raise InvalidContinuation("continuation belongs to another query")
    boundary = prefix + raw[1 + _BINDING_SIZE :]
    if not begin <= boundary <= end:
        raise InvalidContinuation("continuation points outside the queried range")
    if not _is_boundary(boundary[len(prefix) :], reverse, key_arity):
        raise InvalidContinuation("continuation is not a boundary between entries")
    return (begin, boundary) if reverse else (boundary, end)


def _is_boundary(suffix: bytes, reverse: bool, key_arity: int | None) -> bool:
    # A boundary inside a split record would make the next page start mid-record.
    if not reverse:
        last = b"\x00" if key_arity is None else b"\xff"
        if not suffix.endswith(last):
            return False
        suffix = suffix[:-1]
    try:
        items = tuples.unpack(suffix)
    except Exception:  # the tuple layer raises several types for malformed bytes
        return False
    return bool(items) and (key_arity is None or len(items) == key_arity)
