"""Pushing fresh rows: straight to the online store, and appended to the offline data.

>>> push("user_stats", [{"user_id": 42, "event_timestamp": now, "clicks": 3.0}])  # doctest: +SKIP
1

This is the path for streaming features. Offline, pushed rows are Parquet files beside the
workspace's artifacts that historical retrieval and materialization read together with the
view's source; online, the store's newer-wins rule keeps a late or replayed push from
overwriting a newer value.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mlwright.data.io import as_arrow_table
from mlwright.errors import FeatureError
from mlwright.features.catalog import ViewVersion, load_catalog
from mlwright.features.on_demand import ARROW_TYPES
from mlwright.features.online import OnlineStore, encode_keys, open_online_store
from mlwright.features.relations import pushed_folder
from mlwright.workspace import Workspace, as_workspace

WorkspaceArg = Workspace | str | os.PathLike[str] | None
Target = Literal["online", "offline", "online_and_offline"]
UTC_MICROS = pa.timestamp("us", "UTC")


def _timestamps(view: ViewVersion, column: str, array: pa.ChunkedArray) -> pa.ChunkedArray:
    if not pa.types.is_timestamp(array.type):
        raise FeatureError(f"Column '{column}' pushed to view '{view.name}' is {array.type}, not "
                           "a timestamp.")
    if array.type.tz is None:
        zone = view.view.timezone
        if zone is None:
            raise FeatureError(f"Column '{column}' pushed to view '{view.name}' has no time "
                               "zone; mlwright stores UTC. Send timestamps with a zone.")
        try:
            array = pc.assume_timezone(array, zone)
        except pa.ArrowInvalid as exc:  # a wall time that does not exist, or exists twice
            detail = str(exc).splitlines()[0]
            raise FeatureError(f"Column '{column}' pushed to view '{view.name}' holds a time "
                               f"that is ambiguous or does not exist in {zone} ({detail}); send "
                               "timestamps with their UTC offset.") from None
    return array.cast(UTC_MICROS)


def normalize(view: ViewVersion, rows: Any) -> pa.Table:
    """Rows in the offline layout of the view: keys, ``__ts``, ``__cts``, features."""
    fv = view.view
    table = pa.Table.from_pylist(rows) if isinstance(rows, list) else as_arrow_table(rows)
    names = set(table.column_names)
    needed = [*fv.join_keys, fv.timestamp_field, *fv.feature_names]
    missing = [c for c in needed if c not in names]
    if missing:
        raise FeatureError(f"Rows pushed to view '{fv.name}' lack {', '.join(missing)} "
                           f"(columns given: {', '.join(table.column_names) or 'none'}).")
    extra = sorted(names - set(needed) - {fv.created_timestamp_field or ""})
    if extra:
        raise FeatureError(f"Rows pushed to view '{fv.name}' have unknown column(s) "
                           f"{', '.join(extra)}; the view has {', '.join(needed)}.")
    columns: dict[str, pa.ChunkedArray] = {}
    for key, dtype in fv.join_keys.items():
        array = table.column(key)
        if array.null_count:
            raise FeatureError(f"Join key '{key}' pushed to view '{fv.name}' has nulls.")
        ok = pa.types.is_integer(array.type) if dtype == "int64" else \
            pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
        if not ok:
            raise FeatureError(f"Join key '{key}' pushed to view '{fv.name}' is {array.type}; "
                               f"the entity declares {dtype}.")
        columns[key] = array.cast(ARROW_TYPES[dtype])
    columns["__ts"] = _timestamps(view, fv.timestamp_field, table.column(fv.timestamp_field))
    created = fv.created_timestamp_field
    if created and created in names:
        columns["__cts"] = _timestamps(view, created, table.column(created))
    else:  # the moment of the push decides ties with rows of the same event time
        now = datetime.now(UTC)
        columns["__cts"] = pa.chunked_array([pa.array([now] * table.num_rows, UTC_MICROS)])
    for feature in fv.features:
        array = table.column(feature.name)
        try:
            columns[feature.name] = (_timestamps(view, feature.name, array)
                                     if feature.dtype == "timestamp"
                                     else array.cast(ARROW_TYPES[feature.dtype]))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise FeatureError(f"Feature '{feature.name}' pushed to view '{fv.name}' is "
                               f"{array.type}; the view declares {feature.dtype}.") from None
    return pa.table(columns)


def online_batch(view: ViewVersion, table: pa.Table) -> pa.RecordBatch:
    """The offline layout turned into the online store's batch layout."""
    fv = view.view
    keys = encode_keys([table.column(k).combine_chunks() for k in fv.join_keys],
                       list(fv.join_keys.values()))
    arrays = [keys, pc.cast(table.column("__ts"), pa.int64()).combine_chunks(),
              pc.cast(table.column("__cts"), pa.int64()).combine_chunks()]
    for feature in fv.features:
        array = table.column(feature.name).combine_chunks()
        arrays.append(pc.cast(array, pa.int64()) if feature.dtype == "timestamp" else array)
    return pa.RecordBatch.from_arrays(arrays, ["__key", "__event_ts", "__created_ts",
                                               *fv.feature_names])


def append_offline(ws: Workspace, view: ViewVersion, table: pa.Table) -> str:
    """Write the rows as one new Parquet file of the view's pushed data (whole or not at all)."""
    folder = pushed_folder(ws, view)
    name = f"part-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
    if "://" in folder:
        import fsspec

        fs, path = fsspec.core.url_to_fs(folder)
        fs.makedirs(path, exist_ok=True)
        with fs.open(f"{path}/.{name}.part", "wb") as handle:
            pq.write_table(table, handle)
        fs.mv(f"{path}/.{name}.part", f"{path}/{name}")
        return f"{folder}/{name}"
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    temp = target / f".{name}.part"
    try:
        pq.write_table(table, temp)
        temp.replace(target / name)
    finally:
        temp.unlink(missing_ok=True)
    return str(target / name)


@dataclass
class Pusher:
    """Pushes to one view with the online store kept open (for streams of small batches)."""

    workspace: Workspace
    view: ViewVersion
    store: OnlineStore
    pushed: int = 0
    files: list[str] = field(default_factory=list)

    def push(self, rows: Any, to: Target = "online_and_offline") -> int:
        table = normalize(self.view, rows)
        if not table.num_rows:
            return 0
        if to in ("offline", "online_and_offline"):
            self.files.append(append_offline(self.workspace, self.view, table))
        if to in ("online", "online_and_offline") and self.view.view.online:
            self.store.write(self.view.online_table, online_batch(self.view, table))
        count = int(table.num_rows)
        self.pushed += count
        return count

    def close(self) -> None:
        self.store.close()


def pusher(view: str, *, workspace: WorkspaceArg = None) -> Pusher:
    ws = as_workspace(workspace)
    target = load_catalog(ws).view(view)
    return Pusher(ws, target, open_online_store(ws.online_url, prefix=ws.settings.online_prefix))


def push(view: str, rows: Any, *, workspace: WorkspaceArg = None,
         to: Target = "online_and_offline") -> int:
    """Write ``rows`` (Arrow/pandas/polars table or a list of dicts with the join keys, the
    event timestamp and every feature) to the view online and offline; return the count."""
    if to not in ("online", "offline", "online_and_offline"):
        raise FeatureError(f"Push target '{to}' is unknown; use online, offline or "
                           "online_and_offline.")
    target = pusher(view, workspace=workspace)
    try:
        return target.push(rows, to)
    finally:
        target.close()
