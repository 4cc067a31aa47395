"""What every online store is: the table description, the protocol, and entity keys.

An online store keeps the newest feature row of each entity key, per *online table* (one
per feature view version), and answers point reads on the serving hot path::

    store = open_online_store("sqlite:///.mlwright/online.db")
    table = OnlineTable("user_stats__v1", (("clicks", "float64"), ("country", "string")))
    store.write(table, batch)          # columns __key, __event_ts, __created_ts, clicks, country
    read = store.reader(table)         # built once, called per request
    read([encode_key([42], ["int64"])])   # -> [(event_ts_us, clicks, country)] or [None]

Backends live in their own modules (``sqlite``, ``redis``); this one holds what they share:
the batch layout check, so that every backend refuses the same wrong batches with the same
message.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa
import pyarrow.compute as pc

from mlwright.errors import FeatureError

DTYPES = ("int64", "float64", "float32", "string", "bool", "timestamp")
KEY_DTYPES = ("int64", "string")
KEY_SEPARATOR = "\x1f"  # ASCII unit separator: never typed by people, so never in a real key

# The batch columns before the features; also the names of the key and time columns in
# stores with a schema (features cannot be called so: they are reserved in definitions too).
KEY_COLUMN = "__key"
EVENT_TS_COLUMN = "__event_ts"
CREATED_TS_COLUMN = "__created_ts"
RESERVED_COLUMNS = (KEY_COLUMN, EVENT_TS_COLUMN, CREATED_TS_COLUMN)

# Table names end up in SQL identifiers and in Redis key patterns: no ':' (the Redis key
# separator) and no glob characters, so dropping "a" can never match the keys of "a:b".
_TABLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

Row = tuple[Any, ...]
"""One stored row as a reader returns it: ``(event_ts_us, f1, ..., fn)``."""

Reader = Callable[[Sequence[str]], list[Row | None]]
"""A function from entity keys to their rows, ``None`` for a key that has none."""


@dataclass(frozen=True)
class OnlineTable:
    """The online table of one feature view version: its name and its typed features.

    Timestamp features travel as int64 microseconds since the epoch, UTC.

    >>> table = OnlineTable("user_stats__v1", (("clicks", "float64"), ("country", "string")))
    >>> table.feature_names
    ('clicks', 'country')
    """

    name: str
    features: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _TABLE_NAME.fullmatch(self.name):
            raise FeatureError(f"Online table name {self.name!r} is not allowed: use letters, digits, "
                               "'_', '.', '-' (at most 200).")
        # Accept any sequence of pairs (the design writes lists) but keep a hashable tuple.
        features = tuple((str(name), str(dtype)) for name, dtype in self.features)
        object.__setattr__(self, "features", features)
        seen: set[str] = set()
        for name, dtype in features:
            if not name or name in RESERVED_COLUMNS:
                raise FeatureError(f"Feature name {name!r} of online table '{self.name}' is not "
                                   "allowed: it must be non-empty and not one of "
                                   f"{', '.join(RESERVED_COLUMNS)}.")
            if name in seen:
                raise FeatureError(f"Online table '{self.name}' declares feature '{name}' twice.")
            seen.add(name)
            if dtype not in DTYPES:
                raise FeatureError(f"Feature '{name}' of online table '{self.name}' has type "
                                   f"'{dtype}'; expected one of {', '.join(DTYPES)}.")

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.features)

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(dtype for _, dtype in self.features)


@runtime_checkable
class OnlineStore(Protocol):
    """The newest feature row per entity key, per online table.

    * ``write`` takes a batch with columns ``__key`` (string), ``__event_ts`` (int64 µs UTC),
      ``__created_ts`` (int64 µs, nullable) and the features in the table's order. A row
      replaces the stored row of its key only when ``(event_ts, created_ts or -1)`` is at
      least the stored pair (*newer wins*), so writes in any order converge. It returns how
      many rows were stored (rows older than the stored one are not). The table is created
      on first write.
    * ``reader`` returns a function, built once, from entity keys to ``(event_ts_us, f1, ...,
      fn)`` or ``None`` per key; a table never written gives ``None`` for every key.

    >>> store = open_online_store("sqlite:///online.db")       # doctest: +SKIP
    >>> store.reader(table)(["42"])                              # doctest: +SKIP
    [(1700000000000000, 3.0, 'fr')]
    """

    def write(self, table: OnlineTable, batch: pa.RecordBatch) -> int: ...

    def reader(self, table: OnlineTable) -> Reader: ...

    def drop(self, table: OnlineTable) -> None: ...

    def close(self) -> None: ...


def _wrong_key(value: object, dtype: str, detail: str) -> FeatureError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return FeatureError(f"Entity key value {shown} must be {dtype}{detail}; got {type(value).__name__}.")


def encode_key(values: Sequence[object], types: Sequence[str]) -> str:
    """Render the join-key values of one entity as its online key.

    Ints in decimal, strings as they are, joined by ``\\x1f``. A value of the wrong type is
    refused rather than coerced: ``"42"`` and ``42`` are different keys in the offline store.

    >>> encode_key([42, "fr"], ["int64", "string"])
    '42\\x1ffr'
    """
    if len(values) != len(types):
        raise FeatureError(f"An entity key needs {len(types)} value(s) ({', '.join(types)}); "
                           f"got {len(values)}: {list(values)!r}.")
    parts: list[str] = []
    for value, dtype in zip(values, types, strict=True):
        if dtype == "int64":
            # `type(...) is int` first: the common case, and cheaper than the ABC check.
            # Integral also admits numpy integers; bool is an int to Python, not to us.
            if type(value) is not int and (isinstance(value, bool)
                                           or not isinstance(value, numbers.Integral)):
                raise _wrong_key(value, "int64", " (an int)")
            number = int(value)
            if not _INT64_MIN <= number <= _INT64_MAX:
                raise FeatureError(f"Entity key value {number} must be int64; it is out of range.")
            parts.append(str(number))
        elif dtype == "string":
            if not isinstance(value, str):
                raise _wrong_key(value, "string", " (a str)")
            if KEY_SEPARATOR in value:
                raise FeatureError(f"Entity key value {value!r} must be a string without "
                                   "'\\x1f' (the key separator); got one containing it.")
            parts.append(value)
        else:
            raise FeatureError(f"Join key type '{dtype}' is not supported; expected one of "
                               f"{', '.join(KEY_DTYPES)}.")
    return parts[0] if len(parts) == 1 else KEY_SEPARATOR.join(parts)


def encode_keys(columns: Sequence[Any], types: Sequence[str]) -> Any:
    """:func:`encode_key` for whole columns: one string array of keys, vectorised.

    ``columns`` are Arrow arrays (or chunked arrays) of the join keys, in order; nulls are
    refused, as a key with a missing part names no entity.

    >>> encode_keys([pa.array([1, 2]), pa.array(["a", "b"])], ["int64", "string"]).to_pylist()
    ['1\\x1fa', '2\\x1fb']
    """
    if len(columns) != len(types) or not columns:
        raise FeatureError(f"Entity keys need {len(types)} column(s) ({', '.join(types)}); "
                           f"got {len(columns)}.")
    parts = []
    for position, (column, dtype) in enumerate(zip(columns, types, strict=True), start=1):
        what = f"Join key column {position} of {len(columns)}"
        if column.null_count:
            raise FeatureError(f"{what} must have no nulls; got {column.null_count}. "
                               "Drop the rows without a key first.")
        if dtype == "int64":
            if not pa.types.is_integer(column.type):
                raise FeatureError(f"{what} must be int64; got {column.type}.")
            parts.append(pc.cast(column, pa.string()))
        elif dtype == "string":
            if not _is_text(column.type):
                raise FeatureError(f"{what} must be string; got {column.type}.")
            column = pc.cast(column, pa.string())
            if pc.any(pc.match_substring(column, KEY_SEPARATOR)).as_py():
                raise FeatureError(f"{what} must hold strings without '\\x1f' (the key "
                                   "separator); got values containing it.")
            parts.append(column)
        else:
            raise FeatureError(f"Join key type '{dtype}' is not supported; expected one of "
                               f"{', '.join(KEY_DTYPES)}.")
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, KEY_SEPARATOR)


def _is_text(kind: Any) -> bool:
    # DuckDB and Polars may hand over large or view strings; all read back as str.
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind)
                or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(kind)))


def batch_columns(table: OnlineTable, batch: Any) -> list[Any]:
    """The batch's columns in store order, checked against ``table`` and normalised.

    Timestamps become int64 µs; float32 features are rounded to float32 whatever arrives,
    so that online values equal the offline ones bit for bit. The layout is checked once
    per batch (types, not values), so a wrong batch fails before anything is written.
    """
    expected = [*RESERVED_COLUMNS, *table.feature_names]
    if list(batch.schema.names) != expected:
        raise FeatureError(f"A batch for online table '{table.name}' must have the columns "
                           f"{expected}; got {list(batch.schema.names)}.")
    columns = [_key_column(table, batch.column(0))]
    for name, position in ((EVENT_TS_COLUMN, 1), (CREATED_TS_COLUMN, 2)):
        column = _normalise(table, name, "timestamp", batch.column(position))
        if name == EVENT_TS_COLUMN and column.null_count:
            raise FeatureError(f"Column '{name}' of the batch for online table '{table.name}' must "
                               f"have no nulls; got {column.null_count}.")
        columns.append(column)
    for position, (name, dtype) in enumerate(table.features, start=3):
        columns.append(_normalise(table, name, dtype, batch.column(position)))
    return columns


def _key_column(table: OnlineTable, column: Any) -> Any:
    if not _is_text(column.type):
        raise FeatureError(f"Column '{KEY_COLUMN}' of the batch for online table '{table.name}' "
                           f"must be string (see encode_keys); got {column.type}.")
    if column.null_count:
        raise FeatureError(f"Column '{KEY_COLUMN}' of the batch for online table '{table.name}' "
                           f"must have no nulls; got {column.null_count}.")
    return column


def _normalise(table: OnlineTable, name: str, dtype: str, column: Any) -> Any:
    kind = column.type
    if dtype == "timestamp" and pa.types.is_timestamp(kind):
        # Same instant whatever the zone: timestamps are UTC instants; int64 µs is the contract.
        return pc.cast(pc.cast(column, pa.timestamp("us", tz=kind.tz)), pa.int64())
    ok = {
        "int64": pa.types.is_integer(kind),
        "timestamp": pa.types.is_integer(kind),
        "float64": pa.types.is_floating(kind) or pa.types.is_integer(kind),
        "float32": pa.types.is_floating(kind) or pa.types.is_integer(kind),
        "string": _is_text(kind),
        "bool": pa.types.is_boolean(kind),
    }[dtype]
    if not ok:
        raise FeatureError(f"Column '{name}' of the batch for online table '{table.name}' must be "
                           f"{dtype}; got {kind}.")
    if dtype == "float32" and kind != pa.float32():
        return pc.cast(column, pa.float32(), safe=False)
    if dtype == "float64" and kind != pa.float64():
        return pc.cast(column, pa.float64(), safe=False)
    if dtype in ("int64", "timestamp") and kind != pa.int64():
        return pc.cast(column, pa.int64())
    return column


def open_online_store(url: str, *, prefix: str = "mlwright") -> OnlineStore:
    """Open the online store a URL names.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` (embedded, the default),
    or ``redis://host:port/db`` (``rediss://`` for TLS; ``prefix`` starts every key).

    >>> store = open_online_store("sqlite:///.mlwright/online.db")   # doctest: +SKIP
    """
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        from mlwright.features.online.sqlite import SqliteOnlineStore

        return SqliteOnlineStore(url[len("sqlite:///"):])
    if url.startswith(("redis://", "rediss://")):
        from mlwright.features.online.redis import RedisOnlineStore

        return RedisOnlineStore(url, prefix=prefix)
    raise FeatureError(f"Online store URL {url!r} is not supported; use sqlite:///RELATIVE/PATH, "
                       "sqlite:////ABSOLUTE/PATH or redis://HOST:PORT/DB.")
