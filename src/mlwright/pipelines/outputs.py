"""Storing step outputs in the artifact store, safely: known formats only, never pickle.

A pickled output would run arbitrary code when a later run (or a colleague) loads it; every
kind here is data, and anything else is refused with the list of what works.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlwright.errors import PipelineError

KINDS = ("json", "arrow", "pandas", "polars", "numpy", "bytes", "lightgbm", "dataset")


def _is_json(value: Any, depth: int = 0) -> bool:
    if depth > 64:
        return False
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v, depth + 1) for k, v in value.items())
    return False


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def encode(value: Any, step: str) -> tuple[str, bytes]:
    """(kind, bytes) for a step's output, or a PipelineError saying what can be returned."""
    module = type(value).__module__
    if isinstance(value, pa.Table):
        return "arrow", _parquet(value)
    if module.startswith("pandas") and type(value).__name__ == "DataFrame":
        return "pandas", _parquet(pa.Table.from_pandas(value, preserve_index=True))
    if module.startswith("polars") and type(value).__name__ == "DataFrame":
        return "polars", _parquet(value.to_arrow())
    if module == "numpy" and type(value).__name__ == "ndarray":
        import numpy as np

        sink = io.BytesIO()
        try:
            np.save(sink, value, allow_pickle=False)
        except ValueError:
            raise PipelineError(f"Step '{step}' returned a NumPy array of Python objects, which "
                                "cannot be stored without pickle; return numbers or strings.") from None
        return "numpy", sink.getvalue()
    if isinstance(value, bytes | bytearray):
        return "bytes", bytes(value)
    if module.startswith("lightgbm") and type(value).__name__ == "Booster":
        return "lightgbm", value.model_to_string().encode()
    if type(value).__name__ == "DatasetVersionInfo":
        return "dataset", json.dumps({"ref": value.ref}).encode()
    if _is_json(value):
        try:
            return "json", json.dumps(value, allow_nan=True, separators=(",", ":")).encode()
        except (TypeError, ValueError):
            pass
    raise PipelineError(
        f"Step '{step}' returned a {module}.{type(value).__name__}, which mlwright cannot store "
        "safely (it never pickles). Return an Arrow, pandas or polars table, a NumPy array, a "
        "JSON value (numbers, strings, lists, dicts), bytes, a LightGBM Booster, or a dataset "
        "version."
    )


def decode(kind: str, data: bytes, workspace: Any = None) -> Any:
    """The value back from what ``encode`` stored."""
    if kind == "json":
        return json.loads(data)
    if kind in ("arrow", "pandas", "polars"):
        table = pq.read_table(pa.BufferReader(data))
        if kind == "pandas":
            return table.to_pandas()
        if kind == "polars":
            import polars as pl

            return pl.from_arrow(table)
        return table
    if kind == "numpy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=False)
    if kind == "bytes":
        return data
    if kind == "lightgbm":
        import lightgbm

        return lightgbm.Booster(model_str=data.decode())
    if kind == "dataset":
        from mlwright.data.datasets import get_dataset_version

        return get_dataset_version(json.loads(data)["ref"], workspace=workspace)
    raise PipelineError(f"Unknown stored output kind '{kind}'; was it written by a newer mlwright?")
