"""Point-in-time correct training data: each entity row joined to the latest feature row at or
before its timestamp, within the view's TTL.

>>> job = get_historical_features(entity_df, ["user_stats:clicks"])      # doctest: +SKIP
>>> table = job.to_arrow()          # one row per input row, in input order

Semantics (the same as Feast's, so results compare row for row): a feature row qualifies when
its event time is at or before the entity row's and not older than the TTL; among rows with
the same event time the newest created time wins; nothing qualifying gives nulls. Unlike
Feast's default store, every input row comes back (duplicates and rows without features
included) and in the order given.

Two ways to run it, one result (``offline_join`` in the settings picks; ``auto`` by default):
in memory, when the views' rows fit in a third of ``offline_memory_limit`` — each view read
into Arrow (pyarrow for a local Parquet file, DuckDB for anything else), the search done by
polars' ``join_asof`` on keys and times, the features fetched by index — or spilling, a DuckDB
ASOF join over the sources that goes to disk past the memory limit and streams its result.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlwright.data.io import as_arrow_table
from mlwright.errors import FeatureError
from mlwright.features.arrow_read import ParquetView, TooBig, open_view
from mlwright.features.asof import asof_indices, micros
from mlwright.features.catalog import Selection, load_catalog
from mlwright.features.on_demand import apply_on_demand
from mlwright.features.relations import fetch_view, quote, view_relation
from mlwright.features.sources import DatasetSource, ParquetSource, SourceContext
from mlwright.workspace import Workspace, as_workspace

WorkspaceArg = Workspace | str | os.PathLike[str] | None
BATCH_ROWS = 131_072
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10,
          "mib": 2**20, "gib": 2**30, "tib": 2**40}


def memory_budget(limit: str, mode: str) -> int:
    """Bytes of view rows the in-memory join may hold: a third of DuckDB's memory limit
    (``2GB``, ``512MiB``, ``80%``...) under ``auto`` (the join needs about as much again for
    its sort and result), unbounded under ``memory``, nothing under ``spill``."""
    if mode == "memory":
        return 2**62
    found = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z%]*)\s*", limit)
    if mode == "spill" or found is None:
        return 0  # an unreadable limit: DuckDB's own check words the error
    number, unit = float(found.group(1)), found.group(2).lower()
    if unit == "%":
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return int(total * number / 100 / 3)
    return int(number * _UNITS.get(unit, 0) / 3)


def _check_entity_schema(schema: pa.Schema, selection: Selection, timestamp_column: str) -> None:
    names = set(schema.names)
    missing = [k for k in selection.join_keys if k not in names]
    if missing:
        raise FeatureError(f"The entity table has no column {', '.join(map(repr, missing))}; it "
                           f"needs the join keys {', '.join(selection.join_keys)} and "
                           f"'{timestamp_column}' (columns: {', '.join(schema.names)}).")
    for key, dtype in selection.join_keys.items():
        got = schema.field(key).type
        ok = (pa.types.is_integer(got) if dtype == "int64"
              else pa.types.is_string(got) or pa.types.is_large_string(got))
        if not ok:
            raise FeatureError(f"Join key '{key}' of the entity table is {got}; the entity "
                               f"declares {dtype}. Cast the column.")
    if timestamp_column not in names:
        raise FeatureError(f"The entity table has no timestamp column '{timestamp_column}' "
                           f"(columns: {', '.join(schema.names)}); pass timestamp_column=...")
    ts_type = schema.field(timestamp_column).type
    if not pa.types.is_timestamp(ts_type):
        raise FeatureError(f"Column '{timestamp_column}' of the entity table is {ts_type}, not a "
                           "timestamp.")
    if ts_type.tz is None:
        raise FeatureError(f"Column '{timestamp_column}' of the entity table has no time zone; "
                           "mlwright compares times in UTC. Localize it, e.g. "
                           "df[col].dt.tz_localize('UTC').")
    for f in selection.request_fields:
        if f.name not in names:
            raise FeatureError(f"The entity table has no column '{f.name}', which an on-demand "
                               "view reads from the request.")
    clash = [s.column for s in selection.features if s.column in names]
    if clash:
        raise FeatureError(f"The entity table already has column(s) {', '.join(clash)}, which "
                           "are requested features; rename them or ask for full feature names.")


def _search(opened: ParquetView, keys: dict[str, pa.ChunkedArray], entity_us: pa.ChunkedArray,
            ttl_us: int | None, window: tuple[int | None, int]) -> pa.Array:
    """The join over a Parquet view: read its keys and times, pick a row per entity row."""
    fv = opened.view.view
    rows = opened.read([*fv.join_keys, "__ts", "__cts"])
    return asof_indices(keys, entity_us, rows, fv.join_keys, ttl_us, window=window)


@dataclass
class HistoricalRetrieval:
    """A point-in-time join, run lazily: ``to_arrow``, ``to_pandas``, ``to_parquet`` or
    ``to_batches`` (streaming). ``views`` and ``datasets`` record which versions were read."""

    workspace: Workspace
    entities: Any
    selection: Selection
    timestamp_column: str
    views: list[str] = field(default_factory=list)
    datasets: dict[str, str] = field(default_factory=dict)

    def _entity_sql(self, ctx: SourceContext) -> tuple[str, pa.Schema]:
        entities = self.entities
        if isinstance(entities, str | os.PathLike):
            path = Path(entities).expanduser()
            if not path.is_file():
                raise FeatureError(f"Entity table '{path}' does not exist or is not a Parquet "
                                   "file.")
            schema = pq.read_schema(path)
            _check_entity_schema(schema, self.selection, self.timestamp_column)
            sql = (f"SELECT * EXCLUDE (file_row_number), file_row_number AS __row FROM "
                   f"read_parquet('{str(path).replace(chr(39), chr(39) * 2)}', "
                   "file_row_number = true)")
            return sql, schema
        table = as_arrow_table(entities)
        _check_entity_schema(table.schema, self.selection, self.timestamp_column)
        schema = table.schema
        table = table.append_column("__row", pa.array(range(table.num_rows), pa.int64()))
        name = f"__entities_{uuid.uuid4().hex[:8]}"
        ctx.conn.register(name, table)
        return f"SELECT * FROM {name}", schema

    def sql(self, ctx: SourceContext) -> str:
        entity_sql, schema = self._entity_sql(ctx)
        entity_columns = schema.names
        ts = quote(self.timestamp_column)
        if schema.field(self.timestamp_column).type.unit == "ns":  # truncate, never round up
            ets = f"make_timestamptz(epoch_ns({ts}) // 1000)"
        else:
            ets = f"CAST({ts} AS TIMESTAMPTZ)"
        ordered = any(v.view.created_timestamp_field for v in self.selection.views)
        left_order = ", struct_pack(t := __ets, c := 'infinity'::TIMESTAMPTZ) AS __eo" \
            if ordered else ""
        parts = [f"WITH __e AS (SELECT *, {ets} AS __ets{left_order} "
                 f"FROM ({entity_sql}))"]
        ((low, high),) = ctx.conn.sql(f"SELECT epoch_us(min({ets})), epoch_us(max({ets})) "
                                      f"FROM ({entity_sql})").fetchall()
        joins: list[str] = []
        two_phase = False
        wanted = {(s.view, s.feature): s.column for s in [*self.selection.features,
                                                          *self.selection.hidden]}
        selects = [f"e.{quote(c)}" for c in entity_columns]
        for i, view in enumerate(self.selection.views):
            fv = view.view
            alias = f"v{i}"
            relation = view_relation(ctx, view)
            micros = int(fv.ttl.total_seconds() * 1_000_000) if fv.ttl is not None else None
            if high is not None:
                # Rows after the last entity time (or older than the first one's TTL) can never
                # be joined: dropping them first keeps the join's sort small and, on Parquet,
                # skips whole row groups.
                window = [f"__ts <= make_timestamptz({high})"]
                if micros is not None:
                    window.append(f"__ts >= make_timestamptz({low - micros})")
                relation = f"SELECT * FROM ({relation}) WHERE {' AND '.join(window)}"
            order = "__ts"
            if fv.created_timestamp_field:
                # One inequality decides an ASOF join, so order by (event, created) as a struct:
                # among equal event times the newest created time wins.
                order = "struct_pack(t := __ts, c := coalesce(__cts, '-infinity'::TIMESTAMPTZ))"
            left = "e.__eo" if fv.created_timestamp_field else "e.__ets"
            keys = [quote(k) for k in fv.join_keys]
            on_keys = " AND ".join(f"e.{k} = {alias}.{k}" for k in keys)
            fresh = f"{alias}.__ts >= e.__ets - INTERVAL {micros} MICROSECOND" \
                if micros is not None else None
            if isinstance(fv.source, ParquetSource | DatasetSource):
                # The ASOF join sorts what it joins: giving it only keys and times, then
                # fetching the chosen rows' features by a hash join, is 10-20% faster and holds
                # less memory than sorting every feature along (the source is a plain scan,
                # cheap to read twice; a SQL source is not, and is joined in one pass).
                cts = "coalesce(__cts, '-infinity'::TIMESTAMPTZ)"
                parts.append(f"{alias} AS (SELECT {', '.join(keys)}, __ts, {cts} AS __c, "
                             f"{order} AS __o FROM ({relation}))")
                parts.append(f"{alias}p AS (SELECT *, {cts} AS __c FROM ({relation}))")
                payload = " AND ".join([*(f"{alias}p.{k} = {alias}.{k}" for k in keys),
                                        f"{alias}p.__ts = {alias}.__ts",
                                        f"{alias}p.__c = {alias}.__c", *([fresh] if fresh else [])])
                joins.append(f"ASOF LEFT JOIN {alias} ON {on_keys} AND {left} >= {alias}.__o")
                joins.append(f"LEFT JOIN {alias}p ON {payload}")
                source_alias, fresh = f"{alias}p", None  # freshness is in the join
                two_phase = True
            else:
                parts.append(f"{alias} AS (SELECT *, {order} AS __o FROM ({relation}))")
                joins.append(f"ASOF LEFT JOIN {alias} ON {on_keys} AND {left} >= {alias}.__o")
                source_alias = alias
            for feature in fv.feature_names:
                column = wanted.get((fv.name, feature))
                if column is None:
                    continue
                value = f"{source_alias}.{quote(feature)}"
                expr = f"CASE WHEN {fresh} THEN {value} END" if fresh else value
                selects.append(f"{expr} AS {quote(column)}")
        self.views = [v.ref for v in self.selection.views]
        self.datasets = dict(ctx.datasets)
        # Source rows repeating (key, event, created) exactly would repeat an entity row in the
        # hash join: keep one (the ASOF join's pick among them is arbitrary anyway).
        once = "\nQUALIFY row_number() OVER (PARTITION BY e.__row) = 1" if two_phase else ""
        return (",\n".join(parts) + f"\nSELECT {', '.join(selects)} FROM __e e\n"
                + "\n".join(joins) + once + "\nORDER BY e.__row")

    def _entity_table(self) -> pa.Table:
        if isinstance(self.entities, str | os.PathLike):
            return pq.read_table(Path(self.entities).expanduser())
        return as_arrow_table(self.entities)

    def _join_in_memory(self, ctx: SourceContext) -> pa.Table | None:
        """The whole result, or ``None`` when the views' rows would not fit the budget."""
        settings = self.workspace.settings
        budget = memory_budget(settings.offline_memory_limit, settings.offline_join)
        if budget <= 0:
            return None
        entities = self._entity_table()
        entity_us = micros(entities.column(self.timestamp_column))
        bounds = pc.min_max(entity_us)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        wanted = {(s.view, s.feature): s.column for s in [*self.selection.features,
                                                          *self.selection.hidden]}
        columns, names = list(entities.columns), list(entities.column_names)
        for view in self.selection.views:
            fv = view.view
            ttl_us = int(fv.ttl.total_seconds() * 1_000_000) if fv.ttl is not None else None
            low_us = low - ttl_us if low is not None and ttl_us is not None else None
            high_us = high if high is not None else -(2**62)  # no entity time: nothing joins
            chosen = {f: wanted[(fv.name, f)] for f in fv.feature_names if (fv.name, f) in wanted}
            try:
                opened = open_view(ctx, view, features=list(chosen), budget_bytes=budget)
            except TooBig:
                return None
            keys = {k: entities.column(k) for k in fv.join_keys}
            if opened is not None:
                taken = opened.gather(list(chosen), partial(
                    _search, opened, keys, entity_us, ttl_us, (low_us, high_us)))
                budget -= opened.held_bytes
            else:
                rows = fetch_view(ctx, view, low_us=low_us, high_us=high_us,
                                  budget_bytes=budget)
                if rows is None:
                    return None
                taken = rows.select(list(chosen)).take(asof_indices(
                    keys, entity_us, rows, fv.join_keys, ttl_us, window=(low_us, high_us)))
                budget -= rows.nbytes
            for feature, column in chosen.items():
                columns.append(taken.column(feature))
                names.append(column)
        return pa.table(columns, names=names)

    def to_batches(self, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """Stream the result (at least one batch, maybe empty). Memory: a third of
        ``offline_memory_limit`` plus the result when joined in memory; the batch size and
        DuckDB's limit when spilling."""
        ctx = SourceContext(None, self.workspace)  # a DuckDB session only if one is needed
        try:
            table = self._join_in_memory(ctx)
            self.views = [v.ref for v in self.selection.views]
            if table is not None:
                self.datasets = dict(ctx.datasets)
                batches = table.to_batches(batch_rows) or \
                    [pa.RecordBatch.from_pylist([], schema=table.schema)]
                for batch in batches:
                    yield apply_on_demand(batch, self.selection)
                return
            spill = SourceContext(ctx.conn, self.workspace)  # a fresh context, one session
            reader = ctx.conn.sql(self.sql(spill)).to_arrow_reader(batch_rows)
            empty = True
            for batch in reader:
                if batch.num_rows:
                    empty = False
                    yield apply_on_demand(batch, self.selection)
            if empty:
                yield apply_on_demand(pa.RecordBatch.from_pylist([], schema=reader.schema),
                                      self.selection)
        finally:
            ctx.close()

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_batches(list(self.to_batches()))

    def to_pandas(self) -> Any:
        return self.to_arrow().to_pandas()

    def to_parquet(self, path: str | os.PathLike[str]) -> int:
        """Write the result to a Parquet file (whole or not at all); return the row count."""
        target = Path(path)
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        rows = 0
        writer: pq.ParquetWriter | None = None
        try:
            for batch in self.to_batches():
                if writer is None:
                    writer = pq.ParquetWriter(temp, batch.schema)
                writer.write_batch(batch)
                rows += batch.num_rows
            if writer is not None:
                writer.close()
                writer = None
            temp.replace(target)
        finally:
            if writer is not None:
                writer.close()
            temp.unlink(missing_ok=True)
        return rows


def get_historical_features(
    entity_df: Any,
    features: str | Sequence[str],
    *,
    workspace: WorkspaceArg = None,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
) -> HistoricalRetrieval:
    """Join ``entity_df`` (a Parquet path, or an Arrow/pandas/polars table with the join keys
    and a time-zone-aware ``timestamp_column``) to the features as they were at each row's time.

    ``features`` is a feature service name or a list of ``view:feature`` / ``view:*``.
    Errors in the request (unknown features, missing columns, naive timestamps) are raised
    here; the join itself runs when the result is read.
    """
    ws = as_workspace(workspace)
    selection = load_catalog(ws).select(features, full_names=full_feature_names)
    job = HistoricalRetrieval(ws, entity_df, selection, timestamp_column)
    if isinstance(entity_df, str | os.PathLike):
        path = Path(entity_df).expanduser()
        if not path.is_file():
            raise FeatureError(f"Entity table '{path}' does not exist or is not a Parquet file.")
        try:
            schema = pq.read_schema(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise FeatureError(f"Entity table '{path}' is not a readable Parquet file: "
                               f"{str(exc).splitlines()[0]}") from None
        _check_entity_schema(schema, selection, timestamp_column)
    else:
        job.entities = as_arrow_table(entity_df)
        _check_entity_schema(job.entities.schema, selection, timestamp_column)
    return job
