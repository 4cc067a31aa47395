"""A feature view's rows as one normalized DuckDB relation.

Whatever the source looks like, the relation has the join keys (``BIGINT`` or ``VARCHAR``),
``__ts`` and ``__cts`` (event and created time, ``TIMESTAMPTZ``, UTC) and each feature cast
to its declared type, followed by the rows pushed to the view. The source's schema is checked
against the view first, so a drifted source fails with a message instead of wrong features.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from mlwright.errors import FeatureError
from mlwright.features.sources import SourceContext

if TYPE_CHECKING:
    import duckdb

    from mlwright.features.catalog import ViewVersion
    from mlwright.features.definitions import FeatureView
    from mlwright.workspace import Workspace

DUCK_TYPES = {"int64": "BIGINT", "float64": "DOUBLE", "float32": "FLOAT", "string": "VARCHAR",
              "bool": "BOOLEAN", "timestamp": "TIMESTAMPTZ"}
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER",
             "UBIGINT", "HUGEINT"}
_NUMBERS = _INTEGERS | {"FLOAT", "DOUBLE"} | {"DECIMAL"}
_NAIVE = {"TIMESTAMP", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S", "DATE"}
_AWARE = {"TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"}
_AWARE_NS = {"TIMESTAMPTZ_NS", "TIMESTAMP_NS WITH TIME ZONE"}  # pandas writes these
_ACCEPTS = {"int64": _INTEGERS, "float64": _NUMBERS, "float32": _NUMBERS, "string": {"VARCHAR"},
            "bool": {"BOOLEAN"}, "timestamp": _NAIVE | _AWARE | _AWARE_NS}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_DATABASES: dict[tuple[int, str, str], duckdb.DuckDBPyConnection] = {}


def connect(ws: Workspace) -> duckdb.DuckDBPyConnection:
    """A DuckDB session in UTC with the workspace's memory limit and a spill folder, so that
    joins and aggregations larger than memory go to disk instead of failing.

    Sessions are cursors of one in-memory database per process and settings (opening a
    database costs ~15 ms, a cursor nothing); temporary views and registered tables are the
    session's own and go when it is closed.
    """
    import duckdb

    spill = Path(ws.root) / ".mlwright" / "tmp" / "duckdb"
    key = (os.getpid(), ws.settings.offline_memory_limit, str(spill))  # never across a fork
    database = _DATABASES.get(key)
    if database is None:
        spill.mkdir(parents=True, exist_ok=True)
        database = duckdb.connect(config={"memory_limit": ws.settings.offline_memory_limit,
                                          "temp_directory": str(spill)})
        _DATABASES[key] = database
    conn = database.cursor()
    conn.execute("SET TimeZone = 'UTC'")  # after connecting: the setting needs ICU loaded
    return conn


def _base_type(duck_type: str) -> str:
    return duck_type.split("(", 1)[0].strip()


@dataclass(frozen=True)
class Column:
    """One column of the normalized relation: its name there, the source column it comes
    from (``None``: a NULL created time), the declared kind (``int64``, ``float64``,
    ``float32``, ``string``, ``bool`` or ``timestamp``) and the source's DuckDB type."""

    name: str
    source: str | None
    kind: str
    source_type: str


def _check_timestamp(view_name: str, column: str, duck_type: str, timezone: str | None,
                     where: str) -> None:
    base = _base_type(duck_type)
    if base in _AWARE or base in _AWARE_NS:
        return
    if base in _NAIVE:
        if timezone is None:
            raise FeatureError(
                f"Column '{column}' of feature view '{view_name}' ({where}) holds timestamps "
                f"without a time zone ({duck_type}); mlwright compares times in UTC. Write them "
                "with a zone, or declare the view's zone with timezone='UTC' (or another).")
        return
    raise FeatureError(f"Column '{column}' of feature view '{view_name}' ({where}) is {duck_type}, "
                       "not a timestamp; point timestamp_field at a timestamp column.")


def normalized_columns(fv: FeatureView, types: dict[str, str], where: str) -> list[Column]:
    """Check the source's column types (``types``: name -> DuckDB type) against the view and
    say how each normalized column is made; raise :class:`FeatureError` on any misfit. Both
    readers (DuckDB SQL here, Arrow in ``arrow_read``) render this one plan."""

    def column_type(column: str, role: str) -> str:
        if column not in types:
            raise FeatureError(
                f"Feature view '{fv.name}' expects {role} column '{column}' in its source "
                f"{where}, which has no such column (columns: {', '.join(types)}). Fix the "
                "source, or change the view and run `mlwright features apply`.")
        return _base_type(types[column])

    columns: list[Column] = []
    for key, dtype in fv.join_keys.items():
        got = column_type(key, "join key")
        if got not in _ACCEPTS[dtype]:
            raise FeatureError(f"Join key '{key}' of feature view '{fv.name}' is {dtype} but its "
                               f"source {where} has {got}; make them agree.")
        columns.append(Column(key, key, dtype, got))
    ts_type = column_type(fv.timestamp_field, "timestamp")
    _check_timestamp(fv.name, fv.timestamp_field, ts_type, fv.timezone, where)
    columns.append(Column("__ts", fv.timestamp_field, "timestamp", ts_type))
    if fv.created_timestamp_field:
        created_type = column_type(fv.created_timestamp_field, "created timestamp")
        _check_timestamp(fv.name, fv.created_timestamp_field, created_type, fv.timezone, where)
        columns.append(Column("__cts", fv.created_timestamp_field, "timestamp", created_type))
    else:
        columns.append(Column("__cts", None, "timestamp", "TIMESTAMPTZ"))
    for feature in fv.features:
        got = column_type(feature.name, "feature")
        if got not in _ACCEPTS[feature.dtype]:
            raise FeatureError(
                f"Feature view '{fv.name}' declares '{feature.name}' as {feature.dtype} but its "
                f"source {where} has {got}; change the view (a new version) or the source.")
        if feature.dtype == "timestamp":
            _check_timestamp(fv.name, feature.name, got, fv.timezone, where)
        columns.append(Column(feature.name, feature.name, feature.dtype, got))
    return columns


def _timestamp_sql(column: str, base: str, timezone: str | None) -> str:
    if base in _AWARE:
        return quote(column)
    if base in _AWARE_NS:  # to µs by truncation (a cast would round up into the future)
        return f"make_timestamptz(epoch_ns({quote(column)}) // 1000)"
    naive = (f"make_timestamp(epoch_ns({quote(column)}) // 1000)" if base == "TIMESTAMP_NS"
             else f"CAST({quote(column)} AS TIMESTAMP)")
    return f"timezone('{timezone}', {naive})"


def _column_sql(column: Column, timezone: str | None) -> str:
    if column.source is None:
        return f"CAST(NULL AS TIMESTAMPTZ) AS {quote(column.name)}"
    if column.kind == "timestamp":
        expr = _timestamp_sql(column.source, column.source_type, timezone)
    else:
        expr = f"CAST({quote(column.source)} AS {DUCK_TYPES[column.kind]})"
    return f"{expr} AS {quote(column.name)}"


def pushed_folder(ws: Workspace, view: ViewVersion) -> str:
    return f"{ws.features_dir}/pushed/{view.view.name}/v{view.version}"


def pushed_files(ws: Workspace, view: ViewVersion) -> str | None:
    folder = pushed_folder(ws, view)
    if "://" in folder:
        import fsspec

        fs, path = fsspec.core.url_to_fs(folder)
        return f"{folder}/*.parquet" if fs.exists(path) and fs.glob(f"{path}/*.parquet") else None
    local = Path(folder)
    if local.is_dir() and any(local.glob("*.parquet")):
        return f"{folder}/*.parquet"
    return None


def view_relation(ctx: SourceContext, view: ViewVersion, *, pushed: bool = True) -> str:
    """SQL text selecting the view's normalized rows (see the module docstring)."""
    fv = view.view
    raw = fv.source.relation(ctx)
    where = fv.source.describe()
    try:
        described = ctx.conn.sql(f"DESCRIBE SELECT * FROM {raw}").fetchall()
    except Exception as exc:  # duckdb.Error: an unreadable file, a broken query
        raise FeatureError(f"Cannot read the source of feature view '{fv.name}' ({where}): "
                           f"{str(exc).splitlines()[0]}") from None
    columns = normalized_columns(fv, {str(row[0]): str(row[1]) for row in described}, where)
    selects = [_column_sql(column, fv.timezone) for column in columns]
    relation = f"SELECT {', '.join(selects)} FROM {raw}"
    files = pushed_files(ctx.workspace, view) if pushed else None
    if files is not None:
        relation = (f"{relation} UNION ALL BY NAME "
                    f"SELECT * FROM read_parquet('{files}', union_by_name = true)")
    return relation


def fetch_view(ctx: SourceContext, view: ViewVersion, *, low_us: int | None, high_us: int,
               budget_bytes: int) -> pa.Table | None:
    """The view's normalized rows with a key and an event time in ``[low_us, high_us]`` (µs)
    as one Arrow table, or ``None`` as soon as they pass ``budget_bytes``."""
    window = [f"__ts <= make_timestamptz({high_us})",
              *(f"{quote(k)} IS NOT NULL" for k in view.view.join_keys)]
    if low_us is not None:
        window.append(f"__ts >= make_timestamptz({low_us})")
    query = f"SELECT * FROM ({view_relation(ctx, view)}) WHERE {' AND '.join(window)}"
    reader = ctx.conn.sql(query).to_arrow_reader(131_072)
    batches = []
    held = 0
    for batch in reader:
        held += batch.nbytes
        if held > budget_bytes:
            return None
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=reader.schema)


def check_view_source(ws: Workspace, view: ViewVersion) -> None:
    """Raise :class:`FeatureError` unless the view's source exists and fits the view."""
    conn = connect(ws)
    try:
        view_relation(SourceContext(conn, ws), view, pushed=False)
    finally:
        conn.close()
