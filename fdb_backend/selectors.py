"""Key selectors and streaming modes, named as in the official binding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


class KeyValue(NamedTuple):
    key: bytes
    value: bytes


@dataclass(frozen=True)
class KeySelector:
    """The key ``offset`` places after the last key < ``key`` (``<=`` when ``or_equal``)."""

    key: bytes
    or_equal: bool
    offset: int

    @classmethod
    def last_less_than(cls, key: bytes) -> KeySelector:
        return cls(key, False, 0)

    @classmethod
    def last_less_or_equal(cls, key: bytes) -> KeySelector:
        return cls(key, True, 0)

    @classmethod
    def first_greater_than(cls, key: bytes) -> KeySelector:
        return cls(key, True, 1)

    @classmethod
    def first_greater_or_equal(cls, key: bytes) -> KeySelector:
        return cls(key, False, 1)

    def __add__(self, offset: int) -> KeySelector:
        return KeySelector(self.key, self.or_equal, self.offset + offset)

    def __sub__(self, offset: int) -> KeySelector:
        return KeySelector(self.key, self.or_equal, self.offset - offset)


class StreamingMode:
    want_all = -2
    iterator = -1
    exact = 0
    small = 1
    medium = 2
    large = 3
    serial = 4
