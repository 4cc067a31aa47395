"""The online stores: one conformance suite that SQLite and Redis both pass, then what is
particular to each (opening, errors).

The Redis store runs against the server at 127.0.0.1:6379 db 0 (MLWRIGHT_TEST_REDIS names
another), under a prefix of its own per test, deleted at teardown. Without a server its
tests are skipped, or fail where CI is set (CI machines have the server).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from mlwright.errors import FeatureError, OnlineStoreError
from mlwright.features.online import (
    OnlineStore,
    OnlineTable,
    RedisOnlineStore,
    SqliteOnlineStore,
    encode_key,
    encode_keys,
    open_online_store,
)

REDIS = os.environ.get("MLWRIGHT_TEST_REDIS", "redis://127.0.0.1:6379/0")
ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "float32": pa.float32(),
               "string": pa.string(), "bool": pa.bool_(), "timestamp": pa.int64()}
EVERY = OnlineTable("every__v1", (("i", "int64"), ("f", "float64"), ("g", "float32"),
                                  ("s", "string"), ("b", "bool"), ("t", "timestamp")))
ONE = OnlineTable("one__v1", (("x", "float64"),))


def batch(table: OnlineTable, rows: Sequence[tuple[Any, ...]]) -> pa.RecordBatch:
    """A write batch from rows ``(key, event_ts, created_ts, f1, ..., fn)``."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * (3 + len(table.features))
    types = [pa.string(), pa.int64(), pa.int64(), *(ARROW_TYPES[d] for d in table.dtypes)]
    names = ["__key", "__event_ts", "__created_ts", *table.feature_names]
    return pa.RecordBatch.from_arrays(
        [pa.array(list(values), type=kind) for values, kind in zip(columns, types, strict=True)],
        names=names)


def value(store: OnlineStore, table: OnlineTable, key: str) -> Any:
    """The first feature stored for ``key`` (None when there is no row)."""
    row = store.reader(table)([key])[0]
    return None if row is None else row[1]


def _redis_store() -> Iterator[OnlineStore]:
    prefix = f"mlwright-test-{uuid.uuid4().hex}"
    try:
        store = RedisOnlineStore(REDIS, prefix=prefix)
    except OnlineStoreError as exc:
        reason = f"Redis is not usable at {REDIS}: {exc}"
        if os.environ.get("CI"):  # CI machines have the server: its absence is a failure there
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield store
    finally:
        store.close()
        import redis

        with redis.Redis.from_url(REDIS) as client:
            doomed = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(doomed), 1000):
                client.unlink(*doomed[start:start + 1000])


@pytest.fixture(params=["sqlite", "redis"])
def online_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    """An empty online store of each kind, closed (and emptied) after the test."""
    if request.param == "sqlite":
        with SqliteOnlineStore(tmp_path / "online.db") as store:
            yield store
    else:
        yield from _redis_store()


# -- the conformance suite ------------------------------------------------------------------


def test_every_dtype_round_trips_with_nulls(online_store: OnlineStore) -> None:
    written = online_store.write(EVERY, batch(EVERY, [
        ("a", 10, 1, -(2**62), 1.5, 0.1, "ünïcode ✓", True, 1_700_000_000_123_456),
        ("b", -5, None, 0, -0.0, 2.5, "", False, -1),
        ("c", 20, None, None, None, None, None, None, None),
    ]))
    assert written == 3
    rows = online_store.reader(EVERY)(["a", "b", "c"])
    assert rows == [
        (10, -(2**62), 1.5, float(np.float32(0.1)), "ünïcode ✓", True, 1_700_000_000_123_456),
        (-5, 0, -0.0, 2.5, "", False, -1),
        (20, None, None, None, None, None, None),
    ]
    a = rows[0]
    assert a is not None
    assert [type(v) for v in a] == [int, int, float, float, str, bool, int]


def test_non_finite_floats_read_back_as_none(online_store: OnlineStore) -> None:
    online_store.write(ONE, batch(ONE, [("nan", 1, None, math.nan), ("one", 1, None, 1.0)]))
    assert online_store.reader(ONE)(["nan", "one"]) == [(1, None), (1, 1.0)]


def test_arrow_timestamps_are_stored_as_int_microseconds(online_store: OnlineStore) -> None:
    table = OnlineTable("times__v1", (("t", "timestamp"),))
    stamp = pa.array([1_700_000_000_000], type=pa.timestamp("ms", tz="UTC"))
    online_store.write(table, pa.RecordBatch.from_arrays(
        [pa.array(["k"]), stamp, pa.array([None], pa.int64()), stamp], names=["__key", "__event_ts",
                                                                          "__created_ts", "t"]))
    assert online_store.reader(table)(["k"]) == [(1_700_000_000_000_000, 1_700_000_000_000_000)]


def test_newer_wins_in_either_order(online_store: OnlineStore) -> None:
    assert online_store.write(ONE, batch(ONE, [("k1", 100, None, 1.0)])) == 1
    assert online_store.write(ONE, batch(ONE, [("k1", 200, None, 2.0)])) == 1
    assert online_store.write(ONE, batch(ONE, [("k2", 200, None, 2.0)])) == 1
    assert online_store.write(ONE, batch(ONE, [("k2", 100, None, 1.0)])) == 0  # older: ignored
    assert online_store.reader(ONE)(["k1", "k2"]) == [(200, 2.0), (200, 2.0)]


def test_newer_wins_inside_one_batch(online_store: OnlineStore) -> None:
    stored = online_store.write(ONE, batch(ONE, [("k", 200, None, 2.0), ("k", 100, None, 1.0),
                                                 ("k", 300, None, 3.0), ("k", 250, None, 2.5)]))
    assert stored == 2
    assert online_store.reader(ONE)(["k"]) == [(300, 3.0)]


@pytest.mark.parametrize(("first", "second", "kept"), [
    ((5, 1.0), (3, 2.0), 1.0),        # an older created ts does not overwrite
    ((3, 1.0), (5, 2.0), 2.0),        # a newer one does
    ((None, 1.0), (0, 2.0), 2.0),     # no created ts counts as -1
    ((0, 1.0), (None, 2.0), 1.0),
])
def test_equal_event_ts_is_decided_by_created_ts(online_store: OnlineStore, first: tuple[Any, float],
                                                 second: tuple[Any, float], kept: float) -> None:
    online_store.write(ONE, batch(ONE, [("k", 100, *first)]))
    online_store.write(ONE, batch(ONE, [("k", 100, *second)]))
    assert value(online_store, ONE, "k") == kept


@pytest.mark.parametrize("created", [None, 7])
def test_equal_timestamps_last_write_wins(online_store: OnlineStore, created: int | None) -> None:
    online_store.write(ONE, batch(ONE, [("k", 100, created, 1.0)]))
    assert online_store.write(ONE, batch(ONE, [("k", 100, created, 2.0)])) == 1
    assert value(online_store, ONE, "k") == 2.0


def test_rewriting_is_idempotent(online_store: OnlineStore) -> None:
    rows = batch(ONE, [(f"k{i}", 100 + i, i, float(i)) for i in range(50)])
    online_store.write(ONE, rows)
    keys = [f"k{i}" for i in range(50)]
    before = online_store.reader(ONE)(keys)
    online_store.write(ONE, rows)
    assert online_store.reader(ONE)(keys) == before
    assert before[49] == (149, 49.0)


def test_reader_keeps_request_order_with_missing_and_repeated_keys(online_store: OnlineStore) -> None:
    online_store.write(ONE, batch(ONE, [("a", 1, None, 1.0), ("b", 2, None, 2.0)]))
    read = online_store.reader(ONE)
    assert read(["b", "zz", "a", "b", "b"]) == [(2, 2.0), None, (1, 1.0), (2, 2.0), (2, 2.0)]
    assert read(["zz"]) == [None]
    assert read(["a", "a"]) == [(1, 1.0), (1, 1.0)]
    assert read(()) == []


def test_a_table_never_written_reads_as_empty(online_store: OnlineStore) -> None:
    read = online_store.reader(OnlineTable("never__v1", (("x", "float64"),)))
    assert read(["a"]) == [None]
    assert read(["a", "b", "a"]) == [None, None, None]
    assert read([]) == []


def test_a_reader_built_before_the_first_write_sees_it(online_store: OnlineStore) -> None:
    read = online_store.reader(ONE)
    assert read(["a"]) == [None]
    online_store.write(ONE, batch(ONE, [("a", 1, None, 1.0)]))
    assert read(["a"]) == [(1, 1.0)]
    assert read(["a", "b"]) == [(1, 1.0), None]


def test_composite_keys(online_store: OnlineStore) -> None:
    types = ["int64", "string"]
    users, countries = pa.array([1, 2, 2], pa.int64()), pa.array(["fr", "fr", "de"])
    keys = encode_keys([users, countries], types)
    assert keys.to_pylist() == [encode_key([1, "fr"], types), encode_key([2, "fr"], types),
                                encode_key([2, "de"], types)]
    online_store.write(ONE, pa.RecordBatch.from_arrays(
        [keys, pa.array([1, 1, 1]), pa.array([None, None, None], pa.int64()),
         pa.array([1.0, 2.0, 3.0])], names=["__key", "__event_ts", "__created_ts", "x"]))
    read = online_store.reader(ONE)
    assert read([encode_key([2, "de"], types), encode_key([1, "de"], types)]) == [(1, 3.0), None]
    assert read([encode_key([np.int64(2), "fr"], types)]) == [(1, 2.0)]


def test_tables_are_separate(online_store: OnlineStore) -> None:
    other = OnlineTable("one__v2", (("x", "float64"),))
    online_store.write(ONE, batch(ONE, [("k", 1, None, 1.0)]))
    online_store.write(other, batch(other, [("k", 1, None, 2.0)]))
    assert value(online_store, ONE, "k") == 1.0
    assert value(online_store, other, "k") == 2.0


def test_drop_deletes_the_table_and_only_it(online_store: OnlineStore) -> None:
    other = OnlineTable("one__v2", (("x", "float64"),))
    online_store.write(ONE, batch(ONE, [(f"k{i}", 1, None, 1.0) for i in range(2500)]))
    online_store.write(other, batch(other, [("k0", 1, None, 2.0)]))
    read = online_store.reader(ONE)
    online_store.drop(ONE)
    assert read(["k0", "k2499"]) == [None, None]
    assert value(online_store, other, "k0") == 2.0
    online_store.drop(ONE)  # dropping again, or a table never written, does nothing
    online_store.drop(OnlineTable("never__v1", (("x", "float64"),)))
    online_store.write(ONE, batch(ONE, [("k0", 0, None, 5.0)]))  # and the table comes back
    assert read(["k0"]) == [(0, 5.0)]


def test_a_batch_of_ten_thousand_rows(online_store: OnlineStore) -> None:
    count = 10_000
    keys = [encode_key([i], ["int64"]) for i in range(count)]
    rows = pa.RecordBatch.from_arrays(
        [pa.array(keys), pa.array(np.arange(count, dtype=np.int64)), pa.nulls(count, pa.int64()),
         pa.array(np.arange(count, dtype=np.float64) / 2)],
        names=["__key", "__event_ts", "__created_ts", "x"])
    assert online_store.write(ONE, rows) == count
    read = online_store.reader(ONE)
    everything = read(keys)
    assert len(everything) == count
    assert everything[0] == (0, 0.0)
    assert everything[-1] == (count - 1, (count - 1) / 2)
    assert read([keys[i] for i in range(0, count, 97)]) == [(i, i / 2) for i in range(0, count, 97)]
    assert online_store.write(ONE, rows) == count  # equal pairs: stored again, same values


def test_an_empty_batch_writes_nothing(online_store: OnlineStore) -> None:
    assert online_store.write(ONE, batch(ONE, [])) == 0
    assert online_store.reader(ONE)(["k"]) == [None]


@pytest.mark.parametrize(("columns", "message"), [
    ({"__key": pa.array(["k"]), "__event_ts": pa.array([1]), "x": pa.array([1.0])}, "must have the columns"),
    ({"__key": pa.array([1]), "__event_ts": pa.array([1]), "__created_ts": pa.array([1]),
      "x": pa.array([1.0])}, "'__key' .* must be string"),
    ({"__key": pa.array(["k"]), "__event_ts": pa.array([None], pa.int64()), "__created_ts": pa.array([1]),
      "x": pa.array([1.0])}, "'__event_ts' .* no nulls"),
    ({"__key": pa.array(["k"]), "__event_ts": pa.array([1]), "__created_ts": pa.array([1]),
      "x": pa.array(["1.0"])}, "Column 'x' .* must be float64; got string"),
])
def test_a_wrong_batch_is_refused_before_writing(online_store: OnlineStore, columns: dict[str, Any],
                                                 message: str) -> None:
    with pytest.raises(FeatureError, match=message):
        online_store.write(ONE, pa.RecordBatch.from_pydict(columns))
    assert online_store.reader(ONE)(["k"]) == [None]


# -- entity keys and tables -----------------------------------------------------------------


def test_encode_key_renders_ints_in_decimal_and_joins_with_unit_separator() -> None:
    assert encode_key([42], ["int64"]) == "42"
    assert encode_key([-7, "fr", 0], ["int64", "string", "int64"]) == "-7\x1ffr\x1f0"
    assert encode_key(["ünï"], ["string"]) == "ünï"


@pytest.mark.parametrize(("values", "types", "message"), [
    ([True], ["int64"], r"Entity key value True must be int64 \(an int\); got bool\."),
    (["42"], ["int64"], r"Entity key value '42' must be int64 \(an int\); got str\."),
    ([4.0], ["int64"], r"got float"),
    ([2**63], ["int64"], r"out of range"),
    ([1], ["string"], r"Entity key value 1 must be string \(a str\); got int\."),
    (["a\x1fb"], ["string"], r"without '\\x1f'"),
    ([1, 2], ["int64"], r"needs 1 value\(s\) \(int64\); got 2"),
    ([1.5], ["float64"], r"Join key type 'float64' is not supported"),
])
def test_encode_key_refuses_wrong_values(values: list[object], types: list[str], message: str) -> None:
    with pytest.raises(FeatureError, match=message):
        encode_key(values, types)


@pytest.mark.parametrize(("columns", "types", "message"), [
    ([pa.array([True])], ["int64"], "must be int64; got bool"),
    ([pa.array([1])], ["string"], "must be string; got int64"),
    ([pa.array(["a\x1fb"])], ["string"], "without '\\\\x1f'"),
    ([pa.array([1, None])], ["int64"], "must have no nulls; got 1"),
    ([pa.array([1])], ["int64", "string"], "need 2 column"),
])
def test_encode_keys_refuses_wrong_columns(columns: list[pa.Array], types: list[str], message: str) -> None:
    with pytest.raises(FeatureError, match=message):
        encode_keys(columns, types)


@pytest.mark.parametrize(("name", "features", "message"), [
    ("a:b", (("x", "float64"),), "Online table name 'a:b' is not allowed"),
    ("t*", (("x", "float64"),), "is not allowed"),
    ("t", (("x", "float64"), ("x", "int64")), "declares feature 'x' twice"),
    ("t", (("x", "decimal"),), "has type 'decimal'; expected one of"),
    ("t", (("__key", "int64"),), "'__key' of online table 't' is not allowed"),
])
def test_online_table_refuses_bad_definitions(name: str, features: tuple[tuple[str, str], ...],
                                              message: str) -> None:
    with pytest.raises(FeatureError, match=message):
        OnlineTable(name, features)


def test_online_table_accepts_lists_and_stays_hashable() -> None:
    table = OnlineTable("t", [["x", "float64"]])  # type: ignore[arg-type]
    assert table.features == (("x", "float64"),)
    assert hash(table) == hash(OnlineTable("t", (("x", "float64"),)))


# -- opening stores -------------------------------------------------------------------------


def test_open_online_store_by_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_online_store("sqlite:///state/online.db")
    try:
        assert isinstance(store, SqliteOnlineStore)
        store.write(ONE, batch(ONE, [("k", 1, None, 1.0)]))
    finally:
        store.close()
    assert (tmp_path / "state" / "online.db").is_file()
    absolute = open_online_store(f"sqlite:///{tmp_path}/online.db")
    assert isinstance(absolute, SqliteOnlineStore)
    assert absolute.path == f"{tmp_path}/online.db"
    absolute.close()


@pytest.mark.parametrize("url", ["postgresql://localhost/x", "sqlite://", "online.db", "memory://"])
def test_an_unknown_url_is_refused(url: str) -> None:
    with pytest.raises(FeatureError, match=r"is not supported; use sqlite:///.* or redis://HOST:PORT/DB"):
        open_online_store(url)


def test_unreachable_redis_raises_a_clear_error() -> None:
    with pytest.raises(OnlineStoreError, match=r"Redis at redis://:\*\*\*@127\.0\.0\.1:1/0 is unreachable .*"
                                               r"Start Redis there or fix online_url\.") as caught:
        open_online_store("redis://:secret@127.0.0.1:1/0")
    assert "secret" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_redis_is_imported_only_when_a_redis_store_is_opened() -> None:
    code = ("import sys, mlwright.features.online as o; o.RedisOnlineStore; "
            "assert 'redis' not in sys.modules, 'imported too early'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sqlite_refuses_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "online.db"
    path.write_bytes(b"this is not a database" * 100)
    expected = rf"Cannot open the SQLite online store '{re.escape(str(path))}': file is not a database"
    with pytest.raises(OnlineStoreError, match=expected):
        SqliteOnlineStore(path)


def test_sqlite_refuses_an_unwritable_path(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(OnlineStoreError, match=r"Cannot open the SQLite online store .* writable path"):
        SqliteOnlineStore(tmp_path / "file" / "online.db")


def test_sqlite_in_memory_and_after_close(tmp_path: Path) -> None:
    store = open_online_store("sqlite:///:memory:")
    store.write(ONE, batch(ONE, [("k", 1, None, 1.0)]))
    read = store.reader(ONE)
    assert read(["k"]) == [(1, 1.0)]
    store.close()
    store.close()
    with pytest.raises(OnlineStoreError, match="is closed; cannot read online table 'one__v1'"):
        read(["k"])


def test_sqlite_refuses_features_differing_only_in_case(tmp_path: Path) -> None:
    table = OnlineTable("cases__v1", (("x", "float64"), ("X", "float64")))
    with SqliteOnlineStore(tmp_path / "online.db") as store, \
            pytest.raises(OnlineStoreError, match=r"differ only in case \(x\)"):
        store.write(table, batch(table, [("k", 1, None, 1.0, 2.0)]))
