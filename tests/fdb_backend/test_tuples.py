"""fdb_backend.tuples packs and unpacks exactly as FoundationDB's tuple layer does."""

from __future__ import annotations

import ctypes
import struct
import uuid
from typing import Any

import fdb.tuple
import pytest
from fdb.subspace_impl import Subspace
from hypothesis import given, settings
from hypothesis import strategies as st

from fdb_backend import tuples
from fdb_backend.tuples import Space

# What the platform's keys hold (the fast path) ...
_fast = st.one_of(
    st.text(),
    st.text(alphabet="\x00a\xff"),  # NUL bytes, escaped as 0x00 0xFF
    st.binary(),
    st.binary().map(lambda b: b + b"\x00\xff\x00"),
    st.uuids(),
    st.integers(min_value=-(2**64) + 2, max_value=2**64 - 2),
    st.sampled_from([0, 1, -1, 255, 256, -255, -256, 2**63, -(2**63), 2**64 - 2, -(2**64) + 2]),
    st.none(),
)
# ... and what goes to the tuple layer.
_other = st.one_of(
    st.floats(allow_nan=False),
    st.booleans(),
    st.integers(min_value=2**64 - 1, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-(2**64) + 1),
    st.sampled_from([2**64 - 1, -(2**64) + 1]),
    st.tuples(_fast, _fast),
    st.just(fdb.tuple.Versionstamp(b"\x01" * 10, 7)),
)
_items = st.lists(st.one_of(_fast, _other), max_size=6).map(tuple)
_fast_items = st.lists(_fast, max_size=6).map(tuple)


@settings(max_examples=400, deadline=None)
@given(_items, st.binary(max_size=4))
def test_pack_is_the_tuple_layers(items: tuple[Any, ...], prefix: bytes) -> None:
    assert tuples.pack(items, prefix) == fdb.tuple.pack(items, prefix=prefix)


@settings(max_examples=400, deadline=None)
@given(_items, st.binary(max_size=4))
def test_unpack_is_the_tuple_layers(items: tuple[Any, ...], prefix: bytes) -> None:
    key = fdb.tuple.pack(items, prefix=prefix)
    assert tuples.unpack(key, len(prefix)) == fdb.tuple.unpack(key, prefix_len=len(prefix))


@settings(max_examples=200, deadline=None)
@given(_fast_items, _fast_items)
def test_keys_sort_as_their_tuples(first: tuple[Any, ...], second: tuple[Any, ...]) -> None:
    # The order of keys is the order of the tuple layer's keys (what ranges rely on).
    ours = tuples.pack(first) < tuples.pack(second)
    assert ours == (fdb.tuple.pack(first) < fdb.tuple.pack(second))


@settings(max_examples=200, deadline=None)
@given(_fast_items, _fast_items)
def test_a_space_is_the_tuple_layers_subspace(
    prefix: tuple[Any, ...], items: tuple[Any, ...]
) -> None:
    ours, theirs = Space(("cdt",))[prefix], Subspace(("cdt",))[prefix]
    assert ours.key() == theirs.key()
    assert ours.pack(items) == theirs.pack(items)
    assert ours.range(items) == theirs.range(items)
    assert ours.subspace(items).key() == theirs.subspace(items).key()
    assert ours.unpack(theirs.pack(items)) == theirs.unpack(theirs.pack(items))


def test_what_the_tuple_layer_refuses_is_refused() -> None:
    with pytest.raises(ValueError, match="Incomplete versionstamp"):
        tuples.pack((fdb.tuple.Versionstamp(),))
    with pytest.raises(ValueError, match="Unsupported data type"):
        tuples.pack((object(),))
    with pytest.raises(UnicodeEncodeError):
        tuples.pack(("\udcff",))
    with pytest.raises(ValueError, match="not in subspace"):
        Space(("cdt",)).unpack(b"\x02other\x00")
    # A key cut short inside an element is an error, not a shorter value.
    with pytest.raises(ValueError):
        tuples.unpack(fdb.tuple.pack((uuid.uuid4(),))[:-3])
    with pytest.raises(struct.error):  # as the tuple layer says it
        tuples.unpack(fdb.tuple.pack((2**40,))[:-1])


def test_single_floats_and_bools_go_to_the_tuple_layer() -> None:
    items = (fdb.tuple.SingleFloat(1.5), ctypes.c_double(2.5), True, False, "x")
    assert tuples.pack(items) == fdb.tuple.pack(items)
