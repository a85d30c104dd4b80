"""FoundationDB's tuple encoding, byte for byte, with a fast path for the platform's keys.

``fdb.tuple`` encodes in pure Python through a generic encoder (a type dispatch, a
versionstamp scan and a join per element): a PATCH of one session packs about fifteen keys
and spent more CPU in it than in SQLite. Every key the platform builds is a tuple of
strings, UUIDs, small integers, byte strings and ``None``; those are encoded here directly,
and anything else (floats, booleans, nested tuples, versionstamps, integers of more than
eight bytes) goes to ``fdb.tuple`` itself. ``Space`` is ``fdb``'s ``Subspace`` packing
through it. ``tests/fdb_backend/test_tuples.py`` checks both against ``fdb.tuple`` on
random tuples of every type.
"""

from __future__ import annotations

import uuid
from typing import Any

import fdb.tuple
from fdb.subspace_impl import Subspace

_INT_LIMIT = (1 << 64) - 1  # from here on the tuple layer's arbitrary-length integers
_INT_ZERO = 0x14
_UUID = 0x30
_STRING = 0x02
_BYTES = 0x01
_NULL = 0x00
_TO_BYTES = int.to_bytes
_FROM_BYTES = int.from_bytes


def _int(value: int) -> bytes:
    if value == 0:
        return b"\x14"
    if value > 0:
        size = (value.bit_length() + 7) // 8
        return bytes((_INT_ZERO + size,)) + _TO_BYTES(value, size, "big")
    size = ((-value).bit_length() + 7) // 8
    return bytes((_INT_ZERO - size,)) + _TO_BYTES(((1 << (size * 8)) - 1) + value, size, "big")


def pack(items: tuple[Any, ...], prefix: bytes = b"") -> bytes:
    """``fdb.tuple.pack(items, prefix=prefix)``."""
    if len(items) == 1 and type(items[0]) is uuid.UUID:
        return prefix + b"\x30" + items[0].bytes  # a record's key, packed most of all
    parts = [prefix]
    append = parts.append
    for item in items:
        kind = type(item)
        if kind is str:
            append(b"\x02" + item.encode().replace(b"\x00", b"\x00\xff") + b"\x00")
        elif kind is uuid.UUID:
            append(b"\x30" + item.bytes)
        elif kind is int and -_INT_LIMIT < item < _INT_LIMIT:
            append(_int(item))
        elif kind is bytes:
            append(b"\x01" + item.replace(b"\x00", b"\x00\xff") + b"\x00")
        elif item is None:
            append(b"\x00")
        else:
            return fdb.tuple.pack(items, prefix=prefix)
    return b"".join(parts)


def _escaped(key: bytes, pos: int) -> tuple[bytes, int]:
    """The bytes of a string or byte-string element starting at ``pos``, and where the next
    element starts (a 0x00 ends it, unless 0xFF follows, which makes it a 0x00 of the data)."""
    end = key.index(b"\x00", pos)
    if key[end + 1 : end + 2] != b"\xff":
        return key[pos:end], end + 1
    pieces = []
    while key[end + 1 : end + 2] == b"\xff":
        pieces.append(key[pos : end + 1])
        pos = end + 2
        end = key.index(b"\x00", pos)
    pieces.append(key[pos:end])
    return b"".join(pieces), end + 1


def unpack(key: bytes, prefix_len: int = 0) -> tuple[Any, ...]:
    """``fdb.tuple.unpack(key, prefix_len=prefix_len)``."""
    items: list[Any] = []
    append = items.append
    pos, end = prefix_len, len(key)
    while pos < end:
        code = key[pos]
        pos += 1
        if code == _STRING:
            data, pos = _escaped(key, pos)
            append(data.decode())
        elif code == _UUID:
            append(uuid.UUID(bytes=key[pos : pos + 16]))
            pos += 16
        elif _INT_ZERO - 8 <= code <= _INT_ZERO + 8:
            size = code - _INT_ZERO
            if size >= 0:
                append(_FROM_BYTES(key[pos : pos + size], "big"))
            else:
                size = -size
                append(_FROM_BYTES(key[pos : pos + size], "big") - ((1 << (size * 8)) - 1))
            pos += size
        elif code == _BYTES:
            data, pos = _escaped(key, pos)
            append(data)
        elif code == _NULL:
            append(None)
        else:
            return fdb.tuple.unpack(key, prefix_len=prefix_len)
    if pos != end:  # a truncated element: the tuple layer says what is wrong
        return fdb.tuple.unpack(key, prefix_len=prefix_len)
    return tuple(items)


class Space(Subspace):
    """``fdb``'s ``Subspace``, its keys packed and unpacked by this module."""

    def __init__(self, prefix_tuple: tuple[Any, ...] = (), raw_prefix: bytes = b"") -> None:
        self.rawPrefix = pack(prefix_tuple, raw_prefix)

    def __getitem__(self, name: Any) -> Space:
        return Space((name,), self.rawPrefix)

    def subspace(self, items: tuple[Any, ...]) -> Space:
        return Space(items, self.rawPrefix)

    def pack(self, items: tuple[Any, ...] = ()) -> bytes:
        return pack(items, self.rawPrefix)

    def unpack(self, key: bytes) -> tuple[Any, ...]:
        if not key.startswith(self.rawPrefix):
            raise ValueError("Cannot unpack key that is not in subspace.")
        return unpack(key, len(self.rawPrefix))

    def range(self, items: tuple[Any, ...] = ()) -> slice:
        packed = pack(items, self.rawPrefix)
        return slice(packed + b"\x00", packed + b"\xff")
