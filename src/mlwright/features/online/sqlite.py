"""The embedded online store: one SQLite file, one ``WITHOUT ROWID`` table per online table.

Each table is ``__key TEXT PRIMARY KEY, __event_ts INTEGER NOT NULL, __created_ts INTEGER``
then one typed column per feature; ``WITHOUT ROWID`` clusters the rows on the key, so a
point read is one B-tree descent. The file is in WAL mode: readers never wait for the
writer (and another process may read while materialization writes).

Values: ``bool`` is stored as 0/1 and read back as ``bool``; ``float32`` is read back as a
Python float holding the float32 value; NaN is stored as NULL (SQLite has no NaN), so it
reads back as ``None``, as it does from Redis.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from mlwright.errors import OnlineStoreError
from mlwright.features.online.base import (
    CREATED_TS_COLUMN,
    EVENT_TS_COLUMN,
    KEY_COLUMN,
    OnlineTable,
    Reader,
    Row,
    batch_columns,
)

if TYPE_CHECKING:
    import pyarrow as pa

_SQL_TYPES = {"int64": "INTEGER", "float64": "REAL", "float32": "REAL", "string": "TEXT",
              "bool": "INTEGER", "timestamp": "INTEGER"}
# Keys per IN query: under SQLite's oldest bound-parameter limit (999) and a power of two,
# since requests are padded to a power of two (see `_bucket`).
_CHUNK = 512


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _bucket(count: int) -> int:
    """The number of placeholders for ``count`` keys: the next power of two.

    Padding (with a repeated key, harmless in ``IN``) keeps the distinct statements per table
    to about ten, so they all stay in sqlite3's prepared-statement cache whatever the
    request sizes; one statement per exact count would evict each other.
    """
    return 1 << (count - 1).bit_length()


@lru_cache(maxsize=1024)
def _statements(table: OnlineTable) -> _Statements:
    return _Statements(table)


class _Statements:
    """The SQL of one online table, built once per table (cached by `_statements`)."""

    def __init__(self, table: OnlineTable) -> None:
        name = _quote(table.name)
        features = [_quote(feature) for feature in table.feature_names]
        key, ts, cts = _quote(KEY_COLUMN), _quote(EVENT_TS_COLUMN), _quote(CREATED_TS_COLUMN)
        typed = "".join(f", {column} {_SQL_TYPES[dtype]}"
                        for column, dtype in zip(features, table.dtypes, strict=True))
        self.create = (f"CREATE TABLE IF NOT EXISTS {name} ({key} TEXT PRIMARY KEY, "
                       f"{ts} INTEGER NOT NULL, {cts} INTEGER{typed}) WITHOUT ROWID")
        columns = [key, ts, cts, *features]
        updates = ", ".join(f"{column} = excluded.{column}" for column in columns[1:])
        # Newer wins: (event_ts, created_ts or -1) >= the stored pair; equal pairs take the
        # new row, so re-writing is idempotent and the last of equal writes wins.
        self.upsert = (f"INSERT INTO {name} AS t ({', '.join(columns)}) "
                       f"VALUES ({', '.join('?' * len(columns))}) "
                       f"ON CONFLICT({key}) DO UPDATE SET {updates} "
                       f"WHERE excluded.{ts} > t.{ts} OR (excluded.{ts} = t.{ts} AND "
                       f"coalesce(excluded.{cts}, -1) >= coalesce(t.{cts}, -1))")
        selected = ", ".join([ts, *features])
        self.select_one = f"SELECT {selected} FROM {name} WHERE {key} = ?"
        self.select_many = f"SELECT {key}, {selected} FROM {name} WHERE {key} IN "
        self.drop = f"DROP TABLE IF EXISTS {name}"
        duplicates = {f.lower() for f in table.feature_names if
                      sum(g.lower() == f.lower() for g in table.feature_names) > 1}
        if duplicates:  # SQLite column names ignore case
            raise OnlineStoreError(f"Online table '{table.name}' has features that differ only in "
                                   f"case ({', '.join(sorted(duplicates))}); SQLite cannot store both.")


class SqliteOnlineStore:
    """The online store in one SQLite file, kept open; the default (``sqlite:///PATH``).

    Writes are serialised by a lock and go through their own connection; reads use another,
    so in WAL mode they see the last committed batch and never wait for a write.
    ``timeout`` is how long (seconds) a write waits while another process writes the file.
    A store is meant for one process: open it after forking, not before.

    >>> store = SqliteOnlineStore(".mlwright/online.db")            # doctest: +SKIP
    >>> store.write(table, batch)                                    # doctest: +SKIP
    10000
    >>> store.reader(table)(["42", "7"])                             # doctest: +SKIP
    [(1700000000000000, 3.0, 'fr'), None]
    >>> store.close()                                                # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._closed = False
        self._writer = self._connect()
        try:
            # ":memory:" is one database per connection: reads must share the writer's.
            self._reader = self._writer if self.path == ":memory:" else self._connect()
        except OnlineStoreError:
            self._writer.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; writes open their own.
            connection = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None,
                                         check_same_thread=False, cached_statements=512)
            try:
                # These read the file header: a corrupt or read-only file fails here, at open.
                self._use_wal(connection)
                connection.execute("PRAGMA synchronous=NORMAL")  # WAL stays consistent on crash
            except sqlite3.Error:
                connection.close()
                raise
        except (OSError, sqlite3.Error) as exc:
            raise OnlineStoreError(f"Cannot open the SQLite online store '{self.path}': {exc}. Use "
                                   "a writable path to a SQLite file (or fix online_url).") from exc
        return connection

    def _use_wal(self, connection: sqlite3.Connection) -> None:
        """Switch the file to WAL once. Switching needs an exclusive lock, and SQLite answers
        BUSY at once (no busy handler, to avoid deadlocks) while another process holds a lock on
        a fresh file — so wait for it here, up to the timeout."""
        deadline = time.monotonic() + self._timeout
        delay = 0.005
        while True:
            try:
                mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() == "wal" or self.path == ":memory:":
                    return
                connection.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)

    def _fail(self, action: str, table: OnlineTable, exc: sqlite3.Error) -> OnlineStoreError:
        if self._closed:
            return OnlineStoreError(f"The SQLite online store '{self.path}' is closed; cannot "
                                    f"{action} online table '{table.name}'.")
        return OnlineStoreError(f"Cannot {action} online table '{table.name}' in the SQLite online "
                                f"store '{self.path}': {exc}.")

    def write(self, table: OnlineTable, batch: pa.RecordBatch) -> int:
        """Upsert a batch (newer wins) in one transaction; return how many rows were stored."""
        statements = _statements(table)
        columns = batch_columns(table, batch)
        # One to_pylist per column and a zip: far cheaper than building rows value by value.
        rows = zip(*(column.to_pylist() for column in columns), strict=True)
        with self._lock:
            connection = self._writer
            try:
                before = connection.total_changes
                connection.execute("BEGIN IMMEDIATE")  # take the write lock now, not mid-batch
                try:
                    connection.execute(statements.create)
                    connection.executemany(statements.upsert, rows)
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
                # Rows skipped by the newer-wins condition are not changes.
                return connection.total_changes - before
            except sqlite3.Error as exc:
                raise self._fail("write", table, exc) from exc

    def reader(self, table: OnlineTable) -> Reader:
        """A function from entity keys to ``(event_ts_us, f1, ..., fn)`` or ``None``, per key."""
        statements = _statements(table)
        connection = self._reader
        select_one, select_many = statements.select_one, statements.select_many
        in_statements: dict[int, str] = {}
        bools = [i for i, dtype in enumerate(table.dtypes, start=1) if dtype == "bool"]

        def convert(row: Row) -> Row:
            values = list(row)
            for i in bools:
                if values[i] is not None:
                    values[i] = bool(values[i])
            return tuple(values)

        def read(keys: Sequence[str]) -> list[Row | None]:
            count = len(keys)
            try:
                if count == 1:
                    row = connection.execute(select_one, (keys[0],)).fetchone()
                    return [None if row is None else convert(row) if bools else row]
                found: dict[str, Row] = {}
                for start in range(0, count, _CHUNK):
                    chunk = list(keys[start:start + _CHUNK])
                    size = _bucket(len(chunk))
                    sql = in_statements.get(size)
                    if sql is None:
                        sql = in_statements[size] = f"{select_many}({', '.join('?' * size)})"
                    chunk.extend(chunk[-1:] * (size - len(chunk)))
                    for row in connection.execute(sql, chunk):
                        found[row[0]] = convert(row[1:]) if bools else row[1:]
                return [found.get(key) for key in keys]
            except sqlite3.OperationalError as exc:
                if str(exc).startswith("no such table"):  # never written (or dropped): no rows
                    return [None] * count
                raise self._fail("read", table, exc) from exc
            except sqlite3.Error as exc:
                raise self._fail("read", table, exc) from exc

        return read

    def drop(self, table: OnlineTable) -> None:
        """Delete the table and its rows; dropping a table that does not exist does nothing."""
        statements = _statements(table)
        with self._lock:
            try:
                self._writer.execute(statements.drop)
            except sqlite3.Error as exc:
                raise self._fail("drop", table, exc) from exc

    def close(self) -> None:
        """Close the connections; closing twice does nothing."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._reader is not self._writer:
                self._reader.close()
            self._writer.close()

    def __enter__(self) -> SqliteOnlineStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteOnlineStore({self.path!r})"
