"""Typed records and their indexes, on the memory engine and on a durable embedded file.

The index consistency oracle (``assert_consistent``) reads raw keys and rebuilds the
expected entries from the documented layout (docs/keyspace.md), independently of the
records layer's own code.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import random
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import fdb.tuple
import pytest
import time_machine
from fdb.subspace_impl import Subspace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fdb_backend
from fdb_backend import keyspace
from fdb_backend.maintenance import check_collection, expired, purge_where
from fdb_backend.records import (
    MAX_RECORD_SIZE,
    Collection,
    CorruptRecord,
    Index,
    InvalidContinuation,
    Record,
    RecordTooLarge,
    UniqueViolation,
    VersionConflict,
    epoch_micros,
    get_together,
    insert_together,
    paging,
    resolve_unique,
)
from tests.fdb_backend.conftest import in_threads

COLORS = ["red", "green", "blue"]
TAGS = ["a", "b", "c", "d"]
T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class Widget(Record):
    collection: ClassVar[str] = "widgets"
    indexes: ClassVar[tuple[Index, ...]] = (
        Index("widgets_by_color", lambda w: (w.color, w.size)),
        Index("widgets_by_sku", lambda w: None if w.sku is None else (w.sku,), unique=True),
        Index("widgets_by_tag", lambda w: [(t,) for t in w.tags]),
        Index("widgets_by_serial", lambda w: None if w.serial is None else (w.serial,), True),
    )
    expires_field: ClassVar[str | None] = "expires_at"

    id: uuid.UUID
    color: str
    size: int = 0
    sku: str | None = None
    serial: str | None = None
    tags: list[str] = field(default_factory=list)
    blob: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Part(Record):
    collection: ClassVar[str] = "parts"
    key_fields: ClassVar[tuple[str, ...]] = ("widget_id", "n")
    indexes: ClassVar[tuple[Index, ...]] = (Index("parts_by_made", lambda p: (p.made_at,)),)

    widget_id: uuid.UUID
    n: int
    weight: float
    active: bool
    made_at: datetime
    raw: bytes
    meta: dict[str, Any]
    kind: Literal["a", "b"]
    note: str | None = None


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture(params=["memory", "embedded"])
def database(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    if request.param == "memory":
        db = fdb_backend.open_database("memory:")
    else:
        db = fdb_backend.open_database(f"embedded://{tmp_path}/records.sqlite3")
    yield db
    db.close()


def make_scope(outer: Subspace, name: str = "a") -> keyspace.Scope:
    """A private scope laid out like a tenant, with a root-level unique index (serial)."""
    layout = keyspace.Layout(
        {
            "widgets": (
                "widgets_by_color",
                "widgets_by_sku",
                "widgets_by_tag",
                "widgets_by_serial",
            ),
            "parts": ("parts_by_made",),
            "badges": (),
        },
        outer_indexes={"widgets_by_serial": outer["serial"]},
    )
    return keyspace.Scope(outer[name], layout, pointer_prefix=(name,))


@pytest.fixture
def outer() -> Subspace:
    return Subspace(("test-records", uuid.uuid4()))


@pytest.fixture
def scope(outer: Subspace) -> keyspace.Scope:
    return make_scope(outer)


@pytest.fixture
def widgets(scope: keyspace.Scope) -> Collection[Widget]:
    return Collection(Widget, scope)


def raw(db: Any, r: Any) -> list[Any]:
    begin, end = (r.start, r.stop) if isinstance(r, slice) else r
    return list(db.create_transaction().get_range(begin, end))


def index_space(scope: keyspace.Scope, name: str) -> Subspace:
    return scope.collection("widgets").index(name).subspace


def assert_consistent(db: Any, scope: keyspace.Scope) -> dict[uuid.UUID, dict[str, Any]]:
    """Every index entry has its record with matching values, and every record exactly its
    entries; returns the stored records as JSON objects."""
    coll = scope.collection("widgets")
    groups: dict[tuple[Any, ...], list[tuple[int, bytes]]] = defaultdict(list)
    for kv in raw(db, coll.records.range()):
        key = coll.records.unpack(kv.key)
        groups[key[:-1]].append((key[-1], kv.value))
    stored = {}
    for pk, chunks in groups.items():
        chunks.sort()
        numbers = [n for n, _ in chunks]
        assert numbers == [0] or numbers == list(range(1, len(numbers) + 1)), (pk, numbers)
        payload = b"".join(v for _, v in chunks)
        assert payload[:1] == b"\x01"
        stored[pk[0]] = json.loads(payload[1:])
    expected: dict[bytes, bytes] = {}
    by_color, by_sku, by_tag, by_serial = (
        index_space(scope, n)
        for n in ("widgets_by_color", "widgets_by_sku", "widgets_by_tag", "widgets_by_serial")
    )
    for wid, rec in stored.items():
        assert rec["id"] == str(wid)
        expected[by_color.pack((rec["color"], rec["size"], wid))] = b""
        if rec["sku"] is not None:
            expected[by_sku.pack((rec["sku"],))] = fdb.tuple.pack((wid,))
        for tag in rec["tags"]:
            expected[by_tag.pack((tag, wid))] = b""
        if rec["serial"] is not None:
            expected[by_serial.pack((rec["serial"],))] = fdb.tuple.pack(("a", wid))
    actual = {}
    for space in (by_color, by_sku, by_tag, by_serial):
        for kv in raw(db, space.range()):
            if space is by_serial and fdb.tuple.unpack(kv.value)[0] != "a":
                continue
            actual[kv.key] = kv.value
    assert actual == expected
    return {uuid.UUID(k) if isinstance(k, str) else k: v for k, v in stored.items()}


# --- declaring and storing ------------------------------------------------------------


def test_field_types_round_trip(database: Any, scope: keyspace.Scope) -> None:
    parts = Collection(Part, scope)
    made = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    part = Part(
        widget_id=uuid.uuid4(),
        n=7,
        weight=2,
        active=True,
        made_at=made.astimezone(datetime.now().astimezone().tzinfo),
        raw=b"\x00\xff",
        meta={"k": [1, "two", None]},
        kind="b",
    )
    saved = parts.save(database, part)
    got = parts.get(database, (part.widget_id, 7))
    assert got == saved == replace(part, version=1, weight=2.0)
    assert got is not None and got.made_at == made and got.made_at.tzinfo is UTC
    value = raw(database, scope.collection("parts").records.range())[0].value
    assert value.startswith(b'\x01{"version":1,')
    assert b'"made_at":"2026-01-02T03:04:05.678901Z"' in value
    index = scope.collection("parts").index("parts_by_made").subspace
    entry = index.pack((epoch_micros(made), part.widget_id, 7))
    assert [kv.key for kv in raw(database, index.range())] == [entry]


def test_wrong_values_and_declarations_are_refused(database: Any, scope: keyspace.Scope) -> None:
    widgets = Collection(Widget, scope)
    with pytest.raises(TypeError):
        widgets.save(database, Widget(id=uuid.uuid4(), color=3))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        widgets.save(database, Widget(id=uuid.uuid4(), color="x", size=True))
    with pytest.raises(TypeError):
        widgets.save(
            database,
            Widget(id=uuid.uuid4(), color="x", expires_at=datetime(2030, 1, 1)),  # noqa: DTZ001
        )
    with pytest.raises(ValueError):
        widgets.get(database, (uuid.uuid4(), 1))

    @dataclass(frozen=True, kw_only=True)
    class NoCollection(Record):
        id: uuid.UUID

    @dataclass(frozen=True, kw_only=True)
    class BadField(Record):
        collection: ClassVar[str] = "widgets"
        id: uuid.UUID
        when: set[int]

    @dataclass(frozen=True, kw_only=True)
    class Unregistered(Record):
        collection: ClassVar[str] = "gadgets"
        id: uuid.UUID

    @dataclass(frozen=True, kw_only=True)
    class UnknownIndex(Record):
        collection: ClassVar[str] = "widgets"
        indexes: ClassVar[tuple[Index, ...]] = (Index("widgets_by_name", lambda w: (w.id,)),)
        id: uuid.UUID

    for bad, error in (
        (NoCollection, TypeError),
        (BadField, TypeError),
        (Unregistered, KeyError),
        (UnknownIndex, KeyError),
    ):
        with pytest.raises(error):
            Collection(bad, scope)


def test_stored_format_evolves(database: Any, scope: keyspace.Scope) -> None:
    """Unknown stored fields are ignored, missing ones take their defaults; a bad marker is
    a CorruptRecord."""
    widgets = Collection(Widget, scope)
    wid = uuid.uuid4()
    key = scope.collection("widgets").records.pack((wid, 0))
    doc = {"version": 4, "id": str(wid), "color": "red", "retired_field": 1}
    tr = database.create_transaction()
    tr[key] = b"\x01" + json.dumps(doc).encode()
    tr.commit().wait()
    assert widgets.get(database, wid) == Widget(id=wid, color="red", version=4)
    tr = database.create_transaction()
    tr[key] = b"\x02" + json.dumps(doc).encode()
    tr.commit().wait()
    with pytest.raises(CorruptRecord):
        widgets.get(database, wid)


@pytest.mark.parametrize("weight", [float("nan"), float("inf"), -float("inf")])
def test_a_float_field_must_be_finite(database: Any, scope: keyspace.Scope, weight: float) -> None:
    """Stored JSON has no NaN or infinity (orjson would write null, which reads back as
    nothing): refused at save, nothing written."""
    parts = Collection(Part, scope)
    part = Part(
        widget_id=uuid.uuid4(), n=1, weight=weight, active=True, made_at=T0, raw=b"",
        meta={}, kind="a",
    )  # fmt: skip
    with pytest.raises(ValueError):
        parts.save(database, part)
    assert raw(database, scope.range()) == []


def test_a_read_record_is_a_whole_frozen_instance(database: Any, scope: keyspace.Scope) -> None:
    parts = Collection(Part, scope)
    made = Part(
        widget_id=uuid.uuid4(), n=1, weight=2.0, active=False, made_at=T0, raw=b"\x01\x02",
        meta={"a": [1, {"b": None}]}, kind="b",
    )  # fmt: skip
    saved = parts.save(database, made)
    read = parts.get(database, (made.widget_id, 1))
    assert read == saved and hash(read.widget_id) == hash(made.widget_id)
    assert dataclasses.asdict(read) == dataclasses.asdict(saved)
    assert replace(read, n=2) == replace(saved, n=2)
    assert type(read.made_at) is datetime and type(read.raw) is bytes and read.note is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        read.n = 5  # type: ignore[misc]


@dataclass(frozen=True, kw_only=True)
class Badge(Record):
    """Every field immutable: read records are shared (Schema.decode)."""

    collection: ClassVar[str] = "badges"

    id: uuid.UUID
    holder: str
    level: int | None = None
    kind: Literal["gold", "tin"] = "tin"
    granted_at: datetime | None = None


def test_records_of_immutable_fields_are_shared_and_a_change_is_seen_at_once(
    database: Any, scope: keyspace.Scope
) -> None:
    badges = Collection(Badge, scope)
    saved = badges.save(database, Badge(id=uuid.uuid4(), holder="ada", granted_at=T0))
    first = badges.get(database, saved.id)
    # The same stored bytes: one decoded instance serves both reads.
    assert first is badges.get(database, saved.id) and first == saved
    # Changed bytes (here by another writer than this collection) are decoded anew.
    key = scope.collection("badges").records.pack((saved.id, 0))
    tr = database.create_transaction()
    changed = dict(json.loads(tr[key][1:]), holder="bob")
    tr[key] = b"\x01" + json.dumps(changed).encode()
    tr.commit().wait()
    reread = badges.get(database, saved.id)
    assert reread is not None and reread.holder == "bob"
    assert first is not None and first.holder == "ada"


def test_records_with_a_list_or_dict_field_are_decoded_for_each_read(
    database: Any, scope: keyspace.Scope
) -> None:
    # A caller may change a list it was given; a shared record would show that to others.
    widgets = Collection(Widget, scope)
    saved = widgets.save(database, Widget(id=uuid.uuid4(), color="red", tags=["a"]))
    one, two = widgets.get(database, saved.id), widgets.get(database, saved.id)
    assert one is not None and one == two and one is not two
    one.tags.append("mine")
    again = widgets.get(database, saved.id)
    assert again is not None and again.tags == ["a"]


@pytest.mark.parametrize("stored_id", [17, ["a"], {"x": 1}, "not-a-uuid"])
def test_a_stored_id_that_is_no_uuid_is_a_corrupt_record(
    database: Any, scope: keyspace.Scope, stored_id: Any
) -> None:
    widgets = Collection(Widget, scope)
    wid = uuid.uuid4()
    key = scope.collection("widgets").records.pack((wid, 0))
    tr = database.create_transaction()
    tr[key] = b"\x01" + json.dumps({"version": 1, "id": stored_id, "color": "red"}).encode()
    tr.commit().wait()
    with pytest.raises(CorruptRecord):
        widgets.get(database, wid)


# --- writes and index entries ---------------------------------------------------------


def test_save_update_delete_rewrite_index_entries(
    database: Any, scope: keyspace.Scope, widgets: Collection[Widget]
) -> None:
    wid = uuid.uuid4()
    by_color, by_sku, by_tag = (
        index_space(scope, n) for n in ("widgets_by_color", "widgets_by_sku", "widgets_by_tag")
    )
    first = widgets.save(database, Widget(id=wid, color="red", size=2, sku="k1", tags=["a", "b"]))
    assert first.version == 1
    assert widgets.get(database, wid) == first
    assert [kv.key for kv in raw(database, by_color.range())] == [by_color.pack(("red", 2, wid))]
    assert [(kv.key, kv.value) for kv in raw(database, by_sku.range())] == [
        (by_sku.pack(("k1",)), fdb.tuple.pack((wid,)))
    ]
    assert [kv.key for kv in raw(database, by_tag.range())] == [
        by_tag.pack(("a", wid)),
        by_tag.pack(("b", wid)),
    ]

    second = widgets.save(database, replace(first, color="blue", sku="k2", tags=["b", "c"]))
    assert second.version == 2 and first.version == 1
    assert [kv.key for kv in raw(database, by_color.range())] == [by_color.pack(("blue", 2, wid))]
    assert [kv.key for kv in raw(database, by_sku.range())] == [by_sku.pack(("k2",))]
    assert [kv.key for kv in raw(database, by_tag.range())] == [
        by_tag.pack(("b", wid)),
        by_tag.pack(("c", wid)),
    ]
    assert widgets.find_unique(database, "widgets_by_sku", ("k2",)) == second
    assert widgets.find_unique(database, "widgets_by_sku", ("k1",)) is None
    assert_consistent(database, scope)

    assert widgets.delete(database, wid) is True
    assert widgets.get(database, wid) is None
    assert raw(database, scope.range()) == []
    assert widgets.delete(database, wid) is False


def test_versions_and_conflicts(database: Any, widgets: Collection[Widget]) -> None:
    wid = uuid.uuid4()
    v1 = widgets.save(database, Widget(id=wid, color="red"), expected_version=0)
    v2 = widgets.save(database, replace(v1, size=1))
    assert (v1.version, v2.version) == (1, 2)
    with pytest.raises(VersionConflict) as info:
        widgets.save(database, replace(v1, size=5), expected_version=1)
    assert (info.value.expected, info.value.actual) == (1, 2)
    with pytest.raises(VersionConflict) as info:
        widgets.save(database, Widget(id=wid, color="x"), expected_version=0)
    assert (info.value.expected, info.value.actual) == (0, 2)
    v3 = widgets.save(database, replace(v2, size=3), expected_version=2)
    assert v3.version == 3
    with pytest.raises(VersionConflict):
        widgets.delete(database, wid, expected_version=2)
    with pytest.raises(VersionConflict) as info:
        widgets.save(database, Widget(id=uuid.uuid4(), color="x"), expected_version=4)
    assert (info.value.expected, info.value.actual) == (4, 0)
    assert widgets.delete(database, wid, expected_version=3) is True
    assert widgets.delete(database, wid, expected_version=3) is False  # a retry finds it gone


def test_a_retried_conditional_save_returns_its_own_write(
    database: Any, widgets: Collection[Widget]
) -> None:
    """What a retry after commit_unknown_result sees: its write already applied."""
    v1 = widgets.save(database, Widget(id=uuid.uuid4(), color="red"))
    v2 = widgets.save(database, replace(v1, color="blue"), expected_version=1)
    again = widgets.save(database, replace(v1, color="blue"), expected_version=1)
    assert again == v2 and again.version == 2
    with pytest.raises(VersionConflict):
        widgets.save(database, replace(v1, color="green"), expected_version=1)
    created = Widget(id=uuid.uuid4(), color="red")
    assert widgets.save(database, created, expected_version=0).version == 1
    assert widgets.save(database, created, expected_version=0).version == 1


def test_conditional_saves_are_exact_under_injected_faults(
    database: Any, widgets: Collection[Widget]
) -> None:
    database.set_fault_injection(0.3, seed=1)
    try:
        records = [
            widgets.save(database, Widget(id=uuid.uuid4(), color="red"), expected_version=0)
            for _ in range(10)
        ]
        assert [r.version for r in records] == [1] * 10
        current = records[0]
        for step in range(40):
            current = widgets.save(
                database, replace(current, size=step + 1), expected_version=current.version
            )
            assert current.version == step + 2
    finally:
        database.set_fault_injection(0.0)
    assert widgets.get(database, current.id) == current


def test_unique_violation(
    database: Any, scope: keyspace.Scope, widgets: Collection[Widget]
) -> None:
    a = widgets.save(database, Widget(id=uuid.uuid4(), color="red", sku="k"))
    b = Widget(id=uuid.uuid4(), color="red", sku="k")
    with pytest.raises(UniqueViolation) as info:
        widgets.save(database, b)
    assert (info.value.index, info.value.values) == ("widgets_by_sku", ("k",))
    assert widgets.get(database, b.id) is None
    a = widgets.save(database, replace(a, sku="m"))
    assert widgets.save(database, b).version == 1
    with pytest.raises(UniqueViolation):
        widgets.save(database, replace(a, sku="k"))
    assert widgets.delete(database, b.id)
    assert widgets.save(database, replace(a, sku="k")).version == 3
    assert_consistent(database, scope)


def test_unique_index_across_scopes_keeps_tenants_apart(database: Any, outer: Subspace) -> None:
    mine, theirs = make_scope(outer, "a"), make_scope(outer, "b")
    my_widgets, their_widgets = Collection(Widget, mine), Collection(Widget, theirs)
    w = my_widgets.save(database, Widget(id=uuid.uuid4(), color="red", serial="S1"))
    with pytest.raises(UniqueViolation):
        their_widgets.save(database, Widget(id=uuid.uuid4(), color="red", serial="S1"))
    assert my_widgets.find_unique(database, "widgets_by_serial", ("S1",)) == w
    assert their_widgets.find_unique(database, "widgets_by_serial", ("S1",)) is None
    assert their_widgets.get(database, w.id) is None
    assert resolve_unique(database, outer["serial"], ("S1",)) == ("a", w.id)
    with pytest.raises(ValueError):
        my_widgets.list_by_index(database, "widgets_by_serial")
    assert my_widgets.delete(database, w.id)
    assert resolve_unique(database, outer["serial"], ("S1",)) is None
    assert their_widgets.save(database, Widget(id=uuid.uuid4(), color="red", serial="S1"))


# --- expiry ---------------------------------------------------------------------------


def test_expired_records_are_absent(
    database: Any, scope: keyspace.Scope, widgets: Collection[Widget]
) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        old = widgets.save(
            database,
            Widget(id=uuid.uuid4(), color="red", sku="k", expires_at=T0 + timedelta(hours=1)),
        )
        keep = widgets.save(database, Widget(id=uuid.uuid4(), color="red"))
        assert widgets.get(database, old.id) == old
        clock.shift(timedelta(hours=1))  # expiry is inclusive: at expires_at it is gone
        assert widgets.get(database, old.id) is None
        assert widgets.get(database, old.id, now=T0) == old
        assert widgets.list_by_key(database).records == [keep]
        assert widgets.list_by_index(database, "widgets_by_color", ("red",)).records == [keep]
        assert widgets.find_unique(database, "widgets_by_sku", ("k",)) is None
        assert widgets.delete(database, old.id, expected_version=7) is False

        again = widgets.save(
            database,
            Widget(id=uuid.uuid4(), color="red", sku="o", expires_at=T0 + timedelta(hours=2)),
        )
        # An expired holder of a unique value gives it up: it is evicted with its entries.
        taker = widgets.save(
            database, Widget(id=uuid.uuid4(), color="blue", sku="o"), now=T0 + timedelta(hours=3)
        )
        assert widgets.get(database, again.id, now=T0) is None
        assert widgets.find_unique(database, "widgets_by_sku", ("o",)) == taker

        # Saving over an expired record continues its version (no ABA for If-Match).
        gone = widgets.save(
            database,
            Widget(id=uuid.uuid4(), color="red", expires_at=T0 + timedelta(hours=1, minutes=1)),
        )
        gone = widgets.save(database, replace(gone, size=1))
        clock.shift(timedelta(minutes=5))
        back = widgets.save(database, Widget(id=gone.id, color="red"), expected_version=0)
        assert back.version == 3
        assert_consistent(database, scope)


def test_purge_expired_sweeps_in_batches(
    database: Any, scope: keyspace.Scope, widgets: Collection[Widget]
) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        for n in range(30):
            expires = T0 + timedelta(minutes=1) if n % 3 == 0 else None
            widgets.save(
                database, Widget(id=uuid.uuid4(), color="red", sku=f"s{n}", expires_at=expires)
            )
        clock.shift(timedelta(minutes=2))
        assert len(list(widgets.scan(database, batch_size=7))) == 20
        assert len(list(widgets.scan(database, batch_size=7, include_expired=True))) == 30
        assert purge_where(widgets, database, expired(widgets), batch_size=4) == 10
        assert purge_where(widgets, database, expired(widgets), batch_size=4) == 0
        assert len(assert_consistent(database, scope)) == 20


# --- large records --------------------------------------------------------------------


def test_large_record_is_split_and_reassembled(
    database: Any, scope: keyspace.Scope, widgets: Collection[Widget]
) -> None:
    records = scope.collection("widgets").records
    blob = base64.b64encode(os.urandom(262_500)).decode()  # 350,000 characters
    big = widgets.save(database, Widget(id=uuid.uuid4(), color="red", blob=blob, tags=["a"]))
    chunks = raw(database, records.range((big.id,)))
    assert [records.unpack(kv.key)[-1] for kv in chunks] == [1, 2, 3, 4]
    assert all(len(kv.value) <= 100_000 for kv in chunks)
    assert widgets.get(database, big.id) == big
    small = widgets.save(database, replace(big, blob="tiny"))
    assert [records.unpack(kv.key)[-1] for kv in raw(database, records.range((big.id,)))] == [0]
    big = widgets.save(database, replace(small, blob=blob))
    assert widgets.get(database, big.id) == big
    assert_consistent(database, scope)
    assert widgets.delete(database, big.id)
    assert raw(database, scope.range()) == []


def test_racing_saves_that_grow_and_shrink_a_record_leave_no_stale_chunks(
    database: Any, scope: keyspace.Scope, widgets: Collection[Widget]
) -> None:
    # Saves racing on one record whose payload grows past a chunk and shrinks back: each read
    # the record's range, so one that another changed since must conflict and retry, never
    # leave chunks of another payload behind.
    records = scope.collection("widgets").records
    wid = uuid.uuid4()
    widgets.save(database, Widget(id=wid, color="red"))
    blobs = ["tiny", "x" * 150_000, "y" * 350_000, ""]
    start = threading.Barrier(4)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        for _ in range(8):
            current = widgets.get(database, wid)
            assert current is not None
            widgets.save(database, replace(current, blob=rng.choice(blobs)))

    errors = in_threads(worker, 4)
    assert errors == []
    final = widgets.get(database, wid)
    assert final is not None and final.version == 33
    numbers = [records.unpack(kv.key)[-1] for kv in raw(database, records.range((wid,)))]
    expected = [0] if len(final.blob) < 100_000 else list(range(1, len(numbers) + 1))
    assert numbers == expected
    assert_consistent(database, scope)


def test_record_too_large(
    database: Any, scope: keyspace.Scope, widgets: Collection[Widget]
) -> None:
    with pytest.raises(RecordTooLarge) as info:
        widgets.save(database, Widget(id=uuid.uuid4(), color="red", blob="x" * MAX_RECORD_SIZE))
    assert info.value.limit == MAX_RECORD_SIZE and info.value.size > MAX_RECORD_SIZE
    small = Collection(Widget, scope, max_record_size=1000)
    with pytest.raises(RecordTooLarge) as info:
        small.save(database, Widget(id=uuid.uuid4(), color="red", blob="x" * 1000))
    assert info.value.limit == 1000
    assert raw(database, scope.range()) == []


def test_listing_is_not_confused_by_chunks(database: Any, widgets: Collection[Widget]) -> None:
    ids = sorted(uuid.uuid4() for _ in range(12))
    tr = database.create_transaction()
    for n, wid in enumerate(ids):
        widgets.save(tr, Widget(id=wid, color="red", blob="y" * (150_000 if n % 4 == 1 else 10)))
    tr.commit().wait()
    for reverse in (False, True):
        for limit in (1, 2, 5):
            got = [r.id for r in pages(widgets.list_by_key, database, limit=limit, reverse=reverse)]
            assert got == (ids[::-1] if reverse else ids)


# --- listing and continuations --------------------------------------------------------


def pages(list_fn: Any, db: Any, *args: Any, limit: int, **kwargs: Any) -> list[Any]:
    found: list[Any] = []
    continuation = None
    while True:
        page = list_fn(db, *args, limit=limit, continuation=continuation, **kwargs)
        assert len(page.records) <= limit
        found.extend(page.records)
        if page.continuation is None:
            return found
        assert page.records
        continuation = page.continuation


@pytest.fixture
def many(database: Any, widgets: Collection[Widget]) -> list[Widget]:
    rng = random.Random(5)
    tr = database.create_transaction()
    saved = [
        widgets.save(
            tr,
            Widget(
                id=uuid.UUID(int=rng.getrandbits(128)),
                color=rng.choice(COLORS),
                size=rng.randint(0, 4),
            ),
        )
        for _ in range(250)
    ]
    tr.commit().wait()
    return saved


def test_paging_by_key(database: Any, widgets: Collection[Widget], many: list[Widget]) -> None:
    by_id = sorted(many, key=lambda w: w.id)
    assert pages(widgets.list_by_key, database, limit=17) == by_id
    assert pages(widgets.list_by_key, database, limit=23, reverse=True) == by_id[::-1]
    assert widgets.list_by_key(database).records == by_id
    exact = widgets.list_by_key(database, limit=250)
    assert exact.records == by_id and exact.continuation is None
    tr = database.create_transaction()  # snapshot reads work too, adding no conflicts
    assert widgets.list_by_key(tr.snapshot, limit=5).records == by_id[:5]
    assert widgets.get(tr.snapshot, by_id[7].id) == by_id[7]


def test_paging_by_index(database: Any, widgets: Collection[Widget], many: list[Widget]) -> None:
    order = sorted(many, key=lambda w: (w.color, w.size, w.id))
    assert pages(widgets.list_by_index, database, "widgets_by_color", limit=19) == order
    got = pages(widgets.list_by_index, database, "widgets_by_color", limit=31, reverse=True)
    assert got == order[::-1]
    red = [w for w in order if w.color == "red"]
    assert pages(widgets.list_by_index, database, "widgets_by_color", ("red",), limit=9) == red
    red2 = [w for w in red if w.size == 2]
    got = pages(
        widgets.list_by_index, database, "widgets_by_color", ("red", 2), limit=4, reverse=True
    )
    assert got == red2[::-1]


def test_bad_continuations_are_refused(
    database: Any,
    outer: Subspace,
    scope: keyspace.Scope,
    widgets: Collection[Widget],
    many: list[Widget],
) -> None:
    by_key = widgets.list_by_key(database, limit=10).continuation
    red = widgets.list_by_index(database, "widgets_by_color", ("red",), limit=10).continuation
    assert by_key and red
    assert len(widgets.list_by_key(database, limit=1000, continuation=by_key).records) == 240

    def refused(fn: Any, *args: Any, **kwargs: Any) -> None:
        with pytest.raises(InvalidContinuation):
            fn(database, *args, **kwargs)

    for garbage in (
        "",
        "!!!!",
        "AAAA",
        "a" * 20,
        "é",
        base64.urlsafe_b64encode(os.urandom(40)).decode(),
        "A" * 20_000,
    ):
        refused(widgets.list_by_key, continuation=garbage)
        refused(widgets.list_by_index, "widgets_by_color", continuation=garbage)
    flipped = red[:12] + ("A" if red[12] != "A" else "B") + red[13:]
    refused(widgets.list_by_index, "widgets_by_color", ("red",), continuation=flipped)
    # Each continuation belongs to one query: another index, prefix, direction or scope fails.
    refused(widgets.list_by_key, continuation=red)
    refused(widgets.list_by_index, "widgets_by_color", continuation=by_key)
    refused(widgets.list_by_index, "widgets_by_color", ("blue",), continuation=red)
    refused(widgets.list_by_index, "widgets_by_color", continuation=red)
    refused(widgets.list_by_index, "widgets_by_tag", ("red",), continuation=red)
    refused(widgets.list_by_index, "widgets_by_color", ("red",), continuation=red, reverse=True)
    refused(widgets.list_by_key, (many[0].id,), continuation=by_key)
    refused(Collection(Widget, make_scope(outer, "b")).list_by_key, continuation=by_key)

    # A forged continuation with the right binding but a boundary outside the range.
    space = index_space(scope, "widgets_by_color")
    start = space.pack(("red",))
    blue = space.pack(("blue",))
    forged = bytes([1]) + paging._binding(start, start + b"\xff", False) + blue[len(space.key()) :]
    token = base64.urlsafe_b64encode(forged).decode().rstrip("=")
    refused(widgets.list_by_index, "widgets_by_color", ("red",), continuation=token)
    # ... or inside the range but between two chunks of one record.
    records = scope.collection("widgets").records
    r = records.range()
    mid = records.pack((many[0].id, 2))[len(records.key()) :] + b"\xff"
    forged = bytes([1]) + paging._binding(r.start, r.stop, False) + mid
    token = base64.urlsafe_b64encode(forged).decode().rstrip("=")
    refused(widgets.list_by_key, continuation=token)


def test_composite_keys_list_by_prefix(database: Any, scope: keyspace.Scope) -> None:
    parts = Collection(Part, scope)
    w1, w2 = sorted([uuid.uuid4(), uuid.uuid4()])

    def part(wid: uuid.UUID, n: int) -> Part:
        made = T0 + timedelta(seconds=(n * 7) % 5)
        return Part(
            widget_id=wid, n=n, weight=1.5, active=False, made_at=made, raw=b"", meta={}, kind="a"
        )

    tr = database.create_transaction()
    for n in (3, 1, 2, 10):
        parts.save(tr, part(w1, n))
        parts.save(tr, part(w2, n))
    tr.commit().wait()
    assert [p.n for p in parts.list_by_key(database, (w1,)).records] == [1, 2, 3, 10]
    assert [p.n for p in pages(parts.list_by_key, database, (w2,), limit=3, reverse=True)] == [
        10,
        3,
        2,
        1,
    ]
    assert [p.n for p in parts.list_by_key(database, (w2, 3)).records] == [3]
    got = parts.get(database, (w2, 10))
    assert got is not None and got.widget_id == w2
    made = [p.made_at for p in parts.list_by_index(database, "parts_by_made").records]
    assert made == sorted(made)
    with pytest.raises(ValueError):
        parts.list_by_key(database, (w1, 1, 2))


# --- maintenance ----------------------------------------------------------------------


def test_verify_indexes_reports_planted_damage(
    database: Any, scope: keyspace.Scope, widgets: Collection[Widget]
) -> None:
    a = widgets.save(database, Widget(id=uuid.uuid4(), color="red", sku="k"))
    b = widgets.save(database, Widget(id=uuid.uuid4(), color="blue"))
    assert check_collection(widgets, database, batch_size=1) == []
    by_color = index_space(scope, "widgets_by_color")
    ghost = uuid.uuid4()
    tr = database.create_transaction()
    tr.clear(by_color.pack(("red", 0, a.id)))
    tr[by_color.pack(("green", 0, ghost))] = b""
    tr[by_color.pack(("green", 0, b.id))] = b""
    tr.commit().wait()
    problems = {(p.kind, p.index, p.key) for p in check_collection(widgets, database, batch_size=2)}
    assert problems == {
        ("missing", "widgets_by_color", (a.id,)),
        ("dangling", "widgets_by_color", (ghost,)),
        ("stale", "widgets_by_color", (b.id,)),
    }


# --- concurrency ----------------------------------------------------------------------


@pytest.mark.parametrize("fault_rate", [0.0, 0.2])
def test_concurrent_updates_keep_indexes_consistent(
    database: Any, scope: keyspace.Scope, widgets: Collection[Widget], fault_rate: float
) -> None:
    ids = [uuid.uuid4() for _ in range(4)]
    for n, wid in enumerate(ids):
        widgets.save(database, Widget(id=wid, color="red", sku=f"s{n}", tags=["a"]))
    start = threading.Barrier(6)

    @fdb_backend.transactional
    def mutate(tr: Any, wid: uuid.UUID, change: dict[str, Any], remove: bool) -> None:
        current = widgets.get(tr, wid)
        if remove:
            widgets.delete(tr, wid)
        elif current is None:
            widgets.save(tr, Widget(id=wid, **change))
        else:
            widgets.save(tr, replace(current, **change))

    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        start.wait()
        for _ in range(30):
            change = {
                "color": rng.choice(COLORS),
                "size": rng.randint(0, 3),
                "tags": rng.sample(TAGS, rng.randint(0, 3)),
                "sku": rng.choice([None, f"s{rng.randint(0, 6)}"]),
            }
            try:
                mutate(database, rng.choice(ids), change, rng.random() < 0.1)
            except UniqueViolation:
                pass
            except BaseException as error:
                errors.append(error)

    database.set_fault_injection(fault_rate, seed=1)
    try:
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        database.set_fault_injection(0.0)
    assert errors == []
    stored = assert_consistent(database, scope)
    skus = [r["sku"] for r in stored.values() if r["sku"] is not None]
    assert len(skus) == len(set(skus))
    assert check_collection(widgets, database) == []


ops = st.lists(
    st.tuples(
        st.sampled_from(["save", "save", "save", "delete"]),
        st.integers(0, 5),
        st.sampled_from(COLORS),
        st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3"])),
        st.lists(st.sampled_from(TAGS), max_size=3, unique=True),
        st.integers(0, 2),
    ),
    max_size=25,
)


@given(script=ops)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_random_saves_and_deletes_keep_indexes_consistent(
    database: Any, outer: Subspace, script: list[Any]
) -> None:
    scope = make_scope(outer["run", uuid.uuid4()])
    widgets = Collection(Widget, scope)
    ids = [uuid.UUID(int=n + 1) for n in range(6)]
    model: dict[uuid.UUID, Widget] = {}
    for op, n, color, sku, tags, size in script:
        wid = ids[n]
        if op == "delete":
            assert widgets.delete(database, wid) is (wid in model)
            model.pop(wid, None)
            continue
        if sku is not None and any(w.sku == sku for k, w in model.items() if k != wid):
            with pytest.raises(UniqueViolation):
                widgets.save(database, Widget(id=wid, color=color, sku=sku, tags=tags, size=size))
            continue
        version = model[wid].version if wid in model else 0
        model[wid] = widgets.save(
            database,
            Widget(id=wid, color=color, sku=sku, tags=tags, size=size),
            expected_version=version,
        )
    assert widgets.list_by_key(database).records == [model[k] for k in sorted(model)]
    assert set(assert_consistent(database, scope)) == set(model)


def test_get_many_reads_like_get(
    database: Any, scope: keyspace.Scope, widgets: Collection[Widget]
) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        big = widgets.save(database, Widget(id=uuid.uuid4(), color="red", blob="x" * 250_000))
        small = widgets.save(database, Widget(id=uuid.uuid4(), color="blue"))
        brief = widgets.save(
            database, Widget(id=uuid.uuid4(), color="red", expires_at=T0 + timedelta(hours=1))
        )
        missing = uuid.uuid4()
        keys = [small.id, missing, big.id, brief.id, small.id]
        assert widgets.get_many(database, keys) == [small, None, big, brief, small]
        assert widgets.get_many(database, []) == []
        clock.shift(timedelta(hours=2))
        assert widgets.get_many(database, keys) == [widgets.get(database, k) for k in keys]
        assert widgets.get_many(database, [brief.id], now=T0) == [brief]


def test_get_together_reads_several_collections_like_get(
    database: Any, scope: keyspace.Scope, widgets: Collection[Widget]
) -> None:
    parts = Collection(Part, scope)
    with time_machine.travel(T0, tick=False) as clock:
        big = widgets.save(database, Widget(id=uuid.uuid4(), color="red", blob="x" * 250_000))
        brief = widgets.save(
            database, Widget(id=uuid.uuid4(), color="red", expires_at=T0 + timedelta(hours=1))
        )
        part = parts.save(
            database,
            Part(
                widget_id=big.id, n=2, weight=1.5, active=True, made_at=T0, raw=b"\x00",
                meta={"k": [1]}, kind="a",
            ),
        )  # fmt: skip
        wanted: list[tuple[Collection[Any], Any]] = [
            (widgets, big.id),
            (parts, (big.id, 2)),
            (widgets, uuid.uuid4()),
            (parts, (big.id, 3)),
            (widgets, brief.id),
            (widgets, big.id),
        ]
        assert get_together(database, wanted) == [big, part, None, None, brief, big]
        assert get_together(database, []) == []
        clock.shift(timedelta(hours=2))
        assert get_together(database, wanted) == [c.get(database, k) for c, k in wanted]
        assert get_together(database, [(widgets, brief.id)], now=T0) == [brief]
        with pytest.raises(ValueError):
            get_together(database, [(parts, big.id)])  # a key of the wrong arity


def test_insert_together_creates_new_records_of_several_collections(
    database: Any, scope: keyspace.Scope, widgets: Collection[Widget]
) -> None:
    parts = Collection(Part, scope)
    widget = Widget(id=uuid.uuid4(), color="red", sku="S-1", tags=["a"], blob="x" * 250_000)
    part = Part(
        widget_id=widget.id, n=1, weight=1.0, active=True, made_at=T0, raw=b"", meta={},
        kind="a",
    )  # fmt: skip
    made = insert_together(database, [(widgets, widget), (parts, part)])
    assert made == [replace(widget, version=1), replace(part, version=1)]
    assert widgets.get(database, widget.id) == made[0]
    assert parts.get(database, (widget.id, 1)) == made[1]
    assert_consistent(database, scope)
    # A retry that finds its own records (commit_unknown_result) gets them back ...
    assert insert_together(database, [(widgets, widget), (parts, part)]) == made
    # ... but a key held by another record is a conflict, and nothing is written.
    with pytest.raises(VersionConflict):
        insert_together(database, [(parts, replace(part, n=2)), (widgets, replace(widget, size=9))])
    assert parts.get(database, (widget.id, 2)) is None
    # Unique index entries are claimed as save claims them.
    with pytest.raises(UniqueViolation):
        insert_together(database, [(widgets, Widget(id=uuid.uuid4(), color="b", sku="S-1"))])
    assert insert_together(database, []) == []


def test_insert_together_conflicts_with_a_racing_insert(
    database: Any, widgets: Collection[Widget]
) -> None:
    wid = uuid.uuid4()
    first = database.create_transaction()
    insert_together(first, [(widgets, Widget(id=wid, color="red"))])
    second = database.create_transaction()
    insert_together(second, [(widgets, Widget(id=wid, color="blue"))])
    first.commit().wait()
    with pytest.raises(fdb_backend.FDBError) as info:
        second.commit().wait()
    assert info.value.code == 1020
    stored = widgets.get(database, wid)
    assert stored is not None and stored.color == "red"


def test_index_keys_lists_each_prefix_in_index_order(
    database: Any, widgets: Collection[Widget]
) -> None:
    made = [
        widgets.save(database, Widget(id=uuid.uuid4(), color=color, size=size))
        for color, size in [("red", 3), ("red", 1), ("blue", 2), ("red", 2)]
    ]
    by_size = {w.size: w.id for w in made if w.color == "red"}
    prefixes = [("red",), ("green",), ("blue",)]
    got = widgets.index_keys(database, "widgets_by_color", prefixes)
    assert got == [[(by_size[1],), (by_size[2],), (by_size[3],)], [], [(made[2].id,)]]
    assert widgets.index_keys(database, "widgets_by_color", prefixes, limit=1)[0] == [(by_size[1],)]
    listed = [
        [(w.id,) for w in widgets.list_by_index(database, "widgets_by_color", p).records]
        for p in prefixes
    ]
    assert got == listed
    with pytest.raises(ValueError):
        widgets.index_keys(database, "widgets_by_sku", [("k",)])


def test_list_by_index_reads_past_dead_entries_in_batches(
    database: Any, scope: keyspace.Scope, widgets: Collection[Widget]
) -> None:
    with time_machine.travel(T0, tick=False) as clock:
        for i in range(7):
            expires = T0 + timedelta(hours=1) if i % 2 else None
            widgets.save(database, Widget(id=uuid.uuid4(), color="red", size=i, expires_at=expires))
        clock.shift(timedelta(hours=2))
        sizes = [
            w.size
            for w in pages(widgets.list_by_index, database, "widgets_by_color", ("red",), limit=2)
        ]
        assert sizes == [0, 2, 4, 6]
