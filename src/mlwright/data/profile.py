"""The statistics profile of a table: what each column looks like, kept as the drift reference.

All per-column aggregates come from one DuckDB statement; top categories from one more
(a UNION over the categorical columns); histograms from NumPy on the numeric columns.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlwright.data.report import jsonable
from mlwright.data.validation import quote

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
TOP_K = 10
HISTOGRAM_BINS = 20


def _numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))


def _temporal(t: pa.DataType) -> bool:
    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t))


def _categorical(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
                or pa.types.is_boolean(t) or pa.types.is_dictionary(t))


def _aggregates(name: str, t: pa.DataType) -> list[tuple[str, str]]:
    col = quote(name)
    stats: list[tuple[str, str]] = []
    if _numeric(t) or _temporal(t) or (_categorical(t) and not pa.types.is_boolean(t)):
        stats += [("min", f"min({col})"), ("max", f"max({col})")]
    if _numeric(t):
        value = f"CAST({col} AS DOUBLE)"
        finite = f"CASE WHEN isfinite({value}) THEN {value} END"
        stats += [("mean", f"avg({finite})"), ("std", f"stddev_samp({finite})"),
                  ("quantiles", f"quantile_cont({finite}, {list(QUANTILES)})")]
    elif _temporal(t):
        stats += [("quantiles", f"quantile_disc({col}, {list(QUANTILES)})")]
    if not pa.types.is_nested(t):
        stats.append(("distinct_approx", f"approx_count_distinct({col})"))
    return stats


def _histogram(column: pa.ChunkedArray) -> dict[str, list[float]] | None:
    values = pc.drop_null(column).to_numpy() if column.null_count else column.to_numpy()
    values = values.astype(np.float64, copy=False)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def profile_table(table: pa.Table) -> dict[str, Any]:
    """Per column: type, null count, min/max, mean/std, quantiles, top-k values, histogram.

    >>> profile_table(pa.table({"x": [1, 2, None]}))["columns"]["x"]["null_count"]
    1
    """
    columns: dict[str, dict[str, Any]] = {}
    select: list[str] = []
    wanted: list[tuple[str, str, str]] = []
    for field in table.schema:
        columns[field.name] = {"type": str(field.type),
                               "null_count": table.column(field.name).null_count}
        for stat, sql in _aggregates(field.name, field.type):
            alias = f"a{len(select)}"
            select.append(f"{sql} AS {alias}")
            wanted.append((field.name, stat, alias))
    con = duckdb.connect()
    try:
        con.register("t", table)
        if select:
            (row,) = con.sql(f"SELECT {', '.join(select)} FROM t").fetchall()
            for (name, stat, _), value in zip(wanted, row, strict=True):
                if stat == "quantiles":
                    value = dict(zip((str(q) for q in QUANTILES), value or [], strict=False))
                columns[name][stat] = value
        categorical = [f.name for f in table.schema if _categorical(f.type)]
        if categorical:
            parts = [
                f"(SELECT {i} AS c, CAST({quote(n)} AS VARCHAR) AS v, count(*) AS k FROM t "
                f"WHERE {quote(n)} IS NOT NULL GROUP BY {quote(n)} ORDER BY k DESC, v LIMIT {TOP_K})"
                for i, n in enumerate(categorical)
            ]
            top: dict[str, list[dict[str, Any]]] = {n: [] for n in categorical}
            for index, value, count in con.sql(" UNION ALL ".join(parts)).fetchall():
                top[categorical[index]].append({"value": value, "count": int(count)})
            for name, items in top.items():
                columns[name]["top_k"] = sorted(items, key=lambda i: (-i["count"], i["value"]))
    finally:
        con.close()
    for field in table.schema:
        if _numeric(field.type) and not pa.types.is_decimal(field.type):
            columns[field.name]["histogram"] = _histogram(table.column(field.name))
    return jsonable({"num_rows": table.num_rows, "columns": columns})  # type: ignore[no-any-return]
