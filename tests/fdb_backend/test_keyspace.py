"""The keyspace: shapes, order, and tenant isolation by construction (docs/keyspace.md)."""

from __future__ import annotations

import uuid
from typing import Any

import fdb.tuple
import pytest
from fdb.subspace_impl import Subspace
from hypothesis import given, settings
from hypothesis import strategies as st

from fdb_backend import keyspace

TENANT_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
TENANT_B = uuid.UUID("00000000-0000-4000-8000-00000000000b")

TENANT_COLLECTIONS = [
    "users",
    "invitations",
    "auth_sessions",
    "workspace_sessions",
    "events",
    "locks",
    "connections",
]


def tenant_keys(tid: uuid.UUID, tail: tuple[Any, ...]) -> list[bytes]:
    """One key of every tenant shape, each ending with ``tail``."""
    tk = keyspace.tenant(tid)
    keys = [tk.counters.pack(tail), tk.space("auth_events").pack(tail)]
    for name in TENANT_COLLECTIONS:
        c = tk.collection(name)
        keys.append(c.records.pack(tail))
        for ik in c.indexes.values():
            if not ik.cross_scope:
                keys.append(ik.subspace.pack(tail))
    return keys


def test_root_prefix_is_short_and_shared() -> None:
    assert keyspace.ROOT.key() == b"\x02cdt\x00"
    tk = keyspace.tenant(TENANT_A)
    assert tk.subspace.key() == b"\x02cdt\x00\x02t\x00\x30" + TENANT_A.bytes
    assert keyspace.GLOBAL.collection("tenants").records.key() == b"\x02cdt\x00\x02tenants\x00"


def test_design_shapes_pack_as_documented() -> None:
    user = uuid.UUID("11111111-1111-4111-8111-111111111111")
    tk = keyspace.tenant(TENANT_A)
    by_user = tk.collection("auth_sessions").index("auth_sessions_by_user").subspace
    assert fdb.tuple.unpack(by_user.pack((user, TENANT_B))) == (
        "cdt",
        "t",
        TENANT_A,
        "auth_sessions_by_user",
        user,
        TENANT_B,
    )
    users = tk.collection("users")
    email = users.index("user_by_email")
    # The login index is global and its entries name the tenant.
    assert email.subspace.key() == keyspace.GLOBAL.index("user_by_email").key()
    assert email.pointer_prefix == (TENANT_A,)
    assert fdb.tuple.unpack(email.subspace.pack(("ann@example.com",))) == (
        "cdt",
        "user_by_email",
        "ann@example.com",
    )
    slug = keyspace.GLOBAL.collection("tenants").index("tenant_by_slug")
    assert slug.subspace.pack(("acme",)) == b"\x02cdt\x00\x02tenant_by_slug\x00\x02acme\x00"
    assert not slug.cross_scope


def test_worked_examples_in_the_docs_hold() -> None:
    tid = uuid.UUID("0a1b2c3d-4e5f-4a6b-8c7d-8e9fa0b1c2d3")
    user = uuid.UUID("11111111-2222-4333-8444-555555555555")
    tk = keyspace.tenant(tid)
    prefix = "02 63 64 74 00 02 74 00 30 0a 1b 2c 3d 4e 5f 4a 6b 8c 7d 8e 9f a0 b1 c2 d3"
    assert tk.range() == (bytes.fromhex(prefix + " 00"), bytes.fromhex(prefix + " ff"))
    user_key = tk.collection("users").records.pack((user, 0))
    assert user_key.hex(" ") == prefix + (
        " 02 75 73 65 72 73 00 30 11 11 11 11 22 22 43 33 84 44 55 55 55 55 55 55 14"
    )
    email = keyspace.GLOBAL.index("user_by_email").pack(("ann@example.com",))
    assert email.hex(" ") == (
        "02 63 64 74 00 02 75 73 65 72 5f 62 79 5f 65 6d 61 69 6c 00"
        " 02 61 6e 6e 40 65 78 61 6d 70 6c 65 2e 63 6f 6d 00"
    )


def test_unregistered_names_are_refused() -> None:
    tk = keyspace.tenant(TENANT_A)
    with pytest.raises(KeyError):
        tk.collection("user")
    with pytest.raises(KeyError):
        tk.space("users")
    with pytest.raises(KeyError):
        tk.collection("users").index("users_by_name")
    with pytest.raises(KeyError):
        keyspace.GLOBAL.collection("users")
    with pytest.raises(KeyError):
        keyspace.GLOBAL.index("tenant_by_slug")


def test_tenant_handle_needs_a_uuid() -> None:
    with pytest.raises(TypeError):
        keyspace.tenant(str(TENANT_A))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        keyspace.tenant(TENANT_A.bytes)  # type: ignore[arg-type]


def test_tenant_ranges_are_disjoint_and_cover_their_keys() -> None:
    a, b = keyspace.tenant(TENANT_A).range(), keyspace.tenant(TENANT_B).range()
    assert a.end <= b.begin or b.end <= a.begin
    root = keyspace.GLOBAL.range()
    for tid, mine, other in ((TENANT_A, a, b), (TENANT_B, b, a)):
        for key in tenant_keys(tid, (uuid.uuid4(), "x" * 50, 2**40)):
            assert mine.contains(key)
            assert not other.contains(key)
            assert root.contains(key)
    for shape in (
        keyspace.GLOBAL.collection("tenants").records.pack((TENANT_A, 0)),
        keyspace.GLOBAL.index("user_by_email").pack(("a@b.c",)),
        keyspace.GLOBAL.space("throttle").pack(("login", "a@b.c")),
    ):
        assert not a.contains(shape) and not b.contains(shape)
        assert root.contains(shape)


@given(
    st.lists(
        st.tuples(st.uuids(), st.sampled_from(TENANT_COLLECTIONS), st.uuids(), st.integers(0, 9)),
        min_size=2,
        max_size=25,
    )
)
@settings(max_examples=80, deadline=None)
def test_tuple_order_equals_byte_order_for_tenant_shapes(items: list[Any]) -> None:
    keys = []
    for tid, name, rid, chunk in items:
        records = keyspace.tenant(tid).collection(name).records
        keys.append(((tid, name, rid, chunk), records.pack((rid, chunk))))
    by_tuple = sorted(keys, key=lambda k: k[0])
    by_bytes = sorted(keys, key=lambda k: k[1])
    assert [k for _, k in by_tuple] == [k for _, k in by_bytes]
    # A tenant's keys are contiguous: sorting by bytes groups them by tenant.
    tenants_in_order = [t[0] for t, _ in by_bytes]
    seen: list[uuid.UUID] = []
    for tid in tenants_in_order:
        if not seen or seen[-1] != tid:
            assert tid not in seen
            seen.append(tid)


@given(
    st.lists(
        st.tuples(
            st.uuids(),
            st.text(max_size=6),
            st.integers(-(2**63), 2**63),
            st.uuids(),
        ),
        min_size=2,
        max_size=25,
    )
)
@settings(max_examples=80, deadline=None)
def test_index_entry_order_is_value_order(items: list[Any]) -> None:
    """Index entries sort by (values, pointer), as listing by an index promises."""
    index = keyspace.tenant(TENANT_A).collection("workspace_sessions").index("recent_sessions")
    packed = [(item, index.subspace.pack(item)) for item in items]
    assert [k for _, k in sorted(packed)] == [k for _, k in sorted(packed, key=lambda p: p[1])]


def test_test_scopes_are_isolated_like_tenants() -> None:
    layout = keyspace.Layout({"widgets": ("widgets_by_color",)})
    one = keyspace.Scope(Subspace(("test", uuid.uuid4())), layout)
    two = keyspace.Scope(Subspace(("test", uuid.uuid4())), layout)
    key = one.collection("widgets").index("widgets_by_color").subspace.pack(("red",))
    assert one.contains(key) and not two.contains(key)
