"""Record types: declared fields, primary key, indexes and expiry, and their stored form.

A record type is a frozen dataclass that subclasses ``Record``::

    @dataclass(frozen=True, kw_only=True)
    class WorkspaceSession(Record):
        collection: ClassVar[str] = "workspace_sessions"
        indexes: ClassVar[tuple[Index, ...]] = (
            Index("workspace_sessions_by_user", lambda s: (s.user_id,)),
        )
        expires_field: ClassVar[str | None] = "expires_at"

        id: uuid.UUID
        user_id: uuid.UUID
        name: str
        expires_at: datetime | None = None

Frozen, because a transactional function may run several times: ``save`` returns a new
instance instead of changing the one it was given.

Stored form (format 1): one marker byte ``0x01``, then the fields as a compact UTF-8 JSON
object. UUIDs are canonical strings, datetimes RFC 3339 in UTC with microseconds
(``2026-11-25T10:00:00.000000Z``), bytes base64; lists and dicts are stored as they are
(their contents must be JSON values). Fields missing from a stored object take their
dataclass default, and unknown ones are ignored, so fields can be added without a rewrite.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import types
import typing
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import orjson

from fdb_backend.records.errors import RecordTooLarge

FORMAT_JSON: typing.Final = 0x01
_EPOCH: typing.Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: typing.Final = timedelta(microseconds=1)

K = typing.TypeVar("K")
V = typing.TypeVar("V")
IndexValue = tuple[Any, ...]
# What an index function returns: one tuple (one entry), several tuples, or None (no entry).
IndexValues = IndexValue | Iterable[IndexValue] | None


@dataclass(frozen=True)
class Index:
    """A secondary index: ``values`` maps a record to the tuple(s) it is found under.

    Datetimes in the tuples are stored as epoch microseconds, so they sort by time. With
    ``unique=True`` no two live records may share a tuple (``UniqueViolation``).
    """

    name: str
    values: Callable[[Any], IndexValues]
    unique: bool = False


@dataclass(frozen=True, kw_only=True)
class Record:
    """Base of record types. ``version`` is 0 until saved, then 1, 2, ... (one per save)."""

    collection: ClassVar[str]
    key_fields: ClassVar[tuple[str, ...]] = ("id",)
    indexes: ClassVar[tuple[Index, ...]] = ()
    expires_field: ClassVar[str | None] = None

    version: int = 0


def utcnow() -> datetime:
    """The records layer's clock (``time_machine`` moves it; pass ``now=`` to override)."""
    return datetime.now(UTC)


def epoch_micros(value: datetime) -> int:
    """Microseconds since the Unix epoch: how datetimes sort inside keys."""
    if value.tzinfo is None:
        raise TypeError("datetime must be timezone-aware")
    return (value - _EPOCH) // _MICROSECOND


def _format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _base64_text(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _parse_datetime(text: str) -> datetime:
    return datetime.fromisoformat(text)


# Ids decoded before: the same ones come back read after read (a tenant's sessions, their
# owner), and uuid.UUID's parsing in Python was a tenth of a session list's CPU. UUIDs are
# immutable, so one object serves every reader. Bounded by emptying it when full.
_UUIDS: dict[str, uuid.UUID] = {}
_UUIDS_MAX = 65_536


def _kept(cache: dict[K, V], key: K, make: Callable[[K], V], most: int) -> V:
    """``make(key)``, kept in ``cache`` for the next caller (emptied when it holds ``most``)."""
    found = cache.get(key)
    if found is None:
        found = make(key)
        if len(cache) >= most:
            cache.clear()
        cache[key] = found
    return found


def _decode_uuid(text: str) -> uuid.UUID:
    if type(text) is not str:
        raise TypeError("record uuid field is not a string", type(text).__name__)
    return _kept(_UUIDS, text, uuid.UUID, _UUIDS_MAX)


# --- field codecs ---------------------------------------------------------------------

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


def _checked(
    kind: type | tuple[type, ...], name: str, convert: Callable[[Any], Any] | None = None
) -> Encoder:
    """An encoder that refuses a value not of ``kind``, then stores it ``convert``ed."""

    def enc(value: Any) -> Any:
        # bool is an int in Python but never a valid int field here.
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise TypeError("record field has the wrong type", name, type(value).__name__)
        return value if convert is None else convert(value)

    return enc


def _codec(annotation: Any, name: str) -> tuple[Encoder, Decoder]:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        inner = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
        enc, dec = _codec(inner, name)
        return (
            lambda v: None if v is None else enc(v),
            _identity if dec is _identity else (lambda v: None if v is None else dec(v)),
        )
    if annotation is uuid.UUID:
        return _checked(uuid.UUID, name, str), _decode_uuid
    if annotation is datetime:

        def aware(v: datetime) -> str:
            if v.tzinfo is None:
                raise TypeError("record datetime field must be timezone-aware", name)
            return _format_datetime(v)

        return _checked(datetime, name, aware), _parse_datetime
    if annotation is bytes:
        return _checked(bytes, name, _base64_text), base64.b64decode
    if annotation is float:

        def finite(v: float) -> float:
            # orjson writes NaN and infinities as null, which would not read back.
            if not math.isfinite(v):
                raise ValueError("record float field is not finite", name)
            return float(v)

        return _checked((int, float), name, finite), float
    if annotation in (str, int, bool) or origin in (list, dict) or annotation in (list, dict):
        return _checked(origin or annotation, name), _identity
    if origin is Literal:
        allowed = frozenset(args)

        def enc_literal(v: Any) -> Any:
            if v not in allowed:
                raise TypeError("record field value is not one of its literals", name, v)
            return v

        return enc_literal, _identity
    if annotation is Any:
        return _identity, _identity
    raise TypeError("record field type is not supported", name, repr(annotation))


def _identity(value: Any) -> Any:
    return value


# --- schema ---------------------------------------------------------------------------

_KEY_TYPES: typing.Final = (uuid.UUID, str, int, bytes)
# Decoded records kept per record type (emptied when full): a few MB at most.
_DECODED_MAX = 4_096
_IMMUTABLE: typing.Final = frozenset({uuid.UUID, datetime, bytes, float, str, int, bool})


def _immutable(annotation: Any) -> bool:
    """Whether every value of a field type is immutable (a record of them can be shared)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return all(_immutable(a) for a in typing.get_args(annotation))
    return annotation in _IMMUTABLE or annotation is type(None) or origin is Literal


@dataclass(frozen=True)
class Schema:
    """What the records layer needs to know about one record type, checked once."""

    record_type: type[Record]
    collection: str
    key_fields: tuple[str, ...]
    indexes: tuple[Index, ...]
    expires_field: str | None
    encoders: dict[str, Encoder]
    decoders: dict[str, Decoder]
    required: frozenset[str]
    # The fields whose stored JSON needs converting (ids, times, bytes, floats), and whether
    # a record can be filled the way unpickling fills one (see decode).
    converters: tuple[tuple[str, Decoder], ...] = ()
    fill_directly: bool = False
    # Records of a type whose fields are all immutable values, by the bytes they were
    # decoded from (see decode); None for types with a list, a dict or Any among them.
    decoded: dict[bytes, Record] | None = None

    def key_of(self, record: Record) -> tuple[Any, ...]:
        return tuple(getattr(record, name) for name in self.key_fields)

    def is_expired(self, record: Record, now: datetime) -> bool:
        if self.expires_field is None:
            return False
        expires: datetime | None = getattr(record, self.expires_field)
        return expires is not None and expires <= now

    def fields_json(self, record: Record) -> dict[str, Any]:
        return {name: enc(getattr(record, name)) for name, enc in self.encoders.items()}

    def encode(self, record: Record, max_size: int) -> bytes:
        # orjson: compact UTF-8 JSON like json.dumps(separators=(",", ":"), ensure_ascii=False),
        # several times faster both ways. It refuses integers beyond 64 bits (which it would
        # read back as floats): free JSON is checked for them before it gets here.
        payload = bytes([FORMAT_JSON]) + orjson.dumps(self.fields_json(record))
        if len(payload) > max_size:
            raise RecordTooLarge(len(payload), max_size)
        return payload

    def decode(self, payload: bytes) -> Record:
        """Raises ValueError for bytes that are not a record of this type.

        The same bytes decode to equal records, and a frozen record of immutable fields can
        serve every reader: the auth session and tenant of a caller, and the heads of a
        session list, are read again by every request, and decoding them (ids, times) is
        CPU that identical bytes need not cost again. The bytes are still read each time,
        so a change is seen by the very next read.
        """
        if self.decoded is None:
            return self._decode(payload)
        return _kept(self.decoded, payload, self._decode, _DECODED_MAX)

    def _decode(self, payload: bytes) -> Record:
        if not payload or payload[0] != FORMAT_JSON:
            raise ValueError("unknown record format")
        data = orjson.loads(memoryview(payload)[1:])
        if not isinstance(data, dict):
            raise ValueError("record is not a JSON object")
        if self.fill_directly and data.keys() == self.decoders.keys():
            # Every field stored and nothing else (records written by this version): convert
            # in place and fill the instance as unpickling does, without the dataclass's
            # generated __init__ and a second dict. A third of decoding a session's records.
            for name, dec in self.converters:
                data[name] = dec(data[name])
            record = object.__new__(self.record_type)
            record.__dict__.update(data)
            return record
        missing = self.required - data.keys()
        if missing:
            raise ValueError("record lacks required fields", sorted(missing))
        kwargs = {name: dec(data[name]) for name, dec in self.decoders.items() if name in data}
        return self.record_type(**kwargs)

    def index_entries(self, index: Index, record: Record) -> set[IndexValue]:
        produced = index.values(record)
        if produced is None:
            return set()
        tuples = [produced] if isinstance(produced, tuple) else list(produced)
        entries = set()
        for values in tuples:
            if not isinstance(values, tuple) or not values:
                raise TypeError("index function must return non-empty tuples", index.name)
            entries.add(index_tuple(values))
        return entries


def index_tuple(values: tuple[Any, ...]) -> IndexValue:
    """Index values as stored in keys: datetimes become epoch microseconds."""
    return tuple(epoch_micros(v) if isinstance(v, datetime) else v for v in values)


_schemas: dict[type[Record], Schema] = {}


def schema_of(record_type: type[Record]) -> Schema:
    """The checked schema of ``record_type``; raises TypeError for a malformed declaration."""
    found = _schemas.get(record_type)
    if found is not None:
        return found
    if "__dataclass_fields__" not in vars(record_type) or not issubclass(record_type, Record):
        raise TypeError("record type must be a dataclass subclass of Record", record_type)
    collection = getattr(record_type, "collection", None)
    if not isinstance(collection, str) or not collection:
        raise TypeError("record type must declare its collection", record_type.__name__)
    hints = typing.get_type_hints(record_type)
    fields = {f.name: f for f in dataclasses.fields(record_type)}
    encoders: dict[str, Encoder] = {}
    decoders: dict[str, Decoder] = {}
    for name in fields:
        encoders[name], decoders[name] = _codec(hints[name], name)
    required = frozenset(
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    key_fields = tuple(record_type.key_fields)
    for name in key_fields:
        if name not in fields:
            raise TypeError("record key field is not a field", record_type.__name__, name)
        if hints[name] not in _KEY_TYPES:
            raise TypeError("record key field must be UUID, str, int or bytes", name)
    if not key_fields:
        raise TypeError("record type needs at least one key field", record_type.__name__)
    expires = record_type.expires_field
    if expires is not None and hints.get(expires) not in (datetime, datetime | None):
        raise TypeError("record expiry field must be a datetime field", expires)
    names = [index.name for index in record_type.indexes]
    if len(set(names)) != len(names):
        raise TypeError("record type declares an index twice", record_type.__name__)
    found = Schema(
        record_type=record_type,
        collection=collection,
        key_fields=key_fields,
        indexes=tuple(record_type.indexes),
        expires_field=expires,
        encoders=encoders,
        decoders=decoders,
        required=required,
        converters=tuple((name, dec) for name, dec in decoders.items() if dec is not _identity),
        decoded={} if all(_immutable(hints[name]) for name in fields) else None,
        # Not for types whose instances have no __dict__ or do more than store their fields.
        fill_directly=not hasattr(record_type, "__slots__")
        and not hasattr(record_type, "__post_init__")
        and all(f.init for f in fields.values()),
    )
    _schemas[record_type] = found
    return found
