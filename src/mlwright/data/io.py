"""Reading tables in: files (Parquet, CSV, a folder of Parquet) and in-memory frames.

Whatever comes in leaves as one Arrow table without schema metadata, so that the same
content always hashes the same whichever library or file it came from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from mlwright.errors import DataError

PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
CSV_SUFFIXES = {".csv", ".tsv", ".txt"}


def as_arrow_table(data: Any) -> pa.Table:
    """An Arrow table from a pyarrow Table/RecordBatch, a pandas or a polars DataFrame."""
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif type(data).__module__.startswith("pandas"):
        try:
            table = pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"Cannot convert the pandas DataFrame to Arrow: {exc}. Give each "
                            "column a single type.") from None
    elif type(data).__module__.startswith("polars"):
        table = data.to_arrow()
    else:
        raise DataError(f"Expected a path, a pyarrow Table, a pandas or a polars DataFrame; "
                        f"got {type(data).__name__}.")
    if table.schema.metadata:
        table = table.replace_schema_metadata(None)
    return _plain_types(table)


# pandas 3 and polars hand out large_string / string_view where Parquet and pyarrow give
# string; the same values should be the same content, whichever library produced them.
_PLAIN = {pa.large_string(): pa.string(), pa.string_view(): pa.string(),
          pa.large_binary(): pa.binary(), pa.binary_view(): pa.binary()}


def _plain_types(table: pa.Table) -> pa.Table:
    if not any(field.type in _PLAIN for field in table.schema):
        return table
    schema = pa.schema([field.with_type(_PLAIN.get(field.type, field.type))
                        for field in table.schema])
    try:
        return table.cast(schema)
    except (pa.ArrowInvalid, pa.ArrowCapacityError):  # over 2 GiB in one column: keep it large
        return table


def _read_csv(path: Path) -> pa.Table:
    options = pacsv.ParseOptions(delimiter="\t" if path.suffix == ".tsv" else ",")
    try:
        return pacsv.read_csv(path, parse_options=options)
    except pa.ArrowInvalid as exc:
        detail = str(exc).splitlines()[0]
        raise DataError(f"Cannot read CSV {path}: {detail}. Fix the file (every row needs "
                        "the same number of fields) and register it again.") from None


def _read_parquet(path: Path) -> pa.Table:
    try:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in PARQUET_SUFFIXES)
            if not files:
                raise DataError(f"Folder {path} holds no Parquet files (*.parquet); "
                                "point at a file or a folder of Parquet files.")
            return pads.dataset([str(f) for f in files], format="parquet").to_table()
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        detail = str(exc).splitlines()[0]
        raise DataError(f"Cannot read Parquet {path}: {detail}. Is it really a Parquet "
                        "file?") from None


def read_path(path: str | os.PathLike[str]) -> pa.Table:
    """Read a Parquet file, a folder of Parquet files, or a CSV/TSV file."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"No file or folder at {path}; check the path.")
    if path.is_dir() or path.suffix.lower() in PARQUET_SUFFIXES:
        table = _read_parquet(path)
    elif path.suffix.lower() in CSV_SUFFIXES:
        table = _read_csv(path)
    else:
        raise DataError(f"Cannot tell the format of {path}: expected .parquet, .csv or .tsv, "
                        "or a folder of Parquet files.")
    return as_arrow_table(table)
