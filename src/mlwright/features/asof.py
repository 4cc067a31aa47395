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


def asof_indices(entity_keys: Mapping[str, pa.ChunkedArray], entity_us: pa.ChunkedArray,
                 rows: pa.Table, key_types: Mapping[str, str], ttl_us: int | None) -> pa.Array:
    """For each entity row, the index into ``rows`` (a view's normalized rows: its keys,
    ``__ts`` and ``__cts``) of the row a point-in-time join picks, or null: the latest row
    with the same keys at or before ``entity_us``, newest created first among equal times,
    and not older than ``ttl_us``. Rows with a null key or time never match."""
    import polars as pl

    keys = list(key_types)
    count = len(entity_us)
    left = pl.DataFrame({**{k: pl.from_arrow(_key(entity_keys[k], key_types[k])) for k in keys},
                         "__ets": pl.from_arrow(entity_us),
                         "__row": np.arange(count, dtype=np.int64)})
    left = left.drop_nulls().sort("__ets")
    right = pl.DataFrame({**{k: pl.from_arrow(_key(rows.column(k), key_types[k])) for k in keys},
                          "__ts": pl.from_arrow(micros(rows.column("__ts"))),
                          "__c": pl.from_arrow(micros(rows.column("__cts"))),
                          "__i": np.arange(rows.num_rows, dtype=np.int64)})
    # nulls first: a row without a created time loses a tie to one with it, as in the SQL
    right = right.sort(["__ts", "__c"], nulls_last=False).drop("__c")
    joined = left.join_asof(right, left_on="__ets", right_on="__ts", by=keys,
                            strategy="backward", tolerance=ttl_us, check_sortedness=False)
    picked = np.full(count, -1, dtype=np.int64)
    picked[joined.get_column("__row").to_numpy()] = \
        joined.get_column("__i").fill_null(-1).to_numpy()
    return pa.array(picked, mask=picked < 0)
