"""FoundationDB's atomic mutations, byte for byte (fdbclient/Atomic.h, API version >= 520).

Each function takes the existing value (``None`` when the key is absent) and the operand,
and returns the new value, or ``None`` when the mutation clears the key.
"""

from __future__ import annotations

from collections.abc import Callable

from fdb_backend.limits import VALUE_SIZE_LIMIT

AtomicFn = Callable[[bytes | None, bytes], bytes | None]


def _fit(existing: bytes, length: int) -> bytes:
    """The existing value truncated or zero-padded to the operand's length."""
    return existing[:length].ljust(length, b"\x00")


def add(existing: bytes | None, operand: bytes) -> bytes | None:
    if not existing or not operand:
        return operand
    total = int.from_bytes(_fit(existing, len(operand)), "little") + int.from_bytes(
        operand, "little"
    )
    return (total % (1 << (8 * len(operand)))).to_bytes(len(operand), "little")


def bit_and(existing: bytes | None, operand: bytes) -> bytes | None:
    if existing is None:
        return operand
    if not operand:
        return operand
    return bytes(a & b for a, b in zip(_fit(existing, len(operand)), operand, strict=True))


def bit_or(existing: bytes | None, operand: bytes) -> bytes | None:
    if not existing or not operand:
        return operand
    return bytes(a | b for a, b in zip(_fit(existing, len(operand)), operand, strict=True))


def bit_xor(existing: bytes | None, operand: bytes) -> bytes | None:
    if not existing or not operand:
        return operand
    return bytes(a ^ b for a, b in zip(_fit(existing, len(operand)), operand, strict=True))


def append_if_fits(existing: bytes | None, operand: bytes) -> bytes | None:
    if not existing:
        return operand
    if not operand:
        return existing
    if len(existing) + len(operand) > VALUE_SIZE_LIMIT:
        return existing
    return existing + operand


def max_(existing: bytes | None, operand: bytes) -> bytes | None:
    if not existing or not operand:
        return operand
    current = _fit(existing, len(operand))
    if int.from_bytes(operand, "little") >= int.from_bytes(current, "little"):
        return operand
    return current


def min_(existing: bytes | None, operand: bytes) -> bytes | None:
    if existing is None:
        return operand
    if not operand:
        return operand
    current = _fit(existing, len(operand))
    if int.from_bytes(operand, "little") <= int.from_bytes(current, "little"):
        return operand
    return current


def byte_max(existing: bytes | None, operand: bytes) -> bytes | None:
    if existing is None:
        return operand
    return existing if existing > operand else operand


def byte_min(existing: bytes | None, operand: bytes) -> bytes | None:
    if existing is None:
        return operand
    return existing if existing < operand else operand


def compare_and_clear(existing: bytes | None, operand: bytes) -> bytes | None:
    if existing is None or existing == operand:
        return None
    return existing


# Names as the official binding's Transaction methods.
OPERATIONS: dict[str, AtomicFn] = {
    "add": add,
    "bit_and": bit_and,
    "bit_or": bit_or,
    "bit_xor": bit_xor,
    "append_if_fits": append_if_fits,
    "max": max_,
    "min": min_,
    "byte_max": byte_max,
    "byte_min": byte_min,
    "compare_and_clear": compare_and_clear,
}
