"""The in-memory point-in-time join: which feature row each entity row gets.

polars' ``join_asof`` does the search (a backward search picks the last row at or before,
so rows sorted by (event, created) give the newest created among equal event times); it moves
only keys, times and a row index, and the features are then fetched with Arrow's ``take``.
Sorting four narrow columns instead of every feature is what makes this faster than joining
whole rows (15 ms against polars' own whole-row ``join_asof`` at 17 ms for 10,000 entity rows
over 100,000 feature rows here; 109 ms against 195 ms at ten times that).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def micros(array: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Aware timestamps as int64 µs since the epoch (ns truncated, as the SQL join does)."""
    return pc.cast(pc.cast(array, pa.timestamp("us", "UTC"), safe=False), pa.int64())


def _key(array: pa.ChunkedArray, dtype: str) -> pa.ChunkedArray:
    return pc.cast(array, pa.int64() if dtype == "int64" else pa.large_string())


def _in_order(times: pa.ChunkedArray, created: pa.ChunkedArray | None) -> bool:
    """Whether rows are already sorted by (event, created with nulls first), as logs usually
    are: the check costs a tenth of a sort."""
    if times.null_count:
        return False
    steps = np.diff(times.to_numpy())
    if (steps < 0).any():
        return False
    if created is None:
        return True
    values = pc.fill_null(created, np.iinfo(np.int64).min).to_numpy()
    return not (np.diff(values)[steps == 0] < 0).any()


def asof_indices(entity_keys: Mapping[str, pa.ChunkedArray], entity_us: pa.ChunkedArray,
                 rows: pa.Table, key_types: Mapping[str, str], ttl_us: int | None, *,
                 window: tuple[int | None, int] | None = None) -> pa.Array:
    """For each entity row, the index into ``rows`` (a view's normalized rows: its keys,
    ``__ts`` and ``__cts``) of the row a point-in-time join picks, or null: the latest row
    with the same keys at or before ``entity_us``, newest created first among equal times,
    and not older than ``ttl_us``. Rows with a null key or time never match; ``window``
    (low or None, high, in µs) drops rows outside it before the sort."""
    import polars as pl

    keys = list(key_types)
    count = len(entity_us)
    # One lazy plan, collected once: every polars call wakes its thread pool, and on two
    # cores the woken threads then compete with the Python and Arrow work around them.
    entity = {k: _key(entity_keys[k], key_types[k]) for k in keys}
    left = pl.DataFrame({**{k: pl.from_arrow(v) for k, v in entity.items()},
                         "__ets": pl.from_arrow(entity_us),
                         "__row": np.arange(count, dtype=np.int64)}).lazy()
    if entity_us.null_count or any(v.null_count for v in entity.values()):
        left = left.drop_nulls()
    times = micros(rows.column("__ts"))
    created = rows.column("__cts")
    created_us = micros(created) if created.null_count < len(created) else None
    source = {k: _key(rows.column(k), key_types[k]) for k in keys}
    right = pl.DataFrame({**{k: pl.from_arrow(v) for k, v in source.items()},
                          "__ts": pl.from_arrow(times),
                          "__i": np.arange(rows.num_rows, dtype=np.int64),
                          **({"__c": pl.from_arrow(created_us)} if created_us is not None
                             else {})}).lazy()
    if window is not None:
        low, high = window
        bounds = pc.min_max(times)
        first, last = bounds["min"].as_py(), bounds["max"].as_py()
        if first is not None and (last > high or (low is not None and first < low)):
            keep = pl.col("__ts") <= high  # (a filter copies: only when it drops rows)
            right = right.filter(keep if low is None else keep & (pl.col("__ts") >= low))
    if times.null_count or any(v.null_count for v in source.values()):
        right = right.drop_nulls(subset=[*keys, "__ts"])  # a null created time stays
    if _in_order(times, created_us):  # filtering keeps the order
        right = right.select(*keys, pl.col("__ts").set_sorted(), "__i")
    elif created_us is not None:
        # nulls first: a row without a created time loses a tie to one with it, as in the SQL
        right = right.sort(["__ts", "__c"], nulls_last=False).select(*keys, "__ts", "__i")
    else:
        right = right.sort("__ts")
    joined = (left.sort("__ets")
              .join_asof(right, left_on="__ets", right_on="__ts", by=keys, strategy="backward",
                         tolerance=ttl_us, check_sortedness=False)
              .select("__row", "__i").collect())
    picked = np.full(count, -1, dtype=np.int64)
    picked[joined.get_column("__row").to_numpy()] = \
        joined.get_column("__i").fill_null(-1).to_numpy()
    return pa.array(picked, mask=picked < 0)
