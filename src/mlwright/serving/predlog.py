"""The prediction log: every request's inputs, features and outputs, written off the request path.

>>> log = PredictionLog(ws.predictions_dir, writer_id="host-1")                 # doctest: +SKIP
>>> log.record(PredictionRecord("3f2a", now_us, "delays", 2, {"distance": x}, {}, y,
...                             ["weather@2"], latency_ms=1.8))                 # doctest: +SKIP
>>> log.close()                              # at shutdown: writes whatever is still buffered

``record`` only appends to a buffer. A background thread takes the buffer every
``flush_interval`` seconds and writes one Parquet file per model version and hour::

    DIR/model=NAME/date=YYYY-MM-DD/hour=HH/part-WRITER-SEQ-UUID8.parquet

A file is written under a temporary name, synced and renamed, so readers only ever see whole
files (the log is readable while being written) and a crash loses at most the last interval.
A failed write (disk full, permissions) is logged and retried with the next interval; the
buffer keeps at most ``max_buffered_rows`` rows meanwhile, dropping the oldest beyond it.

One log row per predicted row: ``request_id``, ``row`` (index within the request), ``time``,
``model``, ``version``, ``latency_ms``, ``status``, ``feature_views``, ``inputs`` (a struct of
the input columns), ``features`` (a struct, absent when nothing was looked up) and the output
in one of three columns: ``output`` (float64), ``output_vector`` (list<float64>: a 2-D output,
such as class probabilities) or ``output_text`` (string). Three columns rather than one of
varying type because DuckDB's ``union_by_name`` cannot unify DOUBLE with DOUBLE[] across
files: with them, every file of the log reads together.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlwright.errors import ServingError

logger = logging.getLogger(__name__)

UTC_MICROS = pa.timestamp("us", "UTC")
HOUR_US = 3_600_000_000
COMPLAIN_EVERY_S = 60.0  # while writes keep failing, one log line a minute, not one a second
_WRITER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

E = TypeVar("E")


@dataclass
class PredictionRecord:
    """One request as the server answered it; columns hold one value per row. The arrays
    are read later, by the writer's thread: do not change them after recording."""

    request_id: str
    time_us: int  # UTC microseconds since the epoch, when the request arrived
    model: str
    version: int
    inputs: Mapping[str, Any]
    features: Mapping[str, Any]
    outputs: Any  # (n,) or (n, k) array, or a list
    feature_views: Sequence[str]  # "weather@2", ...
    latency_ms: float
    status: int = 200


@dataclass
class LogStats:
    """Counters for metrics. Rows are log rows (predicted rows), records are requests."""

    records: int = 0  # accepted by record()
    rows: int = 0  # written
    files: int = 0  # written
    pending: int = 0  # rows buffered, not yet written
    dropped: int = 0  # rows lost: over max_buffered_rows, or recorded after close()
    invalid: int = 0  # records that could not be turned into rows (each one logged)
    failures: int = 0  # write attempts that failed (their rows are retried)


@dataclass
class _Group(Generic[E]):
    folder: str  # relative to the log's directory
    table: pa.Table
    entries: list[E] = field(default_factory=list)


class ParquetLog(Generic[E]):
    """Buffers entries and writes them as Parquet files from a background thread.

    Subclasses say how many rows an entry makes, which file group it belongs to and how a
    group becomes a table; this class owns the buffer, the thread, the files and the retries.
    """

    what = "log"

    def __init__(self, directory: str, *, writer_id: str, flush_interval: float = 1.0,
                 max_buffered_rows: int = 1_000_000, fsync: bool = True) -> None:
        if not _WRITER_ID.fullmatch(writer_id):
            raise ServingError(f"Writer id {writer_id!r} of the {self.what} is not allowed: use "
                               "letters, digits, '_', '.', '-' (at most 64).")
        if flush_interval <= 0 or max_buffered_rows < 1:
            raise ServingError(f"The {self.what} needs flush_interval > 0 and max_buffered_rows "
                               f">= 1; got {flush_interval} and {max_buffered_rows}.")
        self.directory = directory.removeprefix("file://").rstrip("/") or "/"
        self.writer_id = writer_id
        self.flush_interval = flush_interval
        self.max_buffered_rows = max_buffered_rows
        self.fsync = fsync
        self.stats = LogStats()
        self._buffer: deque[tuple[E, int]] = deque()
        self._buffered = 0  # rows in _buffer (stats.pending adds those being written)
        self._lock = threading.Lock()  # the buffer and the counters; held for O(1) steps only
        self._write_lock = threading.Lock()  # one writer at a time: keeps batches in order
        self._stop = threading.Event()
        self._closed = False
        self._seq = 0
        self._failing_since: float | None = None
        self._complained = 0.0
        self._thread = threading.Thread(target=self._run, name=f"mlwright-{self.what}",
                                        daemon=True)
        self._thread.start()

    # -- what subclasses provide -----------------------------------------------------------

    def _rows(self, entry: E) -> int:
        raise NotImplementedError

    def _group_key(self, entry: E) -> Hashable:
        raise NotImplementedError

    def _folder(self, key: Any) -> str:
        raise NotImplementedError

    def _table(self, entries: Sequence[E]) -> pa.Table:
        raise NotImplementedError

    def _describe(self, entry: E) -> str:
        return repr(entry)[:80]

    # -- the caller's side ------------------------------------------------------------------

    def record(self, entry: E) -> None:
        """Buffer ``entry`` for the next write. O(1), thread-safe, no I/O."""
        rows = self._rows(entry)
        with self._lock:
            if not self._closed:
                self._buffer.append((entry, rows))
                self._buffered += rows
                self.stats.records += 1
                self.stats.pending += rows
                self._bound()
                return
            self.stats.dropped += rows
        logger.warning("The %s at %s is closed; dropped %s.", self.what, self.directory,
                       self._describe(entry))

    def flush(self) -> None:
        """Write everything buffered now, in the calling thread.

        Raises ServingError when a file cannot be written; its rows stay buffered.
        """
        error, kept = self._write_pending()
        if error is not None:
            later = ("call flush() again once fixed" if self._closed else
                     f"retried every {self.flush_interval:g} s")
            raise ServingError(f"Cannot write the {self.what} to {self.directory}: "
                               f"{_reason(error)}; {kept} rows stay buffered, {later}.")

    def close(self) -> None:
        """Stop the thread and write what is left (a clean shutdown loses nothing). Idempotent."""
        with self._lock:
            self._closed = True
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        self.flush()

    def __enter__(self) -> ParquetLog[E]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writing side -------------------------------------------------------------------

    def _bound(self) -> None:
        """Drop the oldest rows beyond max_buffered_rows (the lock is held). Rows being
        written do not count: if their write fails they come back first, and are bounded then."""
        while self._buffered > self.max_buffered_rows and len(self._buffer) > 1:
            _, rows = self._buffer.popleft()
            self._buffered -= rows
            self.stats.pending -= rows
            self.stats.dropped += rows

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            try:
                self._write_pending()
            except Exception:  # a bug must not end the thread: the next interval tries again
                logger.exception("Unexpected error writing the %s at %s.", self.what,
                                 self.directory)

    def _write_pending(self) -> tuple[Exception | None, int]:
        """Write the buffer; return the first write error (those rows are buffered again)
        and how many rows stay buffered."""
        with self._write_lock:
            with self._lock:
                batch, self._buffer = self._buffer, deque()
                self._buffered = 0
            if not batch:
                return None, 0
            rows_of = {id(entry): rows for entry, rows in batch}
            failed: list[tuple[E, int]] = []
            error: Exception | None = None
            for group in self._groups([entry for entry, _ in batch]):
                try:
                    self._write_file(group.folder, group.table)
                except Exception as exc:  # OSError, fsspec and pyarrow I/O errors alike
                    error = error or exc
                    failed.extend((entry, rows_of[id(entry)]) for entry in group.entries)
                    continue
                with self._lock:
                    self.stats.rows += group.table.num_rows
                    self.stats.files += 1
            with self._lock:
                self.stats.pending -= sum(rows for _, rows in batch)
                if failed:  # back at the front, in order: they are the oldest rows
                    self._buffer.extendleft(reversed(failed))
                    self._buffered += sum(rows for _, rows in failed)
                    self.stats.pending += sum(rows for _, rows in failed)
                    self.stats.failures += 1
                    self._bound()
                kept = self.stats.pending
            self._report(error, kept)
            return error, kept

    def _report(self, error: Exception | None, kept: int) -> None:
        now = time.monotonic()
        if error is None:
            if self._failing_since is not None:
                logger.warning("The %s at %s is written again after %.0f s of failures.",
                               self.what, self.directory, now - self._failing_since)
                self._failing_since = None
            return
        if self._failing_since is None or now - self._complained >= COMPLAIN_EVERY_S:
            logger.error("Cannot write the %s to %s: %s; %d rows kept to retry every %g s "
                         "(at most %d; the oldest are dropped beyond).", self.what,
                         self.directory, _reason(error), kept, self.flush_interval,
                         self.max_buffered_rows)
            self._complained = now
        self._failing_since = self._failing_since or now

    def _reject(self, entry: E, error: Exception) -> None:
        """An entry that cannot become rows: retrying would not help, so it is dropped."""
        with self._lock:
            self.stats.invalid += 1
        logger.error("Cannot log %s to the %s: %s.", self._describe(entry), self.what,
                     _reason(error))

    def _groups(self, entries: list[E]) -> Iterator[_Group[E]]:
        by_folder: dict[Hashable, tuple[str, list[E]]] = {}
        for entry in entries:
            try:
                key = self._group_key(entry)
                if key not in by_folder:
                    by_folder[key] = (self._folder(key), [])
            except Exception as exc:  # a malformed entry (a time that is not a number)
                self._reject(entry, exc)
                continue
            by_folder[key][1].append(entry)
        for folder, members in by_folder.values():
            try:
                whole: pa.Table | None = self._table(members)
            except Exception:  # one bad entry must not lose its group: see below
                whole = None
            if whole is not None:
                yield _Group(folder, whole, members)
                continue
            # Entry by entry: those that fail are dropped (logged); the rest are written,
            # one file per schema when entries of the group disagree on column types.
            by_schema: dict[str, list[tuple[pa.Table, E]]] = {}
            for entry in members:
                try:
                    table = self._table([entry])
                except Exception as exc:
                    self._reject(entry, exc)
                    continue
                by_schema.setdefault(str(table.schema), []).append((table, entry))
            for pairs in by_schema.values():
                yield _Group(folder, pa.concat_tables([t for t, _ in pairs]),
                             [e for _, e in pairs])

    def _write_file(self, folder: str, table: pa.Table) -> None:
        self._seq += 1  # under the write lock
        name = f"part-{self.writer_id}-{self._seq:010d}-{uuid.uuid4().hex[:8]}.parquet"
        options = _write_options(table)
        if "://" in self.directory:  # an object store: one PUT, atomic per object
            import fsspec

            fs, root = fsspec.core.url_to_fs(f"{self.directory}/{folder}")
            fs.makedirs(root, exist_ok=True)
            with fs.open(f"{root}/{name}", "wb") as handle:
                pq.write_table(table, handle, **options)
            return
        target = Path(self.directory) / folder
        target.mkdir(parents=True, exist_ok=True)
        temp = target / f".{name}.tmp"  # not *.parquet: readers' globs never match it
        try:
            with temp.open("wb") as handle:
                pq.write_table(table, handle, **options)
                if self.fsync:  # else a power cut could leave the renamed file empty
                    handle.flush()
                    os.fsync(handle.fileno())
            temp.replace(target / name)
        finally:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
        if self.fsync:
            _fsync_dir(target)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot sync a folder
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


@functools.cache
def _has_bloom_filters() -> bool:
    return "bloom_filter_options" in inspect.signature(pq.ParquetWriter.__init__).parameters


def _write_options(table: pa.Table) -> dict[str, Any]:
    # A Bloom filter on request_id lets a lookup by id (trace, feedback joins) skip row
    # groups without reading them; random ids make min/max statistics useless for that.
    if "request_id" not in table.column_names or not _has_bloom_filters():
        return {}
    return {"bloom_filter_options": {"request_id": {"ndv": max(1, table.num_rows), "fpp": 0.01}}}


def _reason(error: BaseException) -> str:
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return str(text).splitlines()[0]


def hour_folder(time_us: int) -> str:
    """``date=YYYY-MM-DD/hour=HH`` of a UTC time in microseconds."""
    moment = datetime.fromtimestamp(time_us // HOUR_US * 3600, UTC)
    return f"date={moment:%Y-%m-%d}/hour={moment:%H}"


# -- columns to Arrow ----------------------------------------------------------------------


def _nested(array: np.ndarray[Any, Any], from_pandas: bool) -> pa.Array:
    """A (n, k, ...) array as a list array of n lists of k·... values."""
    flat = array.reshape(len(array), -1)
    width = flat.shape[1]
    offsets = pa.array(np.arange(0, len(flat) * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(flat.reshape(-1), from_pandas=from_pandas))


def _to_arrow(values: Any) -> pa.Array:
    """One column of one request as an Arrow array. NaN becomes null: the server's frames
    come from pandas, where NaN means a missing value."""
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    if isinstance(values, np.ndarray):
        if values.ndim == 0:
            values = values.reshape(1)
        if values.ndim > 1:
            return _nested(values, from_pandas=True)
        return pa.array(values, from_pandas=True)
    if hasattr(values, "to_numpy") and hasattr(values, "dtype"):  # a pandas Series
        return pa.array(values, from_pandas=True)
    return pa.array(list(values), from_pandas=True)


def _common_type(types: set[pa.DataType]) -> pa.DataType:
    if all(_numeric(t) for t in types):
        return pa.float64() if any(pa.types.is_floating(t) for t in types) else pa.int64()
    return pa.string()


def _concat(chunks: Sequence[pa.Array]) -> pa.Array:
    """Chunks of one column from several requests, as one array of a type they all fit."""
    types = {c.type for c in chunks if not pa.types.is_null(c.type)}
    if not types:
        return pa.concat_arrays(list(chunks))
    target = types.pop() if len(types) == 1 else _common_type(types)
    return pa.concat_arrays([c if c.type == target else c.cast(target) for c in chunks])


def _column(parts: Sequence[Any], counts: Sequence[int]) -> pa.Array:
    """One column across requests; ``None`` where a request lacks it."""
    if all(isinstance(p, np.ndarray) and p.ndim == 1 for p in parts) \
            and len({p.dtype for p in parts}) == 1:
        return pa.array(np.concatenate(parts), from_pandas=True)  # the usual case: one call
    if all(isinstance(p, list) for p in parts):  # JSON requests
        return pa.array(list(chain.from_iterable(parts)), from_pandas=True)
    return _concat([pa.nulls(n) if p is None else _to_arrow(p) for p, n in zip(parts, counts,
                                                                             strict=True)])


def _matrix_struct(mappings: Sequence[Mapping[str, Any]]) -> pa.StructArray | None:
    """The fast path of :func:`_struct`: inputs checked from JSON records carry one float
    matrix each (``serving.fields.Checked``), so all columns come from one concatenation
    instead of one per column (a flush of 3,000 one-row requests of 20 columns: about ten
    times faster, and this runs beside the request path, under the same GIL)."""
    first = mappings[0]
    if getattr(first, "matrix", None) is None:
        return None
    names = tuple(first)
    if any(getattr(m, "matrix", None) is None or tuple(m) != names for m in mappings):
        return None
    whole = np.concatenate([m.matrix for m in mappings])  # type: ignore[attr-defined]
    arrays = [pa.array(whole[:, j].astype(first[name].dtype, copy=False))
              for j, name in enumerate(names)]
    return pa.StructArray.from_arrays(arrays, names=list(names))


def _struct(mappings: Sequence[Mapping[str, Any]], counts: Sequence[int]) -> pa.StructArray | None:
    """Named columns across requests as one struct array; None when there are no columns."""
    if mappings:
        fast = _matrix_struct(mappings)
        if fast is not None:
            return fast
    names = list(dict.fromkeys(name for m in mappings for name in m))
    if not names:
        return None
    arrays = [_column([m.get(name) for m in mappings], counts) for name in names]
    return pa.StructArray.from_arrays(arrays, names=names)


def _as_numpy(values: Any) -> np.ndarray[Any, Any]:
    if isinstance(values, np.ndarray):
        array = values
    else:
        try:
            array = np.asarray(values)
        except ValueError:  # ragged lists
            array = np.empty(len(values), dtype=object)
            array[:] = list(values)
    return array.reshape(1) if array.ndim == 0 else array


def _classify(array: pa.Array) -> tuple[str, pa.Array] | None:
    """Which output column Arrow values belong in, cast to its type; None: none fits."""
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "output_text", array.cast(pa.string())
    if _numeric(kind) or pa.types.is_null(kind):
        return "output", array.cast(pa.float64())
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and (
            _numeric(kind.value_type) or pa.types.is_null(kind.value_type)):
        return "output_vector", array.cast(OUTPUT_TYPES["output_vector"])
    return None


def _output(values: Any) -> tuple[str, pa.Array]:
    """One request's outputs: ("output" float64 | "output_vector" | "output_text", array)."""
    array = _as_numpy(values)
    if array.dtype.kind in "biuf":
        numbers = array.astype(np.float64, copy=False)
        if array.ndim == 1:
            return "output", pa.array(numbers)
        return "output_vector", _nested(numbers, from_pandas=False)
    if array.dtype.kind in "US" and array.ndim == 1:
        return "output_text", pa.array(array.astype(str))
    if array.dtype.kind == "O":  # None among numbers or strings, (ragged) lists of numbers
        try:
            found = _classify(pa.array(array.tolist(), from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            found = None
        if found is not None:
            return found
    # Anything else (dicts, nested objects): JSON text, one value per row.
    return "output_text", pa.array([None if v is None else json.dumps(v, default=str)
                                    for v in array.tolist()], pa.string())


def _numeric(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_boolean(kind))


OUTPUT_TYPES = {"output": pa.float64(), "output_vector": pa.list_(pa.float64()),
                "output_text": pa.string()}


def _only(name: str, array: pa.Array) -> dict[str, pa.Array]:
    return {other: array if other == name else pa.nulls(len(array), kind)
            for other, kind in OUTPUT_TYPES.items()}


def _outputs(parts: Sequence[Any], counts: Sequence[int]) -> dict[str, pa.Array]:
    """The three output columns of requests (each row fills one of them)."""
    if all(isinstance(p, np.ndarray) and p.ndim == 1 and p.dtype.kind in "biuf" for p in parts):
        return _only("output", pa.array(np.concatenate(parts).astype(np.float64, copy=False)))
    if all(isinstance(p, list) for p in parts):  # JSON requests: one conversion for all
        try:
            found = _classify(pa.array(list(chain.from_iterable(parts))))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            found = None
        if found is not None:
            return _only(*found)
    chunks: dict[str, list[pa.Array]] = {name: [] for name in OUTPUT_TYPES}
    for part, count in zip(parts, counts, strict=True):
        name, array = _output(part)
        for other, kind in OUTPUT_TYPES.items():
            chunks[other].append(array if other == name else pa.nulls(count, kind))
    return {name: pa.concat_arrays(arrays) for name, arrays in chunks.items()}


def _length(values: Any) -> int:
    try:
        return len(values)
    except TypeError:  # a scalar: one row
        return 1


def _count(record: PredictionRecord) -> int:
    rows = _length(record.outputs)
    matrix = getattr(record.inputs, "matrix", None)
    if matrix is not None and matrix.shape[0] == rows and not record.features:
        return rows  # checked inputs: one matrix, every column the same length
    for kind, columns in (("input", record.inputs), ("feature", record.features)):
        for name, values in columns.items():
            if values is not None and _length(values) != rows:
                raise ValueError(f"{kind} column '{name}' has {_length(values)} values for "
                                 f"{rows} outputs")
    return rows


def prediction_table(records: Sequence[PredictionRecord]) -> pa.Table:
    """Log rows of records (one row per predicted row); raises when a record is malformed."""
    counts = np.array([_count(r) for r in records], dtype=np.int64)
    owner = pa.array(np.repeat(np.arange(len(records)), counts))  # the record of each row
    starts = np.cumsum(counts) - counts
    per_record = pa.table({
        "request_id": pa.array([r.request_id for r in records], pa.string()),
        "time": pa.array([r.time_us for r in records], pa.int64()).cast(UTC_MICROS),
        "model": pa.array([r.model for r in records], pa.string()),
        "version": pa.array([r.version for r in records], pa.int32()),
        "latency_ms": pa.array([r.latency_ms for r in records], pa.float64()),
        "status": pa.array([r.status for r in records], pa.int16()),
        "feature_views": pa.array([list(r.feature_views) for r in records],
                                  pa.list_(pa.string())),
    }).take(owner)
    columns: dict[str, pa.Array | pa.ChunkedArray] = dict(zip(per_record.column_names,
                                                              per_record.columns, strict=True))
    row = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(starts, counts)
    table: dict[str, pa.Array | pa.ChunkedArray] = {
        "request_id": columns.pop("request_id"), "row": pa.array(row.astype(np.int32)),
        **columns}
    listed = [int(c) for c in counts]
    inputs = _struct([_mapping(r.inputs) for r in records], listed)
    if inputs is not None:
        table["inputs"] = inputs
    features = _struct([_mapping(r.features) for r in records], listed)
    if features is not None:
        table["features"] = features
    table.update(_outputs([r.outputs for r in records], listed))
    return pa.table(table)


def _mapping(columns: Any) -> Mapping[str, Any]:
    if columns is None:
        return {}
    return columns if isinstance(columns, Mapping) else dict(columns.items())  # a DataFrame


class PredictionLog(ParquetLog[PredictionRecord]):
    """The prediction log of one server process (see the module docstring).

    ``writer_id`` names this writer in file names (e.g. ``host-pid``), so that several
    servers may log to the same folder. Create it in the process that records to it.
    """

    what = "prediction log"

    def _rows(self, entry: PredictionRecord) -> int:
        return _length(entry.outputs)

    def _group_key(self, entry: PredictionRecord) -> Hashable:
        return entry.model, entry.version, entry.time_us // HOUR_US

    def _folder(self, key: Any) -> str:
        model, _, hour = key
        return f"model={quote(model, safe='')}/{hour_folder(hour * HOUR_US)}"

    def _table(self, entries: Sequence[PredictionRecord]) -> pa.Table:
        return prediction_table(entries)

    def _describe(self, entry: PredictionRecord) -> str:
        return f"request '{entry.request_id}' of {entry.model}@{entry.version}"
